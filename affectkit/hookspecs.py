"""pluggy hook specifications: the whole public plugin API is one register callback.

A plugin is a module (or object) with::

    from affectkit import hookimpl

    @hookimpl
    def affectkit_register(registry):
        registry.register("method", "my-method", MyMethod, MyMethodConfig, tags={"baseline"})

exposed through the ``affectkit`` entry-point group in its distribution's metadata.
"""

from __future__ import annotations

import pluggy

PROJECT = "affectkit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class AffectkitSpec:
    @hookspec
    def affectkit_register(self, registry):  # type: ignore[no-untyped-def]
        """Register components (encoders, fusions, memories, losses, heads, methods,
        datasets, protocols, metrics) with ``registry.register(kind, name, factory, config)``."""
