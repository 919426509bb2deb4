"""Plugin manager: loads the core built-ins and the ``affectkit`` entry points.

Loading is tolerant: a plugin that fails to import or register is recorded in
:attr:`PluginManager.failures` and skipped, unless ``AFFECTKIT_STRICT_PLUGINS=1``.
``AFFECTKIT_LOAD_PLUGINS=a,b`` restricts the entry points loaded (set but empty: only the
core built-ins). Name clashes between plugins are always errors that name both.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from .errors import PluginError
from .hookspecs import PROJECT, AffectkitSpec
from .registry import Registry

ENTRY_POINT_GROUP = "affectkit"


@dataclass(frozen=True)
class PluginFailure:
    name: str
    distribution: str
    error: str
    detail: str


@dataclass(frozen=True)
class PluginInfo:
    name: str
    distribution: str
    module: str


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


class PluginManager:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(AffectkitSpec)
        self.registry = Registry()
        self.failures: list[PluginFailure] = []
        self.loaded: list[PluginInfo] = []

    @property
    def strict(self) -> bool:
        return _truthy(os.environ.get("AFFECTKIT_STRICT_PLUGINS"))

    def allowlist(self) -> set[str] | None:
        raw = os.environ.get("AFFECTKIT_LOAD_PLUGINS")
        if raw is None:
            return None
        return {p.strip() for p in raw.split(",") if p.strip()}

    def add_plugin(self, plugin: Any, name: str, distribution: str = "affectkit") -> None:
        """Register one plugin object/module and run its hook with failure isolation.

        Tests and notebooks use this to register a plugin inline, exactly as an entry point
        would be loaded.
        """
        try:
            self.pm.register(plugin, name=name)
        except ValueError as exc:  # pluggy: same name or object registered twice
            raise PluginError(f"plugin {name!r} ({distribution}) registered twice: {exc}") from exc
        self.registry.set_origin(name, distribution)
        try:
            impls = [
                i for i in self.pm.hook.affectkit_register.get_hookimpls() if i.plugin is plugin
            ]
            for impl in impls:
                impl.function(registry=self.registry)
        except PluginError:
            self.registry.unregister_plugin(name)
            self.pm.unregister(plugin)
            raise  # name clashes are never tolerated: results would depend on load order
        except Exception as exc:
            self.registry.unregister_plugin(name)
            self.pm.unregister(plugin)
            self._fail(name, distribution, exc)
            return
        finally:
            self.registry.set_origin("affectkit", "affectkit")
        module = getattr(plugin, "__name__", type(plugin).__name__)
        self.loaded.append(PluginInfo(name, distribution, module))

    def _fail(self, name: str, distribution: str, exc: BaseException) -> None:
        failure = PluginFailure(
            name=name,
            distribution=distribution,
            error=f"{type(exc).__name__}: {exc}",
            detail="".join(traceback.format_exception(exc)),
        )
        if self.strict:
            raise PluginError(
                f"plugin {name!r} (distribution {distribution}) failed to load: {failure.error}. "
                "Unset AFFECTKIT_STRICT_PLUGINS to skip failing plugins."
            ) from exc
        self.failures.append(failure)

    def load_entry_points(self) -> None:
        allow = self.allowlist()
        eps = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
        seen: dict[str, str] = {}
        for ep in eps:
            dist = ep.dist.name if ep.dist is not None else "?"
            if allow is not None and ep.name not in allow:
                continue
            if ep.name in seen:
                # Two distributions claim one plugin name (e.g. a stale install beside an
                # editable one): loading either silently would make results load-order dependent.
                if seen[ep.name] == dist:
                    continue
                raise PluginError(
                    f"two distributions provide the affectkit plugin {ep.name!r}: "
                    f"{seen[ep.name]} and {dist}; uninstall one of them"
                )
            seen[ep.name] = dist
            try:
                plugin = ep.load()
            except Exception as exc:
                self._fail(ep.name, dist, exc)
                continue
            self.add_plugin(plugin, ep.name, dist)


_MANAGER: PluginManager | None = None


def get_plugin_manager(*, reload: bool = False) -> PluginManager:
    """The process-wide plugin manager, built (built-ins + entry points) on first use."""
    global _MANAGER
    if _MANAGER is None or reload:
        from . import builtins

        mgr = PluginManager()
        mgr.add_plugin(builtins, "affectkit-core", "affectkit")
        mgr.load_entry_points()
        _MANAGER = mgr
    return _MANAGER


def get_registry() -> Registry:
    return get_plugin_manager().registry
