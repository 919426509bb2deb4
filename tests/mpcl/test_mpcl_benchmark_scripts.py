"""The selection and reporting logic of benchmarks/synthetic_seeds.py."""

from __future__ import annotations

import json

from benchmarks import synthetic_seeds

METRICS = synthetic_seeds.METRICS


def _metrics(kl: float, cos: float = 0.97) -> dict[str, float]:
    return {
        "kl": kl,
        "cosine": cos,
        "intersection": 0.89,
        "chebyshev": 0.048,
        "clark": 0.45,
        "canberra": 1.17,
    }


def test_better_counts_each_metric_in_its_direction():
    a = _metrics(0.030, cos=0.98)
    b = _metrics(0.040, cos=0.97)
    assert synthetic_seeds.better(a, b) == 2  # kl lower, cosine higher; the rest tie
    assert synthetic_seeds.better(b, a) == 0
    worse = {**a, "intersection": 0.5, "canberra": 9.0}
    assert synthetic_seeds.better(worse, b) == 2


def test_synthetic_seeds_table_counts_and_order():
    res = {
        "mpcl": {1: _metrics(0.036), 2: _metrics(0.038)},
        "dgcnn": {1: _metrics(0.035), 2: _metrics(0.036)},
        "prior": {1: _metrics(0.090), 2: _metrics(0.100)},
    }
    text = synthetic_seeds.markdown(res, [1, 2], [0], "mpcl")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    names = [r.split("|")[1].strip() for r in rows[1:]]
    assert names == ["dgcnn", "mpcl", "prior"]  # sorted by mean KL
    # only KL differs: dgcnn's is lower (ties are not wins), prior's higher
    assert rows[1].split("|")[-2].strip() == "0/6"
    assert rows[2].split("|")[-2].strip() == ""
    assert rows[3].split("|")[-2].strip() == "1/6"
    assert "0.03500" in rows[1] and "0.03600" in rows[1]  # per-dataset KL columns


def test_synthetic_seeds_refuses_development_datasets(capsys):
    assert synthetic_seeds.main(["--datasets", "1,100", "--methods", "prior"]) == 2
    assert "tuned mpcl" in capsys.readouterr().err


def test_synthetic_seeds_end_to_end_on_prior(tmp_path):
    out = tmp_path / "seeds.md"
    code = synthetic_seeds.main(
        ["--datasets", "3", "--methods", "prior", "--workers", "1", "--out", str(out)]
    )
    assert code == 0
    stored = json.loads(out.with_suffix(".json").read_text())
    kl = stored["results"]["prior"]["3"]["kl"]
    assert 0.05 < kl < 0.2  # the training-set mean distribution: far from 0, far from uniform
    assert "| prior |" in out.read_text()


def test_size_study_times_each_variant_with_its_overrides():
    """benchmarks/mpcl_size.py times variants through perf.py's builder and training step:
    the overrides must reach the model (a smaller HSC has fewer parameters)."""
    import torch

    from benchmarks.mpcl_size import step_times
    from benchmarks.perf import build_dmer_method, training_step

    threads = torch.get_num_threads()
    try:
        times = step_times({"P4": [], "P2": ["method.head.per_emotion=2"]}, 8, 1, rounds=3)
    finally:
        torch.set_num_threads(threads)
    assert set(times) == {"P4", "P2", "mlp"} and all(t > 0 for t in times.values())
    small = build_dmer_method("mpcl", "cpu", overrides=["method.head.per_emotion=2"])
    assert small.config.head.per_emotion == 2

    def size(method) -> int:
        return sum(p.numel() for p in method.model.parameters())

    assert size(small) < size(build_dmer_method("mpcl", "cpu"))
    training_step(small, 8)()  # the overridden model trains a step
