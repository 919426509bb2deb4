"""The one evaluator every method goes through.

For each fold of the protocol: carve validation out of the training split by the
protocol's rule, fit a :class:`Standardizer` on the training split only (or, with
``protocol.normalize: per-subject``, one per subject from the windows the protocol allows),
fit the method, predict every test sample, score the six metrics. Under
``subject-calibrated`` the test subject's calibration windows join training (repeated by
``calibration_weight``) or, with ``adapt: finetune``, fine-tune a method trained on the
other subjects (:meth:`~affectkit.training.TorchMethod.finetune`). Fold results are handed
to the results store as soon as each fold ends.
"""

from __future__ import annotations

import hashlib
import json
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .config import RunConfig
from .data import EmotionDataset, Standardizer, SubjectStandardizer
from .errors import UserError
from .interfaces import Fold, Method, Protocol
from .metrics import METRIC_NAMES, METRICS, score
from .plugins import get_registry
from .training import TorchMethod, TrainConfig, resolve_schedule


@dataclass
class FoldResult:
    fold: int
    name: str
    n_train: int
    n_test: int
    metrics: dict[str, float]
    fit_seconds: float
    predict_seconds: float
    seed: int
    test_subjects: list[str] = field(default_factory=list)
    fit_info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FoldPredictions:
    """Everything needed to re-score or plot a fold without re-running it."""

    pred: np.ndarray
    target: np.ndarray
    subject: np.ndarray
    trial: np.ndarray
    window: np.ndarray


class Callbacks:
    """Progress hooks; the CLI draws bars with them. All default to no-ops."""

    def fold_start(self, method: str, fold: Fold, n_folds: int) -> None: ...
    def epoch(self, epoch: int, total: int, record: dict[str, float]) -> None: ...
    def fold_end(self, method: str, result: FoldResult) -> None: ...


def method_train_config(cfg: RunConfig) -> TrainConfig:
    """``train.*`` keys the user set, over the method's defaults, over the global defaults."""
    factory = get_registry().get("method", cfg.method.name).factory
    return cfg.train.resolved(getattr(factory, "train_defaults", {}))


def build_method(cfg: RunConfig, data_spec, seed: int) -> Method:
    train = method_train_config(cfg)
    entry = get_registry().get("method", cfg.method.name)
    return entry.build(cfg.method, spec=data_spec, train=train, seed=seed, device=train.device)


