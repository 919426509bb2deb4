import json

import numpy as np
import pytest

from affectkit.cache import cache_key, load_cached, store
from affectkit.data import EmotionDataset, Standardizer
from affectkit.datasets import load_dataset
from affectkit.errors import UserError
from affectkit.plugins import get_registry


def make(n=6, k=3, **kw):
    rng = np.random.default_rng(0)
    args = dict(
        name="t",
        modalities={"eeg": rng.normal(size=(n, 2, 5)), "gsr": rng.normal(size=(n, 4))},
        targets=rng.dirichlet(np.ones(k), size=n),
        emotions=[f"e{i}" for i in range(k)],
        subject=np.repeat(["a", "b"], n // 2),
        trial=np.zeros(n, int),
        window=np.arange(n),
    )
    args.update(kw)
    return EmotionDataset(**args)


def test_valid_dataset_casts_and_exposes_spec():
    d = make()
    assert d.modalities["eeg"].dtype == np.float32
    assert d.spec.shapes == {"eeg": (2, 5), "gsr": (4,)}
    assert d.spec.num_emotions == 3
    sub = d.subset([0, 2])
    assert len(sub) == 2 and sub.modalities["eeg"].shape == (2, 2, 5)


def test_nan_is_named_by_modality_and_row():
    d = make()
    x = d.modalities["gsr"].copy()
    x[4, 1] = np.nan
    with pytest.raises(UserError, match=r"modality 'gsr' holds NaN/inf in 1 row\(s\), first row 4"):
        make(modalities={"eeg": d.modalities["eeg"], "gsr": x})
    ok = make(modalities={"eeg": d.modalities["eeg"], "gsr": x}, missing="impute")
    z = Standardizer.fit(ok).transform(ok)
    assert np.isfinite(z.modalities["gsr"]).all() and z.modalities["gsr"][4, 1] == 0.0


def test_targets_must_be_distributions_and_shapes_agree():
    d = make()
    bad = d.targets.copy()
    bad[2] *= 2
    with pytest.raises(UserError, match=r"target row 2 .* is not a distribution"):
        make(targets=bad)
    with pytest.raises(UserError, match="modality 'gsr' has shape"):
        make(modalities={"eeg": d.modalities["eeg"], "gsr": np.zeros((5, 4))})
    with pytest.raises(UserError, match="K = 3 emotions"):
        make(targets=np.ones((6, 4)) / 4)


def test_standardizer_uses_training_statistics_only():
    d = make(n=8)
    train, test = d.subset(np.arange(4)), d.subset(np.arange(4, 8))
    test.modalities["gsr"] = test.modalities["gsr"] + 100.0  # a shifted test fold
    norm = Standardizer.fit(train)
    zt = norm.transform(train).modalities["gsr"]
    assert np.allclose(zt.mean(0), 0, atol=1e-5) and np.allclose(zt.std(0), 1, atol=1e-4)
    # the test shift survives: statistics were not refitted on it
    assert norm.transform(test).modalities["gsr"].mean() > 10
    back = Standardizer.from_arrays(norm.to_arrays())
    assert np.array_equal(back.mean["eeg"], norm.mean["eeg"])


def test_cache_roundtrip_and_key_changes(tmp_path):
    d = make()
    f = tmp_path / "src.bin"
    f.write_bytes(b"x")
    key = cache_key("t", "1", {"a": 1}, [f])
    assert load_cached(key) is None
    store(key, d)
    hit = load_cached(key)
    assert hit is not None and np.array_equal(hit.modalities["eeg"], d.modalities["eeg"])
    assert list(hit.subject) == list(d.subject)
    assert cache_key("t", "2", {"a": 1}, [f]) != key  # reader version
    assert cache_key("t", "1", {"a": 2}, [f]) != key  # parameters
    f.write_bytes(b"xy")
    assert cache_key("t", "1", {"a": 1}, [f]) != key  # source file changed


def test_load_dataset_uses_cache(monkeypatch, tmp_path):
    from affectkit import cache as cache_mod

    cfg = get_registry().get("dataset", "synthetic").config_cls(subjects=2, trials=4, windows=3)
    first = load_dataset(cfg)
    files = list(cache_mod.cache_dir().glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["name"] == "synthetic"
    calls = []
    monkeypatch.setattr("affectkit_datasets.synthetic.generate", lambda c: calls.append(c) or first)
    again = load_dataset(cfg)
    assert calls == [] and np.array_equal(again.targets, first.targets)
    load_dataset(cfg, use_cache=False)
    assert len(calls) == 1


def test_training_statistics_are_remembered_per_dataset_object_and_rows():
    """Every job of a fold standardises with its training split's statistics; a pool worker
    computes them once. The memo must never hand one dataset's statistics to another."""
    import gc

    from affectkit import evaluate

    d = make(n=8)
    rows = np.array([0, 1, 2, 5])
    first = evaluate.training_statistics(d, rows)
    fresh = Standardizer.fit(d.subset(rows))
    for m in fresh.mean:
        np.testing.assert_array_equal(first.mean[m], fresh.mean[m])
        np.testing.assert_array_equal(first.std[m], fresh.std[m])
    assert evaluate.training_statistics(d, rows.copy()) is first  # same rows: remembered
    assert evaluate.training_statistics(d, rows[:3]) is not first
    other = make(n=8, modalities={k: v + 1.0 for k, v in d.modalities.items()})
    shifted = evaluate.training_statistics(other, rows)  # same rows, other data
    assert not np.array_equal(shifted.mean["gsr"], first.mean["gsr"])
    ident = id(d)
    del d, first, fresh
    gc.collect()
    assert ident not in evaluate._STATISTICS  # forgotten with its dataset
