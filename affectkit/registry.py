"""Typed component registry: kind -> name -> entry (factory, config class, origin).

Every component - built into the core or shipped by a plugin - is registered here through
:meth:`Registry.register`, which is what the ``affectkit_register`` hook receives.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, create_model, model_validator

from .errors import PluginError, UnknownComponentError

KINDS: tuple[str, ...] = (
    "encoder",
    "fusion",
    "memory",
    "loss",
    "head",
    "method",
    "dataset",
    "protocol",
    "metric",
)


@dataclass(frozen=True)
class ComponentField:
    """Marks a config field holding a sub-component (see ``affectkit.component``)."""

    kind: str


class ComponentConfig(BaseModel):
    """Base of every component config: unknown keys are errors, ``name`` selects the entry."""

    # allow_inf_nan=False: an inf or NaN hyper-parameter never makes sense and fails late
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False
    )

    name: str
    #: what ``affectkit tune`` may vary for this method: ``--set`` keys (``train.lr``,
    #: ``method.dropout``, ``method.bank.tau``) -> FloatRange / IntRange / Choice
    #: (:mod:`affectkit.search`); empty = nothing to tune. Read on method configs only.
    search_space: ClassVar[Mapping[str, Any]] = {}

    @model_validator(mode="before")
    @classmethod
    def _partial_sub_components(cls, data: Any) -> Any:
        """A sub-component section without ``name`` overrides fields of the default one.

        ``--set method.bank.tau=0.3`` (or a file setting only ``bank: {tau: 0.3}``) keeps the
        default bank and changes its τ, instead of failing for want of a name. Giving a
        ``name`` still selects another component, whose own defaults then apply.
        """
        if not isinstance(data, Mapping):
            return data
        out: dict[str, Any] | None = None
        for fname, info in cls.model_fields.items():
            value = data.get(fname)
            if not isinstance(value, Mapping) or "name" in value:
                continue
            if not any(isinstance(m, ComponentField) for m in info.metadata):
                continue
            default = info.get_default(call_default_factory=True)
            if isinstance(default, ComponentConfig):
                default = default.model_dump()
            elif isinstance(default, str):
                default = {"name": default}
            if not isinstance(default, Mapping) or "name" not in default:
                continue  # no default component: the field's own error asks for a name
            out = dict(data) if out is None else out
            out[fname] = {**default, **value}
        return data if out is None else out


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    factory: Callable[..., Any]
    config_cls: type[ComponentConfig]
    plugin: str = "affectkit"
    distribution: str = "affectkit"
    tags: frozenset[str] = field(default_factory=frozenset)
    description: str = ""

    def default_config(self, **overrides: Any) -> ComponentConfig:
        return self.config_cls(**overrides)

    def build(self, config: ComponentConfig | dict | None = None, /, **kwargs: Any) -> Any:
        """Instantiate with a validated config (dict or model) plus runtime keyword args."""
        if config is None:
            config = self.config_cls()
        elif isinstance(config, dict):
            config = self.config_cls.model_validate({"name": self.name, **config})
        return self.factory(config, **kwargs)


def _named_config(cls: type[ComponentConfig], name: str) -> type[ComponentConfig]:
    """``cls`` with ``name: Literal[name] = name`` (the discriminator), derived if needed."""
    fld = cls.model_fields.get("name")
    if fld is not None and get_origin(fld.annotation) is Literal:
        if get_args(fld.annotation) != (name,):
            raise PluginError(
                f"config class {cls.__qualname__} declares name={get_args(fld.annotation)} "
                f"but is registered as {name!r}"
            )
        return cls
    derived = create_model(  # type: ignore[call-overload]
        cls.__name__, __base__=cls, __module__=cls.__module__, name=(Literal[name], name)
    )
    derived.__doc__ = cls.__doc__
    return derived


class Registry:
    """kind -> name -> :class:`Entry`. Plugins only ever call :meth:`register`."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        self._origin: tuple[str, str] = ("affectkit", "affectkit")

    # -- registration -------------------------------------------------------------------
    def register(
        self,
        kind: str,
        name: str,
        factory: Callable[..., Any],
        config: type[ComponentConfig] | None = None,
        *,
        tags: Iterable[str] = (),
        description: str = "",
    ) -> Entry:
        """Register ``factory(config, **runtime_kwargs)`` under ``kind``/``name``.

        ``config`` is a :class:`ComponentConfig` subclass (``extra="forbid"``); when it has
        no ``name: Literal[...]`` field one is added, so that run configs can select the
        component by its registry name.
        """
        if kind not in KINDS:
            raise PluginError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")
        if not name or not isinstance(name, str):
            raise PluginError(f"a {kind} needs a non-empty string name")
        existing = self._entries[kind].get(name)
        plugin, dist = self._origin
        if existing is not None:
            raise PluginError(
                f"two plugins register the {kind} {name!r}: {existing.plugin} "
                f"(distribution {existing.distribution}) and {plugin} (distribution {dist}); "
                "uninstall one, or restrict loading with AFFECTKIT_LOAD_PLUGINS"
            )
        if config is None:
            config = ComponentConfig
        if not (isinstance(config, type) and issubclass(config, ComponentConfig)):
            raise PluginError(f"{kind} {name!r}: config must subclass affectkit.ComponentConfig")
        if config.model_config.get("extra") != "forbid":
            raise PluginError(f"{kind} {name!r}: config {config.__name__} must set extra='forbid'")
        if not description:
            doc = (getattr(factory, "__doc__", None) or "").strip()
            description = doc.splitlines()[0] if doc else ""
        entry = Entry(
            kind=kind,
            name=name,
            factory=factory,
            config_cls=_named_config(config, name),
            plugin=plugin,
            distribution=dist,
            tags=frozenset(tags),
            description=description,
        )
        self._entries[kind][name] = entry
        return entry

    def set_origin(self, plugin: str, distribution: str) -> None:
        """Used by the plugin manager so that entries remember who registered them."""
        self._origin = (plugin, distribution)

    def unregister_plugin(self, plugin: str) -> None:
        """Drop everything a plugin registered (used when its hook failed half-way)."""
        for kind in KINDS:
            for name in [n for n, e in self._entries[kind].items() if e.plugin == plugin]:
                del self._entries[kind][name]

    # -- lookup ---------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Entry:
        if kind not in KINDS:
            raise UnknownComponentError(f"unknown component kind {kind!r}; kinds: {KINDS}")
        try:
            return self._entries[kind][name]
        except KeyError:
            raise UnknownComponentError(self._unknown_message(kind, name)) from None

    def _unknown_message(self, kind: str, name: str) -> str:
        names = sorted(self._entries[kind])
        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        avail = ", ".join(names) if names else "(none registered - is the plugin installed?)"
        return (
            f"unknown {kind} {name!r}.{hint} Available {kind}s: {avail}. "
            "Run `affectkit plugins` to see every component and any plugin that failed to load."
        )

    def __contains__(self, key: tuple[str, str]) -> bool:
        kind, name = key
        return name in self._entries.get(kind, {})

    def names(self, kind: str, pattern: str | None = None, *, tag: str | None = None) -> list[str]:
        out = []
        for name, e in self._entries[kind].items():
            if pattern and not fnmatch.fnmatch(name, pattern):
                continue
            if tag and tag not in e.tags:
                continue
            out.append(name)
        return sorted(out)

    def entries(self, kind: str | None = None) -> list[Entry]:
        kinds = [kind] if kind else list(KINDS)
        return [e for k in kinds for _, e in sorted(self._entries[k].items())]

    def build(self, kind: str, config: ComponentConfig | dict | str, /, **kwargs: Any) -> Any:
        """Build a component from its config (model, dict with ``name``, or bare name)."""
        if isinstance(config, str):
            return self.get(kind, config).build(None, **kwargs)
        if isinstance(config, dict):
            return self.get(kind, config["name"]).build(config, **kwargs)
        return self.get(kind, config.name).build(config, **kwargs)
