"""Command-line interface (typer + rich).

Exit codes: 0 success, 2 bad usage/config/input (one clear message, no traceback),
1 unexpected failure.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="affectkit: mixed-emotion recognition benchmarks (MPCL and baselines).",
)
config_app = typer.Typer(no_args_is_help=True, help="Show or validate run configurations.")
data_app = typer.Typer(no_args_is_help=True, help="Dataset utilities.")
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)

MethodOpt = Annotated[
    str | None,
    typer.Option("--method", "-m", help="NAME[,NAME...]; 'all' or 'baselines' select groups"),
]
OneMethodOpt = Annotated[str | None, typer.Option("--method", "-m", help="one registered method")]
DatasetOpt = Annotated[str | None, typer.Option("--dataset", "-d", help="registered dataset")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="folder of the dataset files")]
ProtocolOpt = Annotated[str | None, typer.Option("--protocol", "-p", help="evaluation protocol")]
ConfigOpt = Annotated[
    list[Path] | None, typer.Option("--config", "-c", help="YAML/TOML run config (repeatable)")
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", "-s", help="override: a.b.c=value (repeatable)")
]


def _flags(
    dataset: str | None,
    data_dir: Path | None,
    protocol: str | None,
    seed: int | None,
    device: str | None,
    out: Path | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    if dataset or data_dir:
        flags["dataset"] = {}
        if dataset:
            flags["dataset"]["name"] = dataset
        if data_dir:
            flags["dataset"]["data_dir"] = str(data_dir)
    if protocol:
        flags["protocol"] = {"name": protocol}
    if seed is not None:
        flags["seed"] = seed
    if device:
        flags["train"] = {"device": device}
    if out or overwrite:
        flags["output"] = {}
        if out:
            flags["output"]["dir"] = str(out)
        if overwrite:
            flags["output"]["overwrite"] = True
    return flags


def _default_method() -> str:
    from .plugins import get_registry

    return "mpcl" if ("method", "mpcl") in get_registry() else "mlp"


def _parse_seeds(seeds: str | None) -> list[int] | None:
    if not seeds:
        return None
    try:
        return [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds {seeds!r}: expected integers, e.g. --seeds 0,1,2") from None


def _progress() -> Progress:
    """The fold/epoch progress display shared by bench and train (on stderr, transient)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


class _RichCallbacks:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.folds = progress.add_task("folds", total=None)
        self.epochs = progress.add_task("epochs", total=None, visible=False)
        self.finished = 0

    def plan(self, jobs: int, reused: int) -> None:
        if reused:
            err_console.print(f"resuming: {reused} finished fold(s) reused, {jobs} to compute")
        self.progress.update(self.folds, total=jobs, completed=0)

    def fold_start(self, method, fold, n_folds):
        self.progress.update(self.folds, description=f"{method}: {fold.name}")
        self.progress.reset(self.epochs, visible=False)

    def epoch(self, epoch, total, record):
        vkl = record.get("valid_kl")
        desc = f"  epoch (valid KL {vkl:.4f})" if vkl is not None else "  epoch"
        self.progress.update(
            self.epochs, total=total, completed=epoch, visible=True, description=desc
        )

    def fold_end(self, method, result):
        self.finished += 1
        self.progress.update(
            self.folds, completed=self.finished, description=f"{method}: {result.name} done"
        )


def results_table(results: dict[str, Any]) -> Table:
    from .metrics import METRIC_NAMES, METRICS
    from .results import best_per_metric
    from .significance import MARKER_LEGEND, cell_marker, paired_tests

    best = best_per_metric(results)
    tests = paired_tests(results)
    leaky = " [bold red](LEAKY)[/]" if results.get("leaky") else ""
    table = Table(
        title=f"{results['dataset']} — {results['protocol_description']}{leaky}, "
        f"seeds {results['seeds']}",
        caption=f"mean ± std over folds; ★ = best per column; {MARKER_LEGEND}",
    )
    table.add_column("method", style="bold")
    for m in METRIC_NAMES:
        table.add_column(f"{m} {'↑' if METRICS[m].higher_is_better else '↓'}", justify="right")
    table.add_column("folds", justify="right")
    for name, r in results["methods"].items():
        cells = []
        for m in METRIC_NAMES:
            s = r["summary"][m]
            cell = f"{s['mean']:.4f} ± {s['std']:.4f}{cell_marker(tests, m, name)}"
            cells.append(f"[bold green]★ {cell}[/]" if best.get(m) == name else cell)
        n, expected = len(r["folds"]), r.get("folds_expected", len(r["folds"]))
        table.add_row(name, *cells, str(n) if n == expected else f"{n}/{expected}")
    return table


