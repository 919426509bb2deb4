"""``affectkit bench``: every selected method through the shared evaluator, one table."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import RunConfig, apply_overrides, deep_merge, read_config_file, validate_run_config
from .data import EmotionDataset
from .datasets import load_dataset
from .errors import UserError
from .evaluate import (
    Callbacks,
    FoldResult,
    build_protocol,
    config_hash,
    method_train_config,
    run_fold,
    summarize,
)
from .plugins import get_registry
from .results import ResultsStore, versions

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


def resolve_configs(
    methods: Sequence[str],
    *,
    files: Iterable[str | Path] = (),
    flags: dict[str, Any] | None = None,
    overrides: Sequence[str] = (),
) -> list[RunConfig]:
    """Per method: reader defaults < config files < CLI flags < --set, validated."""
    file_raw: dict[str, Any] = {}
    for f in files:
        file_raw = deep_merge(file_raw, read_config_file(f))
    out = []
    for m in methods or [None]:
        layer = deep_merge(file_raw, flags or {})
        if m is not None:
            layer = deep_merge(layer, {"method": {"name": m}})
        layer = apply_overrides(layer, overrides)
        ds_name = (layer.get("dataset") or {}).get("name", "synthetic")
        defaults: dict[str, Any] = {"dataset": {"name": ds_name}}
        if ("dataset", ds_name) in get_registry():
            factory = get_registry().get("dataset", ds_name).factory
            proto_defaults = dict(getattr(factory, "protocol_defaults", {}))
            proto = (layer.get("protocol") or {}).get("name", "subject-independent")
            if proto_defaults.get("name", "subject-independent") == proto:
                defaults["protocol"] = {**proto_defaults, "name": proto}
        out.append(validate_run_config(deep_merge(defaults, layer)))
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
) -> tuple[dict[str, Any], Path]:
    if not configs:
        raise UserError("nothing to run")
    first = configs[0]
    callbacks = callbacks or Callbacks()
    seeds = list(seeds) if seeds else [first.seed]
    run_dir = Path(run_dir or first.output.dir or default_run_dir())
    store = ResultsStore(run_dir, overwrite=overwrite or first.output.overwrite)
    t_load = time.perf_counter()
    data = data if data is not None else load_dataset(first.dataset, use_cache=use_cache)
    load_seconds = time.perf_counter() - t_load
    protocol = build_protocol(first)
    folds = protocol.folds(data)
    results: dict[str, Any] = {
        "affectkit_version": versions()["affectkit"],
        "dataset": first.dataset.name,
        "n_samples": len(data),
        "emotions": list(data.emotions),
        "protocol": first.protocol.name,
        "protocol_description": protocol.describe(data),
        "leaky": bool(type(protocol).leaky),
        "config": first.model_dump(mode="json", exclude={"method"}),
        "seed": seeds[0],
        "seeds": seeds,
        "versions": versions(),
        "dataset_load_seconds": load_seconds,
        "methods": {},
    }
    for cfg in configs:
        name = cfg.method.name
        chash = config_hash(cfg)
        mcfg = {
            "method": cfg.method.model_dump(mode="json"),
            "train": method_train_config(cfg).model_dump(mode="json"),
        }
        store.begin_method(name, mcfg, chash)
        all_folds: list[FoldResult] = []
        per_seed: dict[str, Any] = {}
        for seed in seeds:
            seed_folds = []
            for fold in folds:
                done = store.load_fold(name, seed, fold.index, chash)
                if done is None:
                    callbacks.fold_start(name, fold, len(folds))
                    done, preds = run_fold(cfg, data, protocol, fold, seed=seed, callbacks=callbacks)
                    store.save_fold(name, seed, done, preds, chash)
                    callbacks.fold_end(name, done)
                seed_folds.append(done)
            all_folds += seed_folds
            per_seed[str(seed)] = summarize(seed_folds)
        results["methods"][name] = {
            **mcfg,
            "config_hash": chash,
            "tags": sorted(get_registry().get("method", name).tags),
            "folds": [
                {**f.to_json(), "run_seed": s}
                for s, f in zip(np.repeat(seeds, len(folds)).tolist(), all_folds, strict=True)
            ],
            "summary": summarize(all_folds),
            "seed_summary": _over_seeds(per_seed),
        }
        store.write_summaries(results)
    return results, run_dir


def _over_seeds(per_seed: dict[str, Any]) -> dict[str, Any]:
    """Mean ± std over the per-seed fold means."""
    out: dict[str, Any] = {}
    for metric in next(iter(per_seed.values())):
        vals = np.array([s[metric]["mean"] for s in per_seed.values()])
        out[metric] = {"mean": float(vals.mean()), "std": float(vals.std()), "n_seeds": len(vals)}
    return out
