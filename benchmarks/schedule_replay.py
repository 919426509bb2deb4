"""Early-stopping settings of a neural method, chosen on validation subjects only (issue 18).

``python -m benchmarks.schedule_replay --method helo [--datasets synthetic,wesad]`` trains the
method's selection run of every fold of the default protocol with early stopping switched off
(``train.patience`` huge, no refit): the whole step budget, validated every
``budget / evaluations`` steps on the protocol's validation split, i.e. on held-out
*training* subjects. The test subjects are never scored.

Training does not depend on when validation runs or when it would stop (validation runs in
eval mode and draws no random numbers), so every early-stopping policy that validates on a
subset of these steps can be replayed exactly from the recorded curve: the step it selects
(the refit then retrains that many epochs), the steps it trains before stopping, and the
validations it pays for. A policy that selects the same step in every fold produces the
same final model as the current one, at a lower cost.

Results go to ``benchmarks/results/<method>-schedule.json`` and ``.md`` (helo's patience 3
and mpcl's patience were chosen there).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.perf import RESULTS, ROOT

WESAD_DIR = ROOT.parent / "shared" / "data" / "wesad-wrist"
#: (validate every k-th of the current evaluations, patience in evaluations); the first is
#: the current default (train.evaluations = 20, train.patience = 5)
POLICIES = [(1, 5), (1, 4), (1, 3), (1, 2), (2, 3), (2, 2)]
NEVER = 10**6  # patience that never stops within the budget
_WESAD = ["dataset.name=wesad", f"dataset.data_dir={WESAD_DIR}"]
#: the shapes a policy is replayed on (``--datasets``)
DATASETS: dict[str, list[str]] = {
    "synthetic": [],
    "wesad": _WESAD,
    "wesad-sd": [*_WESAD, "protocol.name=subject-dependent"],
    "dmer-size": ["dataset.subjects=73", "dataset.windows=120", "protocol.folds=4"],
}


class _Curve:
    """Callbacks recording (step, validation KL) at every evaluation."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float]] = []

    def fold_start(self, *a: Any) -> None: ...

    def fold_end(self, *a: Any) -> None: ...

    def epoch(self, epoch: int, total: int, record: dict[str, float]) -> None:
        if "valid_kl" in record:
            self.points.append((int(record["step"]), float(record["valid_kl"])))


def replay(
    curve: list[tuple[int, float]], start_kl: float, budget: int, every: int, patience: int
) -> dict[str, Any]:
    """What ``train_loop`` would do validating every ``every`` steps with ``patience``."""
    kl = dict(curve)
    kl[budget] = curve[-1][1]  # train_loop validates the last step too
    best_kl, best_step, bad, validations = start_kl, 0, 0, 1  # step 0 is validated too
    step = 0
    while step < budget:
        step = min(step + every, budget)
        validations += 1
        if kl[step] < best_kl - 1e-6:
            best_kl, best_step, bad = kl[step], step, 0
        else:
            bad += 1
        if bad >= patience:
            break
    return {
        "selected_step": best_step,
        "selected_kl": best_kl,
        "steps_trained": step,
        "validations": validations,
    }


def run(dataset: str, method: str = "helo") -> dict[str, Any]:
    from affectkit.bench import resolve_configs
    from affectkit.datasets import load_dataset
    from affectkit.evaluate import build_protocol, fit_valid_split, fold_seed, method_train_config
    from affectkit.training import resolve_schedule

    over = [f"train.patience={NEVER}", "train.refit=false", *DATASETS[dataset]]
    (cfg,) = resolve_configs([method], overrides=over)
    data = load_dataset(cfg.dataset)
    protocol = build_protocol(cfg)
    train = method_train_config(cfg)
    folds = []
    for fold in protocol.folds(data):
        from affectkit.evaluate import run_fold

        fit, valid = fit_valid_split(protocol, data, fold, train, fold_seed(cfg.seed, fold.index))
        plan = resolve_schedule(train, len(fit))
        curve = _Curve()
        t0 = time.process_time()
        run_fold(cfg, data, protocol, fold, seed=cfg.seed, callbacks=curve)
        folds.append(
            {
                "fold": fold.name,
                "n_fit": len(fit),
                "n_valid": len(valid),
                "budget": plan.steps,
                "steps_per_epoch": plan.steps_per_epoch,
                "eval_every": plan.eval_every,
                "steps_per_epoch_all": resolve_schedule(
                    train, len(fit) + len(valid)
                ).steps_per_epoch,
                "curve": curve.points,
                "start_kl": _prior_kl(data.targets[fit], data.targets[valid]),
                "cpu_seconds": time.process_time() - t0,
            }
        )
        print(f"{dataset} {fold.name}: {len(curve.points)} evaluations", flush=True)
    out: dict[str, Any] = {"dataset": dataset, "method": method, "folds": folds, "policies": {}}
    for k, patience in POLICIES:
        rows = [
            replay(f["curve"], f["start_kl"], f["budget"], k * f["eval_every"], patience)
            for f in folds
        ]
        out["policies"][_name(k, patience)] = rows
    return out


