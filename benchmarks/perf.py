"""Speed and memory suite (issue 7): ``python -m benchmarks [--quick] [--device cpu,cuda]``.

Measures, in one run so that ratios between methods are comparable:

1. training throughput (samples/s after warm-up) per method and batch size;
2. inference latency of one window (batch 1, p50/p99) and throughput at batch 1024;
3. peak memory (RSS of a fresh process on CPU; ``torch.cuda.max_memory_allocated`` on GPU);
4. dataset build and cached-load time (DMER-size synthetic; the WESAD wrist subset if present);
5. wall time of ``affectkit bench --method mpcl`` with defaults (and, with ``--full-loso``, a
   73-fold leave-one-subject-out MPCL run at DMER size).

Each per-method measurement runs in its own subprocess so that peak RSS is that method's.
Results go to ``benchmarks/results/perf-<devices>[-<gpu>].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from affectkit_datasets.dmer import EMOTIONS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DMER_SHAPES = {"eeg": (18, 5), "gsr": (28,), "ppg": (27,), "behavioral": (768,)}
GROUPS = {
    "eeg": "physiological",
    "gsr": "physiological",
    "ppg": "physiological",
    "behavioral": "behavioral",
}


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            info["driver"] = out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def machine_speed(seconds: float = 0.5) -> dict[str, float]:
    """One-thread yardsticks of the machine, so that runs on different hosts compare.

    Wall times on these 2-core VMs differ by 2x between hosts of the same CPU model (shared
    caches and memory); the suite's ratios between methods move too, as mpcl's step is bound
    by memory traffic and small ops more than an mlp's. ``sgemm_gflops``: a 512³ float32
    matmul; ``add_gbps``: bytes moved by ``a + b`` over 4 MiB tensors (the size of mpcl's
    [1024, 40, 32] activations at batch 1024, beyond L2); ``op_us``: one tiny in-place op
    (dispatcher overhead). Best of repeats.
    """
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.randn(512, 512), torch.randn(512, 512)
        x, y = torch.randn(1 << 20), torch.randn(1 << 20)
        tiny = torch.zeros(1)

        def best(fn, reps: int) -> float:
            fn()
            times = []
            stop = time.perf_counter() + seconds
            while time.perf_counter() < stop or len(times) < 3:
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn()
                times.append((time.perf_counter() - t0) / reps)
            return min(times)

        return {
            "sgemm_gflops": 2 * 512**3 / best(lambda: a @ b, 5) / 1e9,
            "add_gbps": 3 * 4 * (1 << 20) / best(lambda: x + y, 10) / 1e9,
            "op_us": 1e6 * best(lambda: tiny.add_(1), 1000),
        }
    finally:
        torch.set_num_threads(old)


# --------------------------------------------------------------------------- one method
def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def build_dmer_method(
    name: str, device: str, seed: int = 0, overrides: list[str] | tuple[str, ...] = ()
):  # type: ignore[no-untyped-def]
    """Registered method ``name`` with its defaults (plus ``overrides``, ``key=value`` as
    ``--set`` takes them) and its model built, on DMER shapes."""
    import torch

    from affectkit.bench import resolve_configs
    from affectkit.data import DataSpec
    from affectkit.evaluate import build_method

    (cfg,) = resolve_configs(
        [None], overrides=[f"method.name={name}", f"train.device={device}", *overrides]
    )
    torch.manual_seed(seed)
    spec = DataSpec(shapes=dict(DMER_SHAPES), groups=dict(GROUPS), emotions=EMOTIONS)
    method = build_method(cfg, spec, seed=seed)
    method.model = method.build_model().to(device)
    return method


def dmer_batch(batch: int, device: str = "cpu") -> dict:
    """A random DMER-shaped batch: every modality plus a target distribution."""
    import torch

    x = {m: torch.randn(batch, *s, device=device) for m, s in DMER_SHAPES.items()}
    x["target"] = torch.softmax(torch.randn(batch, len(EMOTIONS), device=device), -1)
    return x


def training_step(method, batch: int, device: str = "cpu"):  # type: ignore[no-untyped-def]
    """One step of the training loop on a random DMER-shaped batch, as a closure: loss,
    backward, the method's gradient clipping, fused AdamW, per-step state (mpcl's weight
    average)."""
    import torch

    from affectkit.training import adamw

    train_cfg = method.train_config
    params = [p for p in method.model.parameters() if p.requires_grad]
    opt = adamw(params, lr=1e-3, weight_decay=train_cfg.weight_decay)  # the training loop's
    data = dmer_batch(batch, device)

    def step() -> None:
        loss = method.loss(data)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if train_cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, train_cfg.grad_clip)
        opt.step()
        method.after_step()

    return step


def measure_method(
    name: str,
    device: str,
    batches: list[int],
    steps: int,
    warmup: int,
    compile_model: bool = False,
) -> dict:
    """Train-step throughput and inference latency of ``name`` on random DMER-shaped data."""
    import torch

    method = build_dmer_method(name, device)
    if compile_model:
        method.model.compile()  # as train.compile=true does (TorchMethod._ensure_model)
    model = method.model
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    out: dict[str, Any] = {
        "method": name,
        "device": device,
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "torch_threads": torch.get_num_threads(),
        "compiled": compile_model,
        "train": {},
    }
    for b in batches:
        step = training_step(method, b, device)
        model.train()
        for i in range(warmup + steps):
            if i == warmup:
                _sync(device)
                t0 = time.perf_counter()
            step()
        _sync(device)
        dt = time.perf_counter() - t0
        out["train"][str(b)] = {"samples_per_s": b * steps / dt, "step_ms": 1e3 * dt / steps}
    model.eval()
    with torch.no_grad():
        one = {k: v[:1] for k, v in dmer_batch(1, device).items() if k != "target"}
        lat = []
        for i in range(50 + 300):
            _sync(device)
            t0 = time.perf_counter()
            torch.softmax(method.logits(one), -1)
            _sync(device)
            if i >= 50:
                lat.append(1e3 * (time.perf_counter() - t0))
        big = {k: v for k, v in dmer_batch(1024, device).items() if k != "target"}
        for _ in range(3):
            method.logits(big)
        _sync(device)
        t0 = time.perf_counter()
        reps = 10
        for _ in range(reps):
            method.logits(big)
        _sync(device)
        thr = 1024 * reps / (time.perf_counter() - t0)
    lat.sort()
    out["inference"] = {
        "batch1_p50_ms": statistics.median(lat),
        "batch1_p99_ms": lat[int(0.99 * (len(lat) - 1))],
        "batch1024_samples_per_s": thr,
    }
    if device == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _child(args: argparse.Namespace) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    res = measure_method(
        args.one,
        args.device,
        [int(b) for b in args.batches.split(",")],
        args.steps,
        args.warmup,
        compile_model=args.compile,
    )
    print("RESULT " + json.dumps(res))


def run_child(
    name: str,
    device: str,
    batches: str,
    steps: int,
    warmup: int,
    threads: int | None = None,
    compile_model: bool = False,
) -> dict | None:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks",
        "--one",
        name,
        "--device",
        device,
        "--batches",
        batches,
        "--steps",
        str(steps),
        "--warmup",
        str(warmup),
        *(["--threads", str(threads)] if threads else []),
        *(["--compile"] if compile_model else []),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    print(f"  {name} on {device} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
    return None


def run_helo_reference(
    device: str, steps: int, warmup: int, threads: int | None = None
) -> dict | None:
    """``benchmarks/helo_reference.py`` (published-style HeLo step vs helo) in a subprocess."""
    cmd = [sys.executable, "-m", "benchmarks.helo_reference", "--device", device]
    cmd += ["--steps", str(steps), "--warmup", str(warmup)]
    cmd += ["--threads", str(threads)] if threads else []
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        print(f"  helo reference on {device} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None


# --------------------------------------------------------------------------- datasets and runs
def portable(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` as recorded in the results: paths relative to the repository, never absolute.

    The results are committed and compared across machines; an absolute path only says
    where one machine kept its data (and whose home that was).
    """
    out = dict(cfg)
    for key, value in cfg.items():
        if key.endswith("_dir") and value is not None:
            try:
                rel = os.path.relpath(os.path.abspath(value), ROOT)
            except ValueError:  # another drive (Windows): no relative path exists
                rel = Path(value).name
            out[key] = Path(rel).as_posix()
    return out


