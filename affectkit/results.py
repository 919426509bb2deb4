"""Results store: one atomic file per finished fold, resume, and run summaries.

Layout of a run directory::

    results.json  summary.md  summary.csv      # rewritten after every fold
    methods/<method>/config.json               # config + hash the folds were made with
    methods/<method>/seed-<s>/fold-<i>.npz     # test predictions, targets, metadata
    methods/<method>/seed-<s>/fold-<i>.json    # metrics, timings, seed, versions (written last)

A fold whose ``.json`` exists with the same config hash is finished and is skipped on
re-run; anything else in flight when a run is killed is simply recomputed.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .evaluate import FoldPredictions, FoldResult
from .io import atomic_write, write_json, write_text
from .metrics import METRIC_NAMES, METRICS


def versions() -> dict[str, str]:
    import torch

    from . import __version__

    return {
        "affectkit": __version__, "torch": torch.__version__, "numpy": np.__version__,
        "python": platform.python_version(),
    }


class ResultsStore:
    def __init__(self, run_dir: str | Path, *, overwrite: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.overwrite = overwrite

    def method_dir(self, method: str) -> Path:
        return self.run_dir / "methods" / method

    def fold_stem(self, method: str, seed: int, fold: int) -> Path:
        return self.method_dir(method) / f"seed-{seed}" / f"fold-{fold}"

    def begin_method(self, method: str, config: dict[str, Any], chash: str) -> None:
        """Record the config of ``method``; refuse to mix folds made with another one."""
        path = self.method_dir(method) / "config.json"
        if path.is_file():
            try:
                old = json.loads(path.read_text()).get("config_hash")
            except json.JSONDecodeError:
                old = None
            if old != chash:
                if not self.overwrite:
                    raise UserError(
                        f"run directory {self.run_dir} already holds results of method {method!r} "
                        f"made with a different configuration (hash {old} vs {chash}). Use another "
                        "--out, or pass --overwrite to discard the old results of this method."
                    )
                shutil.rmtree(self.method_dir(method))
        write_json(path, {"config_hash": chash, "config": config, "versions": versions()})

    def load_fold(self, method: str, seed: int, fold: int, chash: str) -> FoldResult | None:
        stem = self.fold_stem(method, seed, fold)
        js = stem.with_suffix(".json")
        if not (js.is_file() and stem.with_suffix(".npz").is_file()):
            return None
        try:
            data = json.loads(js.read_text())
        except json.JSONDecodeError:
            return None
        if data.get("config_hash") != chash:
            return None
        return FoldResult(**data["result"])

    def save_fold(
        self, method: str, seed: int, result: FoldResult, preds: FoldPredictions, chash: str
    ) -> None:
        stem = self.fold_stem(method, seed, result.fold)
        atomic_write(
            stem.with_suffix(".npz"),
            lambda fh: np.savez_compressed(
                fh, pred=preds.pred, target=preds.target, subject=preds.subject.astype(str),
                trial=preds.trial, window=preds.window,
            ),
        )
        write_json(
            stem.with_suffix(".json"),
            {"config_hash": chash, "run_seed": seed, "versions": versions(),
             "result": result.to_json()},
        )

    def load_predictions(self, method: str, seed: int, fold: int) -> dict[str, np.ndarray]:
        with np.load(self.fold_stem(method, seed, fold).with_suffix(".npz")) as z:
            return {k: z[k] for k in z.files}

    def write_summaries(self, results: dict[str, Any]) -> None:
        write_json(self.run_dir / "results.json", results)
        write_text(self.run_dir / "summary.md", summary_markdown(results))
        write_text(self.run_dir / "summary.csv", summary_csv(results))


def best_per_metric(results: dict[str, Any]) -> dict[str, str]:
    best: dict[str, str] = {}
    for m in METRIC_NAMES:
        vals = {
            name: r["summary"][m]["mean"]
            for name, r in results["methods"].items()
            if r.get("summary") and np.isfinite(r["summary"][m]["mean"])
        }
        if vals:
            pick = max if METRICS[m].higher_is_better else min
            best[m] = pick(vals, key=vals.__getitem__)
    return best


def _arrow(m: str) -> str:
    return "↑" if METRICS[m].higher_is_better else "↓"


def summary_markdown(results: dict[str, Any]) -> str:
    best = best_per_metric(results)
    leaky = " **(LEAKY protocol)**" if results.get("leaky") else ""
    lines = [
        f"# affectkit results: {results['dataset']}",
        "",
        f"Protocol: {results['protocol_description']}{leaky}. Seeds: {results['seeds']}. "
        "Mean ± std over folds; best per column in bold.",
        "",
        "| method | " + " | ".join(f"{m} {_arrow(m)}" for m in METRIC_NAMES) + " | folds |",
        "|---|" + "---|" * (len(METRIC_NAMES) + 1),
    ]
    for name, r in results["methods"].items():
        cells = []
        for m in METRIC_NAMES:
            s = r["summary"][m]
            cell = f"{s['mean']:.4f} ± {s['std']:.4f}"
            cells.append(f"**{cell}**" if best.get(m) == name else cell)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(r['folds'])} |")
    return "\n".join(lines) + "\n"


def summary_csv(results: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method", *[f"{m}_{s}" for m in METRIC_NAMES for s in ("mean", "std")], "folds"])
    for name, r in results["methods"].items():
        row = [name]
        for m in METRIC_NAMES:
            row += [f"{r['summary'][m]['mean']:.6f}", f"{r['summary'][m]['std']:.6f}"]
        w.writerow([*row, len(r["folds"])])
    return buf.getvalue()
