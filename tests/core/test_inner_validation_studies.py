"""benchmarks/inner_validation.py: how a study's inner-validation folds are summarised and
compared with the reference variant (mpcl_size and refit_study report through it)."""

from __future__ import annotations

import pytest

from benchmarks import inner_validation as iv
from benchmarks import mpcl_size, refit_study

METRICS = iv.METRICS


def _row(kl: float, cos: float = 0.97, steps: int = 100) -> dict:
    metrics = {k: 0.5 for k in METRICS}
    metrics.update(kl=kl, cosine=cos)
    return {"metrics": metrics, "seconds": 2.0, "steps": steps, "selected_step": steps // 2}


def test_paired_kl_pairs_folds_and_seeds():
    done = {
        ("synthetic", "a", 0, 0): _row(0.040),
        ("synthetic", "a", 0, 1): _row(0.050),
        ("synthetic", "a", 1, 0): _row(0.060),
        ("synthetic", "b", 0, 0): _row(0.041),
        ("synthetic", "b", 0, 1): _row(0.053),
        ("synthetic", "b", 1, 0): _row(0.062),
        ("synthetic", "b", 1, 1): _row(0.999),  # no reference fold: left out of the pairs
    }
    out = iv.paired_kl(done, "synthetic", "b", "a", [0, 1])
    assert out["mean"] == pytest.approx(0.002)  # mean of +0.001, +0.003, +0.002
    assert out["std"] == pytest.approx(0.001 / 3**0.5)  # sample std 0.001, over sqrt(3)
    assert iv.paired_kl(done, "synthetic", "b", "a", [0])["mean"] == pytest.approx(0.002)


def test_worse_by_std_uses_each_metric_direction_and_the_reference_std():
    base = iv.summarize([_row(0.040, cos=0.97), _row(0.050, cos=0.99)])
    kl_std, cos_std = base["kl"]["std"], base["cosine"]["std"]
    slightly = iv.summarize([_row(0.045 + 0.9 * kl_std, cos=0.98 - 0.9 * cos_std)] * 2)
    assert iv.worse_by_std(slightly, base) == []
    much = iv.summarize([_row(0.045 + 1.1 * kl_std, cos=0.98 - 1.1 * cos_std)] * 2)
    assert iv.worse_by_std(much, base) == ["kl", "cosine"]
    better = iv.summarize([_row(0.001, cos=1.0)] * 2)
    assert iv.worse_by_std(better, base) == []


def test_markdown_marks_the_reference_and_counts_wins():
    study = refit_study.study("helo")
    assert study.reference == "refit" and study.method == "helo"
    assert study.variants["no refit"] == ["train.refit=false"]
    ref = iv.summarize([_row(0.040), _row(0.050)])
    var = iv.summarize([_row(0.030, cos=0.98), _row(0.040, cos=0.98)])
    var["paired_kl"] = {"mean": -0.01, "std": 0.0}
    ref["paired_kl"] = {"mean": 0.0, "std": 0.0}
    text = iv.markdown(study, {"wesad-si": {"refit": ref, "no refit": var}}, [0], [])
    rows = {r.split("|")[1].strip(): r for r in text.splitlines() if r.startswith("| ")}
    assert "| 2 | none | -0.01000 ± 0.00000 |" in rows["no refit"]  # kl and cosine better
    assert rows["refit"].endswith("|  |  |  |")  # the reference compares with nothing
    assert "python -m benchmarks.refit_study --method helo" in text


def test_study_refuses_unknown_variants_before_any_work(capsys, tmp_path):
    code = refit_study.main(["--method", "mlp", "--variants", "bogus", "--runs", str(tmp_path)])
    assert code == 2
    assert "bogus" in capsys.readouterr().err
    assert not (tmp_path / "folds.jsonl").exists()
    assert mpcl_size.STUDY.reference == "d32 P4"
