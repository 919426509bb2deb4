"""``affectkit bench --sweep``: one resumable run per value plus reference runs, and the
curve (sweep.md always, the figure with matplotlib)."""

import json

import pytest

from affectkit.errors import UserError
from affectkit.report import gap_closed, write_sweep_report
from affectkit.sweep import parse_sweep

SMALL = [
    "--set", "dataset.subjects=4", "--set", "dataset.trials=4", "--set", "dataset.windows=25",
    "--set", "train.steps=10",
]  # fmt: skip


def test_parse_sweep_values_and_errors():
    assert parse_sweep("protocol.calibration_fraction=0, 0.05,0.1") == (
        "protocol.calibration_fraction",
        [0, 0.05, 0.1],
    )
    for bad in ("protocol.calibration_fraction", "=0,1", "a=0,,1", "a=1,1"):
        with pytest.raises(UserError, match="--sweep"):
            parse_sweep(bad)


def test_gap_closed_is_the_share_towards_subject_dependent():
    assert gap_closed(0.06, 0.02, 0.04, "kl") == pytest.approx(0.5)
    assert gap_closed(0.85, 0.95, 0.93, "intersection") == pytest.approx(0.8)
    assert gap_closed(0.06, 0.06, 0.04, "kl") != gap_closed(0.06, 0.06, 0.04, "kl")  # nan


def test_calibration_sweep_writes_runs_references_and_the_curve(tmp_path, run_cli):
    out = tmp_path / "sweep"
    args = [
        "bench", "-m", "prior,mlp", "--protocol", "subject-calibrated", *SMALL,
        "--set", "protocol.adapt=finetune",
        "--sweep", "protocol.calibration_fraction=0,0.25", "--out", out, "--threads", "1",
    ]  # fmt: skip
    code, text = run_cli(*args)
    assert code == 0, text
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["points"] == ["calibration_fraction=0", "calibration_fraction=0.25"]
    assert set(meta["references"]) == {"subject-independent", "subject-dependent"}
    runs = {d: json.loads((out / d / "results.json").read_text()) for d in meta["points"]}
    assert "calibration: none" in runs["calibration_fraction=0"]["protocol_description"]
    assert "first 25% of each trial" in runs["calibration_fraction=0.25"]["protocol_description"]
    # the sweep's protocol.* settings do not leak into the reference runs
    ref = json.loads((out / "reference-subject-dependent" / "results.json").read_text())
    assert ref["protocol"] == "subject-dependent" and ref["complete"]
    md = (out / "sweep.md").read_text()
    assert "| mlp |" in md and "subject-independent" in md and "calibration_fraction=0.25" in md
    assert "| *calibration windows per test subject* |  | 0.0 | 24.0 |" in md  # 4 trials x 6
    assert (out / "figures" / "sweep.png").stat().st_size > 0
    # a second call resumes: nothing is computed again
    code, text = run_cli(*args)
    assert code == 0 and text.count(" reused, 0 to compute") == 4
    # `affectkit report` on the sweep directory rebuilds the curve, even with a point lost
    (out / "sweep.md").unlink()
    (out / "calibration_fraction=0" / "results.json").unlink()
    code, text = run_cli("report", out)
    assert code == 0 and "sweep report" in text
    assert "| mlp | " in (out / "sweep.md").read_text()
    # a run still going shows how far each method is
    results = json.loads((out / "reference-subject-dependent" / "results.json").read_text())
    results["methods"]["mlp"]["complete"] = False
    (out / "reference-subject-dependent" / "results.json").write_text(json.dumps(results))
    assert "(4/4 folds)" in write_sweep_report(out).read_text()


def test_sweep_stops_on_a_bad_value_before_any_run(tmp_path, run_cli):
    out = tmp_path / "bad"
    code, text = run_cli(
        "bench", "-m", "prior", "--protocol", "subject-calibrated", *SMALL,
        "--sweep", "protocol.calibration_fraction=0.1,1.5", "--out", out,
    )  # fmt: skip
    assert code == 2 and "Traceback" not in text and "calibration_fraction" in text
    assert not (out / "calibration_fraction=0.1" / "results.json").exists()
    # a reference protocol the data cannot serve stops the sweep before any run as well
    code, text = run_cli(
        "bench", "-m", "prior", "--protocol", "subject-calibrated", *SMALL,
        "--set", "dataset.windows=8", "--sweep", "protocol.calibration_fraction=0.1",
        "--out", out,
    )  # fmt: skip
    assert code == 2 and "subject-dependent split" in text
    assert not (out / "calibration_fraction=0.1" / "results.json").exists()
    code, text = run_cli("bench", "-m", "prior", "--references", "subject-dependent")
    assert code == 2 and "--references only goes with --sweep" in text


def test_sweep_report_without_matplotlib_still_writes_the_table(tmp_path, run_cli, monkeypatch):
    out = tmp_path / "s"
    code, _ = run_cli(
        "bench", "-m", "prior", *SMALL, "--sweep", "protocol.folds=2,4", "--out", out,
        "--no-report",
    )  # fmt: skip
    assert code == 0 and not json.loads((out / "sweep.json").read_text())["references"]
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "matplotlib" else real(n, *a)
    )
    (out / "figures" / "sweep.png").unlink()
    md = write_sweep_report(out).read_text()
    assert "folds=2" in md and "Install matplotlib" in md
    assert not (out / "figures" / "sweep.png").exists()


def test_calibration_references_split_the_subjects_as_the_curve_does(tmp_path, run_cli):
    """synthetic's own default is 4-fold subject-independent; a calibration curve is
    leave-one-subject-out, so its subject-independent reference must be too (5 subjects:
    5 folds), or "0 % calibration" and the reference train on different subjects."""
    out = tmp_path / "sweep"
    small = [a if a != "dataset.subjects=4" else "dataset.subjects=5" for a in SMALL]
    code, text = run_cli(
        "bench", "-m", "prior", "--protocol", "subject-calibrated", *small,
        "--sweep", "protocol.calibration_fraction=0", "--out", out, "--threads", "1",
    )  # fmt: skip
    assert code == 0, text
    point = json.loads((out / "calibration_fraction=0" / "results.json").read_text())
    ref = json.loads((out / "reference-subject-independent" / "results.json").read_text())
    assert point["n_folds"] == ref["n_folds"] == 5
    assert "leave-one-subject-out" in ref["protocol_description"]
    # fold for fold the same test subjects, so the same scores for a method without training
    a, b = point["methods"]["prior"]["folds"], ref["methods"]["prior"]["folds"]
    assert [f["test_subjects"] for f in a] == [f["test_subjects"] for f in b]
    assert [f["metrics"]["kl"] for f in a] == pytest.approx([f["metrics"]["kl"] for f in b])
