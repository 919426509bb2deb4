"""Atomic file writes: write a temp file beside the target, fsync, then rename.

Also the check that an output folder can be written, made before any work, and the
wording of file-system errors for users.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import UserError

#: errno values that mean "the disk is full" (quota included)
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def atomic_write(path: str | Path, writer: Callable[[IO[bytes]], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_default) + "\n")


def _default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def describe_os_error(exc: OSError) -> str:
    """Plain words for the file-system errors a user can fix."""
    if exc.errno in DISK_FULL:
        return "the disk is full"
    if exc.errno == errno.EROFS:
        return "it is on a read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


def check_writable_dir(path: str | Path, what: str, fix: str | None = None) -> Path:
    """Create the folder ``path`` if needed and prove that a file can be written in it.

    Called before any work, so that a bad output folder is an error that names it, not a
    traceback after a long fit. Permission bits are not consulted: writing a probe file is
    the only test that also holds for root, ACLs and read-only mounts. Messages read
    "{what} {path} ...", then ``fix``.
    """
    path = Path(path)
    fix = fix or f"Pass {what} a folder you can write to."
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a folder. {fix}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(
                    f"{what} {path} lies under {parent}, which is a file, not a folder. {fix}"
                )
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".affectkit-probe.", suffix=".tmp", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(
            f"{what} {path} cannot be written: {describe_os_error(exc)}. {fix}"
            + (" Free some space first." if exc.errno in DISK_FULL else "")
        ) from None
    return path
