"""Defaults chosen on validation subjects only: the engine behind the default studies.

A study compares *variants* of one method (each a list of ``--set`` overrides of its
defaults; the first is the reference, the defaults before the study) the way ``affectkit
tune`` scores a trial: per outer fold of the protocol only the fold's training part is read,
the protocol's own ``validation_split`` carves an inner validation split out of it, and the
shared evaluator (:func:`affectkit.evaluate.run_fold`, with the method's own early stopping
and refit inside) fits on the rest and scores the inner validation windows. Test subjects
and test windows are never read, so a default chosen here is not fitted to the evidence
tables that are computed afterwards.

Shapes (``--only``): the default synthetic benchmark, WESAD subject-independent and
subject-dependent (benchmarks/evidence.py's experiments) and, optionally, DMER size.
Finished folds are kept in ``--runs`` (one JSON line each) and skipped when the command is
run again. The studies: ``benchmarks/mpcl_size.py`` (smaller mpcl models) and
``benchmarks/refit_study.py`` (the refit after early stopping).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.evidence import EXPERIMENTS, METRICS, WESAD

RESULTS = Path(__file__).resolve().parent / "results"
HIGHER = {"cosine", "intersection"}


@dataclass(frozen=True)
class Study:
    """Variants of one method's defaults, scored on inner validation splits."""

    name: str  #: results/<name>.md and .json
    method: str
    title: str
    variants: dict[str, list[str]]  #: name -> overrides; the first is the reference
    command: str  #: how to rerun it (printed in the report)
    about: str = ""  #: what the variants are, for the report's introduction
    runs: Path = field(default=Path("runs/inner-validation"))

    @property
    def reference(self) -> str:
        return next(iter(self.variants))


@lru_cache(maxsize=4)
def _dataset(experiment: str) -> Any:
    from affectkit.bench import resolve_configs
    from affectkit.datasets import load_dataset

    (cfg,) = resolve_configs(["prior"], overrides=EXPERIMENTS[experiment])
    return load_dataset(cfg.dataset, use_cache=True)


def fold_job(
    method: str, experiment: str, overrides: list[str], seed: int, fold_index: int
) -> dict[str, Any]:
    """Inner-validation metrics of one outer fold (its training part only)."""
    import torch

    from affectkit.bench import resolve_configs
    from affectkit.evaluate import build_protocol, method_train_config, run_fold
    from affectkit.tuning import inner_fold, training_part

    torch.set_num_threads(1)
    (cfg,) = resolve_configs([method], overrides=[*EXPERIMENTS[experiment], *overrides])
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


def n_folds(experiment: str) -> int:
    from affectkit.bench import resolve_configs
    from affectkit.evaluate import build_protocol

    (cfg,) = resolve_configs(["prior"], overrides=EXPERIMENTS[experiment])
    return len(build_protocol(cfg).folds(_dataset(experiment)))


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and std over folds x seeds of every metric, and the mean steps and seconds."""
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


def worse_by_std(s: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """Metrics on which ``s``'s mean is worse than ``base``'s by more than base's fold-std."""
    sign = {k: 1 if k in HIGHER else -1 for k in METRICS}
    return [k for k in METRICS if -sign[k] * (s[k]["mean"] - base[k]["mean"]) > base[k]["std"]]


def markdown(
    study: Study, table: dict[str, dict[str, Any]], seeds: list[int], preamble: list[str]
) -> str:
    ref = study.reference
    lines = [
        f"# {study.title}",
        "",
        f"Written by `{study.command}`. {study.about} Every number below is an *inner* "
        "validation score: per outer fold, the protocol's validation split of the fold's "
        "training part (test subjects and test windows never read); mean ± std over outer "
        f"folds x seeds {seeds}. `better` counts the metrics on which a variant's mean beats "
        f"the reference ({ref}, the defaults before this study); `> 1 std` lists the metrics "
        "on which it is worse than the reference by more than the reference's fold-std; the "
        "last column is the mean over the same folds of (variant − reference) KL, with its "
        "standard error (positive: the variant is worse). `s/fold`: wall seconds of a fold "
        "job on one thread (selection run, refit and scoring).",
        "",
        *preamble,
    ]
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
            better, worse, paired = "", "", ""
            if base is not None and v != ref:
                sign = {k: 1 if k in HIGHER else -1 for k in METRICS}
                better = str(sum(sign[k] * (s[k]["mean"] - base[k]["mean"]) > 0 for k in METRICS))
                worse = ", ".join(worse_by_std(s, base)) or "none"
                paired = f"{s['paired_kl']['mean']:+.5f} ± {s['paired_kl']['std']:.5f}"
            lines.append(
                f"| {v} | "
                + " | ".join(cells)
                + f" | {s['steps']['mean']:.0f} | {s['seconds']['mean']:.1f}"
                + f" | {better} | {worse} | {paired} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(
    study: Study,
    argv: list[str] | None = None,
    *,
    extra: Callable[[dict[str, list[str]]], tuple[list[str], Any]] | None = None,
    extra_flag: str | None = None,
) -> int:
    """Run (or resume) a study and write ``results/<study.name>.md`` and ``.json``.

    ``extra`` (switched on by the command-line flag ``extra_flag``) computes something more
    for the chosen variants (mpcl_size: step times) and returns markdown lines to put before
    the tables and a JSON-able payload.
    """
    ap = argparse.ArgumentParser(description=study.title)
    ap.add_argument("--only", default="synthetic,wesad-si,wesad-sd", help="experiments")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default=",".join(study.variants), help="variant names")
    ap.add_argument("--workers", type=int, default=2, help="parallel fold jobs (1 thread each)")
    ap.add_argument("--runs", type=Path, default=study.runs)
    if extra_flag:
        ap.add_argument(f"--{extra_flag}", action="store_true", dest="extra")
    args = ap.parse_args(argv)
    names = args.only.split(",")
    variants = args.variants.split(",")
    bad = [n for n in names if n not in EXPERIMENTS]
    bad += [v for v in variants if v not in study.variants]
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
        for f in range(n_folds(exp))
        for v in variants
        if (exp, v, seed, f) not in done
    ]
    print(f"{len(jobs)} fold job(s) to run, {len(done)} kept", flush=True)
    ctx = get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=ctx) as pool, log.open("a") as out:
        futures = {
            pool.submit(fold_job, study.method, e, study.variants[v], s, f): (e, v, s, f)
            for e, v, s, f in jobs
        }
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
                table[exp][v]["paired_kl"] = paired_kl(done, exp, v, study.reference, seeds)
    preamble, payload_extra = [], None
    if extra is not None and getattr(args, "extra", False):
        preamble, payload_extra = extra({v: study.variants[v] for v in variants})
    RESULTS.mkdir(parents=True, exist_ok=True)
    md = RESULTS / f"{study.name}.md"
    md.write_text(markdown(study, table, seeds, preamble), encoding="utf-8")
    payload = {
        "method": study.method,
        "seeds": seeds,
        "variants": {v: study.variants[v] for v in variants},
        "table": table,
        extra_flag or "extra": payload_extra,
        "folds": [r for (e, v, s, _), r in done.items() if e in names and v in variants],
    }
    text = json.dumps(payload, indent=1).replace(WESAD, "WESAD")
    (RESULTS / f"{study.name}.json").write_text(text, encoding="utf-8")
    print(f"-> {md}", flush=True)
    return 0
