"""The calibration curve: how much labelled time a new person needs (issue 16).

Each experiment is one ``affectkit bench --sweep`` (one run per calibration amount, plus
the subject-independent and subject-dependent reference runs) whose ``sweep.md`` and
``figures/sweep.png`` are copied to ``benchmarks/results/calibration/<name>.md|.png``,
with the numbers in ``<name>.json``.

Experiments (``--only NAME,...``):

- ``wesad``: real WESAD wrist subset, ``subject-calibrated`` with ``adapt: finetune``, the
  first 5 / 10 / 20 % of each condition as calibration (0 % is the subject-independent
  reference run, which it equals fold for fold);
- ``wesad-adapt``, ``wesad-weight``, ``wesad-normalize``: the same data at 10 %, how the
  calibration windows are used: joined vs fine-tuned; joined with weight 1 vs 10;
  fine-tuned with global vs per-subject normalisation;
- ``synthetic``: the default synthetic benchmark (per-subject gains and offsets by
  construction), the same sweep as ``wesad``.

Run: ``nice python benchmarks/calibration.py --only wesad --seeds 0,1,2`` (WESAD is read in
place from ``../shared/data/wesad-wrist`` or ``AFFECTKIT_WESAD_DIR``). Every run directory
(``--runs``, default ``runs/calibration``) resumes where a killed call stopped.
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

from affectkit import get_registry
from affectkit.bench import run_bench
from affectkit.executors import LocalExecutor
from affectkit.report import load_sweep, write_sweep_report
from affectkit.sweep import bench_sweep

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "calibration"
WESAD = os.environ.get("AFFECTKIT_WESAD_DIR") or str(ROOT.parent.parent / "shared/data/wesad-wrist")
ON_WESAD = ["dataset.name=wesad", f"dataset.data_dir={WESAD}"]
# 0 is left out: calibration_fraction=0 is the subject-independent reference, fold for fold
CURVE = "protocol.calibration_fraction=0.05,0.1,0.2"
FINETUNE = ["protocol.name=subject-calibrated", "protocol.adapt=finetune"]

#: name -> (overrides, sweep, references: None = the defaults, "none" = none)
EXPERIMENTS: dict[str, tuple[list[str], str, str | None]] = {
    "wesad": ([*ON_WESAD, *FINETUNE], CURVE, None),
    "wesad-adapt": (
        [*ON_WESAD, "protocol.name=subject-calibrated", "protocol.calibration_fraction=0.1"],
        "protocol.adapt=join,finetune",
        "none",
    ),
    "wesad-weight": (
        [*ON_WESAD, "protocol.name=subject-calibrated", "protocol.calibration_fraction=0.1"],
        "protocol.calibration_weight=1,10",
        "none",
    ),
    "wesad-normalize": (
        [*ON_WESAD, *FINETUNE, "protocol.calibration_fraction=0.1"],
        "protocol.normalize=global,per-subject",
        "none",
    ),
    "synthetic": (list(FINETUNE), CURVE, None),
}
#: methods that cannot run on an experiment's data, and why
NEEDS_EEG = {"dgcnn": "needs EEG channels; WESAD wrist has none"}


def slim(sweep_dir: Path) -> dict[str, Any]:
    """Per point and reference: every method's mean ± std of every metric, and the mean
    calibration windows per test subject."""
    curve = load_sweep(sweep_dir)

    def table(results: dict[str, Any]) -> dict[str, Any]:
        return {
            "protocol_description": results.get("protocol_description"),
            "calibration_windows": curve.calibration_windows(results),
            "methods": {m: v["summary"] for m, v in results.get("methods", {}).items()},
        }

    return {
        "key": curve.key,
        "values": curve.values,
        "points": [table(p) for p in curve.points],
        "references": {k: table(v) for k, v in curve.references.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="wesad,synthetic", help="experiments to run")
    ap.add_argument("--seeds", default="0,1,2", help="model seeds")
    ap.add_argument("--methods", default=None, help="comma-separated (default: all registered)")
    ap.add_argument("--workers", type=int, default=2, help="parallel fold jobs (1 thread each)")
    ap.add_argument("--runs", type=Path, default=Path("runs/calibration"), help="run directories")
    ap.add_argument("--set", dest="extra", action="append", default=[], help="extra override")
    args = ap.parse_args(argv)
    names = args.only.split(",")
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        print(f"unknown experiments {unknown}; choose from {list(EXPERIMENTS)}", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    chosen = args.methods.split(",") if args.methods else get_registry().names("method")
    executor = LocalExecutor(workers=args.workers, threads=1) if args.workers > 1 else None
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in names:
        overrides, sweep, references = EXPERIMENTS[name]
        overrides = [*overrides, *args.extra]
        skipped = NEEDS_EEG if name.startswith("wesad") else {}
        methods = [m for m in chosen if m not in skipped]

        def run(configs: list[Any], directory: Path, data: Any) -> dict[str, Any]:
            t0 = time.perf_counter()
            results, _ = run_bench(
                configs, seeds=seeds, run_dir=directory, data=data, executor=executor
            )
            print(f"  {directory.name}: {time.perf_counter() - t0:.0f} s", flush=True)
            return results

        t0 = time.perf_counter()
        sweep_dir = args.runs / name
        bench_sweep(
            sweep,
            references,
            sweep_dir,
            methods=methods,
            files=[],
            flags={},
            overrides=overrides,
            default_method=None,
            run=run,
        )
        secs = time.perf_counter() - t0
        write_sweep_report(sweep_dir)
        text = (sweep_dir / "sweep.md").read_text(encoding="utf-8").replace(WESAD, "WESAD")
        text = text.replace("figures/sweep.png", f"{name}.png")
        text += (
            f"\nRun by `python benchmarks/calibration.py --only {name} --seeds "
            f"{args.seeds}` in {secs:.0f} s wall time on a shared, loaded machine "
            f"(overrides: `{' '.join(overrides).replace(WESAD, 'WESAD')}`; sweep: "
            f"`{sweep}`).\n"
        )
        text += "".join(f"\nNot run: {m} ({why}).\n" for m, why in skipped.items())
        (RESULTS / f"{name}.md").write_text(text, encoding="utf-8")
        figure = sweep_dir / "figures" / "sweep.png"
        if figure.exists():
            shutil.copyfile(figure, RESULTS / f"{name}.png")
        data = {"overrides": overrides, "sweep": sweep, "seeds": seeds, **slim(sweep_dir)}
        (RESULTS / f"{name}.json").write_text(
            json.dumps(data, indent=1).replace(WESAD, "WESAD"), encoding="utf-8"
        )
        print(f"{name}: {secs:.0f} s -> {RESULTS / (name + '.md')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
