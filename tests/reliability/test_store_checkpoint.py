"""Damaged results stores and checkpoints, through the CLI (issue 14, items 2, 6, 7, 16, 24).

Every case asserts the exit code, that no traceback is printed, that the message names the
damaged file (or the cause) and the fix, and that nothing the user had is lost: finished
folds stay, the user's own files in the run directory stay, an earlier prediction file stays.
Warnings go through logging (``affectkit.results.warn``); in-process runs read them from
caplog, and one subprocess run checks that they reach the real CLI's stderr.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from affectkit.cli import main
from affectkit.data import EmotionDataset, Standardizer
from affectkit.results import REPORT_FIGURES

SETS = ["dataset.subjects=4", "dataset.trials=8", "dataset.windows=6"]
N_FOLDS = 4  # leave-one-subject-out over the 4 synthetic subjects


def sets(items):
    return [a for s in items for a in ("--set", s)]


@pytest.fixture
def cli(run_cli, caplog):
    """``cli(*args) -> (exit code, output + warnings)``, one string with folded whitespace."""

    def run(*args):
        caplog.clear()
        code, out = run_cli(*args)
        warned = " ".join(" ".join(r.getMessage() for r in caplog.records).split())
        return code or 0, f"{out} {warned}".strip()

    return run


def quiet_main(*args: str) -> None:
    """The CLI in-process, for module fixtures (which cannot use capsys); must succeed."""
    with pytest.raises(SystemExit) as exc:
        main([*args])
    assert exc.value.code in (0, None)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, but the lock file (each run writes its pid there)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != ".lock"
    }


def fold_files(run: Path, method: str = "prior") -> dict[str, bytes]:
    return snapshot(run / "methods" / method)


# --------------------------------------------------------------------------- a finished run
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("finished") / "run"
    quiet_main("bench", "--method", "prior", "--out", str(run), "--no-report", *sets(SETS))
    assert len(list(run.glob("methods/prior/seed-0/fold-*.npz"))) == N_FOLDS
    return run


@pytest.fixture
def run_dir(finished_run, tmp_path):
    """A private copy of the finished run, to damage."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def bench(cli, run, *extra):
    return cli("bench", "--method", "prior", "--out", run, "--no-report", *sets(SETS), *extra)


# --------------------------------------------------------------------------- item 7
STORE_TEMPS = [  # names atomic_write gives its temp files, in the places the store writes
    ".results.json.k2j3h4g5.tmp",
    ".run.json.a_b9c8d7.tmp",
    "figures/.metrics.png.0a1b2c3d.tmp",
    "methods/prior/.config.json.zz11yy22.tmp",
    "methods/prior/seed-0/.fold-1.npz.abc12345.tmp",
    "methods/prior/seed-0/.fold-2.json.q1w2e3r4.tmp",
]
USER_TEMPS = [  # the user's own files that happen to match ".*.tmp"
    ".draft.tmp",
    "notes/.results.json.k2j3h4g5.tmp",
    "methods/prior/seed-0/.my-notes.tmp",
    "methods/prior/.fold-1.npz.abc12345.tmp",  # a fold name, but not where folds live
    "figures/.summary.png.abcdefgh.tmp",
]


def plant(run: Path, names: list[str]) -> None:
    for name in names:
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text("keep me" if name in USER_TEMPS else "half a file")


def test_accepted_run_removes_only_the_stores_own_temp_files(cli, run_dir):
    plant(run_dir, STORE_TEMPS + USER_TEMPS)
    code, out = bench(cli, run_dir)
    assert code == 0 and "Traceback" not in out
    assert "reused 4" in out
    assert [n for n in STORE_TEMPS if (run_dir / n).exists()] == []
    assert all((run_dir / n).read_text() == "keep me" for n in USER_TEMPS)


def test_refused_run_deletes_nothing(cli, run_dir):
    plant(run_dir, STORE_TEMPS + USER_TEMPS)
    before = snapshot(run_dir)
    code, out = bench(cli, run_dir, "--protocol", "subject-dependent")
    assert code == 2 and "Traceback" not in out
    assert "another dataset or protocol" in out and "--overwrite" in out
    assert snapshot(run_dir) == before  # temp files included: nothing was cleaned


