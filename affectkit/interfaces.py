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
# Each neural kind's docstring gives how a composing method (``mpcl``) builds and calls it;
# CONTRIBUTING.md ("Plugin contract") has the same as tables.
class Encoder(nn.Module, ABC):
    """Maps one modality ``[B, *in_shape]`` to tokens ``[B, T, d]``.

    Built as ``factory(config, in_shape=tuple, dim=d)``, ``in_shape`` the modality's
    per-sample shape (``DataSpec.shapes[m]``). Sets ``num_tokens`` (``T``, fixed at build
    time: downstream layers are sized by it) and ``dim`` (``d``).
    """

    num_tokens: int
    dim: int

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor: ...


class Fusion(nn.Module, ABC):
    """Fuses primary tokens ``[B, T, d]`` with auxiliary token sets ``{name: [B, T_a, d]}``.

    Built as ``factory(config, dim=d, auxiliary=[names])``: ``auxiliary`` lists the
    auxiliary modalities that ``forward`` will receive, in that order (possibly none), so a
    fusion can give each its own weights; a factory that needs no names still accepts the
    keyword. ``forward`` returns tokens of the primary's shape ``[B, T, d]``; with an empty
    ``auxiliary`` dict it should return the primary tokens (identity).
    """

    @abstractmethod
    def forward(
        self, primary: torch.Tensor, auxiliary: dict[str, torch.Tensor]
    ) -> torch.Tensor: ...


class Memory(nn.Module, ABC):
    """Associative memory: queries ``[B, Q, d]`` read from stored patterns ``[B, S, d]``.

    Built as ``factory(config, dim=d, **role)``. ``forward(query, stored, **kwargs)`` returns
    ``[B, Q, d]``. The roles in mpcl add keywords and members: a retrieval memory (MSAF's and
    PCL's ``memory``) also takes ``beta=`` (a float or a list of floats) and ``mix=``; a
    pooling memory is built with ``queries=n``, called as ``forward(stored)``, returns
    ``[B, n, d]`` and exposes its learned ``queries`` ``[n, d]``; a prototype bank is built
    with ``num_emotions=K`` and provides ``scores``, ``tau``, ``enrich``, ``grounding_loss``
    and ``bank`` (CONTRIBUTING.md, "Plugin contract").
    """

    @abstractmethod
    def forward(self, query: torch.Tensor, stored: torch.Tensor, **kwargs: Any) -> torch.Tensor: ...


class Loss(nn.Module, ABC):
    """A training objective term returning a scalar tensor.

    Built as ``factory(config, dim=d)``; accept and ignore runtime keywords you do not need.
    The inputs of ``forward`` are the caller's: mpcl calls its ``prd`` slot as
    ``loss(s_x, s_y, U, V)`` and its ``pcl`` slot as ``loss(x, y, U, V, target=Y)`` (``Y``:
    the batch's label distributions ``[B, K]``). The result must be
    differentiable and ``forward`` must not change the module in place (fold-parallel
    training evaluates it under ``vmap``).
    """

    @abstractmethod
    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor: ...


class Head(nn.Module, ABC):
    """Maps a representation to emotion logits ``[B, K]`` (unnormalised; callers softmax).

    Built as ``factory(config, dim=d, num_emotions=K)`` (mpcl adds ``summary_dim=`` for its
    ``hsc`` head); mpcl calls ``head(tokens [B, T, d])``, plus ``summary=[B, summary_dim]``
    when the head has a non-zero ``summary_dim`` attribute.
    """

    @abstractmethod
    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor: ...


# --------------------------------------------------------------------------- methods
class Method(ABC):
    """A label-distribution learner: ``fit`` on a training split, ``predict`` distributions.

    Built per fold by the evaluator as ``factory(config, spec=DataSpec, train=TrainConfig,
    seed=int, device=str)``, kept as ``self.config``, ``self.spec``, ``self.train_config``,
    ``self.seed`` and ``self.device``. Inputs are already standardised with training-fold
    statistics.
    """

    #: training-loop defaults of this method: any ``train.*`` key, used where the user set
    #: none (``affectkit config show --method NAME`` prints the result)
    train_defaults: ClassVar[dict[str, Any]] = {}
    #: CPU time of one fold relative to an MLP's, roughly: a scheduling hint only. The bench
    #: hands a pool its costliest jobs first, so that short ones fill the end instead of one
    #: long fold running alone while the other workers idle; no number depends on it
    fold_cost: ClassVar[float] = 1.0

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

    Built as ``factory(config, data_dir=Path | None)`` (``data_dir`` is ``--data-dir``, also
    ``config.data_dir``). The core caches the result keyed by (name, ``version``, config,
    sizes/mtimes of :meth:`source_files`). Bad input raises :class:`affectkit.UserError`
    naming the file (and line or variable) and the fix.
    """

    #: part of the cache key: bump it whenever ``load`` would give other arrays
    version: ClassVar[str] = "1"
    #: defaults for the protocol they name, e.g. ``{"name": "subject-independent", "folds":
    #: None}``: applied when a run uses that protocol, under the user's own protocol keys
    protocol_defaults: ClassVar[dict[str, Any]] = {}
    #: False: never cache (e.g. a reader that is cheaper to rerun than to load from disk)
    cacheable: ClassVar[bool] = True

    def __init__(self, config: ComponentConfig, data_dir: Path | None = None) -> None:
        self.config = config
        self.data_dir = data_dir

    def source_files(self) -> list[Path]:
        """Every file ``load`` reads: their sizes and mtimes invalidate the cache."""
        return []

    @abstractmethod
    def load(self) -> EmotionDataset:
        """Read the files into one validated :class:`EmotionDataset` (all subjects)."""


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

    @property
    def transductive(self) -> bool:
        """Whether a test subject's unlabelled test windows shape its inputs (per-subject
        normalisation under subject-independent): results then say so, as for ``leaky``."""
        return False

    def normalization_windows(self, data: EmotionDataset, fold: Fold) -> dict[str, np.ndarray]:
        """Per subject, the windows its own feature statistics come from under
        ``normalize: per-subject``. Default: each subject's windows in the training split
        (a test subject with none there gets the training split's pooled statistics)."""
        subjects = data.subject[fold.train]
        return {str(s): fold.train[subjects == s] for s in np.unique(subjects)}


@dataclass(frozen=True)
class Metric:
    """A per-sample label-distribution metric ``fn(y [N,K], p [N,K]) -> [N]``."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray]
    higher_is_better: bool
    description: str = ""

    def __call__(self, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        return self.fn(y, p)
