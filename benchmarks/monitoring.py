"""Monitoring benchmark: ``affectkit predict`` and ``affectkit stream`` on one hour of E4 data.

    python -m benchmarks.monitoring [--minutes 60] [--method mpcl] [--out benchmarks/results]

Writes a simulated one-hour E4 export (published layout, a tag every 15 min), trains a
small checkpoint on two labelled simulated sessions (the weights' quality does not matter
here, only their cost), then measures, each as its own CLI process:

- ``affectkit predict`` on the hour: wall time and peak RSS (targets < 30 s, < 1 GB);
- ``affectkit stream --speed max``: the replay's wall time (target < 60 s; process start
  included) and each window's latency from its last sample to its JSON line (targets
  p50 < 20 ms, p99 < 50 ms, features included).

Results go to ``monitoring.json`` and ``monitoring.md`` with the machine and its load
average, since wall-clock figures on a shared machine are inflated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.monitoring.fake_e4 import write_session

LABELS = "start_s,end_s,calm,aroused\n" + "".join(
    f"{a},{a + 120},{4 if i % 2 == 0 else 1},{1 if i % 2 == 0 else 4}\n"
    for i, a in enumerate(range(0, 600, 120))
)


def _run(args: list[str], env: dict[str, str]) -> tuple[float, str, str]:
    t = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return wall, proc.stdout, proc.stderr


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--method", default="mpcl")
    ap.add_argument("--steps", type=int, default=100, help="training steps of the checkpoint")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    cli = [sys.executable, "-m", "affectkit.cli"]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="affectkit-monitor-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "AFFECTKIT_CACHE": str(root / "cache")}
        for i, start in enumerate((1495437325, 1495447325)):
            folder = write_session(root / "train" / f"{start}_T{i}", 600, seed=i, start=start)
            (folder / "labels.csv").write_text(LABELS)
        seconds = args.minutes * 60
        tags = tuple(float(t) for t in np.arange(900.0, seconds, 900.0))
        hour = write_session(
            root / "hour" / "1495500000_H", seconds, seed=9, start=1495500000.0, tags=tags
        )
        train_s, _, _ = _run(
            [
                *cli,
                "train",
                "--method",
                args.method,
                "--dataset",
                "e4",
                "--data-dir",
                str(root / "train"),
                "--set",
                f"train.steps={args.steps}",
                "--out",
                str(root / "ck"),
            ],
            env,
        )

        def predict_args(out: str) -> list[str]:
            return [
                *cli,
                *("predict", "--checkpoint", str(root / "ck"), "--dataset", "e4"),
                *("--data-dir", str(hour), "--out", str(root / out), "--no-cache"),
            ]

        predict_s, _, _ = _run(
            predict_args("p.csv"),
            env,
        )
        # ru_maxrss of children: the largest so far, and train ran first; so measure predict
        # alone in a fresh child of a fresh process
        rss = subprocess.run(
            [
                sys.executable,
                "-c",
                "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
                "capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN)"
                ".ru_maxrss)",
                *predict_args("p2.csv"),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        predict_rss_mb = int(rss.stdout.strip()) / 1024
        stream_s, out, err = _run(
            [
                *cli,
                "stream",
                "--checkpoint",
                str(root / "ck"),
                "--source",
                str(hour),
                "--speed",
                "max",
            ],
            env,
        )
        lat = np.array([json.loads(line)["latency_ms"] for line in out.splitlines()])
        windows = len(lat)
    load_after = os.getloadavg()
    result = {
        "machine": {
            "cpu": _cpu(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": load_after,
            "niceness": os.nice(0),
        },
        "date": time.strftime("%Y-%m-%d"),
        "method": args.method,
        "recording_minutes": args.minutes,
        "windows": windows,
        "train_s": train_s,
        "predict_s": predict_s,
        "predict_peak_rss_mb": predict_rss_mb,
        "stream_replay_s": stream_s,
        "latency_ms": {
            "p50": float(np.percentile(lat, 50)),
            "p90": float(np.percentile(lat, 90)),
            "p99": float(np.percentile(lat, 99)),
            "max": float(lat.max()),
        },
        "stream_summary": err.strip().splitlines()[-2:],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "monitoring.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "monitoring.md").write_text(markdown(result))
    print(markdown(result))


def _load_remark(m: dict) -> str:
    """Say when other jobs shared the cores: a load average above half the cores, before or
    after, means the wall times are inflated."""
    busy = max(m["load_average_before"][0], m["load_average_after"][0]) > 0.5 * m["cores"]
    return " (other jobs shared the cores: wall times are inflated)" if busy else ""


def markdown(r: dict) -> str:
    m, lat = r["machine"], r["latency_ms"]
    return (
        f"# Monitoring benchmark ({r['method']} checkpoint, {r['recording_minutes']:g}-min "
        "simulated E4 recording)\n\n"
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; niceness "
        f"{m['niceness']}, load average {m['load_average_before'][0]:.1f} before and "
        f"{m['load_average_after'][0]:.1f} after{_load_remark(m)}. Date {r['date']}. "
        "`python -m benchmarks.monitoring`.\n\n"
        "| measure | value | target |\n|---|---|---|\n"
        f"| windows (60 s, step 10 s, tags every 15 min) | {r['windows']} | |\n"
        f"| stream latency p50 (last sample -> JSON line) | {lat['p50']:.1f} ms | < 20 ms |\n"
        f"| stream latency p90 | {lat['p90']:.1f} ms | |\n"
        f"| stream latency p99 | {lat['p99']:.1f} ms | < 50 ms |\n"
        f"| stream latency max | {lat['max']:.1f} ms | |\n"
        f"| `stream --speed max` replay, process wall time | {r['stream_replay_s']:.1f} s "
        "| < 60 s |\n"
        f"| `predict` wall time | {r['predict_s']:.1f} s | < 30 s |\n"
        f"| `predict` peak RSS | {r['predict_peak_rss_mb']:.0f} MB | < 1 GB |\n"
        f"| (checkpoint training, not a target) | {r['train_s']:.1f} s | |\n"
    )


if __name__ == "__main__":
    main()