def test_report_figure_names_are_the_ones_clean_temp_knows(cli, run_dir):
    code, out = cli("report", run_dir)
    assert code == 0, out
    assert {p.name for p in (run_dir / "figures").iterdir()} <= set(REPORT_FIGURES)


# --------------------------------------------------------------------------- item 6: folds
def damage_npz(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # a cut copy


def test_report_names_an_unreadable_fold_and_keeps_the_rest(cli, run_dir):
    npz = run_dir / "methods/prior/seed-0/fold-2.npz"
    damage_npz(npz)
    code, out = cli("report", run_dir)
    assert code == 0 and "Traceback" not in out
    assert str(npz) in out and "seed 0 fold 2" in out and "left out" in out
    assert "re-run `affectkit bench`" in out.lower()
    md = (run_dir / "report.md").read_text()
    assert "Left out of the figures" in md and "prior seed 0 fold 2" in md
    # the other three folds still feed the per-subject table: three test subjects of four
    rows = (run_dir / "per_subject.csv").read_text().splitlines()
    assert len(rows) == 1 + N_FOLDS - 1


@pytest.mark.parametrize("damage", ["cut npz", "garbage npz", "garbage json", "json no result"])
def test_resume_recomputes_a_damaged_fold_and_names_it(cli, run_dir, damage):
    fold = run_dir / "methods/prior/seed-0/fold-1"
    good = {s: fold.with_suffix(s).read_bytes() for s in (".npz", ".json")}
    others = {k: v for k, v in fold_files(run_dir).items() if "fold-1." not in k}
    if damage == "cut npz":
        damage_npz(fold.with_suffix(".npz"))
        bad = fold.with_suffix(".npz")
    elif damage == "garbage npz":
        fold.with_suffix(".npz").write_bytes(b"\x00garbage" * 50)
        bad = fold.with_suffix(".npz")
    elif damage == "garbage json":
        fold.with_suffix(".json").write_text('{"config_hash": ')
        bad = fold.with_suffix(".json")
    else:
        rec = json.loads(fold.with_suffix(".json").read_text())
        del rec["result"]
        fold.with_suffix(".json").write_text(json.dumps(rec))
        bad = fold.with_suffix(".json")
    code, out = bench(cli, run_dir)
    assert code == 0 and "Traceback" not in out
    assert f"warning: {bad} is unreadable" in out
    assert "Seed 0 fold 1 of 'prior' is not counted as finished" in out
    assert "computed 1 fold(s), reused 3" in out
    # the finished folds are untouched, the damaged one is whole again (prior is
    # deterministic: the recomputed predictions are the very same bytes)
    assert {k: v for k, v in fold_files(run_dir).items() if "fold-1." not in k} == others
    np.testing.assert_array_equal(
        np.load(fold.with_suffix(".npz"))["pred"],
        np.load(io.BytesIO(good[".npz"]))["pred"],
    )
    res = json.loads((run_dir / "results.json").read_text())
    assert res["complete"] and len(res["methods"]["prior"]["folds"]) == N_FOLDS


def test_damaged_fold_warning_reaches_the_real_stderr(run_dir, cli_env, tmp_path):
    damage_npz(run_dir / "methods/prior/seed-0/fold-3.npz")
    args = ["bench", "--method", "prior", "--out", str(run_dir), "--no-report", *sets(SETS)]
    proc = subprocess.run(
        [sys.executable, "-m", "affectkit.cli", *args],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path),
    )
    err = " ".join(proc.stderr.split())
    assert proc.returncode == 0 and "Traceback" not in err, proc.stderr
    assert f"warning: {run_dir / 'methods/prior/seed-0/fold-3.npz'} is unreadable" in err
    assert "computed 1 fold(s), reused 3" in " ".join(proc.stdout.split())


