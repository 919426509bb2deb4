"""Run configuration: dataset + protocol + method + train + output, validated by pydantic.

Components are selected by registry name: ``{"name": "mlp", ...}`` is validated against
the config class that ``mlp``'s plugin registered. Plugins use :func:`component` for
sub-components (e.g. MPCL's ``fusion``), so that swapping MSAF for another fusion is a
config edit. Files are YAML or TOML; ``--set a.b.c=value`` overrides are parsed as YAML
scalars and type-checked like file values.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
)

from .errors import ConfigError, UnknownComponentError, UserError
from .registry import ComponentConfig, ComponentField
from .training import TrainConfig

#: numpy's and torch's generators both take seeds up to 2**32 - 1 without complaint
MAX_SEED = 2**32 - 1
#: what ``--set`` and config files are called in error messages: (label, raw mapping)
Layer = tuple[str, Mapping[str, Any]]


def _resolve(kind: str, value: Any) -> Any:
    if isinstance(value, ComponentConfig):
        return value
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a {kind} config (a mapping with a 'name'), got {value!r}")
    if "name" not in value:
        raise ValueError(f"a {kind} config needs 'name' (the registered {kind} to use)")
    from .plugins import get_registry

    try:
        entry = get_registry().get(kind, str(value["name"]))
    except UnknownComponentError as exc:
        raise ValueError(str(exc)) from None
    return entry.config_cls.model_validate(dict(value))


def component(kind: str) -> Any:
    """Type of a config field holding any registered component of ``kind``.

    >>> class MyMethodConfig(ComponentConfig):
    ...     fusion: component("fusion") = Field(default_factory=lambda: {"name": "msaf"})
    """
    return Annotated[
        SerializeAsAny[ComponentConfig],
        BeforeValidator(lambda v, _k=kind: _resolve(_k, v)),
        ComponentField(kind),
    ]


class DatasetConfig(ComponentConfig):
    """Base for dataset reader configs."""

    data_dir: Path | None = Field(None, description="folder holding the dataset files")
    cache: bool = Field(True, description="reuse processed arrays from the on-disk cache")


class OutputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dir: Path | None = Field(None, description="run directory; default runs/<timestamp>")
    overwrite: bool = Field(False, description="replace results made with another config")


class RunConfig(BaseModel):
    """Everything that determines a run's numbers (plus where they go)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    dataset: component("dataset") = Field(default_factory=lambda: _resolve("dataset", "synthetic"))  # type: ignore[valid-type]
    protocol: component("protocol") = Field(  # type: ignore[valid-type]
        default_factory=lambda: _resolve("protocol", "subject-independent")
    )
    method: component("method") = Field(default_factory=lambda: _resolve("method", "mlp"))  # type: ignore[valid-type]
    train: TrainConfig = Field(default_factory=TrainConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    seed: int = Field(0, ge=0, le=MAX_SEED)


# --------------------------------------------------------------------------- raw dicts
def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"config file {path} does not exist. Pass the path of a .yaml or .toml file."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"config file {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start}). Save it with UTF-8 encoding."
        ) from None
    except OSError as exc:
        raise UserError(
            f"config file {path} could not be read ({exc.strerror or exc}). Check that it is "
            "a readable file."
        ) from None
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            data = tomllib.loads(text)
        else:
            data = yaml.safe_load(text)
    except Exception as exc:
        raise UserError(
            f"config file {path} could not be parsed: {exc}. Fix the syntax "
            "(YAML for .yaml/.yml, TOML for .toml)."
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping at the top level.")
    return data


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``over`` into a copy of ``base``; a changed ``name`` drops the old section."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            if "name" in value and value["name"] != out[key].get("name"):
                out[key] = copy.deepcopy(dict(value))
            else:
                out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.epochs=5")
    key, _, raw = item.partition("=")
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise UserError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return path, value


def override_layer(item: str) -> dict[str, Any]:
    """One ``--set a.b=value`` as the nested mapping it sets (for error provenance)."""
    return apply_overrides({}, [item])


def apply_overrides(
    raw: dict[str, Any], overrides: Iterable[str], values: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``raw`` with ``--set`` items applied, then ``values`` (dotted key -> parsed value)."""
    out = copy.deepcopy(raw)
    items = [parse_override(item) for item in overrides]
    items += [(key.split("."), value) for key, value in (values or {}).items()]
    for path, value in items:
        node = out
        for p in path[:-1]:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = {}
                node[p] = nxt
            node = nxt
        node[path[-1]] = value
    return out


# --------------------------------------------------------------------------- validation
def _strip_tags(loc: tuple[Any, ...], raw: Any) -> list[str]:
    """Turn a pydantic loc into the user's path (drop union tags pydantic inserts)."""
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(node, Mapping) and item not in node and node.get("name") == item:
            continue  # pydantic's discriminator tag, not a user key
        parts.append(str(item))
        if isinstance(node, Mapping):
            node = node.get(item)
        elif isinstance(node, list) and isinstance(item, int) and item < len(node):
            node = node[item]
        else:
            node = None
    return parts


def _message(err: Mapping[str, Any], parts: list[str]) -> str:
    msg = str(err["msg"])
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        return "unknown key (not a field of this component; check the spelling)"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "string_type" and isinstance(value, (int, float)) and not isinstance(value, bool):
        # YAML and TOML read an unquoted 2 as a number; ids and names are text
        fix = f"got the number {value}; write it in quotes as text"
        if "subjects" in parts:
            fix += f', spelled as the dataset names it (a WESAD subject is "S{value}", not {value})'
        else:
            fix += f' ("{value}")'
        return f"{msg}: {fix}"
    return msg


def format_errors(exc: ValidationError, raw: Any, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        parts = _strip_tags(tuple(err["loc"]), raw)
        out.append((prefix + (".".join(parts) or "(top level)"), _message(err, parts)))
    return out


_MISSING = object()


def _at(node: Any, parts: Iterable[str]) -> Any:
    for p in parts:
        if isinstance(node, Mapping) and p in node:
            node = node[p]
        elif isinstance(node, list) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
        else:
            return _MISSING
    return node


def error_origin(path: str, raw: Mapping[str, Any], layers: Sequence[Layer]) -> str | None:
    """Which layer(s) the value at ``path`` came from: the last one that set it as it is,
    else (a section mixed from several) every layer that set something under it."""
    parts = path.split(".")
    final = _at(raw, parts)
    if isinstance(final, Mapping) and "name" in final:
        # an error on a whole component section is about its name (unknown, wrong kind)
        parts, final = [*parts, "name"], final["name"]
    for label, layer in reversed(layers):
        value = _at(layer, parts)
        if value is not _MISSING and value == final:
            return label
    # an error inside a value set whole by a layer (e.g. an item of a list from a file)
    for i in range(len(parts) - 1, 0, -1):
        for label, layer in reversed(layers):
            value = _at(layer, parts[:i])
            if value is not _MISSING and value == _at(raw, parts[:i]):
                return label
    labels = [label for label, layer in layers if _at(layer, parts) is not _MISSING]
    return ", ".join(dict.fromkeys(labels)) or None


def validate_run_config(
    raw: Mapping[str, Any], source: str = "config", layers: Sequence[Layer] = ()
) -> RunConfig:
    """Validate a raw run config; ``layers`` (the sources it was merged from, lowest
    precedence first) let each error name the file or option its bad value came from."""
    try:
        return RunConfig.model_validate(dict(raw))
    except ValidationError as exc:
        errors = format_errors(exc, raw)
        origins = [error_origin(path, raw, layers) for path, _ in errors] if layers else None
        raise ConfigError(errors, source, origins) from None


def build_run_config(
    *,
    files: Iterable[str | Path] = (),
    overrides: Iterable[str] = (),
    base: Mapping[str, Any] | None = None,
    source: str = "config",
) -> RunConfig:
    """Layer: ``base`` (CLI flags) < files < ``--set`` overrides, then validate everything."""
    layers: list[Layer] = [("command-line options", dict(base or {}))]
    layers += [(str(f), read_config_file(f)) for f in files]
    raw: dict[str, Any] = {}
    for _, layer in layers:
        raw = deep_merge(raw, layer)
    overrides = list(overrides)
    raw = apply_overrides(raw, overrides)
    layers += [(f"--set {item}", override_layer(item)) for item in overrides]
    return validate_run_config(raw, source, layers)


def dump_yaml(cfg: BaseModel) -> str:
    data = cfg.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False)
