"""`affectkit train` -> checkpoint directory -> `affectkit predict` / `affectkit.load`."""

import csv
import json
import pickle

import numpy as np
import pytest
import yaml

import affectkit
from affectkit.bench import resolve_configs
from affectkit.checkpoint import FILES, fit_all, save, train
from affectkit.cli import main
from affectkit.datasets import load_dataset
from affectkit.errors import UserError
from affectkit.evaluate import check_predictions
from affectkit.plugins import get_registry

SETS = ["dataset.subjects=4", "dataset.trials=8", "dataset.windows=6"]
TRAIN = [*SETS, "train.epochs=3"]


@pytest.fixture(autouse=True)
def one_torch_thread():
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def sets(items):
    return [a for s in items for a in ("--set", s)]


def in_memory(method, data):
    cfg = resolve_configs([method], overrides=TRAIN)[0]
    fitted, norm, _ = fit_all(cfg, data)
    # validated and renormalised exactly as the evaluator does with a fold's predictions
    return check_predictions(fitted.predict(norm.transform(data)), len(data), 10, method)


@pytest.mark.parametrize("method", ["mlp", "prior"])
def test_cli_train_then_predict_reproduces_in_memory_predictions(method, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    code, _, err = run_cli(capsys, "train", "--method", method, "--out", str(ckpt), *sets(TRAIN))
    assert code in (0, None), err
    assert sorted(p.name for p in ckpt.iterdir()) == sorted(FILES)
    data = load_dataset(resolve_configs([method], overrides=SETS)[0].dataset)
    expected = in_memory(method, data)

    # Python API: bit-for-bit the predictions of the model that was just trained
    np.testing.assert_array_equal(affectkit.load(ckpt).predict(data), expected)

    # CLI: per-window CSV with ids and one column per emotion
    pred_csv = tmp_path / "pred.csv"
    code, _, err = run_cli(
        capsys,
        "predict",
        "--checkpoint",
        str(ckpt),
        "--dataset",
        "synthetic",
        "--out",
        str(pred_csv),
        *sets(SETS),
    )
    assert code in (0, None), err
    rows = list(csv.DictReader(pred_csv.open()))
    assert list(rows[0]) == ["subject", "trial", "window", "time", *data.emotions]
    assert len(rows) == len(data)
    got = np.array([[float(r[e]) for e in data.emotions] for r in rows])
    # the CSV holds 9 significant digits (%.9g): half a unit in the 9th digit, relative
    np.testing.assert_allclose(got, expected, rtol=5e-9, atol=0)
    assert [r["subject"] for r in rows] == data.subject.tolist()
    assert [int(r["window"]) for r in rows] == data.window.tolist()


def test_checkpoint_contents_and_no_pickle(tmp_path, tiny_dataset, monkeypatch):
    cfg = resolve_configs(["mlp"], overrides=TRAIN)[0]
    ckpt = train(cfg, tmp_path / "ckpt", data=tiny_dataset)
    meta = json.loads((ckpt / "meta.json").read_text())
    assert meta["emotions"] == tiny_dataset.emotions
    assert meta["spec"]["shapes"]["eeg"] == [18, 5] and meta["spec"]["groups"]["behavioral"] == (
        "behavioral"
    )
    assert {"affectkit", "torch", "numpy", "python"} <= set(meta["versions"])
    full = yaml.safe_load((ckpt / "config.yaml").read_text())
    assert full["method"]["name"] == "mlp" and full["train"]["epochs"] == 3
    assert full["dataset"]["subjects"] == 4
    # the tensor files are plain safetensors (an 8-byte length + JSON header), not pickles
    for name in ("weights.safetensors", "normalizer.safetensors"):
        raw = (ckpt / name).read_bytes()
        n = int.from_bytes(raw[:8], "little")
        assert json.loads(raw[8 : 8 + n])
    expected = affectkit.load(ckpt).predict(tiny_dataset)

    def refuse(*a, **k):
        raise AssertionError("pickle used while loading a checkpoint")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    np.testing.assert_array_equal(affectkit.load(ckpt).predict(tiny_dataset), expected)


def test_mismatched_feature_layout_is_refused(tmp_path, tiny_dataset, capsys):
    cfg = resolve_configs(["mlp"], overrides=TRAIN)[0]
    ckpt = train(cfg, tmp_path / "ckpt", data=tiny_dataset)
    model = affectkit.load(ckpt)
    no_gsr = tiny_dataset.with_modalities(
        {k: v for k, v in tiny_dataset.modalities.items() if k != "gsr"}
    )
    with pytest.raises(UserError, match=r"modality 'gsr' with shape \[28\]"):
        model.predict(no_gsr)
    code, _, err = run_cli(
        capsys, "predict", "--checkpoint", str(ckpt), *sets([*SETS, "dataset.behavioral_dim=10"])
    )
    assert code == 2 and "Traceback" not in err
    msg = " ".join(err.split())
    assert "modality 'behavioral' with shape [768]" in msg and "gives [10]" in msg


def test_train_refuses_existing_output_and_bad_checkpoint(tmp_path, capsys):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = run_cli(capsys, "train", "--method", "prior", "--out", str(out), *sets(TRAIN))
    assert code == 2 and "--overwrite" in err
    assert (out / "keep.txt").read_text() == "mine"
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(out))
    assert code == 2 and "is not an affectkit checkpoint" in " ".join(err.split())
    code, _, err = run_cli(
        capsys, "train", "--method", "prior", "--out", str(out), "--overwrite", *sets(TRAIN)
    )
    assert code in (0, None), err
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert not list(tmp_path.glob(".ckpt*")), "no temp or backup dirs are left behind"


def test_predict_parquet_with_metadata(tmp_path, tiny_dataset, capsys):
    pq = pytest.importorskip("pyarrow.parquet", reason="parquet output needs the 'parquet' extra")
    cfg = resolve_configs(["prior"], overrides=TRAIN)[0]
    ckpt = train(cfg, tmp_path / "ckpt", data=tiny_dataset)
    out = tmp_path / "pred.parquet"
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(ckpt), "--out", str(out))
    assert code in (0, None), err
    table = pq.read_table(out)
    assert table.column_names == ["subject", "trial", "window", "time", *tiny_dataset.emotions]
    meta = json.loads(table.schema.metadata[b"affectkit"])
    assert meta["method"] == "prior" and meta["emotions"] == tiny_dataset.emotions
    got = np.stack([table.column(e).to_numpy() for e in tiny_dataset.emotions], axis=1)
    np.testing.assert_array_equal(got, affectkit.load(ckpt).predict(tiny_dataset))


@pytest.mark.parametrize("method", get_registry().names("method"))
def test_every_registered_method_round_trips_exactly(method, tmp_path, tiny_dataset):
    """A plugin method without a faithful state_dict()/load_state_dict() fails here."""
    cfg = resolve_configs([method], overrides=[*SETS, "train.epochs=1"])[0]
    fitted, norm, _ = fit_all(cfg, tiny_dataset)
    expected = check_predictions(
        fitted.predict(norm.transform(tiny_dataset)), len(tiny_dataset), 10, method
    )
    save(tmp_path / "ckpt", cfg=cfg, method=fitted, normalizer=norm, spec=tiny_dataset.spec)
    np.testing.assert_array_equal(affectkit.load(tmp_path / "ckpt").predict(tiny_dataset), expected)
