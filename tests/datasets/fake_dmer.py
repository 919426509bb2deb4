"""Tiny DMER feature files in the published layouts, with values that encode where they sit.

Column ``c`` of row ``r`` of subject ``sid`` holds ``c + 1000 r + 1e6 int(sid)``, so a test
can tell which file, row and column a reader put where. The keyword arguments replace one
variable by a defective value (a string, a cell array, a 40 x 10 ``dis_label``, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.io import savemat

_DEFAULT = object()


def write_subject(
    folder: Path,
    sid: str,
    n_per_trial: tuple[int, ...] = (3, 2),
    trials: tuple[int, ...] = (5, 0),
    split: str | None = None,
    seed: int = 0,
    ratings: Any = _DEFAULT,
    feas: Any = _DEFAULT,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Write ``<sid>.mat`` (and its label file); returns (feas, vids, ratings).

    ``split``: None keeps ``dis_label`` in ``<sid>.mat``; "suffix" writes
    ``<sid>_dis_label.mat``, "folder" ``dis_label/<sid>.mat`` (under another variable
    name, as the only 32 x 10 one), "both" writes both label files with the same ratings.
    ``ratings``/``feas`` replace the drawn 1-5 ratings / the encoded features as written.
    """
    rng = np.random.default_rng(seed)
    vids = np.concatenate([np.full(n, t) for t, n in zip(trials, n_per_trial, strict=True)])
    n = len(vids)
    values = np.arange(913)[None, :] + 1000.0 * np.arange(n)[:, None] + 1e6 * int(sid)
    drawn = rng.integers(1, 6, size=(32, 10)).astype(float)
    labels = drawn if ratings is _DEFAULT else ratings
    mats = {"feas": values if feas is _DEFAULT else feas, "vids": vids[:, None].astype(float)}
    if split is None:
        mats["dis_label"] = labels
    if split in ("suffix", "both"):
        savemat(folder / f"{sid}_dis_label.mat", {"dis_label": labels})
    if split in ("folder", "both"):
        (folder / "dis_label").mkdir(exist_ok=True)
        savemat(folder / "dis_label" / f"{sid}.mat", {"labels": labels})
    savemat(folder / f"{sid}.mat", mats)
    return values, vids, drawn
