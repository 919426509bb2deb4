"""Monitoring: a checkpoint's predictions over the time of new, unlabelled recordings.

Two forms, one result per window (docs/monitoring.md):

- :func:`timeline` (``affectkit predict``): a whole dataset at once, as a
  :class:`Timeline` table with the window's times, the distribution, its entropy and the
  modalities imputed; :func:`plot_timeline` draws it (``--figure``).
- :func:`stream` (``affectkit stream``): a generator of :class:`Prediction` as each window
  completes, with the latency from the window's last sample to its prediction.

The core knows no reader. A reader that describes time sets ``info["timeline"]`` (lists
per window: ``start_s``, ``end_s``, ``start_wall``, ``end_wall``, ``imputed``; per subject:
``markers``); a reader that can stream implements ``stream_windows(source, speed)`` yielding
:class:`StreamWindow` (the ``e4`` reader does both).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import UserError

if TYPE_CHECKING:
    from .checkpoint import Checkpoint
    from .data import EmotionDataset
    from .registry import ComponentConfig

#: dataset settings that shape the features; a reader that has them takes the checkpoint's
NOT_CARRIED = ("name", "data_dir", "cache")


# --------------------------------------------------------------------------- helpers
def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy of each row divided by ``ln K``: 0 one emotion, 1 all equally mixed."""
    p = np.asarray(p, dtype=np.float64)
    k = p.shape[-1]
    if k < 2:
        return np.zeros(p.shape[:-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)
    return h / math.log(k)


def as_checkpoint(checkpoint: str | Path | Checkpoint, device: str = "cpu") -> Checkpoint:
    from .checkpoint import Checkpoint, load

    return checkpoint if isinstance(checkpoint, Checkpoint) else load(checkpoint, device=device)


def dataset_config(
    ckpt: Checkpoint,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> ComponentConfig:
    """The dataset config to predict with: the checkpoint's own, or reader ``dataset`` with
    every setting of the checkpoint's dataset that it also has (window, step, modality
    mapping: the features must be made as for training), then ``data_dir`` and
    ``--set dataset.*`` overrides."""
    from .config import apply_overrides, deep_merge, validate_run_config
    from .plugins import get_registry

    own = ckpt.config.dataset.model_dump(mode="json", exclude_unset=True)
    base: dict[str, Any] = {"dataset": own}
    if dataset and dataset != ckpt.config.dataset.name:
        fields = get_registry().get("dataset", dataset).config_cls.model_fields
        full = ckpt.config.dataset.model_dump(mode="json")
        carried = {k: v for k, v in full.items() if k in fields and k not in NOT_CARRIED}
        base = {"dataset": {"name": dataset, **carried}}
    if data_dir:
        base = deep_merge(base, {"dataset": {"data_dir": str(data_dir)}})
    raw = apply_overrides(base, list(overrides))
    unknown = [k for k in raw if k != "dataset"]
    if unknown:
        raise UserError(f"predicting takes only --set dataset.*; got {', '.join(unknown)}.")
    return validate_run_config(raw).dataset


# --------------------------------------------------------------------------- offline
class Timeline:
    """A DataFrame-like table of per-window predictions: ``t["entropy"]``, ``len(t)``,
    ``t.columns``, ``t.rows()``, ``t.to_pandas()`` (pandas only if you call it)."""

    def __init__(
        self,
        data: Mapping[str, np.ndarray],
        emotions: Sequence[str],
        markers: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.data = dict(data)
        self.emotions = list(emotions)
        self.markers = {k: list(v) for k, v in (markers or {}).items()}

    @property
    def columns(self) -> list[str]:
        return list(self.data)

    def __len__(self) -> int:
        return len(next(iter(self.data.values()))) if self.data else 0

    def __getitem__(self, column: str) -> np.ndarray:
        return self.data[column]

    def __repr__(self) -> str:
        return f"Timeline({len(self)} windows, columns {self.columns})"

    @property
    def distribution(self) -> np.ndarray:
        """``[N, K]`` predicted distributions."""
        return np.stack([self.data[e] for e in self.emotions], axis=1)

    def rows(self) -> Iterator[dict[str, Any]]:
        cols = {k: np.asarray(v).tolist() for k, v in self.data.items()}
        for i in range(len(self)):
            yield {k: v[i] for k, v in cols.items()}

    def to_pandas(self) -> Any:
        try:
            import pandas as pd
        except ImportError:
            raise UserError("Timeline.to_pandas() needs pandas: pip install pandas.") from None
        return pd.DataFrame(self.data)


def timeline(checkpoint: str | Path | Checkpoint, data: EmotionDataset) -> Timeline:
    """Predict every window of ``data`` and lay the result out over time."""
    ckpt = as_checkpoint(checkpoint)
    pred = ckpt.predict(data)
    info = data.info.get("timeline") or {}
    n = len(data)
    time_s = np.asarray(data.time, dtype=np.float64)
    window_s = float(data.info.get("window_s", math.nan))
    cols: dict[str, np.ndarray] = {
        "subject": data.subject,
        "segment": data.trial,
        "window": data.window,
        "start_s": np.asarray(info.get("start_s", time_s), dtype=np.float64),
        "end_s": np.asarray(info.get("end_s", time_s + window_s), dtype=np.float64),
        "start_wall": np.asarray([v or "" for v in info.get("start_wall", [""] * n)], dtype=str),
        "end_wall": np.asarray([v or "" for v in info.get("end_wall", [""] * n)], dtype=str),
    }
    for k, e in enumerate(ckpt.emotions):
        cols[e] = pred[:, k]
    cols["entropy"] = entropy(pred)
    imputed = info.get("imputed", [[]] * n)
    cols["imputed"] = np.asarray([";".join(m) for m in imputed], dtype=str)
    return Timeline(cols, ckpt.emotions, info.get("markers"))


def predict_timeline(
    checkpoint: str | Path | Checkpoint,
    data_dir: str | Path,
    dataset: str | None = None,
    overrides: Sequence[str] = (),
    use_cache: bool = True,
) -> Timeline:
    """``affectkit.predict_timeline("ckpt/", "NEW", dataset="e4")``: read and predict."""
    from .datasets import load_dataset

    ckpt = as_checkpoint(checkpoint)
    cfg = dataset_config(ckpt, dataset, data_dir, overrides)
    return timeline(ckpt, load_dataset(cfg, use_cache=use_cache))


def check_figure_support() -> None:
    """Fail before any work when ``--figure`` cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError(
            "--figure needs matplotlib, which is not installed. Install it with "
            "`pip install 'affectkit[plots]'`, or leave out --figure."
        ) from None


def plot_timeline(tl: Timeline, path: str | Path) -> Path:
    """A stacked area of the distribution over time per subject, tags as vertical lines."""
    check_figure_support()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_write

    subjects = list(dict.fromkeys(np.asarray(tl["subject"]).tolist()))
    fig, axes = plt.subplots(
        len(subjects), 1, figsize=(11, 2.6 * len(subjects) + 0.8), squeeze=False, sharey=True
    )
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(tl.emotions), 2)))
    for ax, subject in zip(axes[:, 0], subjects, strict=True):
        rows = np.asarray(tl["subject"]) == subject
        mid = (tl["start_s"][rows] + tl["end_s"][rows]) / 2 / 60.0
        order = np.argsort(mid, kind="stable")
        ax.stackplot(mid[order], tl.distribution[rows][order].T, labels=tl.emotions, colors=colours)
        for m in tl.markers.get(subject, []):
            ax.axvline(m / 60.0, color="black", lw=1.2, ls="--")
        start = tl["start_wall"][rows][order][0] if len(order) else ""
        ax.set_title(f"{subject}" + (f"  (from {start})" if start else ""), fontsize=10)
        ax.set_ylabel("share")
        ax.set_ylim(0, 1)
        ax.set_xlim(mid.min(), mid.max()) if len(mid) > 1 else None
    axes[-1, 0].set_xlabel("minutes from the session start (window centres; dashed: tags)")
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    path = Path(path)
    suffix = path.suffix.lstrip(".") or "png"
    atomic_write(path, lambda fh: fig.savefig(fh, format=suffix, dpi=110))
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- stream
@dataclass
class StreamWindow:
    """One completed window, as a reader's ``stream_windows`` yields it."""

    subject: str
    segment: int
    window: int
    start_s: float  # seconds from the subject's (session's) start
    end_s: float
    start_wall: str | None
    end_wall: str | None
    features: dict[str, np.ndarray]  # modality -> per-window features; NaN = missing
    imputed: list[str]
    ready_at: float  # time.perf_counter() when the window's last sample arrived


@dataclass
class Prediction:
    """One streamed prediction; :meth:`to_json` is the JSON line ``affectkit stream`` writes."""

    window: StreamWindow
    distribution: dict[str, float]
    entropy: float
    latency_ms: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        w = self.window
        return {
            "subject": w.subject,
            "segment": w.segment,
            "window": w.window,
            "start_s": w.start_s,
            "end_s": w.end_s,
            "start": w.start_wall,
            "end": w.end_wall,
            "distribution": self.distribution,
            "entropy": self.entropy,
            "imputed": w.imputed,
            "latency_ms": round(self.latency_ms, 3),
        }


def stream_reader(ckpt: Checkpoint, dataset: str | None, overrides: Sequence[str]) -> Any:
    """The reader that streams for ``ckpt``: ``dataset``, else the checkpoint's own reader if
    it can stream, else the first registered reader tagged ``stream``."""
    from .datasets import make_reader
    from .plugins import get_registry

    registry = get_registry()
    if dataset is None:
        own = ckpt.config.dataset.name
        if hasattr(registry.get("dataset", own).factory, "stream_windows"):
            dataset = own
        else:
            able = registry.names("dataset", tag="stream")
            if not able:
                raise UserError(
                    f"no registered dataset reader can stream (the checkpoint's {own!r} cannot). "
                    "Install a plugin with a streaming reader (affectkit_datasets has 'e4')."
                )
            dataset = able[0]
    reader = make_reader(dataset_config(ckpt, dataset, None, overrides))
    if not hasattr(reader, "stream_windows"):
        raise UserError(f"dataset {dataset!r} cannot stream; pass --dataset e4 (or another).")
    return reader


def stream(
    checkpoint: str | Path | Checkpoint,
    source: Any,
    *,
    dataset: str | None = None,
    speed: float | None = 1.0,
    overrides: Sequence[str] = (),
    device: str = "cpu",
    threads: int | None = 1,
) -> Iterator[Prediction]:
    """``for p in affectkit.stream("ckpt/", "session/"): ...``: one prediction per window.

    ``source`` is what the reader streams from (``e4``: an export folder/zip, replayed at
    ``speed`` times real time, ``None`` = as fast as possible; or a file object of
    ``t,modality,value...`` lines such as ``sys.stdin``). ``threads``: torch CPU threads
    while streaming (one window at a time: a second thread only adds wake-up latency;
    ``None`` leaves torch's setting).
    """
    import torch

    ckpt = as_checkpoint(checkpoint, device)
    reader = stream_reader(ckpt, dataset, overrides)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield from _predict_windows(ckpt, reader.stream_windows(source, speed))
    finally:
        torch.set_num_threads(before)


def _predict_windows(ckpt: Checkpoint, windows: Iterator[StreamWindow]) -> Iterator[Prediction]:
    from .data import EmotionDataset

    def one(features: Mapping[str, np.ndarray], w: StreamWindow | None) -> np.ndarray:
        data = EmotionDataset(
            name="stream",
            modalities={m: np.asarray(features[m]).reshape(1, *shapes[m]) for m in shapes},
            targets=placeholder,
            emotions=["unlabelled"],
            subject=np.asarray([w.subject if w else ""]),
            trial=np.asarray([w.segment if w else 0]),
            window=np.asarray([w.window if w else 0]),
            groups=dict(ckpt.spec.groups),
            missing="impute",
        )
        return ckpt.predict(data)[0]

    emotions = ckpt.emotions
    shapes = ckpt.spec.shapes
    placeholder = np.ones((1, 1), dtype=np.float32)
    # the first call of a model pays one-off costs (allocations, kernel selection): pay them
    # before the first window is waiting, on the training means
    one({m: ckpt.normalizer.mean[m] for m in shapes}, None)
    for w in windows:
        missing = [m for m in shapes if m not in w.features]
        if missing:
            raise UserError(
                f"the stream gives modalities {', '.join(w.features)}, but checkpoint "
                f"{ckpt.path} needs {', '.join(missing)}. Map the signals as for training "
                "(--set dataset.modalities...)."
            )
        p = one(w.features, w)
        latency = (time.perf_counter() - w.ready_at) * 1000.0
        yield Prediction(
            w,
            {e: float(v) for e, v in zip(emotions, p, strict=True)},
            float(entropy(p)),
            latency,
        )


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float]:
    """Count, p50, p90, p99 and max of window latencies in milliseconds."""
    if not latencies_ms:
        return {"windows": 0}
    a = np.asarray(latencies_ms, dtype=np.float64)
    return {
        "windows": len(a),
        "p50_ms": float(np.percentile(a, 50)),
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
    }


__all__ = [
    "Prediction",
    "StreamWindow",
    "Timeline",
    "dataset_config",
    "entropy",
    "latency_summary",
    "plot_timeline",
    "predict_timeline",
    "stream",
    "timeline",
]