def compact_results_tables(results: dict[str, Any], width: int) -> list[Table]:
    """The results table turned for a narrow terminal: metrics as rows, methods as
    columns (mean with its marker above ± std), split into as many tables as the width
    needs, so that no name, number or marker is ever cut."""
    from rich import box

    from .metrics import METRIC_NAMES, METRICS
    from .results import best_per_metric
    from .significance import MARKER_LEGEND, cell_marker, paired_tests

    best = best_per_metric(results)
    tests = paired_tests(results)
    names = list(results["methods"])
    cells: dict[str, list[str]] = {}
    for name in names:
        r = results["methods"][name]
        column = []
        for m in METRIC_NAMES:
            s = r["summary"][m]
            star = " ★" if best.get(m) == name else ""
            column.append(f"{s['mean']:.4f}{cell_marker(tests, m, name)}{star}\n± {s['std']:.4f}")
        n, expected = len(r["folds"]), r.get("folds_expected", len(r["folds"]))
        column.append(str(n) if n == expected else f"{n}/{expected}")
        cells[name] = column
    labels = [f"{m} {'↑' if METRICS[m].higher_is_better else '↓'}" for m in METRIC_NAMES]
    labels.append("folds")

    leaky = " (LEAKY)" if results.get("leaky") else ""
    title = (
        f"{results['dataset']} — {results['protocol_description']}{leaky}, seeds {results['seeds']}"
    )

    def build(chunk: list[str], first: bool) -> Table:
        # fold, not "…": a name wider than the whole terminal wraps instead of losing letters
        table = Table(title=title if first else None, box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("", no_wrap=True)
        for c in chunk:
            table.add_column(c, justify="right", overflow="fold")
        for i, label in enumerate(labels):
            table.add_row(label, *(cells[c][i] for c in chunk))
        return table

    def natural_width(table: Table) -> int:
        return console.measure(table, options=console.options.update(width=100_000)).maximum

    tables: list[Table] = []
    chunk: list[str] = []
    for name in names:
        if chunk and natural_width(build([*chunk, name], not tables)) > width:
            tables.append(build(chunk, not tables))
            chunk = []
        chunk.append(name)
    tables.append(build(chunk, not tables))
    legend = MARKER_LEGEND.replace("of the column", "of the row")
    tables[-1].caption = f"mean ± std over folds; ★ = best per row; {legend}"
    return tables


def print_results(results: dict[str, Any]) -> None:
    """The results table, complete at any width: the plain markdown table when stdout is
    not a terminal (a log file keeps every number), the full table when it fits, else
    the compact turned one."""
    from .results import summary_markdown

    if not console.is_terminal:
        console.print(
            summary_markdown(results),
            markup=False,
            highlight=False,
            emoji=False,
            soft_wrap=True,
            end="",
        )
        return
    table = results_table(results)
    # the width the table wants, not the width it would be squeezed into
    if console.measure(table, options=console.options.update(width=100_000)).maximum <= (
        console.width
    ):
        console.print(table)
        return
    for t in compact_results_tables(results, console.width):
        console.print(t)


ExecutorOpt = Annotated[
    str,
    typer.Option(
        "--executor",
        "-x",
        help="where fold jobs run: auto (a local process pool when the machine has room for "
        "more than one fold and the folds are worth it, else serial; the choice is recorded "
        "in results.json), serial, local or ray",
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", "-w", min=1, help="parallel jobs (auto: at most; local, ray)"),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="torch CPU threads per fold job (default 1: folds run side by side, one thread "
        "each, which stays fast on a busy machine); equal counts give identical numbers on "
        "every executor",
    ),
]


@app.command()
def bench(
    method: MethodOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    protocol: ProtocolOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    seed: Annotated[int | None, typer.Option("--seed", help="random seed")] = None,
    seeds: Annotated[str | None, typer.Option("--seeds", help="repeat over seeds: 0,1,2")] = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda or auto")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run directory")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="replace mismatched results")
    ] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="rebuild the dataset")] = False,
    executor: ExecutorOpt = "auto",
    workers: WorkersOpt = None,
    threads: ThreadsOpt = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Ray cluster (ray://host:10001 or auto)")
    ] = None,
    gpus_per_job: Annotated[
        float | None,
        typer.Option("--gpus-per-job", min=0, help="GPU share per Ray job (default 0.25 on GPUs)"),
    ] = None,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="do not write report.md and figures at the end")
    ] = False,
    tune_trials: Annotated[
        int | None,
        typer.Option(
            "--tune",
            min=1,
            help="nested estimate: per outer fold, tune N trials on its training part only "
            "(as `affectkit tune`), then train the best and score the test part",
        ),
    ] = None,
    sweep: Annotated[
        str | None,
        typer.Option(
            "--sweep",
            help="KEY=V1,V2,...: one run per value in OUT/<key>=<value>, then the curve "
            "(sweep.md, figures/sweep.png), e.g. protocol.calibration_fraction=0,0.05,0.1,0.2",
        ),
    ] = None,
    references: Annotated[
        str | None,
        typer.Option(
            "--references",
            help="with --sweep: protocols run as reference levels (default for "
            "subject-calibrated: subject-independent,subject-dependent; 'none' = none)",
        ),
    ] = None,
) -> None:
    """Evaluate methods on a dataset under a protocol and print one table.

    Finished folds are stored at once; re-running the same command with the same --out
    computes only the missing ones.
    """
    from .bench import (
        default_run_dir,
        expand_methods,
        resolve_configs,
        run_bench,
    )
    from .executors import make_executor
    from .tuning import TuneSettings

    if ray_address and executor != "ray":
        raise UserError("--ray-address needs --executor ray.")
    engine = make_executor(
        executor,
        workers=workers,
        threads=threads,
        ray_address=ray_address,
        gpus_per_job=gpus_per_job,
    )
    # without --method the config files (or --set method.name) choose, then the default
    configs = resolve_configs(
        expand_methods(method) if method else [None],
        files=config or [],
        flags=_flags(dataset, data_dir, protocol, seed, device, out, overwrite),
        overrides=set_ or [],
        default_method=_default_method(),
    )
    nested = (
        TuneSettings.from_cli(tune_trials, files=config or [], overrides=set_ or [])
        if tune_trials
        else None
    )
    run_dir = Path(configs[0].output.dir or default_run_dir())
    if sweep:
        _bench_sweep(
            sweep,
            references,
            run_dir,
            methods=expand_methods(method) if method else [None],
            files=config or [],
            flags=_flags(dataset, data_dir, protocol, seed, device, out, overwrite),
            overrides=set_ or [],
            seeds=_parse_seeds(seeds),
            use_cache=not no_cache,
            engine=engine,
            nested=nested,
        )
        return
    if references:
        raise UserError("--references only goes with --sweep.")
    resume = (
        f"finished folds are saved in {run_dir}; run the same command with --out "
        f"{_quote(run_dir)} to resume"
    )
    with (
        _interrupted_exit(resume),
        _progress() as progress,
    ):
        results, run_dir = run_bench(
            configs,
            seeds=_parse_seeds(seeds),
            run_dir=run_dir,
            use_cache=not no_cache,
            callbacks=_RichCallbacks(progress),  # type: ignore[arg-type]
            executor=engine,
            tune=nested,
            skip_unfit=_selects_group(method),
        )
    for name, why in results.get("skipped_methods", {}).items():
        console.print(f"skipped {name}: {why}", markup=False, highlight=False)
    print_results(results)
    inv = results.get("last_invocation", {})
    console.print(
        f"computed {inv.get('computed_folds', 0)} fold(s), reused {inv.get('reused_folds', 0)} "
        f"({inv.get('executor', executor)})"
    )
    console.print(f"run directory: {run_dir}  (results.json, summary.md, summary.csv)")
    report_cmd = f"affectkit report {_quote(run_dir)}"
    if no_report:
        console.print(f"report: run `{report_cmd}`", markup=False, highlight=False)
    elif _has_matplotlib():
        from .report import write_report

        try:
            path = write_report(run_dir)
        except Exception as exc:  # the benchmark itself succeeded and is saved: say so, go on
            err_console.print(
                f"the report could not be written ({type(exc).__name__}: {exc}); the results "
                f"are saved. Retry with `{report_cmd}` (AFFECTKIT_DEBUG=1 shows the trace).",
                markup=False,
                highlight=False,
            )
            if os.environ.get("AFFECTKIT_DEBUG"):
                raise
        else:
            console.print(f"report: {path}  (figures in {run_dir / 'figures'})")
    else:
        console.print(
            f"report: install matplotlib (pip install 'affectkit[plots]'), then run `{report_cmd}`",
            markup=False,
            highlight=False,
        )


