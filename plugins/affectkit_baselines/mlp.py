"""``mlp``: early fusion - concatenate standardised modalities -> MLP -> softmax, KL loss."""

from __future__ import annotations

from typing import ClassVar

import torch
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

from .features import flat_dim, flatten_tensors


class MLPConfig(ComponentConfig):
    hidden: list[int] = Field(default_factory=lambda: [256, 128], description="hidden widths")
    dropout: float = Field(0.3, ge=0, lt=1)
    modalities: list[str] | None = Field(None, description="subset of modalities; null = all")

    search_space: ClassVar[SearchSpace] = {
        "train.lr": FloatRange(1e-4, 1e-2, log=True),
        "train.weight_decay": FloatRange(1e-6, 1e-2, log=True),
        "method.dropout": FloatRange(0.0, 0.6),
        "method.hidden": Choice([[128], [256, 128], [512, 256]]),
    }


def mlp_layers(d_in: int, hidden: list[int], d_out: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(d_in, h), nn.LayerNorm(h), nn.GELU(), nn.Dropout(dropout)]
        d_in = h
    layers.append(nn.Linear(d_in, d_out))
    return nn.Sequential(*layers)


class EarlyFusionNet(nn.Module):
    """logits = MLP([x_1 ‖ x_2 ‖ … ‖ x_M]) with every modality flattened."""

    def __init__(self, spec: DataSpec, modalities: list[str], hidden: list[int], dropout: float):
        super().__init__()
        self.modalities = modalities
        self.net = mlp_layers(flat_dim(spec, modalities), hidden, spec.num_emotions, dropout)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(flatten_tensors(batch, self.modalities))


class MLP(TorchMethod):
    """Early-fusion MLP trained with KL(y || ŷ)."""

    train_defaults: ClassVar[dict] = {"batch_size": 128, "lr": 1e-3}

    def build_model(self) -> nn.Module:
        mods = self.config.modalities or list(self.spec.shapes)
        missing = [m for m in mods if m not in self.spec.shapes]
        if missing:
            from affectkit import UserError

            raise UserError(
                f"mlp: modalities {missing} are not in this dataset (it has "
                f"{list(self.spec.shapes)}); fix method.modalities."
            )
        return EarlyFusionNet(self.spec, mods, self.config.hidden, self.config.dropout)

    def start_at_prior(self, log_prior: torch.Tensor) -> bool:
        assert self.model is not None
        start_linear_at(self.model.net[-1], log_prior)
        return True
