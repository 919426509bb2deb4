"""``sa-bfgs``: maximum-entropy LDL, a softmax-linear model fitted by L-BFGS (Geng 2016).

    p(y_k | x) = softmax(W x + b)_k
    min_{W, b}  1/N · Σ_i KL(y_i ‖ p(· | x_i))  +  λ/2 · ‖W‖²_F

on the flattened, training-fold-standardised features. The objective is convex; it is
minimised full-batch in float64 with ``torch.optim.LBFGS`` (strong-Wolfe line search)
from W = 0, b = 0, so the fit does not depend on the seed. The bias is not penalised, so
with λ > 0 the optimum is the unique one whose W rows sum to zero across emotions.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from affectkit import ComponentConfig, EmotionDataset, FloatRange, Method, SearchSpace

from .features import flatten_arrays, resolve_modalities


class SABFGSConfig(ComponentConfig):
    l2: float = Field(0.3, ge=0, description="λ: L2 penalty on W (KL is averaged over samples)")
    max_iter: int = Field(300, ge=1, description="L-BFGS iterations")
    history_size: int = Field(20, ge=1, description="L-BFGS memory")
    tolerance: float = Field(1e-9, gt=0, description="stop when the gradient's max-norm is below")
    modalities: list[str] | None = Field(None, description="subset of modalities; null = all")

    search_space: ClassVar[SearchSpace] = {"method.l2": FloatRange(1e-3, 10.0, log=True)}


def kl_objective(
    w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor, l2: float
) -> torch.Tensor:
    """Mean KL(y ‖ softmax(x Wᵀ + b)) + λ/2‖W‖² (the y·log y term keeps the value a true KL)."""
    logp = F.log_softmax(x @ w.T + b, dim=-1)
    kl = (torch.special.xlogy(y, y) - y * logp).sum(-1).mean()
    return kl + 0.5 * l2 * (w * w).sum()


class SABFGS(Method):
    """Softmax-linear maximum-entropy LDL fitted with L-BFGS on KL + L2."""

    weight: torch.Tensor | None = None  # [K, D]
    bias: torch.Tensor | None = None  # [K]

    def features(self, data: EmotionDataset) -> torch.Tensor:
        """``[N, D]``: the configured modalities of ``data``, flattened and concatenated."""
        mods = resolve_modalities(self.spec, self.config.modalities, "sa-bfgs")
        return torch.from_numpy(flatten_arrays(data.modalities, mods)).double()

    def fit(self, train, valid=None, progress=None):
        # Deterministic convex fit without early stopping: use the whole training fold.
        parts = [train] + ([valid] if valid is not None and len(valid) else [])
        x = torch.cat([self.features(p) for p in parts])
        y = torch.cat([torch.from_numpy(p.targets) for p in parts]).double()
        k, d = y.shape[1], x.shape[1]
        w = torch.zeros(k, d, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS(
            [w, b],
            lr=1.0,
            max_iter=self.config.max_iter,
            history_size=self.config.history_size,
            tolerance_grad=self.config.tolerance,
            tolerance_change=1e-12,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = kl_objective(w, b, x, y, self.config.l2)
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            final = float(kl_objective(w, b, x, y, self.config.l2))
        self.weight, self.bias = w.detach(), b.detach()
        n_iter = int(opt.state_dict()["state"][0].get("n_iter", 0))
        return {"lbfgs_iterations": n_iter, "final_objective": final}

    @torch.no_grad()
    def predict(self, data: EmotionDataset) -> np.ndarray:
        assert self.weight is not None and self.bias is not None, "fit first"
        return torch.softmax(self.features(data) @ self.weight.T + self.bias, dim=-1).numpy()

    def state_dict(self):
        assert self.weight is not None, "fit first"
        return {"weight": self.weight, "bias": self.bias}

    def load_state_dict(self, state):
        self.weight, self.bias = state["weight"].double(), state["bias"].double()
