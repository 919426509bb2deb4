"""On-disk cache of processed datasets.

Key = sha256 of (reader name, reader version, reader config, and the path, size and
mtime of every source file). Entries are one ``.npz`` (arrays) + one ``.json`` (meta),
each written atomically, so a killed run never leaves a half entry that is later read.
Location: ``$AFFECTKIT_CACHE`` or ``~/.cache/affectkit``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .data import EmotionDataset
from .io import atomic_write, describe_os_error, write_json

logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    env = os.environ.get("AFFECTKIT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "affectkit"


def cache_key(reader: str, version: str, params: dict[str, Any], files: list[Path]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([reader, version, params], sort_keys=True, default=str).encode())
    for f in sorted(files):
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def load_cached(key: str) -> EmotionDataset | None:
    base = cache_dir() / key
    meta_p, arr_p = base.with_suffix(".json"), base.with_suffix(".npz")
    if not (meta_p.is_file() and arr_p.is_file()):
        return None
    try:
        meta = json.loads(meta_p.read_text())
        with np.load(arr_p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return EmotionDataset.from_arrays(arrays, meta)
    except Exception:
        return None  # a stale or foreign entry is rebuilt, never trusted


def store(key: str, data: EmotionDataset) -> bool:
    """Write a cache entry; ``False`` (and a warning) when it could not be written.

    The cache only saves time, so a full or read-only cache disk must not stop a run.
    """
    base = cache_dir() / key
    arrays, meta = data.to_arrays()
    try:
        atomic_write(base.with_suffix(".npz"), lambda fh: np.savez(fh, **arrays))
        write_json(base.with_suffix(".json"), meta)  # written last: marks completeness
    except OSError as exc:
        logger.warning(
            "warning: the dataset cache entry %s could not be written (%s); going on "
            "without it. To use the cache, free space there or point AFFECTKIT_CACHE at a "
            "writable folder; --no-cache skips it.",
            base.with_suffix(".npz"),
            describe_os_error(exc),
        )
        return False
    return True
