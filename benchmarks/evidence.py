"""Every method with its defaults on real and differently shaped data: the evidence tables.

Each experiment is one ``affectkit bench`` run (every registered method, the given seeds)
whose ``summary.md`` (mean ± std over folds and seeds, Holm marks) is copied to
``benchmarks/results/evidence/<name>.md`` together with, per method, the training length
the adaptive schedule gave (steps and epochs per fold) and on how many of the six metrics
``--focus`` (mpcl) beats it and lies within one fold-std of the best.

Experiments (``--only NAME,...``):

- ``wesad-si``: real WESAD wrist subset, subject-independent (leave-one-subject-out);
- ``wesad-sd``: the same data, subject-dependent (per-trial time split);
- ``synthetic``: the default benchmark (``affectkit bench`` out of the box);
- ``dmer-size``: the synthetic generator at DMER size (73 subjects x 32 trials x 120
  windows), 4-fold subject-independent.

Run: ``python benchmarks/evidence.py --only wesad-si,wesad-sd --seeds 0,1,2`` (WESAD is read
in place from ``../shared/data/wesad-wrist`` or ``AFFECTKIT_WESAD_DIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from affectkit import get_registry
from affectkit.bench import resolve_configs, run_bench
from affectkit.executors import LocalExecutor

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "evidence"
METRICS = ("chebyshev", "clark", "canberra", "kl", "cosine", "intersection")
WESAD = os.environ.get("AFFECTKIT_WESAD_DIR") or str(ROOT.parent.parent / "shared/data/wesad-wrist")

EXPERIMENTS: dict[str, list[str]] = {
    "wesad-si": ["dataset.name=wesad", f"dataset.data_dir={WESAD}"],
    "wesad-sd": [
        "dataset.name=wesad",
        f"dataset.data_dir={WESAD}",
        "protocol.name=subject-dependent",
    ],
    "synthetic": [],
    "dmer-size": ["dataset.subjects=73", "dataset.windows=120", "protocol.folds=4"],
}
#: methods that cannot run on an experiment's data, and why (left out of its table)
SKIP: dict[str, dict[str, str]] = {
    "wesad-si": {"dgcnn": "needs EEG channels; WESAD wrist has none"},
    "wesad-sd": {"dgcnn": "needs EEG channels; WESAD wrist has none"},
}


def wins(methods: dict[str, Any], focus: str, other: str) -> int:
    """On how many of the six metrics ``focus`` has the better mean than ``other``."""
    f, o = methods[focus]["summary"], methods[other]["summary"]
    return sum(
        (f[k]["mean"] > o[k]["mean"]) if f[k]["higher_is_better"] else (f[k]["mean"] < o[k]["mean"])
        for k in METRICS
    )


def behind_best(methods: dict[str, Any], focus: str) -> list[str]:
    """Metrics on which ``focus`` is more than one of its fold-stds from the best mean."""
    out = []
    for k in METRICS:
        means = {m: v["summary"][k]["mean"] for m, v in methods.items()}
        hib = methods[focus]["summary"][k]["higher_is_better"]
        best = max(means.values()) if hib else min(means.values())
        gap = abs(best - means[focus])
        if gap > methods[focus]["summary"][k]["std"]:
            out.append(f"{k} ({gap:.4f} > std {methods[focus]['summary'][k]['std']:.4f})")
    return out


def schedule_line(method: dict[str, Any]) -> str:
    infos = [f.get("fit_info", {}) for f in method["folds"]]
    steps = [i["steps_run"] for i in infos if "steps_run" in i]
    if not steps:
        return "not trained by steps"
    epochs = [i["epochs_run"] for i in infos]
    line = (
        f"steps {int(np.min(steps))}-{int(np.max(steps))} (median {int(np.median(steps))}), "
        f"epochs {np.min(epochs):.3g}-{np.max(epochs):.3g}"
    )
    sel = [i["selected_step"] for i in infos if "selected_step" in i]
    if sel:
        line += f"; refit after early stopping chose steps {min(sel)}-{max(sel)}"
    return line


def _reuse(results: dict[str, Any]) -> str:
    """How much of the run was reused: then its seconds are not the cost of the table."""
    inv = results.get("last_invocation", {})
    reused = inv.get("reused_folds", 0)
    if not reused:
        return ""
    return f"; {inv.get('computed_folds', 0)} fold(s) computed, {reused} reused from earlier runs"


def report(
    name: str, results: dict[str, Any], focus: str, overrides: list[str], secs: float
) -> str:
    methods = results["methods"]
    lines = [
        "",
        f"Run by `python benchmarks/evidence.py --only {name}` in {secs:.0f} s "
        f"(overrides: `{' '.join(overrides) or 'none'}`){_reuse(results)}.",
        "",
    ]
    if focus in methods:
        lines += [
            f"## {focus} against each method",
            "",
            f"| method | {focus} better on | training length |",
            "|---|---|---|",
        ]
        for m, v in methods.items():
            count = "" if m == focus else f"{wins(methods, focus, m)}/6"
            lines.append(f"| {m} | {count} | {schedule_line(v)} |")
        behind = behind_best(methods, focus)
        lines += [
            "",
            f"{focus} more than one fold-std behind the best method on: "
            f"{', '.join(behind) if behind else 'no metric'}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(EXPERIMENTS), help="experiments to run")
    ap.add_argument("--seeds", default="0,1,2", help="model seeds")
    ap.add_argument("--methods", default=None, help="comma-separated (default: all registered)")
    ap.add_argument("--focus", default="mpcl")
    ap.add_argument("--workers", type=int, default=2, help="parallel fold jobs (1 thread each)")
    ap.add_argument("--runs", type=Path, default=Path("runs/evidence"), help="run directories")
    ap.add_argument("--set", dest="extra", action="append", default=[], help="extra override")
    ap.add_argument(
        "--overwrite",
        action="store_true",
        help="retrain methods whose configuration changed since their stored runs (the other "
        "methods' folds are reused)",
    )
    args = ap.parse_args(argv)
    names = args.only.split(",")
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        print(f"unknown experiments {unknown}; choose from {list(EXPERIMENTS)}", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",") if args.methods else get_registry().names("method")
    executor = LocalExecutor(workers=args.workers, threads=1) if args.workers > 1 else None
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in names:
        overrides = [*EXPERIMENTS[name], *args.extra]
        skipped = SKIP.get(name, {})
        cfgs = resolve_configs([m for m in methods if m not in skipped], overrides=overrides)
        t0 = time.perf_counter()
        results, run_dir = run_bench(
            cfgs, seeds=seeds, run_dir=args.runs / name, executor=executor, overwrite=args.overwrite
        )
        secs = time.perf_counter() - t0
        text = (run_dir / "summary.md").read_text(encoding="utf-8")
        text += report(name, results, args.focus, overrides, secs).replace(WESAD, "WESAD")
        text += "".join(f"\nNot run: {m} ({why}).\n" for m, why in skipped.items())
        (RESULTS / f"{name}.md").write_text(text, encoding="utf-8")
        shutil.copyfile(run_dir / "summary.csv", RESULTS / f"{name}.csv")
        slim = {
            m: {
                "summary": v["summary"],
                "train": v.get("train"),
                "folds": [
                    {k: f[k] for k in ("name", "metrics", "seed", "fit_info", "run_seed") if k in f}
                    for f in v["folds"]
                ],
            }
            for m, v in results["methods"].items()
        }
        (RESULTS / f"{name}.json").write_text(
            json.dumps({"overrides": overrides, "seeds": seeds, "methods": slim}, indent=1).replace(
                WESAD, "WESAD"
            ),
            encoding="utf-8",
        )
        print(f"{name}: {secs:.0f} s -> {RESULTS / (name + '.md')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
