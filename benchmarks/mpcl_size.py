"""Smaller mpcl models: step cost against the score on validation subjects only (issue 18).

Each variant (a set of ``--set`` overrides of mpcl's defaults) is scored the way
``affectkit tune`` scores a trial: per outer fold of the protocol, only the fold's training
part is read, the protocol's own ``validation_split`` carves an inner validation split out
of it, and the shared evaluator (``affectkit.evaluate.run_fold``, with the method's own early
stopping and refit inside) fits on the rest and scores the inner validation windows. Test
subjects and test windows are never read, so a default chosen here is not fitted to the
evidence tables that are computed afterwards.

Shapes (``--only``): the default synthetic benchmark, WESAD subject-independent and
subject-dependent (benchmarks/evidence.py's experiments) and, optionally, DMER size.
``--timing`` adds each variant's training step at batch 1024 against mlp's on DMER shapes
(1 and 2 threads, interleaved, best of the steps) to the table; run it on an idle machine.

Run: ``python -m benchmarks.mpcl_size --only synthetic,wesad-si,wesad-sd --seeds 0,1,2``;
results go to ``benchmarks/results/mpcl-size.md`` (+ ``.json``). Finished folds are kept in
``--runs`` (one JSON line each) and skipped when the command is run again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.evidence import EXPERIMENTS, METRICS, WESAD

RESULTS = Path(__file__).resolve().parent / "results"
#: variant -> overrides of mpcl's defaults; the first is the reference
VARIANTS: dict[str, list[str]] = {
    "d32 P4": ["method.dim=32", "method.head.per_emotion=4"],
    "d32 P2": ["method.dim=32", "method.head.per_emotion=2"],
    "d24 P2": ["method.dim=24", "method.head.per_emotion=2"],
    "d24 P4": ["method.dim=24", "method.head.per_emotion=4"],
}
HIGHER = {"cosine", "intersection"}


@lru_cache(maxsize=4)
def _dataset(experiment: str) -> Any:
    from affectkit.bench import resolve_configs
    from affectkit.datasets import load_dataset

    (cfg,) = resolve_configs(["mpcl"], overrides=EXPERIMENTS[experiment])
    return load_dataset(cfg.dataset, use_cache=True)


def _job(experiment: str, variant: list[str], seed: int, fold_index: int) -> dict[str, Any]:
    """Inner-validation metrics of one outer fold (its training part only)."""
    import torch

    from affectkit.bench import resolve_configs
    from affectkit.evaluate import build_protocol, method_train_config, run_fold
    from affectkit.tuning import inner_fold, training_part

    torch.set_num_threads(1)
    (cfg,) = resolve_configs(["mpcl"], overrides=[*EXPERIMENTS[experiment], *variant])
    data = _dataset(experiment)
    protocol = build_protocol(cfg)
    fold = protocol.folds(data)[fold_index]
    part = training_part(data, fold, protocol)
    fraction = method_train_config(cfg).valid_fraction
    inner = inner_fold(protocol, part, fold, fraction, seed)
    t0 = time.perf_counter()
    result, _ = run_fold(cfg, part, protocol, inner, seed=seed)
    info = result.fit_info or {}
    return {
        "metrics": {k: float(result.metrics[k]) for k in METRICS},
        "seconds": time.perf_counter() - t0,
        "steps": info.get("steps_run"),
        "selected_step": info.get("selected_step"),
    }


def _n_folds(experiment: str) -> int:
    from affectkit.bench import resolve_configs
    from affectkit.evaluate import build_protocol

    (cfg,) = resolve_configs(["mpcl"], overrides=EXPERIMENTS[experiment])
    return len(build_protocol(cfg).folds(_dataset(experiment)))


def step_times(variants: dict[str, list[str]], batch: int, threads: int, rounds: int = 12):
    """Best-of-``rounds`` training step (ms) of each variant and of mlp, interleaved (the step
    of benchmarks/perf.py, on DMER-shaped random batches)."""
    import torch

    from benchmarks.perf import build_dmer_method, training_step

    torch.set_num_threads(threads)
    steppers = {
        name: training_step(build_dmer_method(method, "cpu", overrides=over), batch)
        for name, method, over in [
            *((v, "mpcl", o) for v, o in variants.items()),
            ("mlp", "mlp", []),
        ]
    }
    times: dict[str, list[float]] = {k: [] for k in steppers}
    for _ in range(rounds):
        for k, step in steppers.items():
            t0 = time.perf_counter()
            step()
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * min(v[2:]) for k, v in times.items()}


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and std over folds x seeds of every metric, and the mean steps."""
    out = {}
    for k in METRICS:
        v = np.array([r["metrics"][k] for r in rows])
        out[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
    out["steps"] = {"mean": float(np.mean([r["steps"] or 0 for r in rows])), "std": 0.0}
    out["seconds"] = {"mean": float(np.mean([r["seconds"] for r in rows])), "std": 0.0}
    return out


def paired_kl(
    done: dict[tuple, dict[str, Any]], exp: str, variant: str, ref: str, seeds: list[int]
) -> dict[str, float]:
    """Mean and standard error of (variant − reference) KL over the folds both ran."""
    keys = [(s, f) for (e, v, s, f) in done if e == exp and v == variant and s in seeds]
    diff = np.array(
        [
            done[(exp, variant, s, f)]["metrics"]["kl"] - done[(exp, ref, s, f)]["metrics"]["kl"]
            for s, f in keys
            if (exp, ref, s, f) in done
        ]
    )
    if len(diff) < 2:
        return {"mean": float(diff.mean()) if len(diff) else 0.0, "std": 0.0}
    return {"mean": float(diff.mean()), "std": float(diff.std(ddof=1) / np.sqrt(len(diff)))}


def markdown(table: dict[str, dict[str, Any]], timing: dict[str, Any] | None, seeds: list[int]):
    ref = next(iter(VARIANTS))
    lines = [
        "# mpcl: smaller models, scored on validation subjects only",
        "",
        "Written by `python -m benchmarks.mpcl_size`. Every number below is an *inner* "
        "validation score: per outer fold, the protocol's validation split of the fold's "
        "training part (test subjects and test windows never read); mean ± std over outer "
        f"folds x seeds {seeds}. `better` counts the metrics on which a variant's mean beats "
        f"the reference ({ref}, the defaults before this study); `> 1 std` lists the metrics "
        "on which it is worse than the reference by more than the reference's fold-std; the "
        "last column is the mean over the same folds of (variant − reference) KL, with its "
        "standard error (positive: the variant is worse).",
        "",
    ]
    if timing:
        lines += ["## Training step at batch 1024, DMER shapes (ms, best of the steps)", ""]
        lines += ["| variant | " + " | ".join(f"{t} thread(s)" for t in timing) + " |"]
        lines += ["|---|" + "---|" * len(timing)]
        for v in [*VARIANTS, "mlp"]:
            cells = []
            for t in timing.values():
                ratio = t[v] / t["mlp"]
                cells.append(f"{t[v]:.1f} ({ratio:.2f}x mlp)")
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
        lines.append("")
    for exp, variants in table.items():
        lines += [
            f"## {exp}",
            "",
            "| variant | "
            + " | ".join(METRICS)
            + " | steps | s/fold | better | > 1 std | Δ kl, paired (± s.e.) |",
        ]
        lines += ["|---|" + "---|" * (len(METRICS) + 5)]
        base = variants.get(ref)
        for v, s in variants.items():
            cells = [f"{s[k]['mean']:.4f} ± {s[k]['std']:.4f}" for k in METRICS]
            better, worse = "", ""
            if base is not None and v != ref:
                sign = {k: 1 if k in HIGHER else -1 for k in METRICS}
                better = str(sum(sign[k] * (s[k]["mean"] - base[k]["mean"]) > 0 for k in METRICS))
                worse = (
                    ", ".join(
                        k
                        for k in METRICS
                        if -sign[k] * (s[k]["mean"] - base[k]["mean"]) > base[k]["std"]
                    )
                    or "none"
                )
            lines.append(
                f"| {v} | "
                + " | ".join(cells)
                + f" | {s['steps']['mean']:.0f} | {s['seconds']['mean']:.1f}"
                + f" | {better} | {worse} | "
                + (
                    f"{s['paired_kl']['mean']:+.5f} ± {s['paired_kl']['std']:.5f} |"
                    if v != ref
                    else " |"
                )
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="synthetic,wesad-si,wesad-sd", help="experiments")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="names from VARIANTS")
    ap.add_argument("--workers", type=int, default=2, help="parallel fold jobs (1 thread each)")
    ap.add_argument("--runs", type=Path, default=Path("runs/mpcl-size"))
    ap.add_argument("--timing", action="store_true", help="also time the steps (idle machine)")
    args = ap.parse_args(argv)
    names = args.only.split(",")
    variants = args.variants.split(",")
    bad = [n for n in names if n not in EXPERIMENTS] + [v for v in variants if v not in VARIANTS]
    if bad:
        print(f"unknown experiments or variants {bad}", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    args.runs.mkdir(parents=True, exist_ok=True)
    log = args.runs / "folds.jsonl"
    done = {}
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            done[(r["experiment"], r["variant"], r["seed"], r["fold"])] = r
    jobs = [
        (exp, v, seed, f)
        for exp in names
        for seed in seeds
        for f in range(_n_folds(exp))
        for v in variants
        if (exp, v, seed, f) not in done
    ]
    print(f"{len(jobs)} fold job(s) to run, {len(done)} kept", flush=True)
    ctx = get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=ctx) as pool, log.open("a") as out:
        futures = {pool.submit(_job, e, VARIANTS[v], s, f): (e, v, s, f) for e, v, s, f in jobs}
        for i, fut in enumerate(futures):
            e, v, s, f = futures[fut]
            r = {"experiment": e, "variant": v, "seed": s, "fold": f, **fut.result()}
            done[(e, v, s, f)] = r
            out.write(json.dumps(r) + "\n")
            out.flush()
            print(
                f"[{i + 1}/{len(jobs)}] {e} {v} seed {s} fold {f}: kl {r['metrics']['kl']:.5f} "
                f"({r['seconds']:.0f} s)",
                flush=True,
            )
    table: dict[str, dict[str, Any]] = {}
    for exp in names:
        table[exp] = {}
        for v in variants:
            rows = [r for (e, vv, s, _), r in done.items() if e == exp and vv == v and s in seeds]
            if rows:
                table[exp][v] = summarize(rows)
                table[exp][v]["paired_kl"] = paired_kl(done, exp, v, next(iter(VARIANTS)), seeds)
    timing = None
    if args.timing:
        sel = {v: VARIANTS[v] for v in variants}
        timing = {t: step_times(sel, 1024, t) for t in (1, 2)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "mpcl-size.md").write_text(markdown(table, timing, seeds), encoding="utf-8")
    payload = {
        "seeds": seeds,
        "variants": {v: VARIANTS[v] for v in variants},
        "table": table,
        "timing": timing,
        "folds": list(done.values()),
    }
    text = json.dumps(payload, indent=1).replace(WESAD, "WESAD")
    (RESULTS / "mpcl-size.json").write_text(text, encoding="utf-8")
    print(f"-> {RESULTS / 'mpcl-size.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
