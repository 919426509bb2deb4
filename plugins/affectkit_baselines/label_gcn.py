"""``label-gcn``: label-correlation GCN over the K emotions (after ML-GCN, Chen et al. CVPR 2019).

Graph, from the training labels passed to ``fit`` only. An emotion is *present* in a
sample when its share exceeds ``presence`` (default 1/K, the uniform share). With the
presence matrix P ∈ {0,1}^{N×K}, counts M = PᵀP and conditional frequencies
c_ij = M_ij / M_ii ≈ Pr(j present | i present):

    A_ij = 1[c_ij ≥ τ]  (i ≠ j),   A'_ij = p · A_ij / Σ_{j'≠i} A_ij',   A'_ii = 1 − p

(ML-GCN's binarise-and-reweight against over-smoothing; a row without neighbours keeps
A'_ii = 1). Model: label embeddings E₀ ∈ ℝ^{K×e} (learnable: there are no word vectors
here) pass through two GCN layers over A' to give one classifier per emotion,
W = GCN(E₀, A') ∈ ℝ^{K×d}; the sample embedding is an MLP of the concatenated modalities,
h = MLP(x) ∈ ℝ^d, and

    logits_k = ⟨W_k, h⟩ + b_k .

A GCN layer is ``torch_geometric.nn.GCNConv`` (no added self-loops) computed densely:
H' = Â H Θᵀ + b with Â = D^{-1/2} A' D^{-1/2}, D_ii = Σ_j A'_ij. The graph is a buffer of
the model, built from the fit split's labels before the model is (``prepare_labels``), so
fold-parallel training gives every fold its own graph.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from pydantic import Field
from torch import nn

from affectkit import (
    ComponentConfig,
    DataSpec,
    FloatRange,
    SearchSpace,
    TorchMethod,
    start_linear_at,
)

from .features import flat_dim, flatten_tensors, resolve_modalities
from .mlp import mlp_layers


class LabelGCNConfig(ComponentConfig):
    hidden: list[int] = Field(default_factory=lambda: [256], description="sample-encoder widths")
    embed_dim: int = Field(128, ge=1, description="d: sample embedding = classifier size")
    label_dim: int = Field(64, ge=1, description="e: size of the learnable label embeddings")
    gcn_hidden: int = Field(128, ge=1, description="width of the first GCN layer")
    presence: float | None = Field(
        None, ge=0, lt=1, description="share above which an emotion counts as present; null = 1/K"
    )
    threshold: float = Field(0.4, ge=0, le=1, description="τ: binarisation of Pr(j | i)")
    reweight: float = Field(0.2, ge=0, le=1, description="p: total weight given to neighbours")
    dropout: float = Field(0.3, ge=0, lt=1)
    modalities: list[str] | None = Field(None, description="subset of modalities; null = all")

    search_space: ClassVar[SearchSpace] = {
        "train.lr": FloatRange(1e-4, 1e-2, log=True),
        "train.weight_decay": FloatRange(1e-6, 1e-2, log=True),
        "method.dropout": FloatRange(0.0, 0.6),
        "method.threshold": FloatRange(0.2, 0.6),
        "method.reweight": FloatRange(0.05, 0.5),
    }


def cooccurrence_adjacency(
    targets: np.ndarray,
    *,
    presence: float | None = None,
    threshold: float = 0.4,
    reweight: float = 0.2,
) -> np.ndarray:
    """Re-weighted, binarised conditional co-occurrence matrix ``A' [K, K]`` (rows: i)."""
    y = np.asarray(targets, dtype=np.float64)
    k = y.shape[1]
    present = (y > (1.0 / k if presence is None else presence)).astype(np.float64)  # [N, K]
    counts = present.T @ present  # M_ij: samples where i and j are both present
    cond = counts / np.maximum(np.diag(counts), 1.0)[:, None]  # c_ij = Pr(j | i)
    adj = (cond >= threshold).astype(np.float64)
    np.fill_diagonal(adj, 0.0)
    degree = adj.sum(axis=1, keepdims=True)
    out = np.where(degree > 0, reweight * adj / np.maximum(degree, 1.0), 0.0)
    np.fill_diagonal(out, np.where(degree[:, 0] > 0, 1.0 - reweight, 1.0))
    return out.astype(np.float32)


