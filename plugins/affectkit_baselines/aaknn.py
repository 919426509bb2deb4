"""``aa-knn``: algorithm-adaptation k-nearest neighbours for label distributions (Geng 2016).

    ŷ(x) = 1/k · Σ_{i ∈ N_k(x)} y_i,    N_k(x) = the k training samples closest to x in ‖·‖₂

on the flattened, training-fold-standardised features. Squared distances come from one
matrix product per chunk of queries, ‖x‖² + ‖r‖² − 2·x·rᵀ, and ``topk`` picks the
neighbours: no Python loop over samples.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from pydantic import Field

from affectkit import ComponentConfig, EmotionDataset, IntRange, Method, SearchSpace, UserError

from .features import flatten_arrays, resolve_modalities


class AAKNNConfig(ComponentConfig):
    k: int = Field(
        40, ge=1, description="neighbours averaged; large k because subjects in test are unseen"
    )
    modalities: list[str] | None = Field(None, description="subset of modalities; null = all")
    chunk_size: int = Field(1024, ge=1, description="queries per distance block (memory bound)")

    search_space: ClassVar[SearchSpace] = {"method.k": IntRange(5, 100, log=True)}


class AAKNN(Method):
    """Mean label distribution of the k nearest training samples (Euclidean)."""

    fold_cost: ClassVar[float] = 0.01  # no training: seconds at most

    reference: torch.Tensor | None = None  # [N, D] training features
    reference_targets: torch.Tensor | None = None  # [N, K]

    def features(self, data: EmotionDataset) -> torch.Tensor:
        """``[N, D]``: the configured modalities of ``data``, flattened and concatenated."""
        mods = resolve_modalities(self.spec, self.config.modalities, "aa-knn")
        return torch.from_numpy(flatten_arrays(data.modalities, mods))

    def fit(self, train, valid=None, progress=None):
        # No early stopping here, so the held-out part of the training fold is reference data too.
        parts = [train] + ([valid] if valid is not None and len(valid) else [])
        self.reference = torch.cat([self.features(p) for p in parts])
        self.reference_targets = torch.cat([torch.from_numpy(p.targets) for p in parts]).double()
        if self.config.k > len(self.reference):
            raise UserError(
                f"aa-knn: k={self.config.k} exceeds the {len(self.reference)} training samples; "
                "lower method.k."
            )
        return {"n_reference": len(self.reference)}

    def neighbours(self, x: torch.Tensor) -> torch.Tensor:
        """Indices ``[n, k]`` of the k nearest reference rows of each query row."""
        assert self.reference is not None, "fit first"
        ref = self.reference
        ref_sq = (ref * ref).sum(-1)  # [N]
        out = []
        for s in range(0, len(x), self.config.chunk_size):
            q = x[s : s + self.config.chunk_size]
            d2 = (q * q).sum(-1, keepdim=True) + ref_sq - 2.0 * q @ ref.T  # [n, N]
            out.append(torch.topk(d2, self.config.k, dim=-1, largest=False, sorted=True).indices)
        return torch.cat(out) if out else torch.zeros((0, self.config.k), dtype=torch.long)

    @torch.no_grad()
    def predict(self, data: EmotionDataset) -> np.ndarray:
        assert self.reference_targets is not None, "fit first"
        idx = self.neighbours(self.features(data))
        pred = self.reference_targets[idx].mean(dim=1)  # [n, k, K] -> [n, K]
        return pred.numpy()

    def state_dict(self):
        assert self.reference is not None, "fit first"
        return {"reference": self.reference, "reference_targets": self.reference_targets}

    def load_state_dict(self, state):
        self.reference = state["reference"].float()
        self.reference_targets = state["reference_targets"].double()