def fit_valid_split(
    protocol: Protocol, data: EmotionDataset, fold: Fold, train_cfg: TrainConfig, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A fold's training split cut into (fit, validation) by the protocol's rule; the
    validation part is empty unless early stopping needs it (``TrainConfig.holds_out``)."""
    return protocol.validation_split(data, fold.train, train_cfg.validation_fraction(), seed)


POOLED = "(pooled)"


@dataclass
class FoldInputs:
    """Every row a fold's fit may read, as indices into the dataset, and its normaliser.

    ``fit`` may repeat rows (a calibration window counts ``calibration_weight`` times);
    ``stats`` names the rows each set of normalisation statistics came from (per subject,
    and :data:`POOLED` for the training split's own); ``calibration`` are the test
    subjects' training windows (non-empty under ``subject-calibrated`` only).
    """

    fit: np.ndarray
    valid: np.ndarray
    calibration: np.ndarray
    finetune: bool
    stats: dict[str, np.ndarray]
    normalizer: Standardizer | SubjectStandardizer


def calibration_windows(protocol: Protocol, data: EmotionDataset, fold: Fold) -> np.ndarray:
    """The fold's test subjects' own training windows, when the protocol calibrates."""
    if not getattr(type(protocol), "calibrates", False):
        return fold.train[:0]
    return fold.train[np.isin(data.subject[fold.train], fold.test_subjects)]


def weighted_rows(rows: np.ndarray, weight: float) -> np.ndarray:
    """``rows`` with sample weight ``weight`` as repetition: ``floor(weight)`` copies of all,
    then an evenly spread share ``weight - floor(weight)`` of them once more. Every method
    (not only the neural ones, whose losses differ) then weighs them alike."""
    whole = int(weight)
    n_extra = round((weight - whole) * len(rows))
    extra = rows[np.linspace(0, len(rows), n_extra, endpoint=False).astype(np.int64)]
    return np.sort(np.r_[np.tile(rows, whole), extra]).astype(np.int64)


def can_finetune(method: Any) -> bool:
    """Whether a method (or method class) has the fine-tuning hook of ``adapt: finetune``."""
    return callable(getattr(method, "finetune", None))


def fold_inputs(
    cfg: RunConfig,
    data: EmotionDataset,
    protocol: Protocol,
    fold: Fold,
    train_cfg: TrainConfig,
    seed: int,
    *,
    finetune: bool = False,
) -> FoldInputs:
    """The (fit, validation) cut, calibration handling and normalisation of one fold.

    With ``finetune`` (``adapt: finetune`` and a method that can) the calibration windows
    leave ``fit``: the method trains on the other subjects and fine-tunes on them after.
    """
    fit_idx, valid_idx = fit_valid_split(protocol, data, fold, train_cfg, seed)
    calib = calibration_windows(protocol, data, fold)
    if len(calib):
        own = np.isin(fit_idx, calib)
        weight = 0.0 if finetune else float(getattr(cfg.protocol, "calibration_weight", 1.0))
        fit_idx = np.sort(np.r_[fit_idx[~own], weighted_rows(fit_idx[own], weight)])
    # Statistics from the training split only: the test fold never shapes the inputs
    # (except per-subject under a transductive protocol, which says so).
    stats = {POOLED: fold.train}
    if getattr(cfg.protocol, "normalize", "global") == "per-subject":
        windows = protocol.normalization_windows(data, fold)
        norm: Standardizer | SubjectStandardizer = SubjectStandardizer.fit(
            data, windows, fold.train
        )
        stats.update(windows)
    else:
        norm = training_statistics(data, fold.train)
    return FoldInputs(fit_idx, valid_idx, calib, finetune, stats, norm)


#: per live dataset object (by id, checked through a weak reference), the Standardizer of
#: each set of rows it was fitted on: every method and seed of a fold (and a fold's refit
#: job) standardises with statistics of the same training split, so a pool worker computes
#: them once per fold, not once per job
_STATISTICS: dict[int, tuple[weakref.ref, dict[bytes, Standardizer]]] = {}
_STATISTICS_PER_DATASET = 256


def training_statistics(data: EmotionDataset, rows: np.ndarray) -> Standardizer:
    """``Standardizer.fit(data.subset(rows))``, remembered while ``data`` lives."""
    entry = _STATISTICS.get(id(data))
    if entry is None or entry[0]() is not data:
        ident = id(data)
        entry = (weakref.ref(data, lambda _: _STATISTICS.pop(ident, None)), {})
        _STATISTICS[ident] = entry
    memo = entry[1]
    key = hashlib.blake2b(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).digest()
    if key not in memo:
        if len(memo) >= _STATISTICS_PER_DATASET:
            memo.pop(next(iter(memo)))
        memo[key] = Standardizer.fit(data.subset(rows))
    return memo[key]


def plain_inputs(cfg: RunConfig) -> bool:
    """Whether every fold's inputs are ``fit_valid_split`` + one :class:`Standardizer` (what
    fold-parallel training implements)."""
    p = cfg.protocol
    return (
        getattr(p, "normalize", "global") == "global"
        and getattr(p, "calibration_weight", 1.0) == 1.0
        and getattr(p, "adapt", "join") == "join"
    )


def fold_schedules(cfg: RunConfig, data: EmotionDataset) -> list[dict[str, Any]]:
    """The training length each fold of ``cfg`` will get on ``data`` (no training).

    What ``affectkit config show`` prints: the split sizes after the protocol's validation
    hold-out, and the resolved :class:`~affectkit.training.Schedule` of every fold.
    """
    train_cfg = method_train_config(cfg)
    protocol = build_protocol(cfg)
    out = []
    finetune = getattr(cfg.protocol, "adapt", "join") == "finetune" and can_finetune(
        get_registry().get("method", cfg.method.name).factory
    )
    for fold in protocol.folds(data):
        inputs = fold_inputs(
            cfg, data, protocol, fold, train_cfg, fold_seed(cfg.seed, fold.index), finetune=finetune
        )
        fit_idx, valid_idx = inputs.fit, inputs.valid
        plan = resolve_schedule(train_cfg, len(fit_idx))
        out.append(
            {
                "fold": fold.name,
                "n_fit": len(fit_idx),
                "n_valid": len(valid_idx),
                "steps": plan.steps,
                "steps_per_epoch": plan.steps_per_epoch,
                "epochs": round(plan.epochs, 3),
                "eval_every": plan.eval_every if len(valid_idx) else None,
                "rule": plan.rule,
            }
        )
    return out


def build_protocol(cfg: RunConfig) -> Protocol:
    return get_registry().get("protocol", cfg.protocol.name).build(cfg.protocol)


def fold_seed(seed: int, fold: int) -> int:
    return int(np.random.SeedSequence([seed, fold]).generate_state(1)[0] % (2**31 - 1))


def config_hash(cfg: RunConfig) -> str:
    """Hash of everything that determines a method's numbers (not where they are written)."""
    data = cfg.model_dump(mode="json", exclude={"output"})
    data["train"] = method_train_config(cfg).model_dump(mode="json")
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def check_predictions(pred: np.ndarray, n: int, k: int, method: str) -> np.ndarray:
    """``pred`` as ``[n, k]`` float64 distributions, or a :class:`UserError` (exit 2) that
    says what is wrong and what to do: nothing is scored or stored from such a fold."""
    pred = np.asarray(pred, dtype=np.float64)
    contract = (
        f"Method {method!r} breaks the Method contract (predict returns an [N, K] array of "
        "distributions, CONTRIBUTING.md): report it to the plugin's author."
    )
    if pred.shape != (n, k):
        raise UserError(
            f"method {method!r} predicted shape {pred.shape}, expected {(n, k)}. {contract}"
        )
    if not np.isfinite(pred).all():
        bad = int((~np.isfinite(pred)).any(axis=1).sum())
        raise UserError(
            f"method {method!r} predicted NaN or inf for {bad} of {n} windows: its training "
            "diverged, or its inputs hold non-finite values. Lower train.lr (or train.grad_clip), "
            "and check the dataset for NaN features (readers mark "
            "imputable ones with missing: impute)."
        )
    if (pred < -1e-6).any() or np.abs(pred.sum(axis=1) - 1).max() > 1e-4:
        raise UserError(
            f"method {method!r} predicted negative values or rows that do not sum to 1. {contract}"
        )
    return np.clip(pred, 0.0, None) / np.clip(pred, 0.0, None).sum(axis=1, keepdims=True)


@dataclass
class RefitPending:
    """A fold stopped after its selection run (``run_fold(..., phase="select")``):
    ``run_fold(..., phase=pending.selection)`` refits and scores it, with the same result
    as the fold run in one go."""

    selection: dict[str, Any]


#: the key of ``RefitPending.selection`` holding the seconds the selection run took (the
#: refit adds its own to make the fold's ``fit_seconds``)
SELECT_SECONDS = "select_seconds"


def run_fold(
    cfg: RunConfig,
    data: EmotionDataset,
    protocol: Protocol,
    fold: Fold,
    *,
    seed: int,
    callbacks: Callbacks | None = None,
    phase: str | dict[str, Any] | None = None,
) -> tuple[FoldResult, FoldPredictions] | RefitPending:
    """Fit the fold's method on its training part, then predict and score its test part.

    Without ``phase`` (every caller but the process pool) the result is always
    ``(FoldResult, FoldPredictions)``. ``phase`` splits the fit of a
    :class:`~affectkit.training.TorchMethod` that refits, so that a fold's halves can spread
    over the pool's workers: ``"select"`` returns a :class:`RefitPending` after the
    selection run when a refit is due (else the scored fold); ``pending.selection`` as
    ``phase`` then refits and scores, with the result the one-piece call gives. Other
    methods ignore ``phase``."""
    callbacks = callbacks or Callbacks()
    if len(fold.test) == 0 or len(fold.train) == 0:
        raise UserError(f"fold {fold.name} of {data.name!r} has an empty train or test split.")
    fseed = fold_seed(seed, fold.index)
    train_cfg = method_train_config(cfg)
    method = build_method(cfg, data.spec, fseed)
    adapt = getattr(cfg.protocol, "adapt", "join")
    inputs = fold_inputs(
        cfg,
        data,
        protocol,
        fold,
        train_cfg,
        fseed,
        finetune=adapt == "finetune" and can_finetune(method),
    )
    norm = inputs.normalizer
    train = norm.transform(data.subset(inputs.fit))
    valid = norm.transform(data.subset(inputs.valid)) if len(inputs.valid) else None
    test = norm.transform(data.subset(fold.test))
    t0 = time.perf_counter()
    earlier = 0.0
    if phase is not None and isinstance(method, TorchMethod):
        method.fit_phase = phase
        if isinstance(phase, dict):
            earlier = float(phase[SELECT_SECONDS])
    info = method.fit(train, valid, progress=callbacks.epoch) or {}
    pending = getattr(method, "pending_selection", None) if phase == "select" else None
    if pending is not None:
        return RefitPending({**pending, SELECT_SECONDS: time.perf_counter() - t0})
    if getattr(type(protocol), "calibrates", False):
        info = {**info, **_calibrate(cfg, data, fold, inputs, method, adapt)}
    fit_seconds = earlier + time.perf_counter() - t0
    return score_fold(cfg, fold, method, test, seed=fseed, fit_seconds=fit_seconds, fit_info=info)


def _calibrate(
    cfg: RunConfig,
    data: EmotionDataset,
    fold: Fold,
    inputs: FoldInputs,
    method: Method,
    adapt: str,
) -> dict[str, Any]:
    """Fine-tune on the calibration windows (``adapt: finetune``); what a fold records."""
    subjects = data.subject[inputs.calibration]
    info: dict[str, Any] = {
        "calibration_windows": {s: int((subjects == s).sum()) for s in fold.test_subjects},
        "adapt": "finetune" if inputs.finetune else "join",
    }
    if adapt == "finetune" and not inputs.finetune:
        info["adapt"] = "join (the method has no finetune hook)"
    if inputs.finetune and len(inputs.calibration):
        p = cfg.protocol
        calib = inputs.normalizer.transform(data.subset(inputs.calibration))
        done = method.finetune(calib, steps=p.finetune_steps, lr=p.finetune_lr)  # type: ignore[attr-defined]
        info.update({f"finetune_{k}": v for k, v in done.items()})
    return info


def score_fold(
    cfg: RunConfig,
    fold: Fold,
    method: Method,
    test: EmotionDataset,
    *,
    seed: int,
    fit_seconds: float,
    fit_info: dict[str, Any],
) -> tuple[FoldResult, FoldPredictions]:
    """Predict every test sample of a fitted method and score it."""
    t0 = time.perf_counter()
    pred = check_predictions(method.predict(test), len(test), len(test.emotions), cfg.method.name)
    result = FoldResult(
        fold=fold.index,
        name=fold.name,
        n_train=len(fold.train),
        n_test=len(fold.test),
        metrics=score(test.targets, pred),
        fit_seconds=fit_seconds,
        predict_seconds=time.perf_counter() - t0,
        seed=seed,
        test_subjects=list(fold.test_subjects),
        fit_info=_jsonable(fit_info),
    )
    preds = FoldPredictions(
        pred.astype(np.float32), test.targets, test.subject, test.trial, test.window
    )
    return result, preds


def summarize(folds: list[FoldResult]) -> dict[str, dict[str, float]]:
    out = {}
    for m in METRIC_NAMES:
        vals = np.array([f.metrics[m] for f in folds], dtype=np.float64)
        out[m] = {
            "mean": float(vals.mean()) if len(vals) else float("nan"),
            "std": float(vals.std()) if len(vals) else float("nan"),
            "higher_is_better": METRICS[m].higher_is_better,
        }
    return out


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, (np.generic,)):
            v = v.item()
        if isinstance(v, (str, int, float, bool, type(None), list, dict)):
            out[k] = v
    return out


EvaluateFn = Callable[..., Any]
