"""Results store: one atomic file per finished fold, resume, and run summaries.

Layout of a run directory::

    run.json                                   # dataset + protocol the folds belong to
    results.json  summary.md  summary.csv      # rewritten after every finished fold
    methods/<method>/config.json               # config + hash the folds were made with
    methods/<method>/seed-<s>/fold-<i>.npz     # test predictions, targets, metadata
    methods/<method>/seed-<s>/fold-<i>.json    # metrics, timings, seed, versions (written last)

Every file is written to a temp file and renamed, so a killed run leaves either the old
file or the new one, never half of one. A fold is finished when its ``.json`` (written
after its ``.npz``) exists with the current config hash; anything else is recomputed. The
hash leaves out the seed because the seed is part of the fold's path: ``--seeds 0,1``
after ``--seed 0`` reuses seed 0's folds.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import hashlib
import io
import json
import logging
import os
import platform
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import RunConfig
from .errors import UserError
from .evaluate import FoldPredictions, FoldResult, config_hash, summarize
from .io import atomic_write, write_json, write_text
from .metrics import METRIC_NAMES, METRICS
from .significance import MARKER_LEGEND, best_method, cell_marker, paired_tests

log = logging.getLogger("affectkit")

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
FOLD_ARRAYS = ("pred", "target", "subject", "trial", "window")
RUN_SUMMARIES = ("results.json", "summary.md", "summary.csv", "report.md", "per_subject.csv")
# written by affectkit.report into figures/ (named here so that clean_temp knows them)
REPORT_FIGURES = ("metrics.png", "distributions.png", "cooccurrence.png", "subjects.png")


def versions() -> dict[str, Any]:
    """Versions that can change the numbers; ``plugins`` maps each third-party plugin
    distribution loaded to its version (affectkit's own plugins share its version)."""
    import torch

    from . import __version__
    from .plugins import get_plugin_manager

    return {
        "affectkit": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "plugins": get_plugin_manager().plugin_versions(),
    }


def results_hash(cfg: RunConfig) -> str:
    """Config hash a fold is stored under: everything but the seed (which is in its path)."""
    return config_hash(cfg.model_copy(update={"seed": 0}))


def run_key(cfg: RunConfig, nested: Mapping[str, Any] | None = None) -> str:
    """What every method of one run directory must share: the dataset and the protocol
    (and, for ``bench --tune``, the nested tuning settings: tuned and untuned folds never mix).
    """
    data = {
        "dataset": cfg.dataset.model_dump(mode="json"),
        "protocol": cfg.protocol.model_dump(mode="json"),
    }
    if nested is not None:
        data["nested"] = dict(nested)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return load_json(path)
    except (FileNotFoundError, DamagedFile):
        return None


class DamagedFile(UserError):
    """A file of the results store that exists but cannot be read whole."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path} is unreadable ({reason})")


def load_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; FileNotFoundError if absent, DamagedFile if unreadable."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
        raise DamagedFile(path, f"{type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise DamagedFile(path, f"a JSON {type(data).__name__}, not an object")
    return data


def read_predictions(path: Path) -> dict[str, np.ndarray]:
    """Every array of one fold's ``.npz``, read whole; DamagedFile if that fails.

    Reading each member to its end makes zipfile check its CRC, so a flipped bit or a cut
    file is caught here rather than passed on as predictions.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except Exception as exc:  # zipfile, zlib, numpy and OS errors: the file is not usable
        raise DamagedFile(path, f"{type(exc).__name__}: {exc}") from None
    missing = [k for k in FOLD_ARRAYS if k not in arrays]
    if missing:
        raise DamagedFile(path, f"no {', '.join(missing)} array")
    n = len(arrays["pred"])
    if any(arrays[k].shape[:1] != (n,) for k in FOLD_ARRAYS):
        raise DamagedFile(path, "its arrays have different lengths")
    return arrays


def warn(message: str) -> None:
    """One warning paragraph on stderr (through logging, so that it can be captured)."""
    log.warning("warning: %s", message)


class ResultsStore:
    def __init__(self, run_dir: str | Path, *, overwrite: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.overwrite = overwrite
        self._warned: set[str] = set()

    def _warn(self, message: str) -> None:
        if message not in self._warned:  # the same damage is found by more than one pass
            self._warned.add(message)
            warn(message)

    # -- exclusive use ---------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the run directory (released by the OS if killed).

        Two runs writing one directory would recompute the same folds and could delete
        each other's temp files; the second one is refused instead.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks, run unguarded
            yield
            return
        with open(self.run_dir / LOCK_FILE, "a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                raise UserError(
                    f"run directory {self.run_dir} is in use by {holder}. Wait for that run "
                    "to finish (or stop it), or pass another --out."
                ) from None
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on {platform.node()}")
            fh.flush()
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def clean_temp(self) -> int:
        """Delete temp files a killed writer of this store left behind (never read).

        Only the store's own temp names (``.<target>.<random>.tmp``, see
        :func:`affectkit.io.atomic_write`) in the folders it writes are removed: a run
        directory may hold the user's own files, and those are not ours to delete. Call it
        after the run has been accepted (:meth:`check_run`, :meth:`check_methods`).
        """
        n = 0
        for folder, targets in self._temp_places():
            pattern = re.compile(rf"^\.(?:{targets})\.[A-Za-z0-9_]+\.tmp$")
            for p in folder.iterdir() if folder.is_dir() else ():
                if pattern.match(p.name) and p.is_file() and not p.is_symlink():
                    p.unlink(missing_ok=True)
                    n += 1
        return n

    def _temp_places(self) -> Iterator[tuple[Path, str]]:
        """(folder, regex of the file names the store writes there)."""
        names = "|".join(re.escape(n) for n in (RUN_FILE, *RUN_SUMMARIES))
        yield self.run_dir, names
        yield self.run_dir / "figures", "|".join(re.escape(n) for n in REPORT_FIGURES)
        methods = self.run_dir / "methods"
        for mdir in sorted(methods.iterdir()) if methods.is_dir() else ():
            if not mdir.is_dir():
                continue
            yield mdir, re.escape("config.json")
            for sdir in sorted(mdir.iterdir()):
                if sdir.is_dir() and re.fullmatch(r"seed-\d+", sdir.name):
                    yield sdir, r"fold-\d+\.(?:npz|json)"

    # -- run and method records ------------------------------------------------------------
    def check_run(self, key: str) -> None:
        """Refuse (before any work) when this directory holds another dataset/protocol."""
        old = _read_json(self.run_dir / RUN_FILE)
        if old is None or old.get("run_key") == key or self.overwrite:
            return
        raise UserError(
            f"run directory {self.run_dir} holds results of another dataset or protocol "
            f"configuration ({old.get('protocol_description') or old.get('protocol')} on "
            f"{old.get('dataset')}). Use another --out, or pass --overwrite to discard every "
            "result in it."
        )

    def begin_run(self, key: str, info: Mapping[str, Any]) -> None:
        """Record which dataset/protocol this directory holds; discard another one's results
        (only reached with ``overwrite``, :meth:`check_run` refuses otherwise)."""
        self.check_run(key)
        path = self.run_dir / RUN_FILE
        old = _read_json(path)
        methods: list[str] = []
        if old is not None and old.get("run_key") != key:
            shutil.rmtree(self.run_dir / "methods", ignore_errors=True)
            for name in RUN_SUMMARIES:
                (self.run_dir / name).unlink(missing_ok=True)
            shutil.rmtree(self.run_dir / "figures", ignore_errors=True)
        elif old is not None:
            methods = list(old.get("methods", []))
        elif (self.run_dir / "methods").is_dir():
            methods = sorted(p.name for p in (self.run_dir / "methods").iterdir() if p.is_dir())
        write_json(path, {**info, "run_key": key, "methods": methods})

    def add_method_to_run(self, method: str) -> None:
        path = self.run_dir / RUN_FILE
        data = _read_json(path) or {}
        if method not in data.get("methods", []):
            data["methods"] = [*data.get("methods", []), method]
            write_json(path, data)

    def stored_methods(self) -> list[str]:
        """Methods with results in this directory, in the order they were first run."""
        data = _read_json(self.run_dir / RUN_FILE) or {}
        out = []
        for m in data.get("methods", []):
            if self.method_record(m) is not None:
                out.append(m)
            elif self._fold_hashes(m):
                path = self.method_dir(m) / "config.json"
                self._warn(
                    f"{path} is {self._json_problem(path)}, so method {m!r} is left out of the "
                    f"tables. Run {m!r} again with --out {self.run_dir} to rewrite it; its "
                    "finished folds made with the same configuration are kept."
                )
        return out

    def method_dir(self, method: str) -> Path:
        return self.run_dir / "methods" / method

    def tuning_study(self, method: str, config_hash: str, seed: int, fold: int) -> Path:
        """``bench --tune``: where fold ``fold``'s inner search is stored while it runs (the
        config hash in the name: a study of another configuration is never resumed)."""
        name = f"fold-{fold}.tuning-{config_hash}.sqlite3"
        return self.method_dir(method) / f"seed-{seed}" / name

    def method_record(self, method: str) -> dict[str, Any] | None:
        return _read_json(self.method_dir(method) / "config.json")

    def _fold_hashes(self, method: str) -> list[str]:
        """Config hash of every readable fold record of ``method`` (one per fold)."""
        out = []
        for path in sorted(self.method_dir(method).glob("seed-*/fold-*.json")):
            h = (_read_json(path) or {}).get("config_hash")
            if isinstance(h, str):
                out.append(h)
        return out

    @staticmethod
    def _json_problem(path: Path) -> str:
        try:
            load_json(path)
        except FileNotFoundError:
            return "missing"
        except DamagedFile as exc:
            return f"unreadable ({exc.reason})"
        return "readable"

    def check_methods(self, hashes: Mapping[str, str]) -> None:
        """Refuse (before any work) when stored folds of these methods used another config."""
        if self.overwrite:
            return
        clash = {}
        for method, chash in hashes.items():
            record = self.method_record(method)
            # without a readable config.json, each fold's own record tells its config
            old = [record.get("config_hash", chash)] if record else self._fold_hashes(method)
            other = sorted(set(old) - {chash})
            if other:
                clash[method] = (other[0], chash)
        if clash:
            what = ", ".join(f"{m!r} (hash {o} vs {n})" for m, (o, n) in clash.items())
            raise UserError(
                f"run directory {self.run_dir} already holds results of {what} made with a "
                "different configuration. Use another --out, or pass --overwrite to discard "
                "the old results of these methods."
            )

    def begin_method(self, method: str, config: dict[str, Any], chash: str) -> None:
        """Record the config of ``method``; discard folds of another config if allowed."""
        self.check_methods({method: chash})
        old = self.method_record(method)
        mdir = self.method_dir(method)
        if old is not None and old.get("config_hash") != chash:
            shutil.rmtree(mdir)  # only reached with overwrite: check_methods refuses otherwise
        elif old is None and mdir.exists():
            folds = self._fold_hashes(method)
            if set(folds) - {chash}:
                shutil.rmtree(mdir)  # overwrite: folds of another config go
            elif folds or (mdir / "config.json").exists():
                path = mdir / "config.json"
                self._warn(
                    f"{path} is {self._json_problem(path)}; it is rewritten with this run's "
                    f"configuration of {method!r}. The {len(folds)} finished fold(s) made with "
                    "that same configuration (each fold's .json records it) are kept."
                )
        write_json(
            mdir / "config.json",
            {"config_hash": chash, "config": config, "versions": versions()},
        )
        self.add_method_to_run(method)

    # -- folds -----------------------------------------------------------------------------
    def fold_stem(self, method: str, seed: int, fold: int) -> Path:
        return self.method_dir(method) / f"seed-{seed}" / f"fold-{fold}"

    def load_fold(self, method: str, seed: int, fold: int, chash: str) -> FoldResult | None:
        """The stored result of a finished fold made with ``chash``, or None.

        A fold stopped part-way (no ``.json`` yet) or made with another config is quietly
        recomputed; a fold whose files exist but cannot be read whole is recomputed with a
        warning that names the file.
        """
        stem = self.fold_stem(method, seed, fold)
        npz, record = stem.with_suffix(".npz"), stem.with_suffix(".json")
        if not npz.is_file():
            return None
        try:
            data = load_json(record)
        except FileNotFoundError:
            return None  # killed between the .npz and the .json: not finished
        except DamagedFile as exc:
            return self._damaged_fold(method, seed, fold, exc)
        if data.get("config_hash") != chash or data.get("run_seed") != seed:
            return None
        try:
            result = FoldResult(**data["result"])
        except (KeyError, TypeError) as exc:
            reason = f"no valid result ({type(exc).__name__}: {exc})"
            return self._damaged_fold(method, seed, fold, DamagedFile(record, reason))
        try:
            n = len(read_predictions(npz)["pred"])
        except DamagedFile as exc:
            return self._damaged_fold(method, seed, fold, exc)
        if n != result.n_test:
            reason = f"{n} prediction rows where its .json records {result.n_test}"
            return self._damaged_fold(method, seed, fold, DamagedFile(npz, reason))
        return result

    def _damaged_fold(self, method: str, seed: int, fold: int, exc: DamagedFile) -> None:
        self._warn(
            f"{exc}. Seed {seed} fold {fold} of {method!r} is not counted as finished; it is "
            f"recomputed when {method!r} runs with --out {self.run_dir}."
        )
        return None

    def save_fold(
        self,
        method: str,
        seed: int,
        result: FoldResult,
        preds: FoldPredictions,
        chash: str,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        stem = self.fold_stem(method, seed, result.fold)
        atomic_write(
            stem.with_suffix(".npz"),
            lambda fh: np.savez_compressed(
                fh,
                pred=preds.pred,
                target=preds.target,
                subject=preds.subject.astype(str),
                trial=preds.trial,
                window=preds.window,
            ),
        )
        # the .json goes last: its presence is what marks the fold finished
        write_json(
            stem.with_suffix(".json"),
            {
                "config_hash": chash,
                "run_seed": seed,
                "versions": versions(),
                "finished_at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                **dict(extra or {}),
                "result": result.to_json(),
            },
        )

    def load_predictions(self, method: str, seed: int, fold: int) -> dict[str, np.ndarray]:
        """A fold's stored arrays; FileNotFoundError or DamagedFile when they are not usable."""
        return read_predictions(self.fold_stem(method, seed, fold).with_suffix(".npz"))

    def completed_folds(
        self, method: str, chash: str, seeds: Sequence[int], n_folds: int
    ) -> dict[tuple[int, int], FoldResult]:
        out = {}
        for s in seeds:
            for i in range(n_folds):
                r = self.load_fold(method, s, i, chash)
                if r is not None:
                    out[(s, i)] = r
        return out

    def write_summaries(self, results: dict[str, Any]) -> None:
        write_json(self.run_dir / "results.json", results)
        # the paired tests once for both files: bench rewrites them after every fold, in the
        # driver, on cores the workers use (with 9 methods about 50 ms a computation)
        tests = paired_tests(results)
        write_text(self.run_dir / "summary.md", summary_markdown(results, tests))
        write_text(self.run_dir / "summary.csv", summary_csv(results, tests))


def load_results(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "results.json"
    data = _read_json(path)
    if data is None:
        raise UserError(
            f"{path} is missing or unreadable: {run_dir} is not a finished affectkit run "
            "directory. Pass the --out folder of an `affectkit bench` run."
        )
    return data


# --------------------------------------------------------------------------- aggregation
def method_entry(
    record: Mapping[str, Any],
    done: Mapping[tuple[int, int], FoldResult],
    seeds: Sequence[int],
    n_folds: int,
    tags: Sequence[str] = (),
) -> dict[str, Any]:
    """One method's block of results.json from the folds finished so far."""
    keys = sorted(done)
    folds = [done[k] for k in keys]
    per_seed: dict[str, Any] = {}
    for s in seeds:
        sf = [done[(s, i)] for i in range(n_folds) if (s, i) in done]
        if sf:
            per_seed[str(s)] = summarize(sf)
    return {
        **record.get("config", {}),
        "config_hash": record.get("config_hash"),
        "tags": sorted(tags),
        "folds": [{**f.to_json(), "run_seed": s} for (s, _), f in zip(keys, folds, strict=True)],
        "folds_expected": len(seeds) * n_folds,
        "complete": len(folds) == len(seeds) * n_folds,
        "summary": summarize(folds),
        "seed_summary": over_seeds(per_seed),
    }


def over_seeds(per_seed: Mapping[str, Any]) -> dict[str, Any]:
    """Mean ± std over the per-seed fold means (empty before any fold finished)."""
    out: dict[str, Any] = {}
    if not per_seed:
        return out
    for metric in next(iter(per_seed.values())):
        vals = np.array([s[metric]["mean"] for s in per_seed.values()])
        out[metric] = {"mean": float(vals.mean()), "std": float(vals.std()), "n_seeds": len(vals)}
    return out


def best_per_metric(results: dict[str, Any]) -> dict[str, str]:
    best = {m: best_method(results, m) for m in METRIC_NAMES}
    return {m: b for m, b in best.items() if b is not None}


def _arrow(m: str) -> str:
    return "↑" if METRICS[m].higher_is_better else "↓"


def _folds_cell(r: Mapping[str, Any]) -> str:
    n, expected = len(r["folds"]), r.get("folds_expected", len(r["folds"]))
    return str(n) if n == expected else f"{n}/{expected}"


def summary_markdown(
    results: dict[str, Any], tests: Mapping[str, dict[str, Any]] | None = None
) -> str:
    """summary.md; ``tests``: :func:`paired_tests` of ``results``, if already computed."""
    best = best_per_metric(results)
    tests = paired_tests(results) if tests is None else tests
    leaky = (
        " **(LEAKY protocol: windows of one trial on both sides of the split)**"
        if results.get("leaky")
        else ""
    )
    multi_seed = len(results.get("seeds", [])) > 1
    lines = [
        f"# affectkit results: {results['dataset']}",
        "",
        f"Protocol: {results['protocol_description']}{leaky}. Seeds: {results['seeds']}. "
        "Mean ± std over folds; best per column in bold; " + MARKER_LEGEND + ".",
        "",
        "| method | " + " | ".join(f"{m} {_arrow(m)}" for m in METRIC_NAMES) + " | folds |",
        "|---|" + "---|" * (len(METRIC_NAMES) + 1),
    ]
    for name, r in results["methods"].items():
        cells = []
        for m in METRIC_NAMES:
            s = r["summary"][m]
            cell = f"{s['mean']:.4f} ± {s['std']:.4f}{cell_marker(tests, m, name)}"
            cells.append(f"**{cell}**" if best.get(m) == name else cell)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_folds_cell(r)} |")
    if multi_seed:
        lines += [
            "",
            "Over seeds (mean ± std of the per-seed means):",
            "",
            "| method | " + " | ".join(f"{m} {_arrow(m)}" for m in METRIC_NAMES) + " | seeds |",
            "|---|" + "---|" * (len(METRIC_NAMES) + 1),
        ]
        for name, r in results["methods"].items():
            ss = r.get("seed_summary") or {}
            cells = [
                f"{ss[m]['mean']:.4f} ± {ss[m]['std']:.4f}" if m in ss else "–"
                for m in METRIC_NAMES
            ]
            n = next(iter(ss.values()))["n_seeds"] if ss else 0
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {n} |")
    return "\n".join(lines) + "\n"


def summary_csv(results: dict[str, Any], tests: Mapping[str, dict[str, Any]] | None = None) -> str:
    """summary.csv; ``tests``: :func:`paired_tests` of ``results``, if already computed."""
    tests = paired_tests(results) if tests is None else tests
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "method",
            *[f"{m}_{s}" for m in METRIC_NAMES for s in ("mean", "std", "p_holm")],
            "folds",
            "folds_expected",
        ]
    )
    for name, r in results["methods"].items():
        row = [name]
        for m in METRIC_NAMES:
            t = tests.get(m, {}).get("tests", {}).get(name)
            row += [
                f"{r['summary'][m]['mean']:.6f}",
                f"{r['summary'][m]['std']:.6f}",
                f"{t['p_holm']:.6g}" if t else "",
            ]
        w.writerow([*row, len(r["folds"]), r.get("folds_expected", len(r["folds"]))])
    return buf.getvalue()
