"""affectkit: plugin-based mixed-emotion (label-distribution) recognition.

Public API for users and plugin authors::

    import affectkit
    registry = affectkit.get_registry()
    from affectkit import hookimpl, ComponentConfig, Method, TorchMethod, EmotionDataset
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import DatasetConfig, RunConfig, component
from .data import DataSpec, EmotionDataset, Standardizer
from .errors import ConfigError, UserError
from .hookspecs import hookimpl
from .interfaces import (
    DatasetReader,
    Encoder,
    Fold,
    Fusion,
    Head,
    Loss,
    Memory,
    Method,
    Metric,
    Protocol,
)
from .layers import Dropout, fast_dropout, keep_mask
from .plugins import get_plugin_manager, get_registry
from .registry import KINDS, ComponentConfig, Registry
from .search import Choice, FloatRange, IntRange, SearchSpace
from .training import TorchMethod, TrainConfig, kl_loss, start_linear_at


def load(path):
    """Load a checkpoint directory written by ``affectkit train``."""
    from .checkpoint import load as _load

    return _load(path)


def stream(checkpoint, source, **kwargs):
    """``for p in affectkit.stream("ckpt/", "session/", speed=None): ...`` (see
    :func:`affectkit.monitor.stream`)."""
    from .monitor import stream as _stream

    return _stream(checkpoint, source, **kwargs)


def predict_timeline(checkpoint, data_dir, **kwargs):
    """Per-window predictions over time as a DataFrame-like :class:`affectkit.monitor.Timeline`."""
    from .monitor import predict_timeline as _predict_timeline

    return _predict_timeline(checkpoint, data_dir, **kwargs)


__all__ = [
    "KINDS",
    "Choice",
    "ComponentConfig",
    "ConfigError",
    "DataSpec",
    "DatasetConfig",
    "DatasetReader",
    "Dropout",
    "EmotionDataset",
    "Encoder",
    "FloatRange",
    "Fold",
    "Fusion",
    "Head",
    "IntRange",
    "Loss",
    "Memory",
    "Method",
    "Metric",
    "Protocol",
    "Registry",
    "RunConfig",
    "SearchSpace",
    "Standardizer",
    "TorchMethod",
    "TrainConfig",
    "UserError",
    "__version__",
    "component",
    "fast_dropout",
    "get_plugin_manager",
    "get_registry",
    "hookimpl",
    "keep_mask",
    "kl_loss",
    "load",
    "predict_timeline",
    "start_linear_at",
    "stream",
]
