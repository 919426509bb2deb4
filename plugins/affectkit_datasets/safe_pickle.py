"""A pickle reader that admits only plain data: dicts, lists, tuples, strings, numbers and
numeric numpy arrays.

An ordinary ``pickle.load`` calls whatever callables the file names, so a crafted file can
run arbitrary code. :func:`load_data_pickle` resolves a global only if it is one of the few
numpy reconstructors an array needs; anything else stops with a :class:`UserError` before
it is imported, let alone called. Object arrays are refused as well (their items would be
arbitrary objects again).
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from affectkit import UserError

from .sources import unreadable


def _numpy_attr(name: str) -> Callable[..., Any]:
    """``name`` from ``numpy._core`` (numpy 2) or ``numpy.core`` (numpy 1)."""
    import importlib

    module, _, attr = name.rpartition(".")
    for prefix in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{prefix}.{module}"), attr)
        except (ImportError, AttributeError):
            continue
    raise ImportError(name)


def _plain_dtype(*args: Any, **kwargs: Any) -> np.dtype:
    dt = np.dtype(*args, **kwargs)
    if dt.hasobject:
        raise pickle.UnpicklingError("numpy object arrays are not plain data")
    return dt


def _allowed() -> dict[tuple[str, str], Any]:
    reconstruct = _numpy_attr("multiarray._reconstruct")
    scalar = _numpy_attr("multiarray.scalar")
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _plain_dtype,
    }
    for prefix in ("numpy.core", "numpy._core"):
        allowed[(f"{prefix}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{prefix}.multiarray", "scalar")] = scalar
        with contextlib.suppress(ImportError):
            allowed[(f"{prefix}.numeric", "_frombuffer")] = _numpy_attr("numeric._frombuffer")
    # protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, 'latin1')
    import _codecs

    allowed[("_codecs", "encode")] = _codecs.encode
    return allowed


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, fh: Any, path: Path) -> None:
        super().__init__(fh, encoding="latin1")  # WESAD's pickles come from Python 2
        self._path = path
        self._allowed = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UserError(
                f"{self._path} asks to load {module}.{name}, which is not plain data (dicts, "
                "lists, strings, numbers, numpy arrays); it was refused because unpickling it "
                "could run arbitrary code. Use the file from the official distribution, or "
                "convert it to plain arrays with a tool you trust."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UserError(f"{self._path} uses persistent ids, which plain data pickles never do.")


def load_data_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` admitting plain data only (see the module docstring)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return _DataUnpickler(fh, path).load()
    except UserError:
        raise
    except OSError as exc:
        raise unreadable(path, exc, "Check the file and its disk, or download it again.") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise UserError(
            f"{path} is not a readable plain-data pickle ({type(exc).__name__}: {exc}). The file "
            "is truncated or not the official one: download it again."
        ) from None
