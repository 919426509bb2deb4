"""Simulated Empatica E4 session exports, written in the published layout.

Every signal file starts with the session's unix start time and its rate (ACC with three
columns of each), then one sample per line, as E4 connect writes them; ``HR.csv`` starts
10 s later, ``IBI.csv`` has its ``start, IBI`` header and ``tags.csv`` one unix time per
line. The wearer alternates calm and aroused stretches of ``period_s``: heart rate, skin
conductance level and SCR rate rise in the aroused ones, and the wrist shakes.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

START = 1495437325.0
FS = {"ACC": 32, "BVP": 64, "EDA": 4, "TEMP": 4}


def signals(duration_s: float, seed: int = 0, period_s: float = 120.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, fs in FS.items():
        t = np.arange(int(duration_s * fs)) / fs
        aroused = (t // period_s) % 2 == 1
        if name == "BVP":
            hr = np.where(aroused, 95.0, 65.0) + 3 * np.sin(2 * np.pi * t / 37)
            phase = 2 * np.pi * np.cumsum(hr / 60.0) / fs
            x = 40 * np.sin(phase) + 12 * np.sin(2 * phase + 0.8) + rng.normal(0, 1.0, len(t))
        elif name == "EDA":
            every = np.where(aroused, 7.0, 25.0)
            since = np.mod(t, every) / 1.5
            level = np.where(aroused, 3.0, 1.0)
            x = level + 0.1 * since**2 * np.exp(2 * (1 - since)) + rng.normal(0, 0.002, len(t))
        elif name == "TEMP":
            x = 33.0 + 0.05 * t / 60.0 + rng.normal(0, 0.01, len(t))
        else:
            shake = np.where(aroused, 0.3 * np.sin(2 * np.pi * 2.0 * t), 0.0)
            g = np.stack([shake, 0.1 * np.ones_like(t), np.ones_like(t)], axis=1)
            x = np.rint(g * 64 + rng.normal(0, 0.5, g.shape))
        out[name] = x
    return out


def csv_text(name: str, x: np.ndarray, start: float, fs: float) -> str:
    ncol = 3 if x.ndim == 2 else 1
    head = ", ".join([f"{start:.6f}"] * ncol) + "\n" + ", ".join([f"{fs:.6f}"] * ncol)
    fmt = "%d" if name == "ACC" else "%.6f"
    rows = x.reshape(len(x), ncol)
    body = "\n".join(",".join(fmt % v for v in row) for row in rows.tolist())
    return f"{head}\n{body}\n"


def write_session(
    folder: Path,
    duration_s: float = 420.0,
    *,
    seed: int = 0,
    start: float = START,
    tags: tuple[float, ...] = (),
    zipped: bool = False,
    sig: dict[str, np.ndarray] | None = None,
    starts: dict[str, float] | None = None,
) -> Path:
    """Write one export; ``tags`` in seconds after ``start``, ``starts`` overrides a file's
    start header. Returns the folder (or the zip)."""
    sig = signals(duration_s, seed) if sig is None else sig
    files = {
        f"{n}.csv": csv_text(n, x, (starts or {}).get(n, start), FS[n]) for n, x in sig.items()
    }
    hr = 80 + np.zeros(int(duration_s) - 10)
    files["HR.csv"] = f"{start + 10:.6f}\n1.000000\n" + "".join(f"{v:.2f}\n" for v in hr)
    beats = np.arange(10.0, duration_s, 0.8)
    files["IBI.csv"] = f"{start:.6f}, IBI\n" + "".join(f"{b:.6f},0.800000\n" for b in beats)
    files["tags.csv"] = "".join(f"{start + t:.2f}\n" for t in tags)
    if zipped:
        folder.parent.mkdir(parents=True, exist_ok=True)
        path = folder.with_suffix(".zip")
        with zipfile.ZipFile(path, "w") as zf:
            for n, text in files.items():
                zf.writestr(n, text)
        return path
    folder.mkdir(parents=True, exist_ok=True)
    for n, text in files.items():
        (folder / n).write_text(text)
    return folder
