"""The live form of the ``e4`` reader: ``affectkit stream`` / ``affectkit.stream``.

Samples go into one ring buffer per signal (the window plus its ``context_s``, nothing
older), and a window's features are computed once, when its last sample has arrived, by the
same :func:`e4_features.window_features` the offline reader calls with whole arrays: the streamed
predictions equal ``affectkit predict`` window for window.

Sources:

- an E4 export (folder or zip, or a folder of sessions) replayed at ``speed`` times real time
  (``None``: as fast as possible), in ticks of :data:`TICK_S` of recording time, tags at
  their time;
- a text stream (``sys.stdin``, ``-``) of ``t,modality,value[,value,value]`` lines: ``t``
  in unix seconds (UTC; values below 1e9 are seconds from any origin, without wall-clock
  times), ``modality`` a signal (BVP, EDA, TEMP, ACC, at the E4 rates) or a modality name of
  the config, three values for ACC; ``t,tag`` marks a segment boundary. A line that cannot be
  read is skipped with a warning naming its number; samples at a time already passed are
  dropped; a gap leaves missing samples (imputed, or the window skipped).

A signal more than ``stall_s`` behind the newest sample is treated as missing for the
window waiting on it, so one sensor dropping out never stops the stream.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from affectkit import UserError
from affectkit.monitor import StreamWindow

from .e4 import E4Reader, Session, wall, zone
from .e4_features import window_features
from .e4_io import COLUMNS

log = logging.getLogger("affectkit")

E4_RATES = {"BVP": 64.0, "EDA": 4.0, "TEMP": 4.0, "ACC": 32.0}
TICK_S = 0.25  # replay delivers the samples of this much recording time at once
#: a gap longer than this many buffer lengths restarts the buffer instead of filling NaN
RESTART_GAP = 4
UNIX_MIN = 1e9


class Ring:
    """Samples ``base .. base + n - 1`` of one signal (sample ``i`` at ``origin + i / fs``)."""

    def __init__(self, origin: float, fs: float, width: int, capacity: int) -> None:
        self.origin, self.fs, self.width = origin, fs, width
        self.capacity = capacity  # samples the windows need (window + context + slack)
        self.base = 0
        self.n = 0
        self.buf = np.full((max(capacity, 16), width) if width > 1 else max(capacity, 16), np.nan)

    @property
    def end(self) -> int:
        return self.base + self.n

    def put(self, index: int, values: np.ndarray) -> int:
        """Store samples from ``index`` on; returns how many were dropped as already passed."""
        if index < self.end:
            skip = self.end - index
            if skip >= len(values):
                return len(values)
            values, index = values[skip:], self.end
        else:
            skip = 0
        gap = index - self.end
        if gap > RESTART_GAP * self.capacity:
            self.base, self.n = index, 0  # all of the gap is missing: keep none of it
        elif gap:
            self._append(np.full((gap, *self.buf.shape[1:]), np.nan))
        self._append(values)
        return skip

    def _append(self, values: np.ndarray) -> None:
        need = self.n + len(values)
        if need > len(self.buf):
            grown = np.full((max(2 * len(self.buf), need), *self.buf.shape[1:]), np.nan)
            grown[: self.n] = self.buf[: self.n]
            self.buf = grown
        self.buf[self.n : need] = values
        self.n = need

    def trim(self, keep_from: int) -> None:
        """Forget samples before ``keep_from`` (amortised: only once half the buffer is old)."""
        drop = min(keep_from - self.base, self.n)
        if drop > max(self.n // 2, 1024):
            self.buf[: self.n - drop] = self.buf[drop : self.n]
            self.base += drop
            self.n -= drop

    def arrays(self) -> tuple[np.ndarray, int, float, float]:
        return self.buf[: self.n], self.base, self.origin, self.fs


class Windows:
    """Windows of one session, completed incrementally as samples and tags arrive."""

    def __init__(self, reader: E4Reader, subject: str) -> None:
        cfg = reader.config
        self.cfg = cfg
        self.mapping = dict(cfg.modalities)
        self.signals = tuple(dict.fromkeys(self.mapping.values()))
        self.tz = zone(cfg.timezone)
        self.subject = subject
        self.rings: dict[str, Ring] = {}
        self.t0: float | None = None
        self.segment = 0
        self.seg_start = 0.0
        self.k = 0
        self.missing: set[str] = set()
        self.skipped = 0  # windows skipped in a row (no signal at all)

    def start(self, t0: float) -> None:
        self.t0, self.seg_start = t0, t0

    def ring(self, signal: str, origin: float, fs: float) -> Ring:
        if signal not in self.rings:
            span = self.cfg.window_s + self.cfg.context_s + self.cfg.step_s + self.cfg.stall_s
            self.rings[signal] = Ring(origin, fs, COLUMNS[signal], math.ceil(2 * span * fs))
        return self.rings[signal]

    def clock(self) -> float:
        """Unix time up to which the furthest signal has arrived."""
        return max((r.origin + r.end / r.fs for r in self.rings.values()), default=-math.inf)

    def add(
        self, signal: str, origin: float, fs: float, index: int, values: np.ndarray, arrived: float
    ) -> list[StreamWindow]:
        """Samples ``index, index + 1, ...`` of ``signal``; the windows they complete."""
        dropped = self.ring(signal, origin, fs).put(index, values)
        if dropped:
            log.warning(
                f"{self.subject}: {dropped} {signal} sample(s) at a time already passed were "
                "dropped (out of order or repeated)."
            )
        return self.ready(arrived)

    def ready(self, arrived: float, until: float | None = None) -> list[StreamWindow]:
        """Windows complete now; with ``until`` every window ending by then, complete or not."""
        out = []
        window_s = self.cfg.window_s
        while self.t0 is not None:
            start = self.seg_start + self.k * self.cfg.step_s
            end = start + window_s
            if until is not None:
                if end > until + 1e-9:
                    break
            elif not self._covered(start) and self.clock() < end + self.cfg.stall_s:
                break
            w = self._emit(start, arrived)
            self.k += 1
            if w is not None:
                out.append(w)
        self._trim()
        return out

    def _covered(self, start: float) -> bool:
        for sig in self.signals:
            r = self.rings.get(sig)
            if r is None:
                return False
            if r.end < round((start - r.origin) * r.fs) + round(self.cfg.window_s * r.fs):
                return False
        return True

    def _emit(self, start: float, arrived: float) -> StreamWindow | None:
        cfg = self.cfg
        arrays = {s: r.arrays() for s, r in self.rings.items()}
        feats, missing = window_features(self.mapping, arrays, start, cfg.window_s, cfg.context_s)
        assert self.t0 is not None
        when = wall(start, self.tz) if self.t0 >= UNIX_MIN else None
        if len(missing) == len(self.mapping):
            if not self.skipped:  # one warning per run of skipped windows, not one each
                log.warning(
                    f"{self.subject}: window at {when or f'{start - self.t0:.1f} s'} skipped, "
                    "no signal at all (and the following ones until a signal is back)."
                )
            self.skipped += 1
            return None
        if self.skipped:
            log.warning(f"{self.subject}: signal back after {self.skipped} skipped window(s).")
            self.skipped = 0
        for m in sorted(set(missing) - self.missing):
            log.warning(
                f"{self.subject}: {m} ({self.mapping[m]}) missing from the window at "
                f"{when or f'{start - self.t0:.1f} s'} on; imputed from the training "
                "statistics and listed under 'imputed'."
            )
        for m in sorted(self.missing - set(missing)):
            log.warning(f"{self.subject}: {m} is back from the window at {when or start}.")
        self.missing = set(missing)
        return StreamWindow(
            subject=self.subject,
            segment=self.segment,
            window=self.k,
            start_s=start - self.t0,
            end_s=start - self.t0 + cfg.window_s,
            start_wall=when,
            end_wall=wall(start + cfg.window_s, self.tz) if self.t0 >= UNIX_MIN else None,
            features=feats,
            imputed=missing,
            ready_at=arrived,
        )

    def _trim(self) -> None:
        start = self.seg_start + self.k * self.cfg.step_s
        for r in self.rings.values():
            # a tag may restart windows up to a step earlier: keep a window's worth of slack
            back = self.cfg.context_s + self.cfg.window_s
            r.trim(round((start - back - r.origin) * r.fs))

    def tag(self, t: float, arrived: float) -> list[StreamWindow]:
        """A segment boundary at ``t``: windows ending by then complete, the rest restart."""
        out = self.ready(arrived, until=t)
        self.segment += 1
        self.seg_start, self.k = t, 0
        return out

    def finish(self, arrived: float) -> list[StreamWindow]:
        return self.ready(arrived, until=self.clock())


# --------------------------------------------------------------------------- sources
def stream_windows(reader: E4Reader, source: Any, speed: float | None) -> Iterator[StreamWindow]:
    if speed is not None and not (speed > 0 and math.isfinite(speed)):
        raise UserError(
            f"--speed {speed}: give a positive number (10 = ten times real time) or max."
        )
    if {"BVP", "EDA"} & set(reader.config.modalities.values()):
        import neurokit2  # noqa: F401  seconds to import: before the first window, not in it
    if source == "-" or source is sys.stdin:
        return lines(reader, sys.stdin, "stdin")
    if hasattr(source, "read") or not isinstance(source, str | Path):
        return lines(reader, source, getattr(source, "name", "the stream"))
    path = Path(source)
    if not path.exists():
        raise UserError(
            f"--source {path} does not exist. Pass an E4 export (folder or zip) to replay, or - "
            "to read t,modality,value lines from stdin."
        )
    cfg = reader.config.model_copy(update={"data_dir": path})
    return replay(E4Reader(cfg, data_dir=path), speed)


def replay(reader: E4Reader, speed: float | None) -> Iterator[StreamWindow]:
    """Each session of the export, one after the other, as the device would send it."""
    for session in reader.sessions():
        yield from _replay_session(reader, session, speed)


def _replay_session(reader: E4Reader, s: Session, speed: float | None) -> Iterator[StreamWindow]:
    win = Windows(reader, s.name)
    win.start(s.t0)
    end = s.end
    ticks = np.arange(1, math.ceil((end - s.t0) / TICK_S) + 1) * TICK_S + s.t0
    bounds = sorted({*ticks.tolist(), *s.tags, end})
    sent = dict.fromkeys(s.signals, 0)
    tags = list(s.tags)
    wall0 = time.perf_counter()
    for b in bounds:
        if speed is not None:
            delay = wall0 + (b - s.t0) / speed - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        arrived = time.perf_counter()
        for name, sig in s.signals.items():
            upto = min(len(sig.data), max(0, math.ceil((b - s.starts[name]) * sig.fs - 1e-9)))
            if upto > sent[name]:
                chunk = sig.data[sent[name] : upto]
                yield from win.add(name, s.starts[name], sig.fs, sent[name], chunk, arrived)
                sent[name] = upto
        if tags and b == tags[0]:
            tags.pop(0)
            yield from win.tag(b, arrived)
    yield from win.finish(time.perf_counter())


def _signal_of(name: str, mapping: dict[str, str]) -> str | None:
    upper = name.strip().upper()
    if upper in E4_RATES:
        return upper
    return mapping.get(name.strip().lower())


def lines(reader: E4Reader, fh: IO[str] | Iterable[str], what: str) -> Iterator[StreamWindow]:
    """Windows from ``t,modality,value...`` lines as they arrive."""
    win = Windows(reader, what)
    mapping = dict(reader.config.modalities)
    origins: dict[str, float] = {}
    unknown: set[str] = set()
    bad = 0
    line_no = 0
    for line_no, line in enumerate(fh, start=1):
        arrived = time.perf_counter()
        if not line.endswith("\n"):  # only the last line can lack it: the writer stopped
            log.warning(f"{what} line {line_no} {line!r} is cut short (no newline); left out.")
            continue
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = [p.strip() for p in text.split(",")]
        try:
            t = float(parts[0])
            if not math.isfinite(t) or len(parts) < 2:
                raise ValueError
        except ValueError:
            bad = _bad(what, line_no, line, "no time and modality", bad)
            continue
        if parts[1].lower() == "tag":
            if win.t0 is not None and t > win.seg_start:
                yield from win.tag(t, arrived)
            continue
        sig = _signal_of(parts[1], mapping)
        if sig is None:
            if parts[1] not in unknown:
                unknown.add(parts[1])
                log.warning(f"{what} line {line_no}: unknown modality {parts[1]!r}; ignored.")
            continue
        ncol = COLUMNS[sig]
        try:
            values = [float(v) if v else math.nan for v in parts[2:]]
            if len(values) != ncol:
                raise ValueError
        except ValueError:
            why = f"{sig} takes {ncol} value(s)"
            bad = _bad(what, line_no, line, why, bad)
            continue
        if win.t0 is None:
            win.start(t)
        origin = origins.setdefault(sig, t)
        fs = E4_RATES[sig]
        index = round((t - origin) * fs)
        row = np.asarray(values, dtype=np.float64).reshape(1, ncol)
        yield from win.add(sig, origin, fs, index, row if ncol > 1 else row[:, 0], arrived)
    if win.t0 is None:
        raise UserError(
            f"{what} ended after {line_no} line(s) without one sample. Send lines "
            "t,modality,value (e.g. 1495437325.0,EDA,0.41)."
        )
    yield from win.finish(time.perf_counter())


def _bad(what: str, line_no: int, line: str, why: str, count: int) -> int:
    if count < 5:
        log.warning(f"{what} line {line_no} {line.strip()!r} cannot be read ({why}); skipped.")
    elif count == 5:
        log.warning(f"{what}: more unreadable lines; skipping them without a word each.")
    return count + 1
