"""``dgcnn``: dynamical graph CNN over EEG channels (Song et al., IEEE TAFFC 2018).

EEG channels are the C nodes of a graph whose node features are the F band powers
(``eeg [B, C, F]``). The adjacency is a learned parameter, kept symmetric and
non-negative, A = ReLU((W + Wᵀ)/2). With L = I − D^{-1/2} A D^{-1/2} and its rescaling
L̃ = 2L/λ_max − I (λ_max = 2), the Chebyshev graph convolution of order K is

    H = ReLU( Σ_{k<K} T_k(L̃) X Θ_k ),   T_0 = I, T_1 = L̃, T_k = 2 L̃ T_{k−1} − T_{k−2}

(``torch_geometric.nn.ChebConv``'s convolution, computed densely with ``C × C`` matmuls by
:func:`affectkit.layers.chebyshev_basis`, as mpcl's ``graph-tokens`` encoder does: it batches
and vmaps, so dgcnn trains under fold-parallel training). Then
logits = MLP([vec(H) ‖ vec(x_m) for every non-EEG modality m]).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from einops import rearrange
from pydantic import Field
from torch import nn

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
from affectkit.layers import chebyshev_basis, scaled_laplacian, symmetric_adjacency

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
        # imported here: torch_geometric's import costs seconds (it imports torch._dynamo),
        # which every CLI call and pool worker would pay for this one model
        from torch_geometric.nn import ChebConv

        # ChebConv holds Θ_k (``lins[k].weight``) and the bias: its initialisation and
        # parameter names, so that seeded runs and saved models stay what they were; the
        # convolution itself is computed densely in forward
        self.cheb = ChebConv(bands, graph_channels, K=cheb_order, normalization="sym")
        self.act = nn.ReLU()
        self.head = mlp_layers(
            channels * graph_channels + flat_dim(spec, extra), hidden, spec.num_emotions, dropout
        )

    def adjacency(self) -> torch.Tensor:
        """A = ReLU((W + Wᵀ)/2) without self-loops (ChebConv drops them), ``[C, C]``."""
        return symmetric_adjacency(self.adjacency_weight)

    def graph_conv(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, F] -> [B, C, H]``: Σ_k T_k(L̃) X Θ_kᵀ + b (ChebConv's output)."""
        basis = chebyshev_basis(scaled_laplacian(self.adjacency()), x, len(self.cheb.lins))
        theta = torch.stack([lin.weight for lin in self.cheb.lins])  # [K, H, F]
        return torch.einsum("bckf,khf->bch", basis, theta) + self.cheb.bias

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.act(self.graph_conv(batch[self.eeg]))  # [B, C, H]
        h = rearrange(h, "b c h -> b (c h)")
        if self.extra:
            h = torch.cat([h, flatten_tensors(batch, self.extra)], dim=-1)
        return self.head(h)


class DGCNN(TorchMethod):
    """EEG channel graph with learned adjacency and Chebyshev convolution (+ other modalities)."""

    train_defaults: ClassVar[dict] = {"batch_size": 128, "lr": 1e-3}

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

    def load_state_dict(self, state):
        # models saved before the dense convolution also hold the sparse graph's edge list
        super().load_state_dict({k: v for k, v in state.items() if k != "edges"})

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
