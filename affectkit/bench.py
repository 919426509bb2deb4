"""``affectkit bench``: every selected method through the shared evaluator, one table."""

from __future__ import annotations

import contextlib
import datetime as _dt
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import (
    MAX_SEED,
    Layer,
    RunConfig,
    apply_overrides,
    deep_merge,
    override_layer,
    read_config_file,
    validate_run_config,
)
from .data import EmotionDataset
from .datasets import load_dataset
from .errors import UserError
from .evaluate import (
    Callbacks,
    FoldPredictions,
    FoldResult,
    build_method,
    build_protocol,
    method_train_config,
)
from .executors import Executor, FoldJob, method_cost
from .io import check_writable_dir
from .plugins import get_registry
from .results import ResultsStore, method_entry, results_hash, run_key, versions

if TYPE_CHECKING:
    from .tuning import TuneSettings

GROUP_NAMES = {"all": None, "baselines": "baseline"}


def expand_methods(spec: str | Sequence[str]) -> list[str]:
    """``"prior,mlp"`` -> names; ``all`` = every method, ``baselines`` = tagged baselines."""
    reg = get_registry()
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for raw in items:
        name = raw.strip()
        if not name:
            continue
        if name in GROUP_NAMES:
            tag = GROUP_NAMES[name]
            found = reg.names("method", tag=tag) if tag else reg.names("method")
            out += [n for n in found if n not in out]
        else:
            reg.get("method", name)  # raises with "did you mean"
            if name not in out:
                out.append(name)
    if not out:
        raise UserError("no method selected; pass --method NAME[,NAME...] (or all, baselines).")
    return out


def configured_method(files: Iterable[str | Path]) -> str | None:
    """The method named by the config files (the last one naming one), if any: without
    --method, ``bench --config best.yaml`` runs the file's method, not the default one."""
    name = None
    for f in files:
        method = read_config_file(f).get("method")
        if isinstance(method, dict) and method.get("name"):
            name = str(method["name"])
        elif isinstance(method, str):
            name = method
    return name


def resolve_configs(
    methods: Sequence[str | None],
    *,
    files: Iterable[str | Path] = (),
    flags: dict[str, Any] | None = None,
    overrides: Sequence[str] = (),
    default_method: str | None = None,
) -> list[RunConfig]:
    """Per method: reader defaults < config files < CLI flags < --set, validated.

    A ``None`` in ``methods`` (or no methods) takes the method the files or ``--set`` name,
    else ``default_method`` (else :class:`RunConfig`'s default). Validation errors name the
    file or option each bad value came from.
    """
    file_layers: list[Layer] = [(str(f), read_config_file(f)) for f in files]
    override_layers: list[Layer] = [(f"--set {o}", override_layer(o)) for o in overrides]
    out = []
    for m in methods or [None]:
        layers = [*file_layers, ("command-line options", flags or {})]
        if m is not None:
            layers.append(("--method", {"method": {"name": m}}))
        layer: dict[str, Any] = {}
        for _, part in layers:
            layer = deep_merge(layer, part)
        layer = apply_overrides(layer, overrides)
        ds_name = (layer.get("dataset") or {}).get("name", "synthetic")
        defaults: dict[str, Any] = {"dataset": {"name": ds_name}}
        if ("dataset", ds_name) in get_registry():
            factory = get_registry().get("dataset", ds_name).factory
            proto_defaults = dict(getattr(factory, "protocol_defaults", {}))
            proto = (layer.get("protocol") or {}).get("name", "subject-independent")
            if proto_defaults.get("name", "subject-independent") == proto:
                defaults["protocol"] = {**proto_defaults, "name": proto}
        method_section = layer.get("method")
        if default_method and not (isinstance(method_section, dict) and "name" in method_section):
            layer = deep_merge({"method": {"name": default_method}}, layer)
        layers = [(f"defaults of dataset {ds_name}", defaults), *layers, *override_layers]
        out.append(validate_run_config(deep_merge(defaults, layer), layers=layers))
    return out


def default_run_dir() -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / stamp


