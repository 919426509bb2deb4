"""Ablation of ``mpcl``: the full model vs. each of use_msaf / use_prd / use_pcl / use_hsc off,
and vs. no linear skip (``linear_skip=null``: affectkit's addition removed, the paper's classifier).

Every variant goes through the same evaluator as ``affectkit bench`` (public API:
``affectkit.bench.resolve_configs`` / ``run_bench``) on the same dataset, protocol and seeds;
the table reports mean ± std over folds (over folds × seeds with several seeds) and writes
benchmarks/results/mpcl_ablation.md (+ .json).

Run: ``python benchmarks/mpcl_ablation.py`` (default synthetic benchmark, 4 subject folds),
``--seeds 0,1,2``, ``--dataset wesad --data-dir DIR``, ``--set train.epochs=30`` (applied to
every variant), ``--out-dir`` to keep the run directories.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from affectkit.bench import resolve_configs, run_bench

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("kl", "cosine", "intersection", "chebyshev", "clark", "canberra")
HIGHER = {"cosine", "intersection"}
VARIANTS: dict[str, list[str]] = {
    "full": [],
    "w/o MSAF": ["method.use_msaf=false"],
    "w/o PRD": ["method.use_prd=false"],
    "w/o PCL": ["method.use_pcl=false"],
    "w/o HSC": ["method.use_hsc=false"],
    "w/o linear skip": ["method.linear_skip=null"],
}


def run_variant(
    name: str, overrides: list[str], flags: dict[str, Any], seeds: list[int], run_dir: Path
) -> dict[str, Any]:
    cfgs = resolve_configs(["mpcl"], flags=flags, overrides=overrides)
    results, _ = run_bench(cfgs, seeds=seeds, run_dir=run_dir)
    record = results["methods"]["mpcl"]
    return {
        "variant": name,
        "overrides": overrides,
        "summary": {m: record["summary"][m] for m in METRICS},
        "n_folds": len(record["folds"]),
        "protocol": results.get("protocol_description", results.get("protocol")),
        "dataset": results["dataset"],
        "fit_seconds": sum(f["fit_seconds"] for f in record["folds"]),
    }


def markdown(rows: list[dict[str, Any]], seeds: list[int], extra: list[str]) -> str:
    full = rows[0]["summary"]
    lines = [
        "# mpcl ablation",
        "",
        f"Written by `python benchmarks/mpcl_ablation.py`; dataset `{rows[0]['dataset']}`, "
        f"{rows[0]['protocol']}, seeds {seeds}"
        + (f", extra overrides {' '.join(f'`{e}`' for e in extra)}" if extra else "")
        + f". Mean ± std over {rows[0]['n_folds']} folds (× seeds). ↓ lower is better, ↑ higher "
        "is better; Δkl = KL of the variant − KL of the full model (positive: removing the "
        "part hurts).",
        "",
        "| variant | "
        + " | ".join(f"{m} {'↑' if m in HIGHER else '↓'}" for m in METRICS)
        + " | Δkl | fit s |",
        "|---|" + "---|" * (len(METRICS) + 2),
    ]
    for r in rows:
        s = r["summary"]
        cells = [f"{s[m]['mean']:.4f} ± {s[m]['std']:.4f}" for m in METRICS]
        delta = s["kl"]["mean"] - full["kl"]["mean"]
        lines.append(
            f"| {r['variant']} | " + " | ".join(cells) + f" | {delta:+.4f} | "
            f"{r['fit_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0", help="comma-separated seeds")
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--set", action="append", default=[], help="override for every variant")
    ap.add_argument("--out", type=Path, default=RESULTS / "mpcl_ablation.md")
    ap.add_argument("--out-dir", type=Path, default=None, help="keep run directories here")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    flags: dict[str, Any] = {}
    if args.dataset or args.data_dir:
        flags["dataset"] = {
            k: v for k, v in {"name": args.dataset, "data_dir": args.data_dir}.items() if v
        }
    rows = []
    with tempfile.TemporaryDirectory(prefix="mpcl_ablation_") as tmp:
        base = args.out_dir or Path(tmp)
        for i, (name, overrides) in enumerate(VARIANTS.items()):
            row = run_variant(name, [*args.set, *overrides], flags, seeds, base / f"v{i}")
            rows.append(row)
            print(f"{name:10s} kl={row['summary']['kl']['mean']:.4f}", flush=True)
    table = markdown(rows, seeds, args.set)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table, encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