# --------------------------------------------------------------------------- item 6: config.json
@pytest.mark.parametrize("content", [b'{"config_hash": "ab', b"", b"\xff\xfe\x00garbage"])
def test_damaged_method_config_keeps_the_folds_and_says_so(cli, run_dir, content):
    cfg = run_dir / "methods/prior/config.json"
    cfg.write_bytes(content)
    folds = {k: v for k, v in fold_files(run_dir).items() if k.startswith("seed-")}
    code, out = bench(cli, run_dir)
    assert code == 0 and "Traceback" not in out
    assert f"warning: {cfg} is unreadable" in out
    assert "4 finished fold(s)" in out and "are kept" in out
    assert "computed 0 fold(s), reused 4" in out
    assert {k: v for k, v in fold_files(run_dir).items() if k.startswith("seed-")} == folds
    assert json.loads(cfg.read_text())["config"]["method"]["name"] == "prior"  # rewritten


def test_damaged_method_config_with_another_config_is_refused(cli, run_dir):
    (run_dir / "methods/prior/config.json").write_text("{")
    before = snapshot(run_dir)
    code, out = bench(cli, run_dir, "--set", "train.lr=0.5")
    assert code == 2 and "Traceback" not in out
    assert "different configuration" in out and "--overwrite" in out
    assert snapshot(run_dir) == before


def test_method_left_out_of_the_tables_is_named(cli, run_dir):
    (run_dir / "methods/prior/config.json").write_text("not json")
    code, out = cli(
        "bench", "--method", "mlp", "--out", run_dir, "--no-report",
        *sets([*SETS, "train.epochs=1"]),
    )  # fmt: skip
    assert code == 0 and "Traceback" not in out
    assert f"{run_dir / 'methods/prior/config.json'} is unreadable" in out
    assert "'prior' is left out of the tables" in out
    assert len(list((run_dir / "methods/prior/seed-0").glob("fold-*.npz"))) == N_FOLDS


# --------------------------------------------------------------------------- items 16, 24
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("trained") / "ckpt"
    quiet_main("train", "--method", "mlp", "--out", str(ckpt), *sets([*SETS, "train.epochs=1"]))
    return ckpt


@pytest.fixture
def ckpt(trained, tmp_path):
    return Path(shutil.copytree(trained, tmp_path / "ckpt"))


def predict(cli, ckpt, out):
    return cli("predict", "--checkpoint", ckpt, "--out", out, *sets(SETS))


