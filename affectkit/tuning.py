"""``affectkit tune`` and ``affectkit bench --tune``: Optuna search that never reads a test part.

Nested by construction. For each outer fold of the protocol the search sees only the fold's
training part (``data.subset(fold.train)``, a dataset without the test windows); the
protocol's own :meth:`~affectkit.Protocol.validation_split` carves an inner validation split
out of it, and the shared evaluator (:func:`~affectkit.evaluate.run_fold`) fits a trial's
configuration on the rest and scores the inner validation windows.

- ``affectkit tune``: a trial's value is the mean over the outer folds of its inner-validation
  score; it is reported after every fold, so a median pruner stops a hopeless trial after the
  first folds. The study lives in ``DIR/study.sqlite3`` and resumes after a kill; the best
  trial becomes ``DIR/best.yaml``, a complete run config for ``affectkit bench --config``.
- ``affectkit bench --tune N``: per outer fold, N trials on that fold's training part alone,
  then the fold's best configuration is trained on the whole training part and scored on the
  test part by the same evaluator (the nested estimate of a tuned method).

The sampler is TPE, re-seeded before every trial from the run seed and the number of trials
already finished: a study resumed after a kill asks the same questions as one never stopped.

Optuna is an optional extra (``pip install 'affectkit[tune]'``), imported only here.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .config import (
    RunConfig,
    apply_overrides,
    deep_merge,
    read_config_file,
    validate_run_config,
)
from .data import EmotionDataset
from .errors import UserError
from .evaluate import (
    Callbacks,
    FoldPredictions,
    FoldResult,
    build_protocol,
    method_train_config,
    run_fold,
)
from .interfaces import Fold, Protocol
from .io import write_text
from .metrics import METRIC_NAMES, METRICS
from .protocols import CALIBRATED
from .search import Choice, FloatRange, IntRange, Param, check_space, declared_space, space_json

STUDY_FILE = "study.sqlite3"
BEST_FILE = "best.yaml"
TRIALS_FILE = "trials.csv"
STUDY_NAME = "affectkit-tune"
INSTALL_HINT = "pip install 'affectkit[tune]'  (or: pip install 'optuna>=3.4')"


@dataclass(frozen=True)
class TuneSettings:
    """How to search: trial budget, the inner-validation metric, the hold-out, pruning.

    ``pinned`` are ``--set``/``--config`` keys the user fixed; they leave the search space.
    """

    trials: int
    metric: str = "kl"
    valid_fraction: float | None = None  # None: the run's train.valid_fraction
    prune: bool = True
    pinned: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise UserError(f"--trials {self.trials}: need at least one trial.")
        if self.metric not in METRIC_NAMES:
            raise UserError(
                f"--metric {self.metric!r} is not a metric; choose one of "
                f"{', '.join(METRIC_NAMES)}."
            )
        if self.valid_fraction is not None and not 0 < self.valid_fraction < 1:
            raise UserError(
                f"--valid-fraction {self.valid_fraction}: the inner validation share must be "
                "between 0 and 1 (exclusive), e.g. 0.2."
            )

    @classmethod
    def from_cli(
        cls,
        trials: int,
        *,
        files: Iterable[str | Path] = (),
        overrides: Sequence[str] = (),
        **kw: Any,
    ) -> TuneSettings:
        return cls(trials=trials, pinned=user_set_keys(files, overrides), **kw)

    def to_json(self, pinned: bool = True) -> dict[str, Any]:
        """JSON form; ``pinned=False`` leaves out the pinned keys, whose values the run config
        itself records (what a run directory keys its nested results by)."""
        out: dict[str, Any] = {
            "trials": self.trials,
            "metric": self.metric,
            "valid_fraction": self.valid_fraction,
            "prune": self.prune,
        }
        if pinned:
            out["pinned"] = list(self.pinned)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TuneSettings:
        return cls(**{**data, "pinned": tuple(data.get("pinned", ()))})

    def label(self) -> str:
        return f"nested (tuned {self.trials} trials per fold)"


class TuneCallbacks(Callbacks):
    """Progress hooks of a search (the CLI draws a bar); fold/epoch hooks as in bench."""

    def plan(self, done: int, total: int) -> None: ...
    def trial_start(self, number: int, total: int, n_folds: int) -> None: ...
    def trial_end(self, done: int, total: int, best: float | None, state: str) -> None: ...


@dataclass
class TuneResult:
    out: Path
    metric: str
    best_value: float | None
    best_trial: int | None
    best_params: dict[str, Any]
    states: dict[str, int]
    reused: int
    space: dict[str, Param] = field(default_factory=dict)


# --------------------------------------------------------------------------- optuna
def require_optuna() -> Any:
    """Import Optuna (quiet), or refuse with the command that installs it."""
    try:
        import optuna
    except ImportError:
        raise UserError(
            f"hyper-parameter search needs Optuna, which is not installed. Install it with "
            f"`{INSTALL_HINT}`."
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _startup_trials(total: int) -> int:
    """Random trials before TPE models the history (Optuna's 10 would be all of a small run)."""
    return min(10, max(3, total // 3))


def _trial_seed(seed: int, done: int) -> int:
    return int(np.random.SeedSequence([seed, 0x7475, done]).generate_state(1)[0])


def _inner_seed(seed: int, fold: int) -> int:
    return int(np.random.SeedSequence([seed, 0x696E, fold]).generate_state(1)[0] % (2**31 - 1))


# --------------------------------------------------------------------------- spaces
def user_set_keys(files: Iterable[str | Path], overrides: Sequence[str]) -> tuple[str, ...]:
    """Dotted ``method.*``/``train.*`` keys set in config files or ``--set``."""
    raw: dict[str, Any] = {}
    for f in files:
        raw = deep_merge(raw, read_config_file(f))
    raw = apply_overrides(raw, overrides)
    out: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}")
        else:
            out.append(prefix)

    for section in ("method", "train"):
        if section in raw:
            walk(raw[section], section)
    return tuple(sorted(out))


def _pinned(key: str, pinned: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in pinned)


def search_space(cfg: RunConfig, settings: TuneSettings) -> dict[str, Param]:
    """The method's declared space minus the keys the user pinned, checked against ``cfg``."""
    name = cfg.method.name
    declared = declared_space(name)
    if not declared:
        raise UserError(
            f"method {name!r} declares no search space, so there is nothing to tune. Methods "
            "declare one as `search_space` on their config class (CONTRIBUTING.md, "
            "'Declaring a search space')."
        )
    space = {k: p for k, p in declared.items() if not _pinned(k, settings.pinned)}
    if not space:
        raise UserError(
            f"every key of {name!r}'s search space ({', '.join(declared)}) is fixed by "
            "--config or --set, so there is nothing left to tune. Drop those settings."
        )
    check_space(cfg, space, owner=f"search space of method {name!r}")
    return space


def suggest(trial: Any, space: dict[str, Param]) -> dict[str, Any]:
    """Ask an Optuna trial for one value per key; returns config values (choices decoded)."""
    out: dict[str, Any] = {}
    for key, p in space.items():
        if isinstance(p, FloatRange):
            out[key] = trial.suggest_float(key, p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, IntRange):
            out[key] = trial.suggest_int(key, p.low, p.high, log=p.log, step=p.step)
        else:
            out[key] = p.value_of(trial.suggest_categorical(key, p.labels()))
    return out


def decode(params: dict[str, Any], space: dict[str, Param]) -> dict[str, Any]:
    """A finished trial's stored params as config values."""
    return {
        k: space[k].value_of(v) if isinstance(space.get(k), Choice) else v
        for k, v in params.items()
    }


def with_params(cfg: RunConfig, params: dict[str, Any]) -> RunConfig:
    """``cfg`` with searched values set through the ordinary config path (validated)."""
    raw = cfg.model_dump(mode="json", exclude_unset=True, exclude={"output"})
    return validate_run_config(apply_overrides(raw, [], values=params), "a tuning trial's config")


# --------------------------------------------------------------------------- inner splits
def training_part(
    data: EmotionDataset, fold: Fold, protocol: Protocol | None = None
) -> EmotionDataset:
    """The outer fold's training part alone: all that tuning for this fold may read.

    Under a calibrating protocol the part holds the test subjects' calibration windows; it
    names those subjects (``info[CALIBRATED]``), so that the protocol's hold-out rule, for
    the inner split as for early stopping inside a trial, validates on training subjects
    only, as it does in the outer fold."""
    part = data.subset(fold.train)
    if protocol is not None and getattr(type(protocol), "calibrates", False):
        part.info[CALIBRATED] = [str(s) for s in fold.test_subjects]
    return part


def inner_fold(
    protocol: Protocol, part: EmotionDataset, fold: Fold, fraction: float, seed: int
) -> Fold:
    """Fit / validation split of a training part by the protocol's own hold-out rule."""
    fit, valid = protocol.validation_split(
        part, np.arange(len(part)), fraction, _inner_seed(seed, fold.index)
    )
    if len(fit) == 0 or len(valid) == 0:
        raise UserError(
            f"no inner validation split can be carved from the training part of {fold.name} "
            f"({len(part)} windows of {len(part.subjects)} subject(s)) with fraction "
            f"{fraction:g} under this protocol. Use a dataset with more subjects or windows, "
            "or another --valid-fraction."
        )
    return Fold(
        fold.index,
        f"{fold.name}, inner validation",
        fit,
        valid,
        [str(s) for s in np.unique(part.subject[valid])],
    )


def _valid_fraction(cfg: RunConfig, settings: TuneSettings) -> float:
    if settings.valid_fraction is not None:
        return settings.valid_fraction
    fraction = method_train_config(cfg).valid_fraction
    if fraction <= 0:
        raise UserError(
            "train.valid_fraction is 0, so no inner validation split can be made for tuning; "
            "pass --valid-fraction (e.g. 0.2)."
        )
    return fraction


def _objective(
    cfg: RunConfig,
    data: EmotionDataset,
    protocol: Protocol,
    folds: Sequence[Fold],
    space: dict[str, Param],
    settings: TuneSettings,
    seed: int,
    callbacks: TuneCallbacks,
) -> Callable[[Any], float]:
    """Trial -> mean inner-validation score over ``folds``, reported after each fold."""
    optuna = require_optuna()
    fraction = _valid_fraction(cfg, settings)
    for fold in folds:  # every inner split exists, before any training
        inner_fold(protocol, training_part(data, fold, protocol), fold, fraction, seed)

    def objective(trial: Any) -> float:
        trial_cfg = with_params(cfg, suggest(trial, space))
        values: list[float] = []
        for step, fold in enumerate(folds):
            part = training_part(data, fold, protocol)
            inner = inner_fold(protocol, part, fold, fraction, seed)
            callbacks.fold_start(cfg.method.name, inner, len(folds))
            result, _ = run_fold(trial_cfg, part, protocol, inner, seed=seed, callbacks=callbacks)
            callbacks.fold_end(cfg.method.name, result)
            values.append(float(result.metrics[settings.metric]))
            trial.set_user_attr("fold_values", values)
            if step < len(folds) - 1:  # the last fold's value is the trial's: never prune it
                trial.report(float(np.mean(values)), step)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        return float(np.mean(values))

    return objective


# --------------------------------------------------------------------------- the loop
def _counted(trials: Iterable[Any]) -> list[Any]:
    """Trials that used up budget: complete, pruned, or failed by their own error (a trial
    killed or interrupted mid-way is not counted; it is asked again)."""
    from optuna.trial import TrialState

    return [
        t
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and "error" in t.user_attrs)
    ]


def _study(optuna: Any, storage: Any, settings: TuneSettings, seed: int, done: int) -> Any:
    sampler = optuna.samplers.TPESampler(
        seed=_trial_seed(seed, done), n_startup_trials=_startup_trials(settings.trials)
    )
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=_startup_trials(settings.trials))
        if settings.prune
        else optuna.pruners.NopPruner()
    )
    return optuna.Study(study_name=STUDY_NAME, storage=storage, sampler=sampler, pruner=pruner)


