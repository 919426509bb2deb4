"""benchmarks/evidence.py's report text: the run line says when folds were reused."""

from benchmarks import evidence


def _results(reused: int, computed: int) -> dict:
    summary = {
        k: {"mean": 0.1, "std": 0.01, "higher_is_better": k in ("cosine", "intersection")}
        for k in evidence.METRICS
    }
    return {
        "methods": {"prior": {"summary": summary, "folds": [{"fit_info": {}}]}},
        "last_invocation": {"reused_folds": reused, "computed_folds": computed},
    }


def test_run_line_counts_reused_folds():
    text = evidence.report("synthetic", _results(32, 4), "mpcl", [], 78.4)
    assert "in 78 s (overrides: `none`); 4 fold(s) computed, 32 reused from earlier runs." in text


def test_run_line_of_a_fresh_run_has_no_reuse_clause():
    text = evidence.report("synthetic", _results(0, 36), "mpcl", ["a=1"], 200.0)
    assert "in 200 s (overrides: `a=1`).\n" in text
