"""Plugin manager: loads the core built-ins and the ``affectkit`` entry points.

Loading is tolerant: a plugin that fails to import or register is recorded in
:attr:`PluginManager.failures` and skipped, unless ``AFFECTKIT_STRICT_PLUGINS=1``.
``AFFECTKIT_LOAD_PLUGINS=a,b`` restricts the entry points loaded (set but empty: only the
core built-ins). A plugin that registers a component name another plugin already holds
(or a plugin name another distribution already provides) is such a failure too: the
first one loaded (built-ins first, then entry points by name) keeps the name, the later
one is skipped whole and reported with both names, so results never depend on which of
two same-named components happened to win.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, entry_points
from importlib.metadata import version as metadata_version
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
    version: str | None = None


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

    def add_plugin(
        self,
        plugin: Any,
        name: str,
        distribution: str = "affectkit",
        version: str | None = None,
    ) -> None:
        """Register one plugin object/module and run its hook with failure isolation.

        Tests and notebooks use this to register a plugin inline, exactly as an entry point
        would be loaded. A failing hook, or a component name that is already taken, skips
        the whole plugin (recorded in :attr:`failures`; raised under strict loading).
        """
        try:
            self.pm.register(plugin, name=name)
        except ValueError as exc:  # pluggy: same name or object registered twice
            self._fail(name, distribution, PluginError(f"registered twice: {exc}"))
            return
        self.registry.set_origin(name, distribution)
        try:
            impls = [
                i for i in self.pm.hook.affectkit_register.get_hookimpls() if i.plugin is plugin
            ]
            for impl in impls:
                impl.function(registry=self.registry)
        except Exception as exc:
            # all or nothing: half a plugin (e.g. its method without the fusion that
            # clashed) would fail later in a place that does not name the plugin
            self.registry.unregister_plugin(name)
            self.pm.unregister(plugin)
            self._fail(name, distribution, exc)
            return
        finally:
            self.registry.set_origin("affectkit", "affectkit")
        module = getattr(plugin, "__name__", type(plugin).__name__)
        if version is None and distribution != "affectkit":
            with contextlib.suppress(PackageNotFoundError):
                version = metadata_version(distribution)
        self.loaded.append(PluginInfo(name, distribution, module, version))

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
            version = ep.dist.version if ep.dist is not None else None
            if allow is not None and ep.name not in allow:
                continue
            if ep.name in seen:
                if seen[ep.name] == dist:
                    continue
                # e.g. a stale install beside an editable one: the first keeps the name
                self._fail(
                    ep.name,
                    dist,
                    PluginError(
                        f"distribution {seen[ep.name]} already provides the affectkit plugin "
                        f"{ep.name!r}; uninstall one of {seen[ep.name]} and {dist}"
                    ),
                )
                continue
            seen[ep.name] = dist
            try:
                plugin = ep.load()
            except Exception as exc:
                self._fail(ep.name, dist, exc)
                continue
            self.add_plugin(plugin, ep.name, dist, version)

    def plugin_versions(self) -> dict[str, str]:
        """``{distribution: version}`` of every loaded plugin not shipped with affectkit."""
        return {
            p.distribution: p.version or "unknown"
            for p in self.loaded
            if p.distribution != "affectkit"
        }


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