class LabelGCNNet(nn.Module):
    def __init__(
        self,
        spec: DataSpec,
        modalities: list[str],
        adjacency: torch.Tensor,
        *,
        hidden: list[int],
        embed_dim: int,
        label_dim: int,
        gcn_hidden: int,
        dropout: float,
    ) -> None:
        super().__init__()
        k = spec.num_emotions
        self.modalities = modalities
        self.register_buffer("adjacency", adjacency.clone().float())  # [K, K], saved with weights
        self.label_embedding = nn.Parameter(torch.randn(k, label_dim) / label_dim**0.5)
        # imported here: torch_geometric's import costs seconds (it imports torch._dynamo),
        # which every CLI call and pool worker would pay for this one model
        from torch_geometric.nn import GCNConv

        # GCNConv holds Θ (``lin.weight``) and the bias: its initialisation and parameter
        # names, so that seeded runs and saved models stay what they were; the propagation
        # itself is dense (classifiers)
        self.gcn1 = GCNConv(label_dim, gcn_hidden, add_self_loops=False, normalize=True)
        self.gcn2 = GCNConv(gcn_hidden, embed_dim, add_self_loops=False, normalize=True)
        self.act = nn.LeakyReLU(0.2)
        self.encoder = mlp_layers(flat_dim(spec, modalities), hidden, embed_dim, dropout)
        self.bias = nn.Parameter(torch.zeros(k))

    def classifiers(self) -> torch.Tensor:
        """``[K, d]``: one weight vector per emotion, from the label graph."""
        a = self.adjacency  # message j -> i carries A'_ij
        degree = a.sum(-1)
        inv_sqrt = torch.where(degree > 0, degree.clamp_min(1e-30).rsqrt(), 0.0)
        norm = inv_sqrt[:, None] * a * inv_sqrt[None, :]  # Â = D^{-1/2} A' D^{-1/2}
        h = self.act(norm @ self.gcn1.lin(self.label_embedding) + self.gcn1.bias)
        return norm @ self.gcn2.lin(h) + self.gcn2.bias

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.encoder(flatten_tensors(batch, self.modalities))  # [B, d]
        return h @ self.classifiers().T + self.bias


class LabelGCN(TorchMethod):
    """ML-GCN-style classifiers from a label co-occurrence graph of the training labels."""

    train_defaults: ClassVar[dict] = {"batch_size": 128, "lr": 1e-3}

    #: A' of the last fit (identity before any fit; a loaded checkpoint restores the buffer)
    adjacency: torch.Tensor | None = None

    def prepare_labels(self, targets: np.ndarray) -> None:
        # The graph sees the fit split only: neither validation nor test labels shape it
        # (the refit on fit + validation keeps it).
        c = self.config
        self.adjacency = torch.from_numpy(
            cooccurrence_adjacency(
                targets, presence=c.presence, threshold=c.threshold, reweight=c.reweight
            )
        )

    def fit(self, train, valid=None, progress=None):
        info = super().fit(train, valid, progress)
        assert self.adjacency is not None
        return {**info, "graph_edges": int((self.adjacency > 0).sum() - len(self.adjacency))}

    def start_at_prior(self, log_prior: torch.Tensor) -> bool:
        """h = 0 from a zeroed encoder output layer, so logits = the bias = log prior."""
        assert self.model is not None
        start_linear_at(self.model.encoder[-1], None)
        self.model.bias.copy_(log_prior)
        return True

    def build_model(self) -> nn.Module:
        c = self.config
        adjacency = self.adjacency
        if adjacency is None:
            adjacency = torch.eye(self.spec.num_emotions)
        return LabelGCNNet(
            self.spec,
            resolve_modalities(self.spec, c.modalities, "label-gcn"),
            adjacency,
            hidden=c.hidden,
            embed_dim=c.embed_dim,
            label_dim=c.label_dim,
            gcn_hidden=c.gcn_hidden,
            dropout=c.dropout,
        )

    def load_state_dict(self, state):
        # models saved before the dense propagation also hold the sparse graph's edge list
        super().load_state_dict({k: v for k, v in state.items() if k != "edges"})
        assert self.model is not None
        self.adjacency = self.model.adjacency.detach().cpu().clone()
