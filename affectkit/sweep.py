"""``affectkit bench --sweep KEY=V1,V2,...``: one bench run per value, plus reference runs.

The calibration curve is the main use::

    affectkit bench -m all -d wesad -p subject-calibrated \\
        --sweep protocol.calibration_fraction=0,0.05,0.1,0.2 --out runs/calibration

Layout of the sweep directory (every part an ordinary, resumable bench run directory)::

    sweep.json                          what was swept, the points, the reference runs
    calibration_fraction=0.05/ ...      one run directory per value
    reference-subject-independent/      the same methods under each reference protocol
    sweep.md                            the curve as tables (affectkit.report.write_sweep_report)
    figures/sweep.png                   the curve (with matplotlib)

A reference run uses the reference protocol's defaults: the sweep's ``protocol.*`` settings
are not carried over (they belong to the swept protocol), everything else is; a
``subject-calibrated`` sweep's ``subject-independent`` reference is leave-one-subject-out
like every point of the curve (:data:`MATCHED_SPLITS`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .io import write_json

SWEEP_FILE = "sweep.json"
#: references a sweep of ``subject-calibrated`` gets unless told otherwise
CALIBRATION_REFERENCES = ("subject-independent", "subject-dependent")
#: (swept protocol, reference protocol) -> settings the reference takes so that it splits
#: the subjects as the swept protocol does. subject-calibrated is always
#: leave-one-subject-out, so its subject-independent reference is too: a dataset's own
#: default (synthetic: 4 folds) would train the reference on fewer subjects than every
#: point of the curve, and "0 % calibration" would no longer equal it fold for fold
MATCHED_SPLITS: dict[tuple[str, str], dict[str, Any]] = {
    ("subject-calibrated", "subject-independent"): {"folds": None},
}


def parse_sweep(spec: str) -> tuple[str, list[Any]]:
    """``"protocol.calibration_fraction=0,0.05"`` -> (key, [0, 0.05]); each value is
    parsed as ``--set`` parses one (YAML scalar)."""
    key, sep, raw = spec.partition("=")
    key = key.strip()
    values = [v.strip() for v in raw.split(",")]
    if not sep or not key or not all(values):
        raise UserError(
            f"--sweep {spec!r}: expected KEY=V1,V2,..., e.g. --sweep "
            "protocol.calibration_fraction=0,0.05,0.1,0.2"
        )
    if len(set(values)) != len(values):
        raise UserError(f"--sweep {spec!r}: a value is listed twice.")
    return key, [yaml.safe_load(v) for v in values]


def point_dir(key: str, value: Any) -> str:
    """The run directory name of one sweep value (the key's last part, then the value)."""
    return f"{key.rsplit('.', 1)[-1]}={value}"


def default_references(protocol: str) -> list[str]:
    return list(CALIBRATION_REFERENCES) if protocol == "subject-calibrated" else []


def bench_sweep(
    spec: str,
    references: str | None,
    run_dir: str | Path,
    *,
    methods: Sequence[str | None],
    files: Sequence[str | Path],
    flags: dict[str, Any],
    overrides: Sequence[str],
    default_method: str | None,
    run: Callable[[list[Any], Path, Any], dict[str, Any]],
    use_cache: bool = True,
) -> dict[str, Any]:
    """``affectkit bench --sweep SPEC [--references P,Q]``: resolve, then :func:`run_sweep`.

    ``references`` None = the default for the swept protocol (subject-independent and
    subject-dependent for subject-calibrated), ``"none"`` = no reference run.
    """
    from .bench import resolve_configs
    from .plugins import get_registry

    key, values = parse_sweep(spec)

    def configs_for(items: list[str], protocol: str | None) -> list[Any]:
        f = dict(flags)
        if protocol is not None:  # a reference run; ``swept`` is known by then
            f["protocol"] = {"name": protocol, **MATCHED_SPLITS.get((swept, protocol), {})}
        return resolve_configs(
            methods, files=files, flags=f, overrides=items, default_method=default_method
        )

    swept = configs_for(list(overrides), None)[0].protocol.name
    if references is None:
        refs = default_references(swept)
    else:
        refs = [r.strip() for r in references.split(",") if r.strip() and r.strip() != "none"]
        for r in refs:
            get_registry().get("protocol", r)  # an unknown name stops here, with suggestions
    return run_sweep(
        key,
        values,
        run_dir,
        configs_for=configs_for,
        overrides=overrides,
        references=refs,
        run=run,
        use_cache=use_cache,
    )


def run_sweep(
    key: str,
    values: Sequence[Any],
    run_dir: str | Path,
    *,
    configs_for: Callable[[list[str], str | None], list[Any]],
    overrides: Sequence[str],
    references: Sequence[str],
    run: Callable[[list[Any], Path, Any], dict[str, Any]],
    use_cache: bool = True,
) -> dict[str, Any]:
    """Every value of ``key``, then every reference protocol, each into its own directory.

    ``configs_for(overrides, protocol)`` resolves the run configs of the methods (with the
    protocol replaced when ``protocol`` is given); ``run(configs, directory, data)`` runs
    one bench. Every point's config is resolved, and its folds are cut, before any work:
    a bad value (or a protocol the data cannot serve) stops the sweep with nothing run.
    """
    from .datasets import load_dataset
    from .evaluate import build_protocol

    run_dir = Path(run_dir)
    points = []
    for v in values:
        item = f"{key}={v}"
        points.append((point_dir(key, v), configs_for([*overrides, item], None)))
    kept = [o for o in overrides if not o.strip().startswith("protocol.")]
    refs = [(f"reference-{p}", configs_for(kept, p)) for p in references]
    meta = {
        "key": key,
        "values": list(values),
        "points": [d for d, _ in points],
        "references": {p: d for p, (d, _) in zip(references, refs, strict=True)},
        "protocol": points[0][1][0].protocol.name,
    }
    data = load_dataset(points[0][1][0].dataset, use_cache=use_cache)
    data.require_labels("bench --sweep")
    for _, configs in [*points, *refs]:
        build_protocol(configs[0]).folds(data)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / SWEEP_FILE, meta)
    results = {}
    for directory, configs in [*points, *refs]:
        results[directory] = run(configs, run_dir / directory, data)
    return {"sweep": meta, "runs": results}