def _bench_sweep(
    spec: str,
    references: str | None,
    run_dir: Path,
    *,
    seeds: list[int] | None,
    engine: Any,
    nested: Any,
    **kw: Any,
) -> None:
    """``bench --sweep``: every value (and reference protocol) as its own bench run."""
    from .bench import run_bench
    from .report import write_sweep_report
    from .sweep import bench_sweep

    resume = f"finished folds are saved under {run_dir}; run the same command to resume"

    def run(configs: list[Any], directory: Path, data: Any) -> dict[str, Any]:
        console.print(f"[bold]{directory.name}[/]")
        with _progress() as progress:
            results, _ = run_bench(
                configs,
                seeds=seeds,
                run_dir=directory,
                data=data,
                callbacks=_RichCallbacks(progress),  # type: ignore[arg-type]
                executor=engine,
                tune=nested,
            )
        print_results(results)
        return results

    with _interrupted_exit(resume):
        bench_sweep(spec, references, run_dir, default_method=_default_method(), run=run, **kw)
    path = write_sweep_report(run_dir)
    console.print(f"sweep: {run_dir}; curve: {path}", markup=False, highlight=False)


@contextlib.contextmanager
def _interrupted_exit(what_is_kept: str) -> Iterator[None]:
    """Ctrl-C or a full disk: say what survived and how to go on, without a traceback
    (exit 130 for Ctrl-C, 2 for the disk)."""
    from .io import DISK_FULL

    try:
        yield
    except KeyboardInterrupt:
        err_console.print(f"interrupted: {what_is_kept}", markup=False, highlight=False)
        raise typer.Exit(130) from None
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        where = f" while writing {exc.filename}" if exc.filename else ""
        raise UserError(f"the disk is full{where}. Free some space; {what_is_kept}.") from None


