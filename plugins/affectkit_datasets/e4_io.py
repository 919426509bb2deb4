"""Empatica E4 session exports: the file layout the ``wesad`` and ``e4`` readers share.

An export (the folder, or the zip, that E4 connect writes per session, named
``<unix start>_<device id>``) holds one CSV per signal:

- ``ACC.csv`` (3 columns, 32 Hz, 1/64 g), ``BVP.csv`` (64 Hz), ``EDA.csv`` (4 Hz, uS),
  ``TEMP.csv`` (4 Hz, degC), ``HR.csv`` (1 Hz, computed by the device): line 1 the start
  time (unix seconds, UTC) per column, line 2 the sampling rate per column, then one sample
  per line;
- ``IBI.csv``: line 1 the start time and ``IBI``, then ``seconds after start, interval``;
- ``tags.csv``: one unix time per line, the wearer's button presses (may be empty).

:func:`parse_e4_csv` reads one signal file. ``strict`` (the ``wesad`` reader, whose files
are a finished published dataset) refuses any malformed line; otherwise (the ``e4`` reader,
recordings straight from a device) an empty or ``nan`` sample is a missing sample that keeps
its place on the time axis, and a last line cut short by a file still being written is
dropped with a warning.
"""

from __future__ import annotations

import io
import logging
import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectkit import UserError

from .sources import unreadable

log = logging.getLogger("affectkit")

SIGNALS = ("BVP", "EDA", "TEMP", "ACC")
COLUMNS = {"ACC": 3, "BVP": 1, "EDA": 1, "TEMP": 1, "HR": 1}
#: a session folder or zip named by its start time, as E4 connect names its exports
SESSION_NAME = re.compile(r"^(\d{9,10})(?:_[A-Za-z0-9]+)?$")


@dataclass
class Signal:
    data: np.ndarray  # [T] or [T, 3] (ACC); NaN = missing sample (only outside strict mode)
    fs: float
    source: Path  # file named in errors


