"""Tiny WESAD subjects in the real file layouts, with signals whose features are known.

Per condition the pulse runs at a set heart rate, skin conductance sits at a set level
with SCRs every few seconds, temperature rises 0.1 degC/min throughout, and the wrist
shakes along x at 2 Hz during Fun. The questionnaire carries the real files' defects:
minutes.seconds times with a dropped trailing zero, a 26-value TSST row, trailing empty
fields and (optionally) a ``Nan``. Keyword arguments write defective variants: other
phase times, another alignment offset.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np

START_UNIX = 1495437325.0
OFFSET = 40.0  # e4 seconds at questionnaire time 0
FS = {"BVP": 64, "EDA": 4, "TEMP": 4, "ACC": 32}
ORDER = ("Base", "TSST", "Medi 1", "Fun", "Medi 2")
#: seconds on the questionnaire clock, written below as minutes.seconds
TIMES = {
    "Base": (65, 305),
    "TSST": (390, 570),
    "Medi 1": (600, 780),
    "Fun": (840, 1022),
    "Medi 2": (1080, 1260),
}
QUEST_TIMES = {
    "Base": ("1.05", "5.05"),
    "TSST": ("6.3", "9.3"),
    "Medi 1": ("10", "13"),
    "Fun": ("14", "17.02"),
    "Medi 2": ("18", "21"),
}
HR = {"Base": 66.0, "TSST": 96.0, "Medi 1": 60.0, "Fun": 75.0, "Medi 2": 58.0}
EDA = {"Base": 1.0, "TSST": 3.0, "Medi 1": 0.8, "Fun": 1.2, "Medi 2": 0.7}
SCR_EVERY_S = {"Base": 30.0, "TSST": 8.0, "Medi 1": 40.0, "Fun": 20.0, "Medi 2": 40.0}
DURATION = OFFSET + 1300.0
#: expected windows per condition with 60-s windows, 10-s step, 30-s trim
WINDOWS = {"Base": 13, "TSST": 7, "Medi 1": 7, "Fun": 7, "Medi 2": 7}
TEMP_SLOPE = 0.1  # degC per minute

# PANAS rows (24 items; TSST 26 with Angry, Irritated before Sad)
PANAS = {
    "Base": [1, 1, 3, 2, 1, 3, 1, 1, 1, 2, 2, 2, 2, 1, 4, 3, 4, 4, 2, 2, 2, 1, 2, 1],
    "TSST": [3, 2, 4, 1, 3, 3, 1, 2, 1, 4, 2, 4, 3, 1, 5, 4, 4, 4, 2, 3, 3, 3, 2, 3, 4, 1],
    "Medi 1": [1, 1, 2, 3, 1, 2, 1, 1, 1, 1, 1, 1, 3, 1, 2, 1, 2, 3, 1, 1, 1, 1, 4, 1],
    "Fun": [1, 1, 2, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 4, 1, 1, 3, 1, 1, 1, 2, 3, 2],
    "Medi 2": [1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 3, 1],
}


def condition_at(t_quest: np.ndarray) -> np.ndarray:
    out = np.full(t_quest.shape, "", dtype=object)
    for c, (a, b) in TIMES.items():
        out[(t_quest >= a) & (t_quest < b)] = c
    return out


def signals(seed: int = 0) -> dict[str, np.ndarray]:
    """Wrist signals from E4 time 0 (rounded to 6 decimals, as written to the CSVs)."""
    rng = np.random.default_rng(seed)
    out = {}
    t = np.arange(int(DURATION * FS["BVP"])) / FS["BVP"]
    cond = condition_at(t - OFFSET)
    hr = np.array([HR.get(c, 70.0) for c in cond])
    phase = 2 * np.pi * np.cumsum(hr / 60.0) / FS["BVP"]
    bvp = 40 * np.sin(phase) + 12 * np.sin(2 * phase + 0.8) + rng.normal(0, 1.0, len(t))
    out["BVP"] = bvp
    t = np.arange(int(DURATION * FS["EDA"])) / FS["EDA"]
    cond = condition_at(t - OFFSET)
    level = np.array([EDA.get(c, 1.0) for c in cond])
    every = np.array([SCR_EVERY_S.get(c, 60.0) for c in cond])
    x = np.mod(t, every) / 1.5  # time since the last SCR onset, in rise times
    out["EDA"] = level + 0.1 * x**2 * np.exp(2 * (1 - x)) + rng.normal(0, 0.002, len(t))
    out["TEMP"] = 33.0 + TEMP_SLOPE * t / 60.0
    t = np.arange(int(DURATION * FS["ACC"])) / FS["ACC"]
    cond = condition_at(t - OFFSET)
    shake = np.where(cond == "Fun", 0.25 * np.sin(2 * np.pi * 2.0 * t), 0.0)
    out["ACC"] = np.rint(np.stack([shake, np.zeros_like(t), np.ones_like(t)], axis=1) * 64)
    return {k: np.round(v, 6) for k, v in out.items()}


def quest_text(
    subject: str,
    nan_item: int | None = None,
    panas_rows: bool = True,
    quest_times: dict[str, tuple[str, str]] | None = None,
) -> str:
    """``quest_times`` replaces the START/END strings of the conditions it names."""
    times = {**QUEST_TIMES, **(quest_times or {})}
    pad = ";" * 8
    lines = [
        f"# Subj;{subject}{pad}",
        "# ORDER;" + ";".join(ORDER) + ";sRead;fRead" + pad,
        "# START;" + ";".join(times[c][0] for c in ORDER) + ";5.2;20" + pad,
        "# END;" + ";".join(times[c][1] for c in ORDER) + ";6.1;21.3" + pad,
        ";" * 26,
    ]
    if panas_rows:
        for c in ORDER:
            vals = [str(v) for v in PANAS[c]]
            if nan_item is not None and c == "Medi 1":
                vals[nan_item] = "Nan"
            lines.append("# PANAS;" + ";".join(vals) + (";;" if len(vals) == 24 else ""))
        lines.append(";" * 26)
    lines += ["# STAI;3;2;1;4;2;3" + pad, "# DIM;7;2" + pad, "# SSSQ;5;5;4;4;3;5" + pad]
    return "\n".join(lines) + "\n"


def _csv(name: str, x: np.ndarray) -> str:
    ncol = 3 if x.ndim == 2 else 1
    head = ", ".join([f"{START_UNIX:.6f}"] * ncol) + "\n" + ", ".join([f"{FS[name]:.6f}"] * ncol)
    body = "\n".join(",".join(f"{v:.6f}" for v in row) for row in x.reshape(len(x), ncol))
    return head + "\n" + body + "\n"


def write_subject(
    root: Path,
    subject: str = "S2",
    layout: str = "e4-folder",
    seed: int = 0,
    nan_item: int | None = None,
    panas_rows: bool = True,
    quest_times: dict[str, tuple[str, str]] | None = None,
) -> dict[str, np.ndarray]:
    folder = root / subject
    folder.mkdir(parents=True, exist_ok=True)
    quest = quest_text(subject, nan_item, panas_rows, quest_times)
    (folder / f"{subject}_quest.csv").write_text(quest)
    sig = signals(seed)
    if layout == "e4-folder":
        e4 = folder / f"{subject}_E4_Data"
        e4.mkdir(exist_ok=True)
        for name, x in sig.items():
            (e4 / f"{name}.csv").write_text(_csv(name, x))
    elif layout == "e4-zip":
        with zipfile.ZipFile(folder / f"{subject}_E4_Data.zip", "w") as zf:
            for name, x in sig.items():
                zf.writestr(f"{name}.csv", _csv(name, x))
    elif layout == "pkl":
        # the synchronised pickle starts at questionnaire time 0
        wrist = {
            n: x[int(OFFSET * FS[n]) :].reshape(-1, 3 if n == "ACC" else 1) for n, x in sig.items()
        }
        n_label = int((DURATION - OFFSET) * 700)
        label = np.zeros(n_label, dtype=np.int32)
        codes = {"Base": 1, "TSST": 2, "Fun": 3, "Medi 1": 4, "Medi 2": 4}
        for c, (a, b) in TIMES.items():
            label[a * 700 : b * 700] = codes[c]
        label[200 * 700 : 200 * 700 + 5] = 2  # a stray blip the reader must ignore
        obj = {
            "signal": {"wrist": wrist, "chest": {"EDA": np.zeros((10, 1))}},
            "label": label,
            "subject": subject,
        }
        with open(folder / f"{subject}.pkl", "wb") as fh:
            pickle.dump(obj, fh, protocol=2)
    else:
        raise ValueError(layout)
    return sig


def write_alignment(root: Path, subjects: list[str], offset: str = str(OFFSET)) -> None:
    """``offset``: e4_seconds_at_quest_t0 as written (a test may write ``nan``)."""
    rows = [f"{s},{START_UNIX:.6f},0.99,{offset}" for s in subjects]
    (root / "e4_alignment.csv").write_text(
        "subject,e4_start_unix_utc,ncc_r,e4_seconds_at_quest_t0\n" + "\n".join(rows) + "\n"
    )


def write_dataset(root: Path, subjects: tuple[str, ...] = ("S2",)) -> Path:
    """A complete E4-layout data folder: the subjects and their alignment rows."""
    for s in subjects:
        write_subject(root, s)
    write_alignment(root, list(subjects))
    return root
