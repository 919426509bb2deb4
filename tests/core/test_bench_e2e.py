import json
import subprocess
import sys

import numpy as np
import pytest

from affectkit.bench import resolve_configs, run_bench
from affectkit.metrics import METRIC_NAMES

SMALL = ["dataset.subjects=6", "dataset.trials=8", "dataset.windows=6", "train.epochs=8"]


def bench(tmp_path, methods, extra=(), name="run", **kw):
    cfgs = resolve_configs(methods, overrides=[*SMALL, *extra])
    return run_bench(cfgs, run_dir=tmp_path / name, **kw)


def test_results_json_schema_and_every_sample_scored(tmp_path):
    res, run_dir = bench(tmp_path, ["prior", "mlp"])
    on_disk = json.loads((run_dir / "results.json").read_text())
    for key in ("affectkit_version", "dataset", "protocol", "leaky", "config", "seed", "methods"):
        assert key in on_disk
    assert on_disk["leaky"] is False
    n = res["n_samples"]
    for name in ("prior", "mlp"):
        r = on_disk["methods"][name]
        assert sum(f["n_test"] for f in r["folds"]) == n  # 4 folds cover every window once
        for f in r["folds"]:
            assert set(f["metrics"]) == set(METRIC_NAMES) and f["fit_seconds"] >= 0
        for m in METRIC_NAMES:
            vals = [f["metrics"][m] for f in r["folds"]]
            assert r["summary"][m]["mean"] == pytest.approx(np.mean(vals))
            assert r["summary"][m]["std"] == pytest.approx(np.std(vals))
    assert (run_dir / "summary.md").read_text().count("|") > 10
    assert (run_dir / "summary.csv").read_text().startswith("method,")


def test_mlp_learns_something_prior_cannot(tmp_path):
    res, _ = bench(tmp_path, ["prior", "mlp"])
    prior, mlp = (res["methods"][m]["summary"] for m in ("prior", "mlp"))
    assert mlp["kl"]["mean"] < prior["kl"]["mean"]
    assert mlp["cosine"]["mean"] > prior["cosine"]["mean"]


def test_same_seed_same_numbers_other_seed_differs(tmp_path):
    a, _ = bench(tmp_path, ["mlp"], name="a")
    b, _ = bench(tmp_path, ["mlp"], name="b")
    c, _ = bench(tmp_path, ["mlp"], extra=["seed=1"], name="c")
    fa = [f["metrics"] for f in a["methods"]["mlp"]["folds"]]
    fb = [f["metrics"] for f in b["methods"]["mlp"]["folds"]]
    fc = [f["metrics"] for f in c["methods"]["mlp"]["folds"]]
    assert fa == fb
    assert fa != fc


def test_leaky_protocol_is_marked(tmp_path):
    res, run_dir = bench(tmp_path, ["prior"], extra=["protocol.name=sample-random"])
    assert res["leaky"] is True
    assert "LEAKY" in (run_dir / "summary.md").read_text()


@pytest.mark.slow
def test_cli_bench_prints_table_and_writes_run_dir(tmp_path, cli_env):
    out = tmp_path / "cli"
    args = ["bench", "--method", "prior,mlp", "--out", str(out)]
    for s in SMALL:
        args += ["--set", s]
    proc = subprocess.run(
        [sys.executable, "-m", "affectkit.cli", *args],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "4-fold over 6 subjects" in proc.stdout and "prior" in proc.stdout
    assert str(out) in proc.stdout.replace("\n", "")
    assert json.loads((out / "results.json").read_text())["methods"]["mlp"]["summary"]
