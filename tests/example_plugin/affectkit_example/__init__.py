"""A third-party affectkit plugin: ``ridge-ldl``.

Closed-form ridge regression from the concatenated features to the centred log targets,
``W = (XᵀX + αI)⁻¹ Xᵀ log(y + ε)``, predicting ``softmax(x W + b)``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from pydantic import Field

from affectkit import ComponentConfig, EmotionDataset, FloatRange, Method, SearchSpace, hookimpl


class RidgeLDLConfig(ComponentConfig):
    alpha: float = Field(10.0, gt=0, description="L2 penalty")
    eps: float = Field(1e-3, gt=0, description="added to targets before the log")

    # what `affectkit tune --method ridge-ldl` searches (CONTRIBUTING.md)
    search_space: ClassVar[SearchSpace] = {
        "method.alpha": FloatRange(0.1, 1000.0, log=True),
        "method.eps": FloatRange(1e-4, 1e-2, log=True),
    }


def _features(data: EmotionDataset) -> np.ndarray:
    return np.concatenate([x.reshape(len(data), -1) for x in data.modalities.values()], axis=1)


class RidgeLDL(Method):
    """Ridge regression on log-targets, softmax output."""

    def fit(self, train, valid=None, progress=None):
        x = _features(train).astype(np.float64)
        logy = np.log(train.targets + self.config.eps)
        self.bias = logy.mean(axis=0)
        a = x.T @ x + self.config.alpha * np.eye(x.shape[1])
        self.weight = np.linalg.solve(a, x.T @ (logy - self.bias))
        return {}

    def predict(self, data):
        z = _features(data) @ self.weight + self.bias
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def state_dict(self):
        return {"weight": torch.from_numpy(self.weight), "bias": torch.from_numpy(self.bias)}

    def load_state_dict(self, state):
        self.weight, self.bias = state["weight"].numpy(), state["bias"].numpy()


@hookimpl
def affectkit_register(registry):
    registry.register("method", "ridge-ldl", RidgeLDL, RidgeLDLConfig, tags={"example"})
