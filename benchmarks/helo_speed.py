"""helo before and after the speed work of issue 18, measured side by side.

``python -m benchmarks.helo_speed [--rounds 8] [--threads 1] [--fold]`` times, in one process
and interleaved round by round (so that both sides see the same machine load):

- a training step (``loss`` + backward + AdamW, batch 128, as ``train_loop`` runs it) of the
  old helo (``benchmarks/helo_frozen.py``, on the same weights) and of the current one, on
  DMER shapes and, when ``../shared/data/wesad-wrist`` is present, on WESAD-wrist shapes;
- a validation forward (eval mode, no gradient, 1024 samples, as validation hands them over);
- AdamW's own step on helo's parameters, per implementation (the loop ``train_loop`` uses
  on the CPU, ``foreach`` and ``fused``): helo's 3.5M-weight behavioral projection makes it
  a large share of the step;
- with ``--fold``: one fold of ``affectkit bench --method helo`` on the default synthetic
  dataset with each forward (same seed: the same fit up to rounding), its fit time and steps.

CPU time (user + system of this process) is reported next to wall time: on a machine
shared with other jobs wall time mostly measures the others, CPU time much less so. The
minimum over rounds is the least disturbed figure. Results go to
``benchmarks/results/helo-speed.json`` and ``.md`` with the load average before and after.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks import helo_frozen as frozen
from benchmarks.perf import GROUPS, RESULTS, ROOT, machine

WESAD_DIR = ROOT.parent / "shared" / "data" / "wesad-wrist"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _helo(shapes: dict[str, tuple[int, ...]], groups: dict[str, str], seed: int = 0) -> Any:
    from affectkit_datasets.dmer import EMOTIONS

    from affectkit.data import DataSpec
    from affectkit.plugins import get_registry
    from affectkit.training import TrainConfig

    torch.manual_seed(seed)
    spec = DataSpec(shapes=shapes, groups=groups, emotions=EMOTIONS)
    entry = get_registry().get("method", "helo")
    train = TrainConfig().resolved(entry.factory.train_defaults)
    method = entry.build(None, spec=spec, train=train, seed=seed, device="cpu")
    method.model = method.build_model()
    return method


def _data(shapes: dict[str, tuple[int, ...]], n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {m: torch.randn(n, *s, generator=g) for m, s in shapes.items()}
    out["target"] = torch.softmax(torch.randn(n, 10, generator=g), -1)
    return out


def _interleaved(fns: dict[str, Callable[[], None]], rounds: int, reps: int) -> dict[str, Any]:
    """Per name: CPU and wall milliseconds per call, min and median over ``rounds``."""
    for fn in fns.values():  # warm-up
        fn()
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            c0, w0 = _cpu(), time.perf_counter()
            for _ in range(reps):
                fn()
            times[name].append(
                (1e3 * (_cpu() - c0) / reps, 1e3 * (time.perf_counter() - w0) / reps)
            )
    out = {}
    for name, ts in times.items():
        cpu, wall = [c for c, _ in ts], [w for _, w in ts]
        out[name] = {
            "cpu_ms_min": min(cpu),
            "cpu_ms_median": statistics.median(cpu),
            "wall_ms_min": min(wall),
            "wall_ms_median": statistics.median(wall),
        }
    return out


def measure_steps(shapes, groups, rounds: int, batch: int = 128) -> dict[str, Any]:
    """Old against new training step and validation forward, on the same weights."""
    method = _helo(shapes, groups)
    net_new = method.model
    net_old = copy.deepcopy(net_new)
    cfg = method.config
    data = _data(shapes, batch)
    opt_new = torch.optim.AdamW(net_new.parameters(), lr=1e-3, weight_decay=1e-5)
    opt_old = torch.optim.AdamW(net_old.parameters(), lr=1e-3, weight_decay=1e-5)

    def step_new() -> None:
        net_new.train()
        loss = method.loss(data)
        opt_new.zero_grad(set_to_none=True)
        loss.backward()
        opt_new.step()

    def step_old() -> None:
        net_old.train()
        loss = frozen.loss(net_old, data, corr_weight=cfg.corr_weight, reduction=cfg.kl_reduction)
        opt_old.zero_grad(set_to_none=True)
        loss.backward()
        opt_old.step()

    steps = _interleaved({"before": step_old, "after": step_new}, rounds, reps=3)
    valid = _data(shapes, 1024, seed=1)
    x = {k: v for k, v in valid.items() if k != "target"}

    @torch.no_grad()
    def eval_new() -> None:
        net_new.eval()
        method.logits(x)  # as validation calls it: in chunks of HeLo.eval_chunk

    @torch.no_grad()
    def eval_old() -> None:
        frozen.forward(net_old.eval(), x)

    evals = _interleaved({"before": eval_old, "after": eval_new}, max(2, rounds // 2), reps=1)
    return {"batch": batch, "train_step": steps, "valid_forward_1024": evals}


def measure_optimizers(shapes, groups, rounds: int) -> dict[str, Any]:
    """AdamW's step alone on helo's parameters (gradients from one batch), per kind."""
    method = _helo(shapes, groups)
    params = list(method.model.parameters())
    method.model.train()
    method.loss(_data(shapes, 128)).backward()
    kinds = {
        "for-loop (train_loop on CPU)": torch.optim.AdamW(params, lr=1e-9, foreach=False),
        "foreach": torch.optim.AdamW(params, lr=1e-9, foreach=True),
        "fused": torch.optim.AdamW(params, lr=1e-9, fused=True),
    }
    out = _interleaved({k: o.step for k, o in kinds.items()}, rounds, reps=5)
    out["parameters"] = sum(p.numel() for p in params)
    return out


def measure_fold() -> dict[str, Any]:
    """One fold of helo on the default synthetic dataset, old forward against new."""
    from affectkit_baselines.helo import HeLo

    from affectkit.bench import resolve_configs
    from affectkit.datasets import load_dataset
    from affectkit.evaluate import build_protocol, run_fold

    (cfg,) = resolve_configs(["helo"])
    data = load_dataset(cfg.dataset)
    protocol = build_protocol(cfg)
    fold = protocol.folds(data)[0]
    out = {}
    new_loss, new_logits = HeLo.loss, HeLo.logits

    def old_loss(self, batch):
        c = self.config
        return frozen.loss(self.model, batch, corr_weight=c.corr_weight, reduction=c.kl_reduction)

    def old_logits(self, batch):
        return frozen.forward(self.model, batch)

    for name, (loss, logits) in (
        ("before", (old_loss, old_logits)),
        ("after", (new_loss, new_logits)),
    ):
        HeLo.loss, HeLo.logits = loss, logits
        try:
            c0, w0 = _cpu(), time.perf_counter()
            result, _ = run_fold(cfg, data, protocol, fold, seed=cfg.seed)
            out[name] = {
                "cpu_s": _cpu() - c0,
                "wall_s": time.perf_counter() - w0,
                "metrics": result.metrics,
                "fit_info": result.fit_info,
            }
        finally:
            HeLo.loss, HeLo.logits = new_loss, new_logits
    return out


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# helo per-step cost before and after issue 18",
        "",
        f"Machine: {m['cpu']} ({m['cores']} cores), torch {m['torch']}, "
        f"{report['threads']} torch thread(s). Date {report['date']}. Load average "
        f"{report['load_before']:.1f} before, {report['load_after']:.1f} after: "
        + (
            "the machine was shared with other jobs, so wall times are inflated; CPU times less so."
            if max(report["load_before"], report["load_after"]) > 0.5 * m["cores"]
            else "the machine was idle."
        ),
        "",
        "Before = `benchmarks/helo_frozen.py` (helo as of commit 3b95939), after = the current "
        "`helo`, on the same weights and data, interleaved round by round "
        f"({report['rounds']} rounds; min and median per round).",
        "",
        "| shapes | measurement | before CPU ms (min / med) | after CPU ms (min / med) | "
        "after/before (min) | before wall ms (med) | after wall ms (med) |",
        "|---|---|---|---|---|---|---|",
    ]
    for shape, r in report["steps"].items():
        for what, key in (
            (f"training step, batch {r['batch']}", "train_step"),
            ("validation forward, 1024", "valid_forward_1024"),
        ):
            b, a = r[key]["before"], r[key]["after"]
            lines.append(
                f"| {shape} | {what} | {b['cpu_ms_min']:.1f} / {b['cpu_ms_median']:.1f} | "
                f"{a['cpu_ms_min']:.1f} / {a['cpu_ms_median']:.1f} | "
                f"{a['cpu_ms_min'] / b['cpu_ms_min']:.2f} | {b['wall_ms_median']:.1f} | "
                f"{a['wall_ms_median']:.1f} |"
            )
    opt = report["optimizer"]
    lines += [
        "",
        f"AdamW's step alone on helo's {opt['parameters']:,} parameters (DMER shapes; "
        "`train_loop` uses the for-loop implementation on the CPU):",
        "",
        "| AdamW | CPU ms (min / med) |",
        "|---|---|",
    ]
    for kind, r in opt.items():
        if kind != "parameters":
            lines.append(f"| {kind} | {r['cpu_ms_min']:.1f} / {r['cpu_ms_median']:.1f} |")
    if report.get("fold"):
        lines += [
            "",
            "One fold of `affectkit bench --method helo` (default synthetic dataset, fold 0):",
            "",
            "| | CPU s | wall s | selection steps | refit steps | KL |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in report["fold"].items():
            info = r["fit_info"]
            lines.append(
                f"| {name} | {r['cpu_s']:.1f} | {r['wall_s']:.1f} | "
                f"{info.get('selection_steps_run', info.get('steps_run'))} | "
                f"{info.get('steps_run')} | {r['metrics']['kl']:.6f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.helo_speed", description=__doc__)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fold", action="store_true", help="also time one fold end to end")
    ap.add_argument("--out", default=str(RESULTS / "helo-speed"), help="output stem")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "threads": args.threads,
        "rounds": args.rounds,
        "load_before": os.getloadavg()[0],
        "steps": {},
    }
    dmer = {"eeg": (18, 5), "gsr": (28,), "ppg": (27,), "behavioral": (768,)}
    report["steps"]["DMER"] = measure_steps(dmer, GROUPS, args.rounds)
    if WESAD_DIR.is_dir():
        from affectkit.datasets import load_dataset
        from affectkit.plugins import get_registry

        wcfg = get_registry().get("dataset", "wesad").config_cls(data_dir=str(WESAD_DIR))
        spec = load_dataset(wcfg).spec
        report["steps"]["WESAD wrist"] = measure_steps(
            dict(spec.shapes), dict(spec.groups), args.rounds
        )
    report["optimizer"] = measure_optimizers(dmer, GROUPS, args.rounds)
    if args.fold:
        report["fold"] = measure_fold()
    report["load_after"] = os.getloadavg()[0]
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