def _selects_group(method: str | None) -> bool:
    """Whether ``--method`` names a group (all, baselines) rather than only methods."""
    from .bench import GROUP_NAMES

    return bool(method) and any(m.strip() in GROUP_NAMES for m in str(method).split(","))


def _quote(path: Path) -> str:
    import shlex

    return shlex.quote(str(path))


def _has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="run directory written by affectkit bench")],
) -> None:
    """Write report.md and PNG figures (metric bars, trial distributions, emotion
    co-occurrence, per-subject scores) with paired significance tests into RUN_DIR."""
    from .io import check_writable_dir
    from .report import write_report

    if not run_dir.is_dir():
        raise UserError(
            f"{run_dir} is not a directory. Pass the --out folder of `affectkit bench`."
        )
    check_writable_dir(
        run_dir,
        "run directory",
        "The report is written into the run directory: make it writable (chmod u+w, or "
        "remount read-write), or copy it somewhere writable and pass the copy.",
    )
    if (run_dir / "sweep.json").is_file():  # a `bench --sweep` directory: the curve
        from .report import write_sweep_report

        console.print(f"sweep report: {write_sweep_report(run_dir)}")
        return
    path = write_report(run_dir)
    console.print(f"report: {path}  (figures in {run_dir / 'figures'})")


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="checkpoint directory to write")],
    method: OneMethodOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    protocol: ProtocolOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    seed: Annotated[int | None, typer.Option("--seed", help="random seed")] = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda or auto")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="replace an existing --out")
    ] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="rebuild the dataset")] = False,
) -> None:
    """Fit one method on all of a dataset and save a checkpoint (safetensors + YAML/JSON).

    The protocol's validation rule still holds out data for early stopping.
    """
    from .bench import expand_methods, resolve_configs
    from .checkpoint import train as train_checkpoint
    from .io import check_writable_dir

    names = expand_methods(method) if method else [None]
    if len(names) != 1:
        raise UserError(
            f"affectkit train fits one method; got {', '.join(names)}. Pass --method NAME."
        )
    cfg = resolve_configs(
        names,
        files=config or [],
        flags=_flags(dataset, data_dir, protocol, seed, device),
        overrides=set_ or [],
        default_method=_default_method(),
    )[0]
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; a checkpoint is a folder. Pass a folder path.")
    # the checkpoint is built beside --out and renamed into place: its parent must be writable
    check_writable_dir(
        out.parent, f"--out {out}: its folder", "Pass --out a path in a folder you can write to."
    )
    with (
        _interrupted_exit(f"nothing was written to {out}"),
        _progress() as progress,
    ):
        cb = _RichCallbacks(progress)
        progress.update(cb.folds, description=f"{cfg.method.name}: all data", total=1)
        path = train_checkpoint(
            cfg,
            out,
            overwrite=overwrite,
            use_cache=not no_cache,
            callbacks=cb,  # type: ignore[arg-type]
        )
    console.print(
        f"checkpoint: {path}  (weights.safetensors, normalizer.safetensors, config.yaml, meta.json)"
    )


