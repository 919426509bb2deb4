"""Checkpoints: fit one method on a whole dataset, save it without pickle, load it, predict.

A checkpoint is a directory::

    weights.safetensors      Method.state_dict() (tensors only)
    normalizer.safetensors   the Standardizer's per-feature mean/std (mean__<m>, std__<m>)
    config.yaml              the full run config, method defaults resolved
    meta.json                emotions, DataSpec (modality shapes/groups), versions, fit info

Nothing is pickled: tensors go through safetensors, everything else is YAML/JSON, so
loading a checkpoint from someone else cannot run their code.

``meta.json`` records the SHA-256 of each tensor file (``"sha256": {file: hex}``) and
:func:`load` verifies them, so a flipped bit or a partial copy is an error that names the
file rather than a silent change in predictions. Checkpoints written before checksums were
recorded (no ``sha256`` in ``meta.json``) still load, unverified; ``affectkit train`` with
the same settings writes a verified one. A damaged or incomplete checkpoint is a
:class:`~affectkit.errors.UserError` naming the file and the fix.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .config import RunConfig, validate_run_config
from .data import DataSpec, EmotionDataset, Standardizer
from .errors import UserError
from .evaluate import (
    Callbacks,
    build_method,
    build_protocol,
    check_predictions,
    method_train_config,
)
from .interfaces import Method

FORMAT = "affectkit-checkpoint"
FORMAT_VERSION = 1
TENSOR_FILES = ("weights.safetensors", "normalizer.safetensors")
FILES = (*TENSOR_FILES, "config.yaml", "meta.json")
ID_COLUMNS = ("subject", "trial", "window", "time")


def full_config(cfg: RunConfig) -> dict[str, Any]:
    """The run config with the method's training defaults written out (no output section)."""
    data = cfg.model_dump(mode="json", exclude={"output"})
    data["train"] = method_train_config(cfg).model_dump(mode="json")
    return data


def fit_all(
    cfg: RunConfig, data: EmotionDataset, callbacks: Callbacks | None = None
) -> tuple[Method, Standardizer, dict[str, Any]]:
    """Fit ``cfg``'s method on every window of ``data``.

    Early stopping still needs held-out data: the protocol's validation rule carves it from
    the whole set exactly as it does from a fold's training split. Normalisation
    statistics come from all of ``data`` (it is the training set).
    """
    callbacks = callbacks or Callbacks()
    protocol = build_protocol(cfg)
    train_cfg = method_train_config(cfg)
    everything = np.arange(len(data))
    fit_idx, valid_idx = protocol.validation_split(
        data, everything, train_cfg.validation_fraction(), cfg.seed
    )
    norm = Standardizer.fit(data)
    train = norm.transform(data.subset(fit_idx))
    valid = norm.transform(data.subset(valid_idx)) if len(valid_idx) else None
    method = build_method(cfg, data.spec, cfg.seed)
    t0 = time.perf_counter()
    info = method.fit(train, valid, progress=callbacks.epoch) or {}
    fit_info = {
        "n_fit": len(fit_idx),
        "n_valid": len(valid_idx),
        "fit_seconds": time.perf_counter() - t0,
        **{k: v for k, v in info.items() if isinstance(v, (str, int, float, bool, type(None)))},
    }
    return method, norm, fit_info


