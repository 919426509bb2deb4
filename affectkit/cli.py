"""Command-line interface (typer + rich).

Exit codes: 0 success, 2 bad usage/config/input (one clear message, no traceback),
1 unexpected failure.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .errors import UserError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
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
    dataset: str | None, data_dir: Path | None, protocol: str | None, seed: int | None,
    device: str | None, out: Path | None = None, overwrite: bool = False,
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


class _RichCallbacks:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.folds = progress.add_task("folds", total=None)
        self.epochs = progress.add_task("epochs", total=None, visible=False)

    def fold_start(self, method, fold, n_folds):
        self.progress.update(
            self.folds, description=f"{method}: {fold.name}", total=n_folds, completed=fold.index
        )
        self.progress.reset(self.epochs, visible=False)

    def epoch(self, epoch, total, record):
        vkl = record.get("valid_kl")
        desc = f"  epoch (valid KL {vkl:.4f})" if vkl is not None else "  epoch"
        self.progress.update(self.epochs, total=total, completed=epoch, visible=True, description=desc)

    def fold_end(self, method, result):
        self.progress.update(self.folds, completed=result.fold + 1)


def results_table(results: dict[str, Any]) -> Table:
    from .metrics import METRIC_NAMES, METRICS
    from .results import best_per_metric

    best = best_per_metric(results)
    leaky = " [bold red](LEAKY)[/]" if results.get("leaky") else ""
    table = Table(
        title=f"{results['dataset']} — {results['protocol_description']}{leaky}, "
        f"seeds {results['seeds']}",
        caption="mean ± std over folds; ★ = best per column",
    )
    table.add_column("method", style="bold")
    for m in METRIC_NAMES:
        table.add_column(f"{m} {'↑' if METRICS[m].higher_is_better else '↓'}", justify="right")
    table.add_column("folds", justify="right")
    for name, r in results["methods"].items():
        cells = []
        for m in METRIC_NAMES:
            s = r["summary"][m]
            cell = f"{s['mean']:.4f} ± {s['std']:.4f}"
            cells.append(f"[bold green]★ {cell}[/]" if best.get(m) == name else cell)
        table.add_row(name, *cells, str(len(r["folds"])))
    return table


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
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace mismatched results")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="rebuild the dataset")] = False,
) -> None:
    """Evaluate methods on a dataset under a protocol and print one table."""
    from .bench import expand_methods, resolve_configs, run_bench

    methods = expand_methods(method or _default_method())
    configs = resolve_configs(
        methods, files=config or [],
        flags=_flags(dataset, data_dir, protocol, seed, device, out, overwrite),
        overrides=set_ or [],
    )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, transient=True,
    ) as progress:
        results, run_dir = run_bench(
            configs, seeds=_parse_seeds(seeds), use_cache=not no_cache,
            callbacks=_RichCallbacks(progress),  # type: ignore[arg-type]
        )
    console.print(results_table(results))
    console.print(f"run directory: {run_dir}  (results.json, summary.md, summary.csv)")


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
        methods, files=config or [], flags=_flags(dataset, None, protocol, None, None),  # type: ignore[arg-type]
        overrides=set_ or [],
    )
    for cfg in cfgs:
        data = cfg.model_dump(mode="json")
        data["train"] = method_train_config(cfg).model_dump(mode="json")
        console.print(yaml.safe_dump(data, sort_keys=False), end="", markup=False, highlight=False)


@config_app.command("validate")
def config_validate(file: Path) -> None:
    """Validate a config file: exit 0, or 2 with every error as path.to.field: reason."""
    from .bench import resolve_configs

    resolve_configs([], files=[file])
    console.print(f"{file}: valid")


@app.command()
def plugins() -> None:
    """Every registered component by kind, with its plugin, plus plugins that failed."""
    from .plugins import get_plugin_manager
    from .registry import KINDS

    mgr = get_plugin_manager()
    table = Table(title="registered components")
    for col in ("kind", "name", "plugin", "distribution", "tags", "description"):
        table.add_column(col)
    for kind in KINDS:
        for e in mgr.registry.entries(kind):
            table.add_row(kind, e.name, e.plugin, e.distribution, ",".join(sorted(e.tags)), e.description)
    console.print(table)
    if mgr.failures:
        ft = Table(title="plugins that failed to load (skipped)", style="red")
        for col in ("plugin", "distribution", "error"):
            ft.add_column(col)
        for f in mgr.failures:
            ft.add_row(f.name, f.distribution, f.error)
        console.print(ft)
        console.print("Set AFFECTKIT_STRICT_PLUGINS=1 to make a failing plugin fatal.")


def _list_kind(kind: str) -> None:
    from .plugins import get_registry

    table = Table(title=f"{kind}s")
    for col in ("name", "plugin", "tags", "description"):
        table.add_column(col)
    for e in get_registry().entries(kind):
        table.add_row(e.name, e.plugin, ",".join(sorted(e.tags)), e.description)
    console.print(table)


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
    cfg = resolve_configs([], flags=_flags(dataset, data_dir, None, None, None), overrides=set_ or [])[0]
    data = load_dataset(cfg.dataset)
    files = writer(data, out)
    console.print(f"wrote {len(files)} file(s) in {format} layout to {out}")


def main(argv: list[str] | None = None) -> None:
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
        err_console.print("[bold red]unexpected failure[/] (exit 1): please report it with the trace above.")
        sys.exit(1)


if __name__ == "__main__":
    main()
