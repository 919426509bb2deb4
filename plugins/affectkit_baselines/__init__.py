"""First-party baseline methods, registered through the public ``affectkit`` entry point.

Every method here carries the tag ``baseline`` (``affectkit bench --method baselines``),
plus ``ldl`` (classic label-distribution learners) or ``deep`` (neural, shared loop).
"""

from __future__ import annotations

from affectkit import Registry, hookimpl

from .aaknn import AAKNN, AAKNNConfig
from .dgcnn import DGCNN, DGCNNConfig
from .helo import HeLo, HeLoConfig
from .label_gcn import LabelGCN, LabelGCNConfig
from .late_fusion import LateFusion, LateFusionConfig
from .mlp import MLP, MLPConfig
from .prior import Prior, PriorConfig
from .sabfgs import SABFGS, SABFGSConfig


@hookimpl
def affectkit_register(registry: Registry) -> None:
    registry.register("method", "prior", Prior, PriorConfig, tags={"baseline", "ldl"})
    registry.register("method", "aa-knn", AAKNN, AAKNNConfig, tags={"baseline", "ldl"})
    registry.register("method", "sa-bfgs", SABFGS, SABFGSConfig, tags={"baseline", "ldl"})
    registry.register("method", "mlp", MLP, MLPConfig, tags={"baseline", "deep"})
    registry.register(
        "method", "late-fusion", LateFusion, LateFusionConfig, tags={"baseline", "deep"}
    )
    registry.register("method", "dgcnn", DGCNN, DGCNNConfig, tags={"baseline", "deep", "graph"})
    registry.register(
        "method", "label-gcn", LabelGCN, LabelGCNConfig, tags={"baseline", "deep", "graph"}
    )
    registry.register("method", "helo", HeLo, HeLoConfig, tags={"baseline", "deep"})