@app.command()
def predict(
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", "-k", help="affectkit train --out folder")
    ],
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    set_: SetOpt = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="FILE.csv or FILE.parquet (default: stdout CSV)"),
    ] = None,
    figure: Annotated[
        Path | None,
        typer.Option("--figure", help="FILE.png: the distribution over time (extra 'plots')"),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto")] = "cpu",
    no_cache: Annotated[bool, typer.Option("--no-cache", help="rebuild the dataset")] = False,
) -> None:
    """Predict emotion distributions per window with a checkpoint.

    Without --dataset the checkpoint's own dataset settings are used; with another reader
    (e.g. --dataset e4 for a wesad checkpoint) the settings both share (window, step,
    modality mapping) are the checkpoint's. A dataset with a time axis (e4) gives per
    window its start and end (seconds and wall-clock), the distribution, its entropy and
    the modalities imputed.
    """
    from .checkpoint import load, predictions_csv, write_predictions
    from .datasets import load_dataset
    from .io import check_writable_dir
    from .monitor import check_figure_support, dataset_config, plot_timeline, timeline

    for flag, path, what in (
        ("--out", out, "FILE.csv or FILE.parquet"),
        ("--figure", figure, "FILE.png"),
    ):
        if path is None:
            continue
        if path.is_dir():  # before the (slow) prediction, not after
            raise UserError(f"{flag} {path} is a folder. Pass a file path: {what}.")
        check_writable_dir(
            path.parent,
            f"{flag} {path}: its folder",
            f"Pass {flag} a file path in a folder you can write to.",
        )
    if figure is not None:
        check_figure_support()
    ckpt = load(checkpoint, device=device)
    cfg = dataset_config(ckpt, dataset, data_dir, set_ or [])
    data = load_dataset(cfg, use_cache=not no_cache)
    if "timeline" in data.info or figure is not None:
        tl = timeline(ckpt, data)
        table = tl.data
    else:
        table = ckpt.predict_table(data)
    if figure is not None:
        plot_timeline(tl, figure)
        err_console.print(f"figure: {figure}")
    if out is None:
        sys.stdout.write(predictions_csv(table))
        return
    meta = {
        "checkpoint": str(checkpoint),
        "method": ckpt.config.method.name,
        "dataset": data.name,
        "emotions": ckpt.emotions,
    }
    write_predictions(table, out, meta)
    console.print(f"predictions: {out}  ({len(data)} windows × {len(ckpt.emotions)} emotions)")


def _speed(value: str) -> float | None:
    if value.strip().lower() == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        speed = float("nan")
    if not (speed > 0 and speed < float("inf")):
        raise UserError(f"--speed {value!r}: give a positive number (1 = real time) or max.")
    return speed


