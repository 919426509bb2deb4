"""Simulated raw DMER recordings, and the ``dmer-raw`` folder layout written from them.

The signals only need the features' code paths to see realistic shapes: EEG with a
1/f-like background and an alpha rhythm (uV), a drifting positive skin conductance
(uS) and a pulse with harmonics, breathing modulation and baseline drift.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from affectkit_datasets.dmer import EMOTIONS

RATES = {"eeg": 300, "gsr": 4, "ppg": 100}


def simulate(modality: str, seconds: float, rng: np.random.Generator, fs: float = 0) -> np.ndarray:
    """One raw signal: EEG ``[18, T]``, GSR and PPG ``[T]``, ``T = round(seconds * fs)``."""
    fs = fs or RATES[modality]
    n = round(seconds * fs)
    t = np.arange(n) / fs
    if modality == "eeg":
        white = rng.normal(size=(18, n))
        pink = np.cumsum(white, axis=1) * 0.05 + white  # crude 1/f-like background
        alpha = np.sin(2 * np.pi * rng.uniform(8, 12) * t + rng.uniform(0, 6, size=(18, 1)))
        return 10.0 * (pink - pink.mean(axis=1, keepdims=True)) + 8.0 * alpha
    if modality == "gsr":
        return 3.0 + np.abs(np.cumsum(rng.normal(0, 0.02, size=n))) + 0.3 * np.sin(t / 7)
    hr = rng.uniform(1.0, 1.5)
    pulse = np.sin(2 * np.pi * hr * t) + 0.4 * np.sin(4 * np.pi * hr * t + 1.0)
    breathing = 1 + 0.2 * np.sin(2 * np.pi * 0.25 * t)
    return 500 + 40 * pulse * breathing + 5 * t + rng.normal(0, 1.0, size=n)


def write_folder(
    root: Path,
    subjects: dict[str, dict[int, dict[str, np.ndarray]]],
    rates: dict[str, float] | None = None,
    ratings: dict[str, dict[int, list[int]]] | None = None,
    ext: str = "npy",
) -> Path:
    """Write ``root/manifest.yaml``, ``root/<subject>/<trial>_<modality>.<ext>`` and ratings.

    ``subjects``: subject -> trial -> modality -> signal (EEG ``[18, T]`` is written as
    ``T`` rows of 18 columns, one row per sample). ``ratings``: subject -> trial -> 10
    ratings (default: drawn 1-5); a subject given ``{}`` gets no ratings file.
    """
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    (root / "manifest.yaml").write_text(
        yaml.safe_dump({"sampling_rates": dict(rates or RATES)}, sort_keys=False)
    )
    ratings = ratings or {}
    for sid, trials in subjects.items():
        folder = root / sid
        folder.mkdir(exist_ok=True)
        for trial, signals in trials.items():
            for m, x in signals.items():
                samples = np.asarray(x).T  # one row per sample
                path = folder / f"{trial}_{m}.{ext}"
                if ext == "npy":
                    np.save(path, samples)
                else:
                    np.savetxt(path, samples, delimiter=",")
        rows = ratings.get(sid)
        if rows is None:
            rows = {t: rng.integers(1, 6, size=10).tolist() for t in trials}
        if rows:
            lines = ["trial," + ",".join(EMOTIONS)]
            lines += [f"{t}," + ",".join(str(v) for v in r) for t, r in rows.items()]
            (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
    return root


def simulated_subjects(
    n_subjects: int, trials: dict[int, float], seed: int = 0
) -> dict[str, dict[int, dict[str, np.ndarray]]]:
    """``n_subjects`` subjects "1".., each with ``trials`` (trial id -> seconds), all modalities."""
    rng = np.random.default_rng(seed)
    return {
        str(s + 1): {
            t: {m: simulate(m, seconds, rng) for m in RATES} for t, seconds in trials.items()
        }
        for s in range(n_subjects)
    }