def _name(k: int, patience: int) -> str:
    every = (
        "every validation"
        if k == 1
        else f"every {k}nd validation"
        if k == 2
        else f"every {k}th validation"
    )
    return f"{every}, patience {patience}"


def _prior_kl(fit_targets, valid_targets) -> float:
    """Validation KL at step 0: with ``prior_start`` the untrained model predicts the fit
    split's mean distribution (train_loop validates it before the first step)."""
    import numpy as np

    prior = fit_targets.astype(np.float64).mean(0)
    y = valid_targets.astype(np.float64)
    ratio = np.log(np.where(y > 0, y, 1.0)) - np.log(prior)
    return float(np.where(y > 0, y * ratio, 0.0).sum(1).mean())


def to_markdown(report: dict[str, Any]) -> str:
    from affectkit.training import refit_steps

    lines = [
        f"# {report.get('method', 'helo')}: early stopping replayed on validation subjects "
        "(issue 18)",
        "",
        f"Date {report['date']}. Each fold's selection run trained its whole budget, validated "
        "every budget/20 steps on the protocol's validation split (held-out training "
        "subjects); each policy (validating at every or every other of those steps, with a "
        "patience in validations) is replayed on that "
        "curve. Same selected step = same refit = same final model. Cost in training steps "
        "(selection + refit) and validation forwards (windows).",
        "",
    ]
    for ds in report["datasets"]:
        base = ds["policies"][_name(*POLICIES[0])]
        lines += [
            f"## {ds['dataset']} ({len(ds['folds'])} folds)",
            "",
            "| policy | folds selecting the current step | mean valid KL at "
            "selection | selection steps | validation windows | refit steps | est. CPU s |",
            "|---|---|---|---|---|---|---|",
        ]
        step_ms, window_ms = _costs(ds)
        for name, rows in ds["policies"].items():
            same = sum(
                r["selected_step"] == b["selected_step"] for r, b in zip(rows, base, strict=True)
            )
            kl = sum(r["selected_kl"] for r in rows) / len(rows)
            steps = sum(r["steps_trained"] for r in rows)
            windows = sum(
                r["validations"] * f["n_valid"] for r, f in zip(rows, ds["folds"], strict=True)
            )
            refit = sum(
                refit_steps(r["selected_step"], f["steps_per_epoch"], f["steps_per_epoch_all"])
                for r, f in zip(rows, ds["folds"], strict=True)
            )
            cpu = ((steps + refit) * step_ms + windows * window_ms) / 1e3
            lines.append(
                f"| {name} | {same}/{len(rows)} | {kl:.5f} | {steps} | {windows:,} | {refit} "
                f"| {cpu:.0f} |"
            )
        lines.append("")
    lines += [
        "Est. CPU s: training steps and validation windows priced at the current helo's CPU "
        "cost per training step (batch 128) and per validation window, from "
        "`benchmarks/results/helo-speed.json` (one thread)"
        if report.get("method", "helo") == "helo"
        else "Est. CPU s: the selection runs' measured CPU time per trained step (their "
        "validations included), times the policy's selection and refit steps",
        "",
    ]
    return "\n".join(lines) + "\n"


def _costs(ds: dict[str, Any]) -> tuple[float, float]:
    """(CPU ms per training step, per validation window). helo: measured by
    benchmarks/helo_speed.py on this dataset's shapes; other methods: the recorded selection
    runs' CPU time per budget step (validation folded into the step's price)."""
    if ds.get("method", "helo") != "helo":
        folds = ds["folds"]
        per_step = sum(f["cpu_seconds"] for f in folds) / sum(f["budget"] for f in folds)
        return per_step * 1e3, 0.0
    speed = json.loads((RESULTS / "helo-speed.json").read_text())["steps"]
    r = speed["WESAD wrist" if ds["dataset"].startswith("wesad") else "DMER"]
    step = r["train_step"]["after"]["cpu_ms_min"]
    return step, r["valid_forward_1024"]["after"]["cpu_ms_min"] / 1024


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.schedule_replay", description=__doc__)
    ap.add_argument("--method", default="helo")
    ap.add_argument("--datasets", default="synthetic,wesad")
    ap.add_argument(
        "--report-only", action="store_true", help="rewrite the .md from the stored .json"
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="default: results/<method>-schedule")
    args = ap.parse_args(argv)
    stem = Path(args.out or RESULTS / f"{args.method}-schedule")
    if args.report_only:
        report = json.loads(stem.with_suffix(".json").read_text())
        stem.with_suffix(".md").write_text(to_markdown(report))
        print(to_markdown(report))
        return
    import torch

    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "method": args.method,
        "datasets": [],
    }
    for name in args.datasets.split(","):
        if name.startswith("wesad") and not WESAD_DIR.is_dir():
            continue
        report["datasets"].append(run(name, args.method))
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        stem.with_suffix(".md").write_text(to_markdown(report))
    print(to_markdown(report))
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
