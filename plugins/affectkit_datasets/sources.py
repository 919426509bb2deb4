"""What the file readers share: subject ids from file names, and errors for unreadable files.

Two names that differ only in zero padding or case (``1.mat`` and ``01.mat``, ``S2`` and
``s02``) almost certainly hold the same subject; read as two subjects, the same data would
sit on both sides of a subject-independent split. Readers therefore refuse such pairs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from affectkit import UserError


def natural_sorted(ids: Iterable[str]) -> list[str]:
    """``S2`` before ``S10``; ties such as ``1`` and ``01`` in plain string order."""

    def key(s: str) -> tuple:
        return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)), s

    return sorted(ids, key=key)


def normalised_id(s: str) -> str:
    """``'01'`` -> ``'1'``, ``' S02 '`` -> ``'s2'``: the form two spellings of one id share."""
    return re.sub(r"\d+", lambda m: str(int(m.group())), s.strip()).casefold()


def check_unique(ids: Iterable[tuple[str, str]], what: str, fix: str) -> None:
    """Refuse two ``(id, source)`` pairs whose ids are equal after :func:`normalised_id`.

    ``what`` names the kind of id in the message (e.g. "DMER subject"); ``fix`` ends it.
    """
    seen: dict[str, tuple[str, str]] = {}
    for sid, source in ids:
        key = normalised_id(sid)
        if key in seen:
            first_id, first_source = seen[key]
            if first_id == sid:
                raise UserError(f"{what} {sid!r} ({source}) is listed twice. {fix}")
            raise UserError(
                f"{what} ids {first_id!r} ({first_source}) and {sid!r} ({source}) name the same "
                f"subject once leading zeros and case are ignored; read as two subjects, the same "
                f"recording would sit on both sides of a train/test split. {fix}"
            )
        seen[key] = (sid, source)


def select_subjects(
    found: Mapping[str, Path],
    requested: list[str] | None,
    *,
    what: str,
    expected: Callable[[str], Path],
    present: str,
    empty: str,
    unique_fix: str,
) -> list[tuple[str, Path]]:
    """The ``(id, path)`` of every requested subject (all of ``found`` for None), in order.

    A requested id missing from ``found`` is named by its ``expected`` path, beside the
    ``present`` ones (e.g. "files"); ``empty`` is the error when nothing is left; ids equal
    up to zero padding or case are refused (:func:`check_unique`, ``what``/``unique_fix``).
    """
    if requested is not None:
        missing = [s for s in requested if s not in found]
        if missing:
            raise UserError(
                f"{what} {present} {', '.join(str(expected(s)) for s in missing)} not found. "
                f"Fix dataset.subjects ({present} present: "
                f"{', '.join(natural_sorted(found)) or 'none'}) or add the {present}."
            )
        names = list(requested)
    else:
        names = natural_sorted(found)
    if not names:
        raise UserError(empty)
    check_unique(((s, str(found[s])) for s in names), what, unique_fix)
    return [(s, found[s]) for s in names]


def unreadable(path: Path | str, exc: OSError, fix: str) -> UserError:
    """The error for a file that exists (or should) but cannot be opened or read.

    A permission problem is said as such: a message about the file's format would send
    the user to download a file that is fine.
    """
    if isinstance(exc, PermissionError):
        return UserError(
            f"{path}: permission denied; the file exists but this user may not read it. Make it "
            f"readable (e.g. chmod a+r {path}) or run as a user who can read it."
        )
    return UserError(f"{path} could not be read ({exc.strerror or exc}). {fix}")
