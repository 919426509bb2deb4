"""Interfaces of every component kind. Plugins implement these; the core calls only these."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from .data import DataSpec, EmotionDataset

if TYPE_CHECKING:
    from .registry import ComponentConfig
    from .training import TrainConfig


# --------------------------------------------------------------------------- neural parts
class Encoder(nn.Module, ABC):
    """Maps one modality ``[B, *shape]`` to tokens ``[B, T, d]``.

    Built as ``factory(config, in_shape=..., dim=...)``; ``num_tokens`` tells downstream
    modules ``T``.
    """

    num_tokens: int
    dim: int

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor: ...


class Fusion(nn.Module, ABC):
    """Fuses primary tokens ``[B, T, d]`` with auxiliary token sets ``{name: [B, T_a, d]}``.

    Returns tokens of the primary's shape. Built as ``factory(config, dim=...)``.
    """

    @abstractmethod
    def forward(
        self, primary: torch.Tensor, auxiliary: dict[str, torch.Tensor]
    ) -> torch.Tensor: ...


class Memory(nn.Module, ABC):
    """Associative memory: queries ``[B, Q, d]`` read from stored patterns ``[B, S, d]``."""

    @abstractmethod
    def forward(self, query: torch.Tensor, stored: torch.Tensor, **kwargs: Any) -> torch.Tensor: ...


class Loss(nn.Module, ABC):
    """A training objective term returning a scalar tensor."""

    @abstractmethod
    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor: ...


class Head(nn.Module, ABC):
    """Maps a representation to emotion logits ``[B, K]``."""

    @abstractmethod
    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor: ...


# --------------------------------------------------------------------------- methods
class Method(ABC):
    """A label-distribution learner: ``fit`` on a training split, ``predict`` distributions.

    Built by the evaluator as ``factory(config, spec=..., train=..., seed=..., device=...)``.
    Inputs are already standardised with training-fold statistics.
    """

    #: training-loop defaults of this method (``train.*`` keys the user did not set)
    train_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        config: ComponentConfig,
        *,
        spec: DataSpec,
        train: TrainConfig,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.config = config
        self.spec = spec
        self.train_config = train
        self.seed = seed
        self.device = device

    @abstractmethod
    def fit(
        self,
        train: EmotionDataset,
        valid: EmotionDataset | None = None,
        progress: Callable[[int, int, dict[str, float]], None] | None = None,
    ) -> dict[str, Any]:
        """Fit; returns information worth recording (e.g. best epoch)."""

    @abstractmethod
    def predict(self, data: EmotionDataset) -> np.ndarray:
        """``[N, K]`` float distributions: rows >= 0, summing to 1."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors that, with the config and spec, restore the fitted method."""
        raise NotImplementedError(f"{type(self).__name__} cannot be saved")

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot be loaded")


# --------------------------------------------------------------------------- data
class DatasetReader(ABC):
    """Reads one dataset into an :class:`EmotionDataset`.

    Built as ``factory(config, data_dir=Path | None)``. The core caches the result keyed
    by (name, ``version``, config, sizes/mtimes of :meth:`source_files`).
    """

    version: ClassVar[str] = "1"
    #: protocol settings suggested for this dataset when the user sets none
    protocol_defaults: ClassVar[dict[str, Any]] = {}
    cacheable: ClassVar[bool] = True

    def __init__(self, config: ComponentConfig, data_dir: Path | None = None) -> None:
        self.config = config
        self.data_dir = data_dir

    def source_files(self) -> list[Path]:
        return []

    @abstractmethod
    def load(self) -> EmotionDataset: ...


@dataclass
class Fold:
    index: int
    name: str
    train: np.ndarray
    test: np.ndarray
    test_subjects: list[str] = field(default_factory=list)


class Protocol(ABC):
    """Splits a dataset into folds and says how to carve validation out of a training split."""

    leaky: ClassVar[bool] = False

    def __init__(self, config: ComponentConfig) -> None:
        self.config = config

    @abstractmethod
    def folds(self, data: EmotionDataset) -> list[Fold]: ...

    @abstractmethod
    def validation_split(
        self, data: EmotionDataset, train_idx: np.ndarray, fraction: float, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Split training indices into (fit, validation) by this protocol's hold-out rule."""

    def describe(self, data: EmotionDataset) -> str:
        return self.config.name


@dataclass(frozen=True)
class Metric:
    """A per-sample label-distribution metric ``fn(y [N,K], p [N,K]) -> [N]``."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray]
    higher_is_better: bool
    description: str = ""

    def __call__(self, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        return self.fn(y, p)