@app.command()
def stream(
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", "-k", help="affectkit train --out folder")
    ],
    source: Annotated[
        str,
        typer.Option(
            "--source", help="E4 export (folder or zip) to replay, or - for t,modality,value lines"
        ),
    ],
    speed: Annotated[
        str, typer.Option("--speed", help="replay speed: 1 = real time, 10, or max")
    ] = "1",
    dataset: DatasetOpt = None,
    set_: SetOpt = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto")] = "cpu",
    threads: Annotated[int, typer.Option("--threads", help="torch CPU threads", min=1)] = 1,
) -> None:
    """Predict live: one JSON line per window as its last sample arrives.

    Each line holds the window's times, the distribution, its entropy, the modalities
    imputed and the latency from the window's last sample to the prediction. Ctrl-C (or the
    end of the source) ends it with a latency summary on stderr.
    """
    import json

    from .monitor import latency_summary
    from .monitor import stream as stream_predictions

    rate = _speed(speed)
    latencies: list[float] = []
    imputed = 0
    interrupted = False
    try:
        for p in stream_predictions(
            checkpoint,
            source,
            dataset=dataset,
            speed=rate,
            overrides=set_ or [],
            device=device,
            threads=threads,
        ):
            sys.stdout.write(json.dumps(p.to_json()) + "\n")
            sys.stdout.flush()
            latencies.append(p.latency_ms)
            imputed += bool(p.window.imputed)
    except KeyboardInterrupt:
        interrupted = True
    except BrokenPipeError:  # the reader of stdout went away (e.g. | head): nothing to say
        # stdout cannot be flushed at exit either: point it at /dev/null so Python stays quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    s = latency_summary(latencies)
    how = "interrupted" if interrupted else "end of source"
    if not latencies:
        err_console.print(f"{how}: no window completed.")
        return
    err_console.print(
        f"{how}: {s['windows']} window(s), {imputed} with an imputed modality; latency from a "
        f"window's last sample to its line: p50 {s['p50_ms']:.1f} ms, p90 {s['p90_ms']:.1f} ms, "
        f"p99 {s['p99_ms']:.1f} ms, max {s['max_ms']:.1f} ms",
        highlight=False,
    )


class _TuneProgress(_RichCallbacks):
    """A trials bar (trial i/N, best value so far) above the folds/epochs bars of a trial."""

    def __init__(self, progress: Progress, metric: str, intro: str) -> None:
        self.trials = progress.add_task("trials", total=None)
        super().__init__(progress)
        self.metric = metric
        self.intro = intro
        self.best: float | None = None

    def plan(self, done: int, total: int) -> None:  # type: ignore[override]
        err_console.print(self.intro, markup=False, highlight=False)
        if done:
            err_console.print(f"resuming: {done} finished trial(s) reused, {total - done} to run")
        self.progress.update(self.trials, total=total, completed=done)

    def _describe(self, number: int, total: int) -> str:
        best = f", best {self.metric} {self.best:.5f}" if self.best is not None else ""
        return f"trial {number}/{total}{best}"

    def trial_start(self, number: int, total: int, n_folds: int) -> None:
        self.finished = 0
        self.progress.update(self.trials, description=self._describe(number, total))
        self.progress.update(self.folds, total=n_folds, completed=0)

    def trial_end(self, done: int, total: int, best: float | None, state: str) -> None:
        self.best = best
        self.progress.update(self.trials, completed=done, description=self._describe(done, total))


@app.command()
def tune(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="study folder: study.sqlite3, best.yaml, trials.csv")
    ],
    method: OneMethodOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    protocol: ProtocolOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    trials: Annotated[
        int, typer.Option("--trials", "-n", min=1, help="trials in the study, in total")
    ] = 20,
    metric: Annotated[str, typer.Option("--metric", help="inner-validation metric")] = "kl",
    valid_fraction: Annotated[
        float | None,
        typer.Option(
            "--valid-fraction",
            help="share of each training part held out to score trials (by the protocol's "
            "validation rule); default train.valid_fraction",
        ),
    ] = None,
    no_prune: Annotated[
        bool, typer.Option("--no-prune", help="run every trial on every outer fold")
    ] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="random seed")] = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda or auto")] = None,
    threads: Annotated[
        int,
        typer.Option(
            "--threads",
            min=1,
            help="torch CPU threads; a search is many small fits, which run fastest on one "
            "thread on a busy CPU (raise it for large models on an idle machine)",
        ),
    ] = 1,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="discard a study of another configuration in --out")
    ] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="rebuild the dataset")] = False,
) -> None:
    """Search a method's hyper-parameters (Optuna TPE, median pruning) without test data.

    Each trial is scored on validation splits carved from the training part of every outer
    fold by the protocol's own rule; test parts are never read. The study is kept in
    OUT/study.sqlite3: re-running the same command resumes it (or adds trials up to
    --trials). The best trial is written as OUT/best.yaml, a complete run config for
    `affectkit bench --config OUT/best.yaml`; every trial is listed in OUT/trials.csv.
    """
    from .bench import configured_method, expand_methods, resolve_configs
    from .search import describe_space
    from .tuning import TuneSettings, search_space
    from .tuning import tune as run_tune

    names = expand_methods(method or configured_method(config or []) or _default_method())
    if len(names) != 1:
        raise UserError(f"affectkit tune searches one method; got {', '.join(names)}.")
    cfg = resolve_configs(
        names,
        files=config or [],
        flags=_flags(dataset, data_dir, protocol, seed, device),
        overrides=set_ or [],
    )[0]
    settings = TuneSettings.from_cli(
        trials,
        files=config or [],
        overrides=set_ or [],
        metric=metric,
        valid_fraction=valid_fraction,
        prune=not no_prune,
    )
    intro = f"searching {names[0]}: {describe_space(search_space(cfg, settings))}"
    with (
        _interrupted_exit(f"finished trials are saved in {out}; run the same command to resume"),
        _progress() as progress,
    ):
        result = run_tune(
            cfg,
            out,
            settings,
            overwrite=overwrite,
            use_cache=not no_cache,
            callbacks=_TuneProgress(progress, metric, intro),  # type: ignore[arg-type]
            threads=threads,
        )
    states = ", ".join(f"{n} {s}" for s, n in sorted(result.states.items()))
    console.print(
        f"best {result.metric} {result.best_value:.6g} (trial {result.best_trial}; "
        f"{states}; {result.reused} reused)",
        highlight=False,
    )
    for key, value in result.best_params.items():
        console.print(f"  {key} = {value!r}", markup=False, highlight=False)
    best = _quote(out / "best.yaml")
    console.print(
        f"best config: {best}  (run it: affectkit bench --config {best})",
        markup=False,
        highlight=False,
    )
    console.print(f"trials: {out / 'trials.csv'}; study: {out / 'study.sqlite3'}", markup=False)


