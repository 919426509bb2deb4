"""MPCL (Memory-guided Prototypical Co-occurrence Learning) as affectkit plugins."""

from __future__ import annotations

from affectkit import Registry, hookimpl


@hookimpl
def affectkit_register(registry: Registry) -> None:
    pass