def _run_trials(
    optuna: Any,
    storage: Any,
    objective: Callable[[Any], float],
    settings: TuneSettings,
    seed: int,
    n_folds: int,
    callbacks: TuneCallbacks,
    after_trial: Callable[[Any], None] = lambda study: None,
) -> None:
    """Ask, evaluate and tell trials one by one until ``settings.trials`` are counted."""
    from optuna.trial import TrialState

    study = _study(optuna, storage, settings, seed, 0)
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(stale.number, state=TrialState.FAIL)  # a killed run's trial in flight
    callbacks.plan(len(_counted(study.get_trials(deepcopy=False))), settings.trials)
    while True:
        done = len(_counted(study.get_trials(deepcopy=False)))
        if done >= settings.trials:
            return
        study = _study(optuna, storage, settings, seed, done)
        trial = study.ask()
        callbacks.trial_start(done + 1, settings.trials, n_folds)
        t0 = time.perf_counter()
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            trial.set_user_attr("seconds", time.perf_counter() - t0)
            state = study.tell(trial, state=TrialState.PRUNED).state
        except (UserError, KeyboardInterrupt):
            study.tell(trial, state=TrialState.FAIL)  # not counted: asked again on resume
            raise
        except Exception as exc:  # a diverging configuration, say: record it and go on
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            state = study.tell(trial, state=TrialState.FAIL).state
        else:
            trial.set_user_attr("seconds", time.perf_counter() - t0)
            if np.isfinite(value):
                state = study.tell(trial, value).state
            else:  # Optuna fails a NaN value itself; counted here, so the loop always ends
                trial.set_user_attr("error", f"the trial's {settings.metric} is {value}")
                state = study.tell(trial, state=TrialState.FAIL).state
        after_trial(study)
        callbacks.trial_end(done + 1, settings.trials, _best_value(study), state.name.lower())


