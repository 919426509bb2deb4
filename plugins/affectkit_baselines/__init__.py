"""First-party baseline methods, registered through the public ``affectkit`` entry point."""

from __future__ import annotations

from affectkit import Registry, hookimpl

from .mlp import MLP, MLPConfig
from .prior import Prior, PriorConfig


@hookimpl
def affectkit_register(registry: Registry) -> None:
    registry.register("method", "prior", Prior, PriorConfig, tags={"baseline", "ldl"})
    registry.register("method", "mlp", MLP, MLPConfig, tags={"baseline", "deep"})
