"""Calibration under subject-calibrated: the sample weight, per-subject normalisation, the
finetune hook every TorchMethod inherits, and what fold results record."""

import json

import numpy as np
import pytest
import torch

from affectkit.bench import resolve_configs, run_bench
from affectkit.data import EmotionDataset, Standardizer, SubjectStandardizer
from affectkit.evaluate import weighted_rows
from affectkit.plugins import get_registry
from affectkit.training import TrainConfig

SMALL = ["dataset.subjects=4", "dataset.trials=6", "dataset.windows=12", "train.steps=20"]
CALIBRATED = ["protocol.name=subject-calibrated", "protocol.calibration_fraction=0.25"]


def bench(tmp_path, methods, extra=(), name="run"):
    cfgs = resolve_configs(methods, overrides=[*SMALL, *extra])
    return run_bench(cfgs, run_dir=tmp_path / name)


@pytest.mark.parametrize(("weight", "copies"), [(0, 0), (1, 1), (3, 3), (2.5, 2.5)])
def test_calibration_weight_repeats_rows(weight, copies):
    rows = np.arange(10, 20)
    out = weighted_rows(rows, weight)
    assert len(out) == round(copies * len(rows))
    counts = np.bincount(out - 10, minlength=10)
    assert counts.min() >= int(weight) and counts.max() <= int(weight) + 1
    if weight == 2.5:  # the extra half is spread over the rows, not the first five
        assert abs(counts[:5].sum() - counts[5:].sum()) <= 1


def test_subject_standardizer_uses_each_subjects_own_windows():
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(10, 2, (20, 3)), rng.normal(-5, 0.5, (20, 3)), rng.normal(0, 1, (5, 3))]
    data = EmotionDataset(
        name="t",
        modalities={"gsr": x},
        targets=np.full((45, 2), 0.5),
        emotions=["a", "b"],
        subject=np.repeat(["a", "b", "c"], [20, 20, 5]),
        trial=np.zeros(45, int),
        window=np.arange(45),
    )
    # b's statistics from its first 10 windows only; c has none: the pooled a + b ones
    norm = SubjectStandardizer.fit(
        data, {"a": np.arange(20), "b": np.arange(20, 30)}, np.arange(40)
    )
    z = norm.transform(data).modalities["gsr"]
    assert np.allclose(z[:20].mean(0), 0, atol=1e-5) and np.allclose(z[:20].std(0), 1, atol=1e-4)
    assert np.allclose(z[20:30].mean(0), 0, atol=1e-5)
    assert not np.allclose(z[30:40].mean(0), 0, atol=1e-2)  # b's later windows: other stats
    pooled = Standardizer.fit(data.subset(np.arange(40))).transform(data.subset(np.arange(40, 45)))
    assert np.array_equal(z[40:], pooled.modalities["gsr"])


def test_finetune_hook_adapts_a_fitted_torch_method_to_new_targets(tiny_dataset):
    data = tiny_dataset
    entry = get_registry().get("method", "mlp")
    train = TrainConfig(steps=30, patience=0, device="cpu")
    method = entry.build({"name": "mlp"}, spec=data.spec, train=train, seed=0, device="cpu")
    with pytest.raises(RuntimeError, match="fit the method"):
        method.finetune(data, steps=5)
    method.fit(data)
    k = len(data.emotions)
    method.shrinkage = (0.5, torch.full((k,), 1 / k, dtype=torch.float64))
    person = data.subset(np.flatnonzero(data.subject == data.subjects[0]))
    target = np.zeros_like(person.targets)
    target[:, 0] = 1.0  # a person who always rates the first emotion
    person.targets = target
    before = method.predict(person)[:, 0].mean()
    info = method.finetune(person, steps=50, lr=1e-2)
    assert info["steps_run"] == 50
    assert method.shrinkage is None  # the population prior no longer speaks for the person
    assert method.predict(person)[:, 0].mean() > before + 0.3


def test_fold_results_record_calibration_windows_and_adaptation(tmp_path):
    res, _ = bench(
        tmp_path, ["prior", "mlp"], [*CALIBRATED, "protocol.adapt=finetune", "protocol.gap=1"]
    )
    assert "first 25% of each trial, gap 1, fine-tuned 100 steps" in res["protocol_description"]
    for name, adapt in (("mlp", "finetune"), ("prior", "join (the method has no finetune hook)")):
        for f in res["methods"][name]["folds"]:
            info = f["fit_info"]
            # 6 trials x round(0.25 x 12) windows of the one test subject
            assert info["calibration_windows"] == {f["test_subjects"][0]: 18}
            assert info["adapt"] == adapt
    ft = res["methods"]["mlp"]["folds"][0]["fit_info"]
    assert ft["finetune_steps_run"] == 100


def test_calibration_helps_where_people_differ(tmp_path):
    """Synthetic subjects have their own gains and offsets: a calibrated mlp beats the same
    mlp without calibration (the prior is level)."""
    none, _ = bench(tmp_path, ["mlp"], [*CALIBRATED[:1], "protocol.calibration_fraction=0"], "a")
    some, _ = bench(tmp_path, ["mlp"], [*CALIBRATED, "protocol.adapt=finetune"], "b")
    kl = [r["methods"]["mlp"]["summary"]["kl"]["mean"] for r in (none, some)]
    assert kl[1] < kl[0]


def test_transductive_normalisation_is_said_in_results_and_table(tmp_path):
    _, run_dir = bench(tmp_path, ["prior"], ["protocol.normalize=per-subject"])
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk["transductive"] is True and on_disk["leaky"] is False
    assert "TRANSDUCTIVE" in on_disk["protocol_description"]
    assert "TRANSDUCTIVE" in (run_dir / "summary.md").read_text()
    calibrated, _ = bench(tmp_path, ["prior"], [*CALIBRATED, "protocol.normalize=per-subject"], "c")
    assert calibrated["transductive"] is False
    assert "per-subject normalisation" in calibrated["protocol_description"]
