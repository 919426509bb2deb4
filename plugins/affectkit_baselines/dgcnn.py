"""``dgcnn``: dynamical graph CNN over EEG channels (Song et al., IEEE TAFFC 2018).

EEG channels are the C nodes of a graph whose node features are the F band powers
(``eeg [B, C, F]``). The adjacency is a learned parameter, kept symmetric and
non-negative, A = ReLU((W + Wᵀ)/2). With L = I − D^{-1/2} A D^{-1/2} and its rescaling
L̃ = 2L/λ_max − I (λ_max = 2), the Chebyshev graph convolution of order K is

    H = ReLU( Σ_{k<K} T_k(L̃) X Θ_k ),   T_0 = I, T_1 = L̃, T_k = 2 L̃ T_{k−1} − T_{k−2}

(``torch_geometric.nn.ChebConv`` on the B graphs of a batch stacked as one disconnected
graph). Then logits = MLP([vec(H) ‖ vec(x_m) for every non-EEG modality m]).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from einops import rearrange, repeat
from pydantic import Field
from torch import nn
from torch_geometric.nn import ChebConv

from affectkit import (
    Choice,
    ComponentConfig,
    DataSpec,
    FloatRange,
    IntRange,
    SearchSpace,
    TorchMethod,
    UserError,
    start_linear_at,
)

from .features import flat_dim, flatten_tensors
from .mlp import mlp_layers


class DGCNNConfig(ComponentConfig):
    eeg: str = Field("eeg", description="the modality whose rows are channels [C, bands]")
    cheb_order: int = Field(3, ge=1, description="K: Chebyshev polynomial order")
    graph_channels: int = Field(32, ge=1, description="features per node after the graph conv")
    hidden: list[int] = Field(default_factory=lambda: [128], description="head hidden widths")
    dropout: float = Field(0.3, ge=0, lt=1)
    extra_modalities: list[str] | None = Field(
        None, description="modalities concatenated before the head; null = every non-EEG one"
    )

    search_space: ClassVar[SearchSpace] = {
        "train.lr": FloatRange(1e-4, 1e-2, log=True),
        "train.weight_decay": FloatRange(1e-6, 1e-2, log=True),
        "method.dropout": FloatRange(0.0, 0.6),
        "method.cheb_order": IntRange(2, 5),
        "method.graph_channels": Choice([16, 32, 64]),
    }


class DGCNNNet(nn.Module):
    def __init__(
        self,
        spec: DataSpec,
        *,
        eeg: str,
        extra: list[str],
        cheb_order: int,
        graph_channels: int,
        hidden: list[int],
        dropout: float,
    ) -> None:
        super().__init__()
        self.eeg, self.extra = eeg, extra
        channels, bands = spec.shapes[eeg]
        self.channels = channels
        # W is unconstrained; A = ReLU(sym(W)) starts as a random dense non-negative graph.
        self.adjacency_weight = nn.Parameter(torch.rand(channels, channels))
        src, dst = torch.meshgrid(torch.arange(channels), torch.arange(channels), indexing="ij")
        off_diagonal = src != dst
        self.register_buffer("edges", torch.stack([src[off_diagonal], dst[off_diagonal]]))  # [2, E]
        self.cheb = ChebConv(bands, graph_channels, K=cheb_order, normalization="sym")
        self.act = nn.ReLU()
        self.head = mlp_layers(
            channels * graph_channels + flat_dim(spec, extra), hidden, spec.num_emotions, dropout
        )

    def adjacency(self) -> torch.Tensor:
        w = self.adjacency_weight
        return torch.relu(0.5 * (w + w.T))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch[self.eeg]  # [B, C, F]
        b = x.shape[0]
        # B copies of the channel graph as one disconnected graph: node (i, c) -> i*C + c
        offsets = torch.arange(b, device=x.device) * self.channels
        edge_index = rearrange(
            self.edges[:, None, :] + offsets[None, :, None], "two b e -> two (b e)"
        )
        a = self.adjacency()
        edge_weight = repeat(a[self.edges[0], self.edges[1]], "e -> (b e)", b=b)
        nodes = rearrange(x, "b c f -> (b c) f")
        h = self.act(self.cheb(nodes, edge_index, edge_weight))  # [(B C), H]
        h = rearrange(h, "(b c) h -> b (c h)", b=b)
        if self.extra:
            h = torch.cat([h, flatten_tensors(batch, self.extra)], dim=-1)
        return self.head(h)


class DGCNN(TorchMethod):
    """EEG channel graph with learned adjacency and Chebyshev convolution (+ other modalities)."""

    train_defaults: ClassVar[dict] = {"batch_size": 128, "lr": 1e-3}
    # torch-geometric's ChebConv uses boolean masking, which vmap cannot batch
    fold_parallel: ClassVar[bool] = False

    def __init__(self, config, **kwargs) -> None:
        super().__init__(config, **kwargs)
        eeg = self.config.eeg
        shape = self.spec.shapes.get(eeg)
        if shape is None:
            raise UserError(
                f"dgcnn needs an EEG modality {eeg!r} (channels x bands) to build its channel "
                f"graph, but this dataset only has {list(self.spec.shapes)}. Run dgcnn on a "
                "dataset with EEG (e.g. synthetic or dmer), or point method.eeg at a modality "
                "shaped [channels, features]."
            )
        if len(shape) != 2:
            raise UserError(
                f"dgcnn: modality {eeg!r} has shape {list(shape)} per sample; the channel graph "
                "needs [channels, features] (e.g. EEG differential entropy [18, 5])."
            )
        extra = self.config.extra_modalities
        if extra is None:
            extra = [m for m in self.spec.shapes if m != eeg]
        missing = [m for m in extra if m not in self.spec.shapes or m == eeg]
        if missing:
            raise UserError(
                f"dgcnn: extra_modalities {missing} are not non-EEG modalities of this dataset "
                f"(it has {list(self.spec.shapes)})."
            )
        self.extra = extra

    def start_at_prior(self, log_prior: torch.Tensor) -> bool:
        assert self.model is not None
        start_linear_at(self.model.head[-1], log_prior)
        return True

    def build_model(self) -> nn.Module:
        c = self.config
        return DGCNNNet(
            self.spec,
            eeg=c.eeg,
            extra=self.extra,
            cheb_order=c.cheb_order,
            graph_channels=c.graph_channels,
            hidden=c.hidden,
            dropout=c.dropout,
        )
