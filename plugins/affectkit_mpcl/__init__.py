"""MPCL (Memory-guided Prototypical Co-occurrence Learning) as affectkit plugins.

Every part is registered on its own, so that other methods can reuse it by name:

- ``memory``: ``hopfield`` (modern Hopfield retrieval), ``hopfield-pooling`` (learned
  queries), ``prototype-bank`` (emotion prototype memory bank with grounding);
- ``fusion``: ``msaf`` (multi-scale associative fusion);
- ``loss``: ``prd`` (prototype relation distillation), ``pcl`` (prototypical co-occurrence
  learning, CLOOB-style);
- ``head``: ``hsc`` (hierarchical semantic compression + distribution classifier);
- ``encoder``: ``channel-tokens``, ``graph-tokens`` (learned channel graph), ``projection-tokens``;
- ``method``: ``mpcl``, composed from the above by name (docs/mpcl.md).
"""

from __future__ import annotations

from affectkit import Registry, hookimpl

from .encoders import (
    ChannelTokensConfig,
    ProjectionTokensConfig,
    build_channel_tokens,
    build_projection_tokens,
)
from .graph_tokens import GraphTokensConfig, build_graph_tokens
from .hopfield import (
    HopfieldConfig,
    HopfieldPoolingConfig,
    build_hopfield,
    build_hopfield_pooling,
)
from .hsc import HSCConfig, build_hsc
from .method import MPCL, MPCLConfig
from .msaf import MSAFConfig, build_msaf
from .pcl import PCLConfig, build_pcl
from .prd import PRDConfig, build_prd
from .prototypes import PrototypeBankConfig, build_prototype_bank


@hookimpl
def affectkit_register(registry: Registry) -> None:
    reg = registry.register
    reg("encoder", "channel-tokens", build_channel_tokens, ChannelTokensConfig, tags={"mpcl"})
    reg("encoder", "graph-tokens", build_graph_tokens, GraphTokensConfig, tags={"mpcl"})
    reg(
        "encoder",
        "projection-tokens",
        build_projection_tokens,
        ProjectionTokensConfig,
        tags={"mpcl"},
    )
    reg("memory", "hopfield", build_hopfield, HopfieldConfig, tags={"mpcl", "hopfield"})
    reg(
        "memory",
        "hopfield-pooling",
        build_hopfield_pooling,
        HopfieldPoolingConfig,
        tags={"mpcl", "hopfield"},
    )
    reg("memory", "prototype-bank", build_prototype_bank, PrototypeBankConfig, tags={"mpcl"})
    reg("fusion", "msaf", build_msaf, MSAFConfig, tags={"mpcl"})
    reg("loss", "prd", build_prd, PRDConfig, tags={"mpcl"})
    reg("loss", "pcl", build_pcl, PCLConfig, tags={"mpcl"})
    reg("head", "hsc", build_hsc, HSCConfig, tags={"mpcl"})
    reg("method", "mpcl", MPCL, MPCLConfig, tags={"mpcl"})
