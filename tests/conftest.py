from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# Tiny test models run faster on one thread, and subprocess CLI runs inherit this.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
TINY = {"name": "synthetic", "subjects": 4, "trials": 8, "windows": 6}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own dataset cache, never the user's ~/.cache."""
    monkeypatch.setenv("AFFECTKIT_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield


@pytest.fixture
def tiny_dataset():
    from affectkit.datasets import load_dataset
    from affectkit.plugins import get_registry

    return load_dataset(get_registry().get("dataset", "synthetic").config_cls(**TINY))


def _cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["AFFECTKIT_CACHE"] = str(tmp_path / "cache")
    env["COLUMNS"] = "250"  # rich wraps tables to the terminal width
    env.update(extra)
    return env


@pytest.fixture
def cli_env():
    """``cli_env(tmp_path, **extra)``: environment for a CLI subprocess with its own cache.

    A fixture rather than an import: test folders have their own conftest modules, and
    ``from conftest import ...`` would pick whichever was imported first.
    """
    return _cli_env


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """``run_cli(*args) -> (exit code, whitespace-folded output)`` of an in-process CLI run."""
    from affectkit import cli

    # rich folds long paths at the terminal width
    monkeypatch.setattr(cli.err_console, "_width", 1000)
    monkeypatch.setattr(cli.console, "_width", 1000)

    def run(*args):
        with pytest.raises(SystemExit) as exc:
            cli.main([str(a) for a in args])
        out = capsys.readouterr()
        return exc.value.code, " ".join((out.out + out.err).split())

    return run
