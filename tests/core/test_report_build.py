"""`affectkit report` on a real bench run: report.md, figures, significance, per-subject scores."""

import csv
import re
import sys

import numpy as np
import pytest
from scipy.stats import wilcoxon

from affectkit.bench import resolve_configs, run_bench
from affectkit.cli import main
from affectkit.datasets import load_dataset
from affectkit.executors import Executor
from affectkit.metrics import METRICS
from affectkit.report import write_report
from affectkit.results import ResultsStore

pytest.importorskip("matplotlib", reason="figures need the 'plots' extra (matplotlib)")

TINY = [
    "dataset.subjects=5",
    "dataset.trials=8",
    "dataset.windows=6",
    "train.epochs=3",
    "protocol.folds=null",
]
FIGURES = ("metrics", "distributions", "cooccurrence", "subjects")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfgs = resolve_configs(["prior", "mlp"], overrides=TINY)
        data = load_dataset(cfgs[0].dataset, use_cache=False)
        run_dir = tmp_path_factory.mktemp("report") / "run"
        res, _ = run_bench(
            cfgs, run_dir=run_dir, data=data, seeds=[0, 1], executor=Executor(threads=1)
        )
        write_report(run_dir)
    finally:
        torch.set_num_threads(old)
    return run_dir, res


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return exc.value.code, out.out + out.err


def test_report_md_has_every_section_and_figure(run):
    run_dir, _ = run
    md = (run_dir / "report.md").read_text()
    for heading in (
        "## Results",
        "## Paired significance",
        "## Predicted vs. ground-truth",
        "## Emotion co-occurrence",
        "## Per-subject scores",
    ):
        assert heading in md
    assert "| prior |" in md and "| mlp |" in md
    assert "leave-one-subject-out (5 folds)" in md and "LEAKY" not in md
    for name in FIGURES:
        assert f"(figures/{name}.png)" in md


def test_figures_are_real_drawings(run):
    from matplotlib.image import imread

    run_dir, _ = run
    for name in FIGURES:
        path = run_dir / "figures" / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = imread(path)
        h, w = img.shape[:2]
        assert w >= 500 and h >= 300, (name, img.shape)
        # more than a blank canvas: a good share of pixels is not white
        assert (img[..., :3] < 0.9).any(axis=-1).mean() > 0.02, name


def test_significance_in_report_matches_scipy(run):
    run_dir, res = run
    md = (run_dir / "report.md").read_text()
    for metric in ("kl", "cosine"):
        by_method = {}
        for name in ("prior", "mlp"):
            folds = res["methods"][name]["folds"]
            by_fold = [
                np.mean([f["metrics"][metric] for f in folds if f["fold"] == i]) for i in range(5)
            ]
            by_method[name] = np.array(by_fold)
        pick = np.argmax if METRICS[metric].higher_is_better else np.argmin
        names = list(by_method)
        best = names[int(pick([by_method[n].mean() for n in names]))]
        other = next(n for n in names if n != best)
        p = wilcoxon(by_method[best] - by_method[other]).pvalue
        row = re.search(rf"\| {metric} . \| {best} \| {other} \| ([^|]+)\| ([^|]+)\| ([^|]+)\|", md)
        assert row, f"no significance row for {metric}"
        assert float(row.group(3)) == pytest.approx(p, rel=1e-2)
    # 5 paired folds: the smallest p is 1/16, the report must say nothing can be significant
    assert "smallest p-value this test can give is 0.0625" in md


def test_per_subject_scores_recomputed_from_stored_predictions(run):
    run_dir, res = run
    rows = list(csv.DictReader((run_dir / "per_subject.csv").open()))
    assert sorted(r["subject"] for r in rows) == ["1", "2", "3", "4", "5"]
    store = ResultsStore(run_dir)
    y, p, subj = [], [], []
    for f in res["methods"]["mlp"]["folds"]:
        z = store.load_predictions("mlp", f["run_seed"], f["fold"])
        y.append(z["target"]), p.append(z["pred"]), subj.append(z["subject"])
    y, p, subj = np.concatenate(y), np.concatenate(p), np.concatenate(subj)
    kl = METRICS["kl"](y, p)
    for r in rows:
        assert float(r["mlp_kl"]) == pytest.approx(kl[subj == r["subject"]].mean(), abs=1e-6)
    # hardest first: mean KL over methods is non-increasing down the file
    mean_kl = [(float(r["prior_kl"]) + float(r["mlp_kl"])) / 2 for r in rows]
    assert mean_kl == sorted(mean_kl, reverse=True)


def test_leaky_protocol_labelled_everywhere(tmp_path, tiny_dataset, capsys):
    out = tmp_path / "leaky"
    code, log = run_cli(
        capsys,
        "bench",
        "--method",
        "prior",
        "--protocol",
        "sample-random",
        "--out",
        str(out),
        "--set",
        "dataset.subjects=4",
        "--set",
        "dataset.trials=8",
        "--set",
        "dataset.windows=6",
    )
    assert code in (0, None), log
    # bench prints where the run and its report are, and the report exists
    assert f"run directory: {out}" in log.replace("\n", "")
    assert f"report: {out / 'report.md'}" in log.replace("\n", "")
    md = (out / "report.md").read_text()
    assert "**LEAKY protocol.**" in md and "| prior (leaky) |" in md
    assert "LEAKY" in (out / "summary.md").read_text()


def test_report_cli_errors(tmp_path, run, capsys, monkeypatch):
    code, log = run_cli(capsys, "report", str(tmp_path))
    assert code == 2 and "not a finished affectkit run directory" in log
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if not installed
    code, log = run_cli(capsys, "report", str(run[0]))
    assert code == 2 and "pip install 'affectkit[plots]'" in log and "Traceback" not in log