@config_app.command("show")
def config_show(
    method: MethodOpt = None,
    dataset: DatasetOpt = None,
    protocol: ProtocolOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Print the full effective run config (YAML), defaults included."""
    import yaml

    from .bench import expand_methods, resolve_configs
    from .evaluate import method_train_config

    methods = expand_methods(method) if method else [None]
    cfgs = resolve_configs(
        methods,
        files=config or [],
        flags=_flags(dataset, None, protocol, None, None),  # type: ignore[arg-type]
        overrides=set_ or [],
        default_method=_default_method(),
    )
    for cfg in cfgs:
        data = cfg.model_dump(mode="json")
        data["train"] = method_train_config(cfg).model_dump(mode="json")
        console.print(yaml.safe_dump(data, sort_keys=False), end="", markup=False, highlight=False)
        console.print(_schedule_comment(cfg), end="", markup=False, highlight=False, soft_wrap=True)


def _schedule_comment(cfg: Any) -> str:
    """The resolved training length per fold, as YAML comments (the dataset is loaded)."""
    from .datasets import load_dataset
    from .evaluate import fold_schedules

    try:
        rows = fold_schedules(cfg, load_dataset(cfg.dataset))
    except UserError as exc:
        return f"# training length: not resolved ({exc})\n"
    if not rows:
        return ""
    head = f"# training length on {cfg.dataset.name}, {cfg.protocol.name}"

    def describe(row: dict[str, Any]) -> str:
        valid = f", validation {row['n_valid']} every {row['eval_every']} steps"
        return (
            f"fit {row['n_fit']}{valid if row['n_valid'] else ''} -> {row['steps']} steps "
            f"({row['epochs']:g} epochs of {row['steps_per_epoch']}, rule {row['rule']})"
        )

    texts = [describe(r) for r in rows]
    if len(set(texts)) == 1:
        lines = [f"{head}, each of {len(rows)} folds: {texts[0]}"]
    else:
        lines = [f"{head}:"] + [f"#   {r['fold']}: {t}" for r, t in zip(rows, texts, strict=True)]
    return "\n".join(lines) + "\n"


@config_app.command("validate")
def config_validate(file: Path) -> None:
    """Validate a config file: exit 0, or 2 with every error as path.to.field: reason."""
    from .bench import resolve_configs

    resolve_configs([], files=[file], default_method=_default_method())
    console.print(f"{file}: valid")


@app.command()
def plugins() -> None:
    """Every registered component by kind, with its plugin, plus plugins that failed."""
    from .plugins import get_plugin_manager
    from .registry import KINDS

    mgr = get_plugin_manager()
    rows = [
        [kind, e.name, e.plugin, e.distribution, ",".join(sorted(e.tags)), e.description]
        for kind in KINDS
        for e in mgr.registry.entries(kind)
    ]
    _print_rows(
        "registered components",
        ["kind", "name", "plugin", "distribution", "tags", "description"],
        rows,
        primary=2,
    )
    if mgr.failures:
        _print_rows(
            "plugins that failed to load (skipped)",
            ["plugin", "distribution", "error"],
            [[f.name, f.distribution, f.error] for f in mgr.failures],
            style="red",
        )
        console.print("Set AFFECTKIT_STRICT_PLUGINS=1 to make a failing plugin fatal.")


def _print_rows(
    title: str, columns: list[str], rows: list[list[str]], primary: int = 1, style: str = ""
) -> None:
    """A listing whose last column is long text (a description, an error), never cut:
    tab-separated lines when stdout is not a terminal, a table when it fits, else one
    entry per block with the long text wrapped below."""
    from rich.padding import Padding

    if not console.is_terminal:
        lines = [f"# {title}", "\t".join(columns), *("\t".join(r) for r in rows)]
        console.print("\n".join(lines), markup=False, highlight=False, emoji=False, soft_wrap=True)
        return
    table = Table(title=title, style=style)
    for col in columns:
        table.add_column(col)
    for r in rows:
        table.add_row(*map(Text, r))  # Text: a "[...]" in a description is not markup
    if console.measure(table, options=console.options.update(width=100_000)).maximum <= (
        console.width
    ):
        console.print(table)
        return
    console.print(Text(title, style=f"bold {style}".strip()))
    for r in rows:
        head = Text(" ".join(r[:primary]), style="bold")
        details = ", ".join(
            f"{c} {v}" for c, v in zip(columns[primary:-1], r[primary:-1], strict=True) if v
        )
        if details:
            head.append(f"  ({details})")
        console.print(Padding(head, (0, 0, 0, 2)))
        if r[-1]:
            console.print(Padding(Text(r[-1]), (0, 0, 0, 6)))


def _list_kind(kind: str) -> None:
    from .plugins import get_registry

    _print_rows(
        f"{kind}s",
        ["name", "plugin", "tags", "description"],
        [
            [e.name, e.plugin, ",".join(sorted(e.tags)), e.description]
            for e in get_registry().entries(kind)
        ],
    )


@app.command()
def datasets() -> None:
    """List registered datasets."""
    _list_kind("dataset")


@app.command()
def methods() -> None:
    """List registered methods."""
    _list_kind("method")


@data_app.command("export")
def data_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")],
    format: Annotated[str, typer.Option("--format", "-f", help="a dataset whose layout to write")],
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    set_: SetOpt = None,
) -> None:
    """Write a dataset in another dataset's file layout (e.g. synthetic -> dmer .mat files)."""
    from .bench import resolve_configs
    from .datasets import load_dataset
    from .plugins import get_registry

    writer = getattr(get_registry().get("dataset", format).factory, "export", None)
    if writer is None:
        raise UserError(f"dataset {format!r} cannot write its layout (its reader has no export).")
    cfg = resolve_configs(
        [], flags=_flags(dataset, data_dir, None, None, None), overrides=set_ or []
    )[0]
    data = load_dataset(cfg.dataset)
    files = writer(data, out)
    console.print(f"wrote {len(files)} file(s) in {format} layout to {out}")


class _StderrLog(logging.Handler):
    """affectkit's warnings (e.g. a cache entry that could not be written) as plain lines
    on stderr, above the progress display."""

    def emit(self, record: logging.LogRecord) -> None:
        err_console.print(record.getMessage(), markup=False, highlight=False)


def main(argv: list[str] | None = None) -> None:
    # The handler lives only for this call: an in-process caller (a notebook, a test) gets
    # its logger back as it was, so its own handlers and pytest's caplog still see records.
    log = logging.getLogger("affectkit")
    handler, propagate = _StderrLog(logging.WARNING), log.propagate
    log.addHandler(handler)
    log.propagate = False
    try:
        _run_app(argv)
    finally:
        log.removeHandler(handler)
        log.propagate = propagate


def _run_app(argv: list[str] | None) -> None:
    try:
        app(args=argv, prog_name="affectkit")
    except UserError as exc:
        err_console.print(Text("error: ", style="bold red") + Text(str(exc)), highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted; finished folds are saved, re-run the command to resume")
        sys.exit(130)
    except Exception:
        if os.environ.get("AFFECTKIT_DEBUG"):
            raise
        err_console.print(traceback.format_exc())
        err_console.print(
            "[bold red]unexpected failure[/] (exit 1): please report it with the trace above."
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