def parse_e4_csv(
    text: str, source: Path, name: str, fix: str, *, strict: bool = True
) -> tuple[np.ndarray, float, float]:
    """(samples, rate, start unix time) of one Empatica CSV; ``fix`` ends every error."""
    head, _, body = text.partition("\n")
    rate_line, _, body = body.partition("\n")
    try:
        starts = [float(v) for v in head.split(",")]
        rates = [float(v) for v in rate_line.split(",")]
    except ValueError:
        raise UserError(
            f"{source}: the first two lines must hold the start time and the sampling rate per "
            f"column (Empatica E4 layout). {fix}"
        ) from None
    ncol = COLUMNS.get(name, 1)
    if len(starts) != ncol or len(rates) != ncol or len(set(rates)) != 1 or rates[0] <= 0:
        raise UserError(
            f"{source}: header gives {len(starts)} start time(s) and rate(s) {rates}; {name}.csv "
            f"has {ncol} column(s) with one positive rate. {fix}"
        )
    if not strict:
        if len(set(starts)) != 1 or not all(math.isfinite(s) for s in starts + rates):
            raise UserError(
                f"{source}: header gives start times {starts}; the columns of one E4 file "
                f"start together, at one finite unix time. {fix}"
            )
        body = _tolerant_body(body, source, ncol)
    try:
        data = np.loadtxt(io.StringIO(body), delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise UserError(
            f"{source} is truncated or malformed: {_bad_line(body, ncol, name, strict) or exc}. "
            f"{fix}"
        ) from None
    if data.shape[0] == 0 or data.shape[1] != ncol:
        raise UserError(
            f"{source} holds {data.shape[0]} sample row(s) of {data.shape[1] if data.size else 0} "
            f"column(s); expected a recording of {ncol} column(s). The file is truncated. {fix}"
        )
    if strict and not np.isfinite(data).all():
        raise UserError(
            f"{source} holds non-numeric samples: {_bad_line(body, ncol, name, strict)}. {fix}"
        )
    if not strict:
        data[~np.isfinite(data)] = np.nan  # inf is no more a reading than nan is
    return (data if ncol == 3 else data[:, 0]), rates[0], starts[0]


def _tolerant_body(body: str, source: Path, ncol: int) -> str:
    """Empty sample lines become ``nan`` rows (they hold a place on the time axis) and a last
    line without its newline that is not a complete row is dropped: the device software was
    still writing it."""
    lines = body.split("\n")
    if lines and lines[-1].strip() == "":
        lines.pop()  # the file's final newline
    elif lines:
        last = lines[-1].split(",")
        complete = len(last) == ncol and all(_is_number(v) for v in last)
        if not complete:
            log.warning(
                f"{source}: the last line {lines[-1]!r} is cut short (the file is still being "
                "written?); it is left out."
            )
            lines.pop()
    nan_row = ",".join(["nan"] * ncol)
    return "\n".join(line if line.strip() else nan_row for line in lines) + "\n"


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _bad_line(body: str, ncol: int, name: str, strict: bool = True) -> str | None:
    """The first sample line that is not ``ncol`` numbers (finite ones when ``strict``), by its
    line in the file.

    numpy reports a 0-based row among the data lines; a user opening the file needs the
    line number, which counts the two header lines and starts at 1.
    """
    for line_no, line in enumerate(body.splitlines(), start=3):
        text = line.split("#", 1)[0].strip()  # loadtxt skips comments and blank lines
        if not text:
            continue
        values = [v.strip() for v in text.split(",")]
        if len(values) != ncol:
            return (
                f"line {line_no} holds {len(values)} value(s) ({line.strip()!r}); "
                f"{name}.csv has {ncol} per line"
            )
        for v in values:
            try:
                ok = math.isfinite(float(v)) or not strict
            except ValueError:
                ok = False
            if not ok:
                return f"line {line_no} holds {v!r}, which is not a finite number"
    return None


class Export:
    """One session's files, in a folder or a zip; :meth:`read` gives a file's text."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zipped = path.is_file()
        self._members: dict[str, str] | None = None

    @property
    def name(self) -> str:
        return self.path.stem if self.zipped else self.path.name

    def _zip_members(self) -> dict[str, str]:
        if self._members is None:
            try:
                with zipfile.ZipFile(self.path) as zf:
                    self._members = {Path(n).name: n for n in zf.namelist() if not n.endswith("/")}
            except (zipfile.BadZipFile, OSError) as exc:
                raise UserError(
                    f"{self.path} is not a readable zip archive ({exc}). Download it again."
                ) from None
        return self._members

    def has(self, file: str) -> bool:
        if self.zipped:
            return file in self._zip_members()
        return (self.path / file).is_file()

    def source(self, file: str) -> Path:
        """The path errors name: ``folder/file`` or ``archive.zip!file``."""
        return Path(f"{self.path}!{file}") if self.zipped else self.path / file

    def read(self, file: str, fix: str, read_fix: str | None = None) -> str:
        """The text of ``file``; a missing one is a UserError ending in ``fix``, an unreadable
        one in ``read_fix`` (default ``fix``)."""
        if not self.has(file):
            where = (
                f"{self.path} holds no {file}" if self.zipped else f"{self.path / file} not found"
            )
            raise UserError(f"{where}. {fix}")
        if not self.zipped:
            try:
                return (self.path / file).read_text(errors="replace")
            except OSError as exc:
                raise unreadable(self.path / file, exc, read_fix or fix) from None
        try:
            with zipfile.ZipFile(self.path) as zf:
                return zf.read(self._zip_members()[file]).decode("utf-8", errors="replace")
        except (zipfile.BadZipFile, OSError) as exc:
            raise UserError(
                f"{self.path} is not a readable zip archive ({exc}). Download it again."
            ) from None

    def signal(
        self,
        name: str,
        fix: str,
        *,
        missing_fix: str | None = None,
        read_fix: str | None = None,
        strict: bool = True,
    ) -> tuple[Signal, float]:
        """One signal file as (Signal, start unix time); ``fix`` ends a format error,
        ``missing_fix``/``read_fix`` (default ``fix``) a missing or unreadable file."""
        text = self.read(f"{name}.csv", missing_fix or fix, read_fix)
        data, fs, t0 = parse_e4_csv(text, self.source(f"{name}.csv"), name, fix, strict=strict)
        return Signal(data, fs, self.path if self.zipped else self.source(f"{name}.csv")), t0


__all__ = ["COLUMNS", "SESSION_NAME", "SIGNALS", "Export", "Signal", "parse_e4_csv"]