def run_bench(
    configs: Sequence[RunConfig],
    *,
    seeds: Sequence[int] | None = None,
    run_dir: str | Path | None = None,
    overwrite: bool = False,
    use_cache: bool = True,
    callbacks: Callbacks | None = None,
    data: EmotionDataset | None = None,
    executor: Executor | None = None,
    tune: TuneSettings | None = None,
    skip_unfit: bool = False,
) -> tuple[dict[str, Any], Path]:
    """Run every (method, seed, fold) job not already finished in ``run_dir``.

    ``skip_unfit`` (``--method all`` / ``baselines``): a method that refuses this dataset
    when it is built (e.g. dgcnn without EEG channels) is left out with its reason, recorded
    in results.json as ``skipped_methods``, instead of stopping the whole run.

    Each finished fold is stored at once and results.json/summary.* are rewritten after
    it, so a killed run loses at most the folds in flight; the same call resumes it.
    Stored methods of the same dataset/protocol that this call does not run stay in the
    tables when they are complete for these seeds.

    ``tune`` gives the nested estimate: each fold job of a method with a search space first
    tunes on the fold's training part (:func:`affectkit.tuning.run_tuned_fold`).
    """
    if not configs:
        raise UserError("nothing to run")
    first = configs[0]
    callbacks = callbacks or Callbacks()
    executor = executor or Executor()
    seeds = list(dict.fromkeys(seeds)) if seeds else [first.seed]
    bad = [
        s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED
    ]
    if bad:
        raise UserError(
            f"seed {bad[0]!r} is out of range: seeds are whole numbers from 0 to {MAX_SEED}, "
            "e.g. --seeds 0,1,2."
        )
    run_dir = Path(run_dir or first.output.dir or default_run_dir())
    nested = tune.to_json(pinned=False) if tune is not None else None
    tuned = _tuned_methods(configs, tune)
    key = run_key(first, nested)
    for cfg in configs[1:]:
        if run_key(cfg, nested) != key:
            raise UserError(
                f"methods {first.method.name!r} and {cfg.method.name!r} resolve to different "
                "dataset or protocol settings; one run directory holds one dataset and "
                "protocol. Run them separately with different --out."
            )
    check_writable_dir(run_dir, "--out")
    store = ResultsStore(run_dir, overwrite=overwrite or first.output.overwrite)
    with store.lock():
        hashes = {cfg.method.name: results_hash(cfg) for cfg in configs}
        store.check_run(key)  # refuse before any work or deletion
        store.check_methods(hashes)
        store.clean_temp()  # only once the run is accepted: a refused run deletes nothing
        t_load = time.perf_counter()
        data = data if data is not None else load_dataset(first.dataset, use_cache=use_cache)
        data.require_labels("bench")
        load_seconds = time.perf_counter() - t_load
        skipped: dict[str, str] = {}
        if skip_unfit:
            configs, skipped = _fitting_methods(configs, data)
        protocol = build_protocol(first)
        folds = protocol.folds(data)
        n_folds = len(folds)
        header: dict[str, Any] = {
            "affectkit_version": versions()["affectkit"],
            "dataset": first.dataset.name,
            "n_samples": len(data),
            "emotions": list(data.emotions),
            "subjects": data.subjects,
            "protocol": first.protocol.name,
            "protocol_description": protocol.describe(data)
            + (f"; {tune.label()}" if tune is not None else ""),
            "leaky": bool(type(protocol).leaky),
            "transductive": bool(protocol.transductive),
            "n_folds": n_folds,
            "fold_names": [f.name for f in folds],
            "config": first.model_dump(mode="json", exclude={"method", "output"}),
            "seed": seeds[0],
            "seeds": seeds,
            "versions": versions(),
            "dataset_load_seconds": load_seconds,
        }
        if skipped:
            header["skipped_methods"] = skipped
        if nested is not None:
            header["nested"] = {**nested, "tuned_methods": sorted(tuned)}
        store.begin_run(
            key, {k: header[k] for k in ("dataset", "protocol", "protocol_description")}
        )

        records: dict[str, dict[str, Any]] = {}
        done: dict[str, dict[tuple[int, int], FoldResult]] = {}
        tags: dict[str, list[str]] = {}
        for cfg in configs:
            name = cfg.method.name
            mcfg = {
                "method": cfg.method.model_dump(mode="json"),
                "train": method_train_config(cfg).model_dump(mode="json"),
            }
            if name in tuned:
                mcfg["tune"] = nested
            store.begin_method(name, mcfg, hashes[name])
            records[name] = {"config": mcfg, "config_hash": hashes[name]}
            done[name] = store.completed_folds(name, hashes[name], seeds, n_folds)
            tags[name] = sorted(get_registry().get("method", name).tags)
        for name in store.stored_methods():
            record = store.method_record(name)
            if name in records or record is None:
                continue
            old = store.completed_folds(name, record.get("config_hash", ""), seeds, n_folds)
            if len(old) == len(seeds) * n_folds:
                records[name], done[name] = record, old
                reg = get_registry()
                tags[name] = sorted(reg.get("method", name).tags) if ("method", name) in reg else []

        stored = store.stored_methods()  # first-run order, so tables keep a stable layout
        order = [m for m in stored if m in records] + [m for m in records if m not in stored]
        reused = sum(len(done[cfg.method.name]) for cfg in configs)

        def job(cfg: RunConfig, seed: int, fold: int) -> FoldJob:
            name, tuned_here = cfg.method.name, cfg.method.name in tuned
            return FoldJob(
                method=name,
                config=cfg.model_dump(mode="json", exclude_unset=True, exclude={"output"}),
                seed=seed,
                fold=fold,
                config_hash=hashes[name],
                threads=executor.job_threads(),
                tune=tune.to_json() if tuned_here and tune is not None else None,
                # the inner search is stored as it goes: a killed run resumes it
                tune_study=(
                    str(store.tuning_study(name, hashes[name], seed, fold)) if tuned_here else None
                ),
            )

        jobs = [
            job(cfg, seed, fold.index)
            for cfg in configs
            for seed in seeds
            for fold in folds
            if (seed, fold.index) not in done[cfg.method.name]
        ]
        # costliest methods first (Method.fold_cost; a stable sort keeps each method's jobs
        # in order): a pool then ends on short jobs instead of on one long fold
        cost = {cfg.method.name: method_cost(cfg.method.name) for cfg in configs}
        jobs.sort(key=lambda j: -cost[j.method])
        executor = executor.resolve(jobs, data)  # --executor auto decides here
        invocation = {
            "executor": executor.describe(),
            "jobs": len(jobs),
            "computed_folds": 0,
            "reused_folds": reused,
        }
        if executor.reason:
            invocation["executor_reason"] = executor.reason

        def assemble() -> dict[str, Any]:
            return {
                **header,
                "complete": all(len(d) == len(seeds) * n_folds for d in done.values()),
                "last_invocation": dict(invocation),
                # a method enters the tables with its first finished fold
                "pending_methods": [name for name in order if not done[name]],
                "methods": {
                    name: method_entry(records[name], done[name], seeds, n_folds, tags[name])
                    for name in order
                    if done[name]
                },
            }

        def on_done(job: FoldJob, result: FoldResult, preds: FoldPredictions) -> None:
            with _sigint_deferred():  # the fold and the summaries that count it, or neither
                store.save_fold(
                    job.method,
                    job.seed,
                    result,
                    preds,
                    job.config_hash,
                    extra={"threads": job.threads, "executor": executor.name},
                )
                done[job.method][(job.seed, job.fold)] = result
                invocation["computed_folds"] += 1
                store.write_summaries(assemble())
            callbacks.fold_end(job.method, result)

        plan = getattr(callbacks, "plan", None)
        if plan is not None:
            plan(len(jobs), reused)
        store.write_summaries(assemble())
        executor.run(jobs, data, on_done, callbacks)
        results = assemble()
        store.write_summaries(results)
    return results, run_dir


