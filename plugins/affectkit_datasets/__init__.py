"""First-party dataset readers, registered through the public ``affectkit`` entry point."""

from __future__ import annotations

from affectkit import Registry, hookimpl

from .synthetic import SyntheticConfig, SyntheticReader


@hookimpl
def affectkit_register(registry: Registry) -> None:
    registry.register("dataset", "synthetic", SyntheticReader, SyntheticConfig, tags={"embedded"})