def _state_tensors(method: Method) -> dict[str, Any]:
    try:
        state = method.state_dict()
    except NotImplementedError:
        raise UserError(
            f"method {type(method).__name__} cannot be saved: it does not implement "
            "state_dict()/load_state_dict(). Add them to the method to use `affectkit train`."
        ) from None
    # safetensors refuses tensors that share memory (tied weights): store separate copies
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def save(
    out: str | Path,
    *,
    cfg: RunConfig,
    method: Method,
    normalizer: Standardizer,
    spec: DataSpec,
    dataset: EmotionDataset | None = None,
    fit_info: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a checkpoint directory; it appears complete or not at all."""
    from safetensors.numpy import save_file as save_numpy
    from safetensors.torch import save_file as save_torch

    from .results import results_hash, versions

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise UserError(
            f"{out} already exists and is not empty. Pass another --out, or --overwrite to "
            "replace it."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        save_torch(_state_tensors(method), str(tmp / "weights.safetensors"))
        save_numpy(
            {k: np.ascontiguousarray(v) for k, v in normalizer.to_arrays().items()},
            str(tmp / "normalizer.safetensors"),
        )
        (tmp / "config.yaml").write_text(yaml.safe_dump(full_config(cfg), sort_keys=False))
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "method": cfg.method.name,
            "method_class": f"{type(method).__module__}.{type(method).__qualname__}",
            "config_hash": results_hash(cfg),
            "seed": cfg.seed,
            "emotions": list(spec.emotions),
            "spec": spec.to_json(),
            "dataset": {
                "name": cfg.dataset.name,
                "n_samples": len(dataset) if dataset is not None else None,
                "subjects": dataset.subjects if dataset is not None else None,
            },
            "fit": dict(fit_info or {}),
            "versions": versions(),
            "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        meta["sha256"] = {f: _sha256(tmp / f) for f in TENSOR_FILES}  # verified by load()
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        mask = os.umask(0)
        os.umask(mask)
        # mkdtemp (and safetensors) create private files; a checkpoint is meant to be shared
        os.chmod(tmp, 0o777 & ~mask)
        for f in FILES:
            os.chmod(tmp / f, 0o666 & ~mask)
            with open(tmp / f, "rb") as fh:
                os.fsync(fh.fileno())
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def train(
    cfg: RunConfig,
    out: str | Path,
    *,
    data: EmotionDataset | None = None,
    overwrite: bool = False,
    use_cache: bool = True,
    callbacks: Callbacks | None = None,
) -> Path:
    """``affectkit train``: fit on all of the configured dataset and save a checkpoint."""
    from .datasets import load_dataset

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise UserError(  # checked before the (long) fit, not after
            f"{out} already exists and is not empty. Pass another --out, or --overwrite to "
            "replace it."
        )
    data = data if data is not None else load_dataset(cfg.dataset, use_cache=use_cache)
    data.require_labels("train")
    method, norm, info = fit_all(cfg, data, callbacks)
    return save(
        out,
        cfg=cfg,
        method=method,
        normalizer=norm,
        spec=data.spec,
        dataset=data,
        fit_info=info,
        overwrite=overwrite,
    )


class Checkpoint:
    """A loaded checkpoint: ``predict(EmotionDataset) -> [N, K]`` distributions."""

    def __init__(
        self,
        path: Path,
        config: RunConfig,
        spec: DataSpec,
        meta: dict[str, Any],
        method: Method,
        normalizer: Standardizer,
    ) -> None:
        self.path = path
        self.config = config
        self.spec = spec
        self.meta = meta
        self.method = method
        self.normalizer = normalizer

    @property
    def emotions(self) -> list[str]:
        return list(self.spec.emotions)

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r}, method={self.config.method.name!r})"

    def check_layout(self, data: EmotionDataset) -> None:
        """Refuse data whose modalities or feature shapes differ from the training data's."""
        for m, shape in self.spec.shapes.items():
            if m not in data.modalities:
                raise UserError(
                    f"checkpoint {self.path} needs modality {m!r} with shape {list(shape)} per "
                    f"window, but dataset {data.name!r} has no {m!r} (it has "
                    f"{', '.join(data.modalities) or 'none'}). Predict on data with the same "
                    "modalities as the training data."
                )
            got = tuple(data.modalities[m].shape[1:])
            if got != tuple(shape):
                raise UserError(
                    f"checkpoint {self.path} expects modality {m!r} with shape {list(shape)} "
                    f"per window, but dataset {data.name!r} gives {list(got)}. Extract the "
                    "features with the same settings as the training data."
                )

    def predict(self, data: EmotionDataset) -> np.ndarray:
        self.check_layout(data)
        # only the trained modalities, in the trained order, scaled with the training stats
        data = data.with_modalities({m: data.modalities[m] for m in self.spec.shapes})
        pred = self.method.predict(self.normalizer.transform(data))
        return check_predictions(pred, len(data), self.spec.num_emotions, self.config.method.name)

    def predict_table(self, data: EmotionDataset) -> dict[str, np.ndarray]:
        """Columns subject, trial, window, time and one per emotion, one row per window."""
        pred = self.predict(data)
        cols: dict[str, np.ndarray] = {
            "subject": data.subject,
            "trial": data.trial,
            "window": data.window,
            "time": np.asarray(data.time),
        }
        for k, e in enumerate(self.emotions):
            cols[e] = pred[:, k]
        return cols


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _damaged(file: Path, what: str) -> UserError:
    return UserError(
        f"checkpoint file {file} {what}. The checkpoint is damaged or incomplete: copy the "
        "whole folder again from where `affectkit train` wrote it, or re-train it with "
        "`affectkit train`."
    )


def _read_meta(path: Path) -> dict[str, Any]:
    missing = [f for f in FILES if not (path / f).is_file()]
    if not path.is_dir() or missing:
        raise UserError(
            f"{path} is not an affectkit checkpoint (missing: {', '.join(missing) or 'folder'}). "
            "Pass the --out folder of `affectkit train`."
        )
    file = path / "meta.json"
    try:
        meta = json.loads(file.read_bytes())
    except OSError as exc:
        raise _damaged(file, f"cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:  # bad JSON or bad UTF-8
        raise _damaged(file, f"is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise _damaged(file, f"holds a JSON {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT or meta.get("format_version", 0) > FORMAT_VERSION:
        raise UserError(
            f"{path} holds checkpoint format {meta.get('format')!r} version "
            f"{meta.get('format_version')}; this affectkit reads {FORMAT!r} up to version "
            f"{FORMAT_VERSION}. Upgrade affectkit."
        )
    return meta


def _verify_checksums(path: Path, meta: Mapping[str, Any]) -> None:
    """Compare each tensor file with the SHA-256 that :func:`save` recorded (if any)."""
    sums = meta.get("sha256")
    if sums is None:
        return  # written before checksums were recorded: loads unverified (module docstring)
    if not isinstance(sums, dict) or not all(isinstance(sums.get(f), str) for f in TENSOR_FILES):
        raise _damaged(path / "meta.json", "has a malformed 'sha256' entry")
    for f in TENSOR_FILES:
        try:
            got = _sha256(path / f)
        except OSError as exc:
            raise _damaged(path / f, f"cannot be read ({exc.strerror or exc})") from None
        if got != sums[f]:
            raise _damaged(
                path / f,
                f"does not match the checksum recorded in meta.json (SHA-256 {got[:12]}…, "
                f"recorded {sums[f][:12]}…): it changed after it was written",
            )


def _read_config(path: Path, device: str) -> RunConfig:
    file = path / "config.yaml"
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _damaged(file, f"cannot be read ({exc.strerror or exc})") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: not UTF-8
        reason = " ".join(str(exc).split())
        raise _damaged(file, f"is not valid YAML ({reason})") from None
    if not isinstance(raw, dict):
        what = "is empty" if raw is None else f"holds a {type(raw).__name__}, not a mapping"
        raise _damaged(file, f"{what} (it should hold the run configuration)")
    raw.setdefault("train", {})
    if not isinstance(raw["train"], dict):
        raise _damaged(file, "has a 'train' entry that is not a mapping")
    raw["train"]["device"] = device
    return validate_run_config(raw, source=str(file))


def _read_spec(path: Path, meta: Mapping[str, Any]) -> DataSpec:
    if "spec" not in meta:
        raise _damaged(
            path / "meta.json", "has no 'spec' (the feature layout of the training data)"
        )
    try:
        spec = DataSpec.from_json(meta["spec"])
        for m, shape in spec.shapes.items():
            if spec.groups[m] not in ("physiological", "behavioral") or not all(
                isinstance(d, int) and d > 0 for d in shape
            ):
                raise ValueError(f"modality {m!r}")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _damaged(
            path / "meta.json", f"has a malformed 'spec' ({type(exc).__name__}: {exc})"
        ) from None
    return spec


def _read_tensors(file: Path, loader: Any) -> dict[str, Any]:
    from safetensors import SafetensorError

    try:
        return loader(str(file))
    except (SafetensorError, OSError) as exc:
        raise _damaged(file, f"is not a readable safetensors file ({exc})") from None


def _read_normalizer(path: Path, spec: DataSpec) -> Standardizer:
    from safetensors.numpy import load_file as load_numpy

    file = path / "normalizer.safetensors"
    norm = Standardizer.from_arrays(_read_tensors(file, load_numpy))
    for m, shape in spec.shapes.items():
        for name, stats in (("mean", norm.mean), ("std", norm.std)):
            if m not in stats or tuple(stats[m].shape) != tuple(shape):
                got = "nothing" if m not in stats else f"shape {list(stats[m].shape)}"
                raise _damaged(
                    file,
                    f"holds {got} for {name}__{m} where meta.json's feature layout needs "
                    f"shape {list(shape)}",
                )
    return norm


def load(path: str | Path, device: str = "cpu") -> Checkpoint:
    """Load a checkpoint directory written by :func:`train` (``affectkit.load``).

    Every file is checked before use (checksums, JSON/YAML, the feature layout); a damaged
    one is a :class:`UserError` that names it.
    """
    from safetensors.torch import load_file as load_torch

    path = Path(path)
    meta = _read_meta(path)
    _verify_checksums(path, meta)
    cfg = _read_config(path, device)
    spec = _read_spec(path, meta)
    try:
        seed = int(meta.get("seed", cfg.seed))
    except (TypeError, ValueError):
        raise _damaged(path / "meta.json", f"has a malformed 'seed' ({meta['seed']!r})") from None
    method = build_method(cfg, spec, seed)
    state = _read_tensors(path / "weights.safetensors", lambda f: load_torch(f, device="cpu"))
    try:
        method.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise UserError(
            f"{path / 'weights.safetensors'} does not fit method {cfg.method.name!r} as "
            f"configured in config.yaml ({exc}). The checkpoint was written by another "
            "version of the method's plugin; retrain it."
        ) from None
    normalizer = _read_normalizer(path, spec)
    return Checkpoint(path, cfg, spec, meta, method, normalizer)


def write_predictions(
    table: Mapping[str, np.ndarray], out: str | Path, meta: Mapping[str, Any] | None = None
) -> Path:
    """Write a prediction table as ``.csv`` or ``.parquet`` (atomically)."""
    from .io import atomic_write, write_text

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".csv":
        return write_text(out, predictions_csv(table))
    if suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise UserError(
                f"writing {out} needs pyarrow, which is not installed. Install it with "
                "`pip install 'affectkit[parquet]'`, or write a .csv file instead."
            ) from None
        tbl = pa.table({k: np.asarray(v) for k, v in table.items()})
        if meta:
            tbl = tbl.replace_schema_metadata({"affectkit": json.dumps(dict(meta))})
        return atomic_write(out, lambda fh: pq.write_table(tbl, fh))
    raise UserError(f"--out {out}: unknown file type {suffix!r}; use .csv or .parquet.")


def predictions_csv(table: Mapping[str, np.ndarray]) -> str:
    import csv
    import io

    cols = list(table)
    n = len(next(iter(table.values()))) if table else 0
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    as_text = []
    for c in cols:
        v = np.asarray(table[c])
        if v.dtype.kind == "f" and c not in ID_COLUMNS:
            as_text.append([f"{x:.9g}" for x in v.tolist()])
        else:
            as_text.append([str(x) for x in v.tolist()])
    for i in range(n):
        w.writerow([col[i] for col in as_text])
    return buf.getvalue()
