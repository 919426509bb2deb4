"""Modality selection and flattening shared by the feature-vector baselines.

A baseline that sees "the features" sees ``x = [vec(x_1) ‖ vec(x_2) ‖ … ‖ vec(x_M)]``: every
selected modality flattened, concatenated in the dataset's modality order.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from einops import rearrange

from affectkit import DataSpec, UserError


def resolve_modalities(spec: DataSpec, requested: list[str] | None, method: str) -> list[str]:
    """``requested`` (or every modality when ``None``), checked against the dataset."""
    mods = list(requested) if requested else list(spec.shapes)
    missing = [m for m in mods if m not in spec.shapes]
    if missing:
        raise UserError(
            f"{method}: modalities {missing} are not in this dataset (it has "
            f"{list(spec.shapes)}); fix method.modalities or leave it unset to use all."
        )
    return mods


def flat_dim(spec: DataSpec, modalities: list[str]) -> int:
    return sum(int(np.prod(spec.shapes[m])) for m in modalities)


def flatten_tensors(batch: Mapping[str, torch.Tensor], modalities: list[str]) -> torch.Tensor:
    """``[B, D]`` with D the summed flattened sizes of ``modalities``."""
    return torch.cat([rearrange(batch[m], "b ... -> b (...)") for m in modalities], dim=-1)


def flatten_arrays(arrays: Mapping[str, np.ndarray], modalities: list[str]) -> np.ndarray:
    n = len(next(iter(arrays.values())))
    return np.concatenate([arrays[m].reshape(n, -1) for m in modalities], axis=1)