def _best_value(study: Any) -> float | None:
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return float(study.best_value)


def _best(study: Any, space: dict[str, Param]) -> tuple[int, float, dict[str, Any]]:
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        errors = [t.user_attrs["error"] for t in study.trials if "error" in t.user_attrs]
        hint = f" The first error: {errors[0]}" if errors else ""
        raise RuntimeError(f"no trial finished, so there is no best configuration.{hint}")
    best = study.best_trial
    return best.number, float(best.value), decode(best.params, space)


def _direction(metric: str) -> str:
    return "maximize" if METRICS[metric].higher_is_better else "minimize"


# --------------------------------------------------------------------------- bench --tune
def tune_fold(
    cfg: RunConfig,
    data: EmotionDataset,
    protocol: Protocol,
    fold: Fold,
    settings: TuneSettings,
    *,
    seed: int,
    callbacks: TuneCallbacks | Callbacks | None = None,
    study: str | Path | None = None,
) -> tuple[RunConfig, dict[str, Any]]:
    """Search ``settings.trials`` trials on ``fold``'s training part.

    ``study``: a SQLite file that holds the search while it runs, so that a killed run
    resumes it (finished trials are kept, one in flight is asked again); None, or a path
    this machine cannot write, keeps it in memory. Returns the best configuration and what
    to record about the choice.
    """
    optuna = require_optuna()
    callbacks = _tune_callbacks(callbacks)
    space = search_space(cfg, settings)
    storage = _fold_storage(optuna, study)
    optuna.create_study(
        storage=storage,
        study_name=STUDY_NAME,
        direction=_direction(settings.metric),
        load_if_exists=True,
    )
    objective = _objective(cfg, data, protocol, [fold], space, settings, seed, callbacks)
    _run_trials(optuna, storage, objective, settings, seed, 1, callbacks)
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    number, value, params = _best(study, space)
    info = {
        "trials": settings.trials,
        "metric": settings.metric,
        "best_trial": number,
        "inner_value": value,
        "params": params,
        "states": _states(study),
    }
    return with_params(cfg, params), info


