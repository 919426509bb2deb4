"""``late-fusion``: one MLP per modality, their distributions mixed with learned weights.

    p_m = softmax(MLP_m(vec(x_m))),   w = softmax(α),   ŷ = Σ_m w_m · p_m

trained end to end with KL(y ‖ ŷ). The model returns log ŷ as its logits (softmax of
log ŷ is ŷ because ŷ already sums to one). ``combine="logits"`` instead averages the
per-modality log-distributions, ŷ ∝ exp(Σ_m w_m log p_m) (a weighted product of experts).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from pydantic import Field
from torch import nn

from affectkit import (
    Choice,
    ComponentConfig,
    DataSpec,
    FloatRange,
    SearchSpace,
    TorchMethod,
    start_linear_at,
)

from .features import resolve_modalities
from .mlp import mlp_layers


class LateFusionConfig(ComponentConfig):
    hidden: list[int] = Field(default_factory=lambda: [128], description="hidden widths per MLP")
    dropout: float = Field(0.3, ge=0, lt=1)
    combine: Literal["probabilities", "logits"] = Field(
        "probabilities", description="mix distributions (mixture) or log-distributions (product)"
    )
    modalities: list[str] | None = Field(None, description="subset of modalities; null = all")

    search_space: ClassVar[SearchSpace] = {
        "train.lr": FloatRange(1e-4, 1e-2, log=True),
        "train.weight_decay": FloatRange(1e-6, 1e-2, log=True),
        "method.dropout": FloatRange(0.0, 0.6),
        "method.hidden": Choice([[64], [128], [256]]),
        "method.combine": Choice(["probabilities", "logits"]),
    }


class LateFusionNet(nn.Module):
    def __init__(
        self,
        spec: DataSpec,
        modalities: list[str],
        *,
        hidden: list[int],
        dropout: float,
        combine: str,
    ) -> None:
        super().__init__()
        self.modalities = modalities
        self.combine = combine
        self.experts = nn.ModuleDict(
            {
                m: mlp_layers(math.prod(spec.shapes[m]), hidden, spec.num_emotions, dropout)
                for m in modalities
            }
        )
        self.mix_logits = nn.Parameter(torch.zeros(len(modalities)))  # α, uniform at start

    def mixture_weights(self) -> torch.Tensor:
        return torch.softmax(self.mix_logits, dim=0)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logp = torch.stack(
            [
                F.log_softmax(self.experts[m](rearrange(batch[m], "b ... -> b (...)")), dim=-1)
                for m in self.modalities
            ],
            dim=1,
        )  # [B, M, K]
        if self.combine == "logits":
            return torch.einsum("bmk,m->bk", logp, self.mixture_weights())
        # log Σ_m w_m p_m, computed stably in log space
        log_w = torch.log_softmax(self.mix_logits, dim=0)
        return torch.logsumexp(logp + log_w[None, :, None], dim=1)


class LateFusion(TorchMethod):
    """Per-modality MLPs whose distributions are mixed with learned weights."""

    train_defaults: ClassVar[dict] = {"batch_size": 128, "lr": 1e-3}

    def start_at_prior(self, log_prior: torch.Tensor) -> bool:
        """Every expert predicts the prior, so their mixture does too."""
        assert self.model is not None
        for expert in self.model.experts.values():
            start_linear_at(expert[-1], log_prior)
        return True

    def build_model(self) -> nn.Module:
        mods = resolve_modalities(self.spec, self.config.modalities, "late-fusion")
        return LateFusionNet(
            self.spec,
            mods,
            hidden=self.config.hidden,
            dropout=self.config.dropout,
            combine=self.config.combine,
        )
