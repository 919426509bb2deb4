"""``prior``: predict the training split's mean distribution for every sample (the floor)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from affectkit import ComponentConfig, EmotionDataset, Method


class PriorConfig(ComponentConfig):
    pass


class Prior(Method):
    """Mean training distribution (a method that does not beat it has learned nothing)."""

    fold_cost: ClassVar[float] = 0.01  # no training: seconds at most

    mean: np.ndarray | None = None

    def fit(self, train, valid=None, progress=None):
        # No early stopping: the held-out part of the training fold is training data too.
        parts = [train] + ([valid] if valid is not None and len(valid) else [])
        self.mean = np.concatenate([p.targets for p in parts]).astype(np.float64).mean(axis=0)
        self.mean /= self.mean.sum()
        return {}

    def predict(self, data: EmotionDataset) -> np.ndarray:
        assert self.mean is not None, "fit first"
        return np.repeat(self.mean[None], len(data), axis=0)

    def state_dict(self):
        return {"mean": torch.from_numpy(np.asarray(self.mean))}

    def load_state_dict(self, state):
        self.mean = state["mean"].numpy().astype(np.float64)