def _fold_storage(optuna: Any, study: str | Path | None) -> Any:
    """SQLite storage at ``study`` (its folder made), else in memory."""
    if study is not None:
        try:
            Path(study).parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.RDBStorage(f"sqlite:///{Path(study).resolve()}")
        except Exception:  # a remote worker without the run directory: search in memory
            pass
    return optuna.storages.InMemoryStorage()


def run_tuned_fold(
    cfg: RunConfig,
    data: EmotionDataset,
    protocol: Protocol,
    fold: Fold,
    settings: TuneSettings,
    *,
    seed: int,
    callbacks: Callbacks | None = None,
    study: str | Path | None = None,
) -> tuple[FoldResult, FoldPredictions]:
    """One fold of the nested estimate: tune on the training part (the search kept in
    ``study`` if given, see :func:`tune_fold`), then score the test part with the chosen
    configuration trained on the whole training part."""
    best_cfg, info = tune_fold(
        cfg, data, protocol, fold, settings, seed=seed, callbacks=callbacks, study=study
    )
    result, preds = run_fold(best_cfg, data, protocol, fold, seed=seed, callbacks=callbacks)
    result.fit_info = {**result.fit_info, "tuning": info}
    return result, preds


def _tune_callbacks(callbacks: TuneCallbacks | Callbacks | None) -> TuneCallbacks:
    if isinstance(callbacks, TuneCallbacks):
        return callbacks
    inner = callbacks or Callbacks()

    class _Forward(TuneCallbacks):  # bench's fold/epoch hooks; inner fits are not its folds
        trial = ""

        def trial_start(self, number, total, n_folds):
            self.trial = f" trial {number}/{total}"

        def fold_start(self, method, fold, n_folds):
            inner.fold_start(f"{method} (tuning{self.trial})", fold, n_folds)

        def epoch(self, epoch, total, record):
            inner.epoch(epoch, total, record)

    return _Forward()