def flip_a_bit(path: Path) -> None:
    """Flip one bit in the tensor data (after the safetensors header), not in the header."""
    raw = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(raw[:8], "little")
    raw[header + (len(raw) - header) // 2] ^= 0x10
    path.write_bytes(bytes(raw))


def cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def garbage(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04 this is not a tensor file" * 20)


def drop_spec(path: Path) -> None:
    meta = json.loads(path.read_text())
    del meta["spec"]
    path.write_text(json.dumps(meta))


DAMAGE = {
    "weights cut": ("weights.safetensors", cut, "does not match the checksum"),
    "weights garbage": ("weights.safetensors", garbage, "does not match the checksum"),
    "weights bit flip": ("weights.safetensors", flip_a_bit, "does not match the checksum"),
    "normalizer cut": ("normalizer.safetensors", cut, "does not match the checksum"),
    "normalizer garbage": ("normalizer.safetensors", garbage, "does not match the checksum"),
    "normalizer bit flip": ("normalizer.safetensors", flip_a_bit, "does not match the checksum"),
    "config broken": ("config.yaml", lambda p: p.write_text("method: {name: mlp\n"), "not valid"),
    "config empty": ("config.yaml", lambda p: p.write_text(""), "is empty"),
    "config a list": ("config.yaml", lambda p: p.write_text("- 1\n"), "not a mapping"),
    "meta no spec": ("meta.json", drop_spec, "has no 'spec'"),
    "meta garbage": ("meta.json", lambda p: p.write_text("{nope"), "is not valid JSON"),
    "meta a list": ("meta.json", lambda p: p.write_text("[]"), "not an object"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_predict_with_a_damaged_checkpoint_names_the_file(cli, ckpt, tmp_path, case):
    name, spoil, reason = DAMAGE[case]
    out = tmp_path / "pred.csv"
    out.write_text("an earlier prediction\n")
    spoil(ckpt / name)
    code, msg = predict(cli, ckpt, out)
    assert code == 2 and "Traceback" not in msg, msg
    assert f"checkpoint file {ckpt / name} " in msg and reason in msg
    assert "copy the whole folder again" in msg and "re-train it with `affectkit train`" in msg
    assert out.read_text() == "an earlier prediction\n"  # nothing written over it


def without_checksums(ckpt: Path) -> None:
    meta = json.loads((ckpt / "meta.json").read_text())
    del meta["sha256"]  # as written before checksums were recorded
    (ckpt / "meta.json").write_text(json.dumps(meta))


def test_checksums_are_recorded_and_verified(cli, ckpt, tmp_path):
    import hashlib

    meta = json.loads((ckpt / "meta.json").read_text())
    for f in ("weights.safetensors", "normalizer.safetensors"):
        assert meta["sha256"][f] == hashlib.sha256((ckpt / f).read_bytes()).hexdigest()
    code, out = predict(cli, ckpt, tmp_path / "a.csv")
    assert code == 0, out
    # a checkpoint from before checksums loads unverified, with the same predictions
    without_checksums(ckpt)
    code, out = predict(cli, ckpt, tmp_path / "b.csv")
    assert code == 0, out
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


@pytest.mark.parametrize("name", ["weights.safetensors", "normalizer.safetensors"])
@pytest.mark.parametrize("spoil", [cut, garbage], ids=["cut", "garbage"])
def test_unverified_old_checkpoint_with_a_damaged_tensor_file(cli, ckpt, tmp_path, name, spoil):
    without_checksums(ckpt)
    spoil(ckpt / name)
    code, msg = predict(cli, ckpt, tmp_path / "pred.csv")
    assert code == 2 and "Traceback" not in msg, msg
    assert f"checkpoint file {ckpt / name} is not a readable safetensors file" in msg
    assert not (tmp_path / "pred.csv").exists()


def test_normalizer_that_does_not_fit_the_layout(cli, ckpt, tmp_path):
    from safetensors.numpy import load_file, save_file

    without_checksums(ckpt)
    stats = load_file(str(ckpt / "normalizer.safetensors"))
    stats["mean__gsr"] = stats["mean__gsr"][:5].copy()
    save_file(stats, str(ckpt / "normalizer.safetensors"))
    code, msg = predict(cli, ckpt, tmp_path / "pred.csv")
    assert code == 2 and "Traceback" not in msg
    assert "normalizer.safetensors holds shape [5] for mean__gsr" in msg and "[28]" in msg


# --------------------------------------------------------------------------- item 2
def test_standardizer_treats_inf_as_missing_exactly():
    col = np.array([1.0, 2.0, np.inf, 3.0, np.nan, -np.inf], dtype=np.float32)
    data = EmotionDataset(
        name="t",
        modalities={"x": np.stack([col, np.arange(6.0)], axis=1)},
        targets=np.full((6, 2), 0.5),
        emotions=["a", "b"],
        subject=["s"] * 6,
        trial=np.zeros(6, int),
        window=np.arange(6),
        missing="impute",
    )
    norm = Standardizer.fit(data)
    # statistics over the finite values 1, 2, 3 only
    assert norm.mean["x"][0] == np.float32(2.0)
    assert norm.std["x"][0] == np.float32(np.sqrt(2 / 3))
    z = norm.transform(data).modalities["x"][:, 0]
    s = np.float32(np.sqrt(2 / 3))
    np.testing.assert_array_equal(
        z, np.array([-1 / s, 0, 0, 1 / s, 0, 0], dtype=np.float32)
    )  # inf, -inf and NaN all become the training mean
    assert norm.mean["x"][1] == np.float32(2.5)  # the clean column is unaffected
    # a column with no finite value at all: mean 0, std 1, every entry imputed
    empty = data.with_modalities({"x": np.full((6, 2), np.inf, dtype=np.float32)})
    e = Standardizer.fit(empty)
    assert e.mean["x"].tolist() == [0.0, 0.0] and e.std["x"].tolist() == [1.0, 1.0]


GSR = slice(90, 118)  # feas columns of the GSR block


def write_dmer(folder: Path, bad: float | None) -> np.ndarray:
    """Four DMER subjects (4 trials x 3 windows); ``bad`` goes into GSR column 3 of a few rows."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    all_feas = []
    for sid in range(1, 5):
        vids = np.repeat(np.arange(4), 3)
        feas = rng.normal(size=(len(vids), 913)) * 3.0 + 10.0
        if bad is not None and sid in (1, 3):
            feas[[0, 4], GSR.start + 3] = bad
        ratings = rng.integers(1, 6, size=(32, 10)).astype(float)
        savemat(folder / f"{sid}.mat", {"feas": feas, "vids": vids[:, None], "dis_label": ratings})
        all_feas.append(feas)
    return np.concatenate(all_feas)


DMER = ["dataset.modalities=[gsr]", "train.epochs=1"]


def test_train_with_inf_imputes_like_nan_and_records_finite_statistics(tmp_path, cli):
    from safetensors.numpy import load_file

    feas = write_dmer(tmp_path / "inf", np.inf)
    write_dmer(tmp_path / "nan", np.nan)  # the same data, with NaN where the infs are
    # without impute, the inf is refused and the message says how to allow it
    code, msg = cli("train", "--method", "mlp", "--dataset", "dmer", "--data-dir",
                    tmp_path / "inf", "--out", tmp_path / "refused", *sets(DMER))  # fmt: skip
    assert code == 2 and "Traceback" not in msg
    assert "inf" in msg.lower() and "impute" in msg and "gsr" in msg
    ckpts = {}
    for kind in ("inf", "nan"):
        ckpts[kind] = tmp_path / f"ckpt-{kind}"
        code, msg = cli("train", "--method", "mlp", "--dataset", "dmer", "--data-dir",
                        tmp_path / kind, "--out", ckpts[kind],
                        *sets([*DMER, "dataset.missing=impute"]))  # fmt: skip
        assert code == 0 and "Traceback" not in msg, msg
    stats = load_file(str(ckpts["inf"] / "normalizer.safetensors"))
    col = feas[:, GSR][:, 3]
    finite = col[np.isfinite(col)].astype(np.float32).astype(np.float64)
    assert np.isfinite(stats["mean__gsr"]).all() and np.isfinite(stats["std__gsr"]).all()
    assert stats["mean__gsr"][3] == np.float32(finite.mean())
    assert stats["std__gsr"][3] == np.float32(finite.std())
    # inf is imputed exactly as NaN is: the same statistics and the same trained weights
    for name in ("normalizer.safetensors", "weights.safetensors"):
        assert (ckpts["inf"] / name).read_bytes() == (ckpts["nan"] / name).read_bytes()


def test_bench_with_inf_and_impute_runs_to_the_same_numbers_as_nan(tmp_path, cli):
    results = {}
    for kind, bad in (("inf", -np.inf), ("nan", np.nan)):
        write_dmer(tmp_path / kind, bad)
        run = tmp_path / f"run-{kind}"
        code, msg = cli("bench", "--method", "mlp", "--dataset", "dmer", "--data-dir",
                        tmp_path / kind, "--out", run, "--no-report",
                        *sets([*DMER, "dataset.missing=impute"]))  # fmt: skip
        assert code == 0 and "Traceback" not in msg, msg
        results[kind] = json.loads((run / "results.json").read_text())["methods"]["mlp"]
    assert results["inf"]["complete"]
    assert [f["metrics"] for f in results["inf"]["folds"]] == [
        f["metrics"] for f in results["nan"]["folds"]
    ]
