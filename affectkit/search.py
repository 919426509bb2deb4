"""Search spaces: which settings of a method ``affectkit tune`` may vary, and over what.

A method declares its space beside its config, as the ``search_space`` class variable of its
:class:`~affectkit.ComponentConfig`. Keys are the paths ``--set`` takes — ``train.<field>``
for the training loop, ``method.<field>`` (or deeper, ``method.bank.tau``) for the method and
its sub-components — so a searched value reaches the model through the ordinary config
path, validated like any other::

    class MyConfig(ComponentConfig):
        width: int = 64
        dropout: float = Field(0.2, ge=0, lt=1)

        search_space: ClassVar[SearchSpace] = {
            "train.lr": FloatRange(1e-4, 1e-2, log=True),
            "method.dropout": FloatRange(0.0, 0.5),
            "method.width": Choice([32, 64, 128]),
        }

:func:`check_space` validates a space against a run config (``affectkit tune`` calls it
before any work): an unknown key, or a bound the config model rejects, is a clear error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from .errors import ConfigError, UserError

if TYPE_CHECKING:
    from .config import RunConfig

#: the parts of a run config a search may vary
SEARCHABLE_SECTIONS = ("method", "train")
_PRIMITIVE = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class FloatRange:
    """A real value in ``[low, high]``; ``log=True`` samples on a log scale (needs low > 0)."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"FloatRange needs finite low < high, got [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ValueError(f"FloatRange(log=True) needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("FloatRange cannot have both log=True and a step")

    def bounds(self) -> list[float]:
        return [float(self.low), float(self.high)]

    def describe(self) -> str:
        scale = ", log" if self.log else ""
        step = f", step {self.step:g}" if self.step else ""
        return f"[{self.low:g}, {self.high:g}{scale}{step}]"


@dataclass(frozen=True)
class IntRange:
    """An integer in ``[low, high]`` (both included); ``log=True`` samples on a log scale."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.low, int) and isinstance(self.high, int) and self.low < self.high):
            raise ValueError(f"IntRange needs integers low < high, got [{self.low}, {self.high}]")
        if self.log and (self.low <= 0 or self.step != 1):
            raise ValueError("IntRange(log=True) needs low > 0 and step 1")
        if self.step < 1:
            raise ValueError(f"IntRange needs step >= 1, got {self.step}")

    def bounds(self) -> list[int]:
        return [self.low, self.high]

    def describe(self) -> str:
        scale = ", log" if self.log else ""
        step = f", step {self.step}" if self.step != 1 else ""
        return f"{{{self.low}..{self.high}{scale}{step}}}"


@dataclass(frozen=True, init=False)
class Choice:
    """One of a fixed list of values (any YAML values: numbers, strings, null, lists)."""

    choices: tuple[Any, ...]

    def __init__(self, choices: Sequence[Any]) -> None:
        if isinstance(choices, (str, bytes)) or len(choices) < 2:
            raise ValueError(f"Choice needs a list of at least two values, got {choices!r}")
        labels = [self._label(c) for c in choices]
        if len(set(labels)) != len(labels):
            raise ValueError(f"Choice has repeated values: {list(choices)!r}")
        object.__setattr__(self, "choices", tuple(choices))

    @staticmethod
    def _label(value: Any) -> Any:
        return value if isinstance(value, _PRIMITIVE) else json.dumps(value)

    @property
    def primitive(self) -> bool:
        """Whether every choice is a scalar Optuna can store as it is."""
        return all(isinstance(c, _PRIMITIVE) for c in self.choices)

    def labels(self) -> list[Any]:
        """The values as stored in a study: scalars as they are, lists/maps as JSON text."""
        return [self._label(c) for c in self.choices]

    def value_of(self, label: Any) -> Any:
        return self.choices[self.labels().index(label)]

    def bounds(self) -> list[Any]:
        return list(self.choices)

    def describe(self) -> str:
        return "{" + ", ".join(json.dumps(c) for c in self.choices) + "}"


Param: TypeAlias = FloatRange | IntRange | Choice
SearchSpace: TypeAlias = Mapping[str, Param]


def describe_space(space: SearchSpace) -> str:
    return "; ".join(f"{key} ∈ {p.describe()}" for key, p in space.items())


def space_json(space: SearchSpace) -> dict[str, Any]:
    """A stable JSON form (stored with a study, so that a changed space is noticed)."""
    out: dict[str, Any] = {}
    for key, p in space.items():
        if isinstance(p, Choice):
            out[key] = {"choice": list(p.choices)}
        else:
            out[key] = {"type": type(p).__name__, "low": p.low, "high": p.high, "log": p.log}
            out[key]["step"] = p.step
    return out


def declared_space(method: str) -> dict[str, Param]:
    """The space the config class of the registered method ``method`` declares."""
    from .plugins import get_registry

    cls = get_registry().get("method", method).config_cls
    space = getattr(cls, "search_space", None) or {}
    if not isinstance(space, Mapping):
        raise UserError(
            f"method {method!r}: {cls.__qualname__}.search_space must be a mapping of "
            "`--set` keys to FloatRange / IntRange / Choice."
        )
    return dict(space)


def set_path(raw: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``raw`` (a run config as nested dicts) with the dotted ``key`` set to ``value``."""
    from .config import apply_overrides

    return apply_overrides(raw, [], values={key: value})


def check_space(cfg: RunConfig, space: SearchSpace, owner: str = "search space") -> None:
    """Refuse a space whose keys or bounds the run config ``cfg`` does not accept.

    Every key must name a field under ``method.`` or ``train.``, and each bound (each
    choice) must pass that field's validation. Errors name the key and the reason.
    """
    from .config import validate_run_config

    problems: list[tuple[str, str]] = []
    raw = cfg.model_dump(mode="json", exclude_unset=True, exclude={"output"})
    for key, param in space.items():
        if not isinstance(param, (FloatRange, IntRange, Choice)):
            problems.append((key, f"{param!r} is not a FloatRange, IntRange or Choice"))
            continue
        if key.split(".")[0] not in SEARCHABLE_SECTIONS or len(key.split(".")) < 2:
            problems.append((key, "a search-space key starts with method. or train."))
            continue
        for value in param.bounds():
            try:
                validate_run_config(set_path(raw, key, value))
            except ConfigError as exc:
                reasons = "; ".join(f"{p}: {r}" for p, r in exc.errors)
                problems.append((key, f"value {json.dumps(value)} is refused ({reasons})"))
                break
    if problems:
        raise ConfigError(problems, owner)