# --------------------------------------------------------------------------- affectkit tune
def study_spec(cfg: RunConfig, space: dict[str, Param], settings: TuneSettings) -> dict[str, Any]:
    """What a study's trials depend on; a resumed study must match it."""
    return {
        "method": cfg.method.model_dump(mode="json"),
        "train": method_train_config(cfg).model_dump(mode="json"),
        "dataset": cfg.dataset.model_dump(mode="json"),
        "protocol": cfg.protocol.model_dump(mode="json"),
        "seed": cfg.seed,
        "space": space_json(space),
        "metric": settings.metric,
        "valid_fraction": _valid_fraction(cfg, settings),
    }


def _open_study(optuna: Any, out: Path, spec: dict[str, Any], overwrite: bool) -> Any:
    """The study's storage in ``out``: created, or resumed when its spec matches."""
    path = out / STUDY_FILE
    text = json.dumps(spec, sort_keys=True)

    def discard() -> None:
        path.unlink(missing_ok=True)
        for name in (BEST_FILE, TRIALS_FILE):
            (out / name).unlink(missing_ok=True)

    try:
        storage = optuna.storages.RDBStorage(f"sqlite:///{path.resolve()}")
        names = optuna.get_all_study_names(storage)
    except Exception as exc:
        if not overwrite:
            raise UserError(
                f"{path} is not a readable Optuna study ({type(exc).__name__}: {exc}). Use "
                "another --out, or pass --overwrite to replace it."
            ) from None
        discard()
        return _open_study(optuna, out, spec, overwrite=False)
    if STUDY_NAME in names:
        old = optuna.load_study(study_name=STUDY_NAME, storage=storage).user_attrs.get("spec")
        if old == text:
            return storage
        if old is not None and not overwrite:
            before = json.loads(old)
            differ = [k for k in spec if before.get(k) != json.loads(text)[k]]
            raise UserError(
                f"{out} holds a study of another configuration (it differs in: "
                f"{', '.join(differ) or 'its settings'}). Re-run with the settings it was made "
                "with, use another --out, or pass --overwrite to discard its trials."
            )
        # another configuration with --overwrite, or a study killed before it was tagged
        discard()
        return _open_study(optuna, out, spec, overwrite=False)
    study = optuna.create_study(
        storage=storage, study_name=STUDY_NAME, direction=_direction(spec["metric"])
    )
    study.set_user_attr("spec", text)
    return storage


