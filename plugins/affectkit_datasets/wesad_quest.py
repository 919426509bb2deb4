"""WESAD's ``SX_quest.csv``: protocol phase times and the PANAS rows.

The file is ``;``-separated, one questionnaire per line, each line starting with a tag
such as ``# ORDER``, ``# START``, ``# END`` or ``# PANAS``; separator-only lines and
trailing empty fields are padding. Facts from the official readme:

- START/END are minutes.seconds from the start of the chest device (``39.55`` = 39 min
  55 s, ``50.3`` = 50 min 30 s: the seconds are the two digits after the point, a dropped
  trailing zero included).
- The first five ORDER entries (Base, TSST, Medi 1, Fun, Medi 2, order varies) have one
  PANAS row each, in that order; read phases (sRead, fRead, bRead) have none.
- PANAS rows hold 24 items (1 Active ... 23 Happy, 24 Sad); the TSST row holds 26 with
  Angry and Irritated inserted before Sad. ``Nan`` (any case) or an empty field inside
  a row is a missing rating.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectkit import UserError

CONDITIONS = ("Base", "TSST", "Fun", "Medi 1", "Medi 2")
PANAS_ITEMS: tuple[str, ...] = (
    "Active",
    "Distressed",
    "Interested",
    "Inspired",
    "Annoyed",
    "Strong",
    "Guilty",
    "Scared",
    "Hostile",
    "Excited",
    "Proud",
    "Irritable",
    "Enthusiastic",
    "Ashamed",
    "Alert",
    "Nervous",
    "Determined",
    "Attentive",
    "Jittery",
    "Afraid",
    "Stressed",
    "Frustrated",
    "Happy",
    "Sad",
)
TSST_EXTRA = ("Angry", "Irritated")
FIX = (
    "Use the subject's SX_quest.csv from the official WESAD distribution (Schmidt et al., "
    "ICMI 2018)"
)


@dataclass(frozen=True)
class Quest:
    """One subject's questionnaire: phase times (s) and PANAS ratings per condition."""

    path: Path
    order: tuple[str, ...]  # the five conditions in protocol order
    times: dict[str, tuple[float, float]]  # condition -> (start s, end s), chest clock
    panas: dict[str, np.ndarray]  # condition -> [24] ratings (NaN = missing), PANAS_ITEMS order


def canonical_condition(raw: str) -> str | None:
    key = re.sub(r"\s+", "", raw).lower()
    for c in CONDITIONS:
        if key == c.replace(" ", "").lower():
            return c
    return None


def minutes_seconds(raw: str, path: Path, row: str) -> float:
    """``'39.55'`` -> 2395.0 s; ``'50.3'`` -> 3030.0 s; ``'32'`` -> 1920.0 s."""
    text = raw.strip()
    m = re.fullmatch(r"(\d+)(?:\.(\d{1,2}))?", text)
    if m is None or (m.group(2) is not None and int(m.group(2).ljust(2, "0")) >= 60):
        raise UserError(
            f"{path}: {row} value {raw!r} is not a minutes.seconds time (e.g. 39.55 = 39 min "
            f"55 s). {FIX}, or correct the value."
        )
    seconds = int(m.group(2).ljust(2, "0")) if m.group(2) else 0
    return 60.0 * int(m.group(1)) + seconds


def _rating(raw: str, path: Path, line_no: int) -> float:
    text = raw.strip()
    if text == "" or text.lower() == "nan":
        return float("nan")
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
        ok = False
    else:
        ok = 1 <= value <= 5
    if not ok:
        raise UserError(
            f"{path} line {line_no}: PANAS value {raw!r} is not a rating 1-5 or Nan. {FIX}, or "
            "correct the value."
        )
    return value


def parse_quest(path: Path) -> Quest:
    """Read and check one ``SX_quest.csv`` (see the module docstring for the format)."""
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise UserError(f"{path} could not be read ({exc}). {FIX}.") from None
    rows: dict[str, list[tuple[int, list[str]]]] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split(";")
        tag = fields[0].strip().lstrip("#").strip().upper()
        if not tag:
            continue
        values = list(fields[1:])
        while values and not values[-1].strip():
            values.pop()  # trailing padding
        rows.setdefault(tag, []).append((line_no, values))

    for tag in ("ORDER", "START", "END"):
        if tag not in rows:
            raise UserError(
                f"{path} has no '# {tag}' line; a WESAD questionnaire file starts with the "
                f"ORDER, START and END lines of the protocol phases. {FIX}."
            )
    order_raw = rows["ORDER"][0][1]
    starts, ends = rows["START"][0][1], rows["END"][0][1]
    if len(order_raw) < 5 or len(starts) < 5 or len(ends) < 5:
        raise UserError(
            f"{path}: ORDER/START/END list {len(order_raw)}/{len(starts)}/{len(ends)} phases; "
            f"the first five must be the conditions {', '.join(CONDITIONS)}. {FIX}."
        )
    order = [canonical_condition(o) for o in order_raw[:5]]
    if sorted(o or "" for o in order) != sorted(CONDITIONS):
        raise UserError(
            f"{path}: the first five ORDER entries are {order_raw[:5]}; expected the conditions "
            f"{', '.join(CONDITIONS)} in some order. {FIX}."
        )
    times = {}
    for i, cond in enumerate(order):
        t0 = minutes_seconds(starts[i], path, "START")
        t1 = minutes_seconds(ends[i], path, "END")
        if t1 <= t0:
            raise UserError(
                f"{path}: {cond} ends ({ends[i]}) before it starts ({starts[i]}). {FIX}."
            )
        times[cond] = (t0, t1)

    panas_rows = rows.get("PANAS", [])
    if len(panas_rows) < 5:
        raise UserError(
            f"{path} has {len(panas_rows)} PANAS row(s); it needs one '# PANAS' row for each of "
            f"the first five ORDER conditions ({', '.join(o or '?' for o in order)}). {FIX}."
        )
    panas = {}
    for cond, (line_no, values) in zip(order, panas_rows[:5], strict=True):
        ratings = [_rating(v, path, line_no) for v in values]
        if len(ratings) == len(PANAS_ITEMS) + len(TSST_EXTRA):
            ratings = ratings[: len(PANAS_ITEMS) - 1] + ratings[-1:]  # drop Angry, Irritated
        elif len(ratings) != len(PANAS_ITEMS):
            raise UserError(
                f"{path} line {line_no}: the PANAS row of {cond} has {len(ratings)} values; "
                f"expected {len(PANAS_ITEMS)} (or {len(PANAS_ITEMS) + len(TSST_EXTRA)} with "
                f"{' and '.join(TSST_EXTRA)} before Sad). {FIX}."
            )
        panas[cond] = np.asarray(ratings, dtype=np.float64)
    return Quest(path=path, order=tuple(order), times=times, panas=panas)  # type: ignore[arg-type]