def time_dataset(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    from affectkit.datasets import load_dataset
    from affectkit.plugins import get_registry

    config = get_registry().get("dataset", name).config_cls(**cfg)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["AFFECTKIT_CACHE"] = cache
        t0 = time.perf_counter()
        data = load_dataset(config)
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        load_dataset(config)
        cached = time.perf_counter() - t0
    return {
        "dataset": name,
        "config": portable(cfg),
        "windows": len(data),
        "build_seconds": built,
        "cached_load_seconds": cached,
    }


def time_cli(args: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, AFFECTKIT_CACHE=str(Path(tmp) / "cache"))
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "affectkit.cli", *args, "--out", str(Path(tmp) / "run")],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        )
        wall = time.perf_counter() - t0
        summary = None
        res = Path(tmp) / "run" / "results.json"
        if res.is_file():
            summary = {
                m: {k: v["mean"] for k, v in r["summary"].items()}
                for m, r in json.loads(res.read_text())["methods"].items()
            }
    return {
        "command": "affectkit " + " ".join(args),
        "wall_seconds": wall,
        "exit_code": proc.returncode,
        "summary": summary,
    }


# --------------------------------------------------------------------------- report
def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# affectkit performance — {m.get('gpu', m['cpu'])}",
        "",
        f"Machine: {m['cpu']} ({m['cores']} cores, torch threads {m['torch_threads']})"
        + (f", GPU {m['gpu']} (driver {m.get('driver', '?')})" if "gpu" in m else "")
        + f"; torch {m['torch']}, Python {m['python']}. Date {report['date']}.",
        *(
            [
                "",
                "Machine speed, one thread (benchmarks/perf.py `machine_speed`; compare runs "
                f"across hosts by it): sgemm {m['speed']['sgemm_gflops']:.0f} GFLOP/s, "
                f"a + b over 4 MiB {m['speed']['add_gbps']:.1f} GB/s, "
                f"tiny op {m['speed']['op_us']:.1f} µs.",
            ]
            if "speed" in m
            else []
        ),
        "",
        "## Training throughput (samples/s, steady state) and inference",
        "",
        "| method | device | params | "
        + " | ".join(f"train b={b}" for b in report["batches"])
        + " | infer b=1 p50 ms | p99 ms | infer b=1024 samples/s | peak RSS MB | peak GPU MB |",
        "|---|---|---|" + "---|" * (len(report["batches"]) + 5),
    ]
    for r in report["methods"]:
        tr = " | ".join(f"{r['train'][str(b)]['samples_per_s']:,.0f}" for b in report["batches"])
        inf = r["inference"]
        lines.append(
            f"| {r['method']}{' (compiled)' if r.get('compiled') else ''} | {r['device']} | "
            f"{r['parameters']:,} | {tr} | "
            f"{inf['batch1_p50_ms']:.2f} | {inf['batch1_p99_ms']:.2f} | "
            f"{inf['batch1024_samples_per_s']:,.0f} | {r['peak_rss_mb']:.0f} | "
            f"{r.get('peak_gpu_mb', float('nan')):.0f} |"
        )
    ratios = report.get("ratios", {})
    if ratios:
        lines += [
            "",
            "Step-cost ratios (same run): "
            + ", ".join(f"{k} = {v:.2f}" for k, v in ratios.items()),
        ]
    if report.get("helo_reference"):
        lines += [
            "",
            "## helo vs a published-style HeLo step (batch 128, same weights and data)",
            "",
            "The reference re-creates how the published training step executes (per-sample "
            "OT loop, host sync every step, DataLoader); see benchmarks/helo_reference.py.",
            "",
            "| device | reference samples/s | affectkit helo samples/s | speed-up |",
            "|---|---|---|---|",
        ]
        for r in report["helo_reference"]:
            lines.append(
                f"| {r['device']} | {r['reference']['samples_per_s']:,.0f} | "
                f"{r['affectkit']['samples_per_s']:,.0f} | {r['ratio']:.2f}× |"
            )
    lines += [
        "",
        "## Datasets",
        "",
        "| dataset | windows | build s | cached load s |",
        "|---|---|---|---|",
    ]
    for d in report["datasets"]:
        lines.append(
            f"| {d['dataset']} {d['config']} | {d['windows']:,} | "
            f"{d['build_seconds']:.2f} | {d['cached_load_seconds']:.2f} |"
        )
    lines += ["", "## End-to-end runs", "", "| command | wall s | exit |", "|---|---|---|"]
    for r in report["runs"]:
        lines.append(f"| `{r['command']}` | {r['wall_seconds']:.1f} | {r['exit_code']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--methods", default="mlp,helo,mpcl")
    ap.add_argument(
        "--device", default=None, help="cpu, cuda or both (cpu,cuda); default: all present"
    )
    ap.add_argument("--batches", default="128,1024")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads of every measurement (default: torch's own); mpcl trains "
        "with method.threads=1",
    )
    ap.add_argument(
        "--compile", action="store_true", help="torch.compile each model (train.compile=true)"
    )
    ap.add_argument("--quick", action="store_true", help="skip DMER-size data and end-to-end runs")
    ap.add_argument(
        "--full-loso",
        action="store_true",
        help="also time a 73-fold LOSO MPCL run at DMER size (GPU-scale work)",
    )
    ap.add_argument(
        "--fold-parallel",
        type=int,
        default=None,
        help="train.fold_parallel for the LOSO run (folds trained at once; default: all 73 "
        "on CUDA, 1 on CPU)",
    )
    ap.add_argument("--wesad-dir", default=str(ROOT.parent / "shared" / "data" / "wesad-wrist"))
    ap.add_argument(
        "--out", default=None, help="output stem (default benchmarks/results/perf-<devices>)"
    )
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        _child(args)
        return

    import torch

    from affectkit.plugins import get_registry

    devices = (
        args.device.split(",")
        if args.device
        else (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    )
    if args.threads:
        torch.set_num_threads(args.threads)  # recorded by machine(); children set their own
    names = [n for n in args.methods.split(",") if ("method", n) in get_registry()]
    report: dict[str, Any] = {
        "machine": {**machine(), "speed": machine_speed()},
        "date": time.strftime("%Y-%m-%d"),
        "batches": [int(b) for b in args.batches.split(",")],
        "methods": [],
        "datasets": [],
        "runs": [],
    }
    for dev in devices:
        for name in names:
            print(f"measuring {name} on {dev} ...", file=sys.stderr)
            r = run_child(
                name, dev, args.batches, args.steps, args.warmup, args.threads, args.compile
            )
            if r:
                report["methods"].append(r)
    big = str(max(report["batches"]))
    by = {(r["method"], r["device"]): r for r in report["methods"]}
    for dev in devices:
        if ("mlp", dev) in by:
            base = by[("mlp", dev)]["train"][big]["step_ms"]
            for other in ("mpcl", "helo"):
                if (other, dev) in by:
                    report.setdefault("ratios", {})[f"{other}/mlp step b={big} {dev}"] = (
                        by[(other, dev)]["train"][big]["step_ms"] / base
                    )
    if "helo" in names:
        for dev in devices:
            print(f"helo vs the published-style step on {dev} ...", file=sys.stderr)
            r = run_helo_reference(dev, args.steps, args.warmup, args.threads)
            if r:
                report.setdefault("helo_reference", []).append(r)
    if not args.quick:
        print("timing datasets ...", file=sys.stderr)
        report["datasets"].append(time_dataset("synthetic", {}))
        report["datasets"].append(
            time_dataset("synthetic", {"subjects": 73, "trials": 32, "windows": 120})
        )
        if ("dataset", "wesad") in get_registry() and Path(args.wesad_dir).is_dir():
            report["datasets"].append(time_dataset("wesad", {"data_dir": args.wesad_dir}))
        print("timing end-to-end runs ...", file=sys.stderr)
        if ("method", "mpcl") in get_registry():
            report["runs"].append(time_cli(["bench", "--method", "mpcl"]))
            if args.full_loso:
                loso_parallel = args.fold_parallel or (73 if "cuda" in devices else 1)
                report["runs"].append(
                    time_cli(
                        [
                            "bench",
                            "--method",
                            "mpcl",
                            "--set",
                            "dataset.subjects=73",
                            "--set",
                            "dataset.windows=120",
                            "--set",
                            "protocol.folds=null",
                            "--set",
                            f"train.fold_parallel={loso_parallel}",
                        ]
                    )
                )
    tag = "-".join(devices)
    if "gpu" in report["machine"]:
        tag += "-" + report["machine"]["gpu"].lower().replace(" ", "-")
    stem = Path(args.out) if args.out else RESULTS / f"perf-{tag}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(to_markdown(report))
    print(to_markdown(report))
    print(f"wrote {stem}.json and {stem}.md", file=sys.stderr)


if __name__ == "__main__":
    main()