def tune(
    cfg: RunConfig,
    out: str | Path,
    settings: TuneSettings,
    *,
    overwrite: bool = False,
    use_cache: bool = True,
    callbacks: TuneCallbacks | None = None,
    data: EmotionDataset | None = None,
    threads: int | None = None,
) -> TuneResult:
    """Run (or resume) the study in ``out`` until ``settings.trials`` trials are counted.

    ``study.sqlite3`` holds every trial as it ends; ``trials.csv`` and ``best.yaml`` are
    rewritten (atomically) after each one, so a kill loses at most the trial in flight.
    """
    from .datasets import load_dataset
    from .executors import torch_threads
    from .results import ResultsStore

    optuna = require_optuna()
    callbacks = callbacks or TuneCallbacks()
    space = search_space(cfg, settings)  # bad spaces are refused before any work
    spec = study_spec(cfg, space, settings)
    out = Path(out)
    lock = ResultsStore(out)
    with lock.lock():
        lock.clean_temp()
        storage = _open_study(optuna, out, spec, overwrite)
        reused = len(_counted(optuna.load_study(study_name=STUDY_NAME, storage=storage).trials))
        data = data if data is not None else load_dataset(cfg.dataset, use_cache=use_cache)
        data.require_labels("tune")
        protocol = build_protocol(cfg)
        folds = protocol.folds(data)
        objective = _objective(cfg, data, protocol, folds, space, settings, cfg.seed, callbacks)

        def write(study: Any) -> None:
            write_outputs(out, cfg, space, settings, study)

        with torch_threads(threads):
            _run_trials(
                optuna, storage, objective, settings, cfg.seed, len(folds), callbacks, write
            )
        study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
        write(study)
        number, value, params = _best(study, space)
    return TuneResult(out, settings.metric, value, number, params, _states(study), reused, space)


def _states(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    return counts


def best_config(cfg: RunConfig, params: dict[str, Any]) -> dict[str, Any]:
    """A complete run config (resolved ``train`` included) with the searched values set."""
    best = with_params(cfg, params)
    data = best.model_dump(mode="json", exclude={"output"})
    data["train"] = method_train_config(best).model_dump(mode="json")
    return data


def write_outputs(
    out: Path, cfg: RunConfig, space: dict[str, Param], settings: TuneSettings, study: Any
) -> None:
    """``best.yaml`` (once a trial completed), then ``trials.csv`` (every trial).

    Ctrl-C is held until both are written, so that they always describe the same trials.
    """
    from .bench import _sigint_deferred

    with _sigint_deferred():
        if _best_value(study) is not None:
            write_text(out / BEST_FILE, best_yaml(out, cfg, space, settings, study))
        write_text(out / TRIALS_FILE, trials_csv(study, space))


def best_yaml(
    out: Path, cfg: RunConfig, space: dict[str, Param], settings: TuneSettings, study: Any
) -> str:
    """The best trial as a complete run config, with a header saying where it came from."""
    number, value, params = _best(study, space)
    n_folds = len(study.best_trial.user_attrs.get("fold_values", []))
    header = (
        f"# affectkit tune: best of {len(_counted(study.trials))} trial(s) is trial {number}: mean "
        f"inner-validation {settings.metric} {value:.6g} over {n_folds} outer fold(s)\n"
        f"# searched: {', '.join(f'{k}={json.dumps(v)}' for k, v in params.items())}\n"
        f"# run it: affectkit bench --config {out / BEST_FILE}\n"
    )
    return header + yaml.safe_dump(best_config(cfg, params), sort_keys=False)


def trials_csv(study: Any, space: dict[str, Param]) -> str:
    keys = list(space)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["number", "state", "value", *keys, "fold_values", "seconds", "error"])
    for t in study.get_trials(deepcopy=False):
        params = decode(t.params, space)
        w.writerow(
            [
                t.number,
                t.state.name.lower(),
                "" if t.value is None else repr(float(t.value)),
                *(json.dumps(params[k]) if k in params else "" for k in keys),
                ";".join(repr(v) for v in t.user_attrs.get("fold_values", [])),
                f"{t.user_attrs['seconds']:.2f}" if "seconds" in t.user_attrs else "",
                t.user_attrs.get("error", ""),
            ]
        )
    return buf.getvalue()