def _fitting_methods(
    configs: Sequence[RunConfig], data: EmotionDataset
) -> tuple[list[RunConfig], dict[str, str]]:
    """The configs whose method accepts ``data`` when built, and {name: reason} for the rest."""
    kept, skipped = [], {}
    for cfg in configs:
        try:
            build_method(cfg, data.spec, cfg.seed)
        except UserError as exc:
            skipped[cfg.method.name] = str(exc)
        else:
            kept.append(cfg)
    if not kept:
        reasons = "; ".join(f"{m}: {why}" for m, why in skipped.items())
        raise UserError(f"no selected method can run on this dataset ({reasons})")
    return kept, skipped


def _tuned_methods(configs: Sequence[RunConfig], tune: TuneSettings | None) -> set[str]:
    """Methods ``bench --tune`` tunes: those declaring a search space (checked before any
    work); the others (e.g. prior) have nothing to tune and run as they are."""
    if tune is None:
        return set()
    from .search import declared_space
    from .tuning import require_optuna, search_space

    require_optuna()
    out = set()
    for cfg in configs:
        if declared_space(cfg.method.name):
            search_space(cfg, tune)
            out.add(cfg.method.name)
    return out


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C until the block ends (a few file writes), then raise it.

    A KeyboardInterrupt between writing a fold and rewriting results.json would leave the
    summaries one fold behind the fold files. Only the main thread can handle signals;
    elsewhere the block runs unguarded.
    """
    current = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or current in (
        signal.SIG_IGN,
        signal.SIG_DFL,
        None,
    ):
        yield  # not ours to handle (e.g. a background job started with SIGINT ignored)
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
