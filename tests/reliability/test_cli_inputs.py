"""Bad inputs and faults through the CLI (issue 14): exit 2 with one message that names the
cause, no traceback, nothing already written lost; plus the layouts that must not cut text.

The CLI runs in-process (``affectkit.cli.main``), so faults such as a full disk or a
read-only folder are injected with monkeypatch. What that proves: the error affectkit gets
from the operating system is reported, before any work where it can be checked up front,
and the run stays resumable. Tests run as root here, where mode 555 does not stop writes;
the real ``chmod 555`` case runs only for an ordinary user.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from affectkit import cli, plugins
from affectkit.bench import resolve_configs, run_bench
from affectkit.metrics import METRIC_NAMES
from affectkit.significance import cell_marker, paired_tests

TINY = ["dataset.subjects=4", "dataset.trials=8", "dataset.windows=6"]
SETS = [a for s in TINY for a in ("--set", s)]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes (the lock file's holder note aside)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def assert_clean_exit_2(code: int, text: str, *causes: str) -> None:
    assert code == 2, text
    assert "Traceback" not in text and "unexpected failure" not in text, text
    for cause in causes:
        assert cause in text, f"{cause!r} not in: {text}"


@contextlib.contextmanager
def own_cache(folder: Path) -> Iterator[None]:
    """A dataset cache for module-scoped fixtures (the autouse one is per test)."""
    old = os.environ.get("AFFECTKIT_CACHE")
    os.environ["AFFECTKIT_CACHE"] = str(folder)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("AFFECTKIT_CACHE", None)
        else:
            os.environ["AFFECTKIT_CACHE"] = old


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """A finished run directory and its files, which no bad command may change."""
    root = tmp_path_factory.mktemp("finished")
    with own_cache(root / "cache"):
        run_bench(resolve_configs(["prior"], overrides=TINY), run_dir=root / "run")
    return root / "run", snapshot(root / "run")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from affectkit.checkpoint import train

    root = tmp_path_factory.mktemp("ckpt")
    with own_cache(root / "cache"):
        (cfg,) = resolve_configs(["prior"], overrides=TINY)
        return train(cfg, root / "ckpt")


def read_only(monkeypatch, folder: Path, code: int = errno.EROFS) -> None:
    """Make creating files in ``folder`` fail as a read-only mount (or mode 555) does."""
    real = tempfile.mkstemp
    target = folder.resolve()

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == target:
            raise OSError(code, os.strerror(code), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


# --------------------------------------------------------------------- 1: the file's method
def test_config_file_method_wins_over_the_default_and_method_flag_over_the_file(tmp_path, run_cli):
    f = tmp_path / "run.yaml"
    f.write_text(
        "dataset: {name: synthetic, subjects: 4, trials: 8, windows: 6}\n"
        "method: {name: mlp, hidden: [8], dropout: 0.1}\n"
        "train: {epochs: 40}\n"
    )
    code, text = run_cli("bench", "--config", f, "--set", "train.epochs=1", "--out", tmp_path / "a")
    assert code == 0, text
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert list(res["methods"]) == ["mlp"]
    cfg = json.loads((tmp_path / "a" / "methods" / "mlp" / "config.json").read_text())
    assert cfg["config"]["method"]["hidden"] == [8] and cfg["config"]["train"]["epochs"] == 1

    code, text = run_cli("bench", "--config", f, "--method", "prior", "--out", tmp_path / "b")
    assert code == 0, text
    assert list(json.loads((tmp_path / "b" / "results.json").read_text())["methods"]) == ["prior"]

    code, text = run_cli(
        "train", "--config", f, "--set", "train.epochs=1", "--out", tmp_path / "ckpt"
    )
    assert code == 0, text
    assert json.loads((tmp_path / "ckpt" / "meta.json").read_text())["method"] == "mlp"


# --------------------------------------------------------------------- 11, 22, 23: config files
def test_config_file_not_utf8(tmp_path, run_cli, finished_run):
    run, before = finished_run
    f = tmp_path / "latin1.yaml"
    f.write_bytes("method: {name: mlp}\n# café\n".encode("latin-1"))
    code, text = run_cli("config", "validate", f)
    assert_clean_exit_2(code, text, str(f), "not UTF-8", "0xe9")
    code, text = run_cli("bench", "--config", f, "--method", "prior", "--out", run)
    assert_clean_exit_2(code, text, str(f), "not UTF-8")
    assert snapshot(run) == before


def test_validation_errors_name_the_file_or_option_they_came_from(tmp_path, run_cli, finished_run):
    run, before = finished_run
    f = tmp_path / "run.yaml"
    f.write_text("method: {name: mlp, hiden: [8]}\ntrain: {epochs: 0}\n")
    code, text = run_cli(
        "bench", "--config", f, "--set", "train.batch_size=-1", "--out", run, *SETS
    )
    assert_clean_exit_2(
        code,
        text,
        f"{f}: method.hiden: unknown key",
        f"{f}: train.epochs:",
        "--set train.batch_size=-1: train.batch_size:",
    )
    code, text = run_cli("config", "validate", f)
    assert_clean_exit_2(code, text, f"{f}: method.hiden")
    # a section from two sources: an unknown name is blamed on whoever set the name
    f.write_text("method: {name: mlpp}\n")
    code, text = run_cli("bench", "--config", f, "--set", "method.dropout=0.1", "--out", run)
    assert_clean_exit_2(code, text, f"{f}: method: unknown method 'mlpp'")
    assert snapshot(run) == before


def test_integer_subject_ids_get_a_quoting_hint(tmp_path, run_cli):
    f = tmp_path / "wesad.yaml"
    f.write_text(f"dataset: {{name: wesad, data_dir: {tmp_path}, subjects: [2, 3]}}\n")
    code, text = run_cli("config", "validate", f)
    assert_clean_exit_2(
        code, text, f"{f}: dataset.subjects.0", "got the number 2", "quotes", '"S2"'
    )
    code, text = run_cli("bench", "--config", f, "--out", tmp_path / "o")
    assert_clean_exit_2(code, text, "dataset.subjects.1", '"S3"')
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------- 12, 13: numbers
@pytest.mark.parametrize("seeds", ["-1", "0,-3", "abc", "1.5", str(2**40)])
def test_bad_seeds(seeds, run_cli, finished_run):
    run, before = finished_run
    code, text = run_cli("bench", "--method", "prior", f"--seeds={seeds}", "--out", run, *SETS)
    assert_clean_exit_2(code, text, "seed")
    assert "--seeds" in text
    assert snapshot(run) == before


def test_negative_single_seed(run_cli, finished_run):
    run, before = finished_run
    code, text = run_cli("bench", "--method", "prior", "--seed", "-1", "--out", run, *SETS)
    assert_clean_exit_2(code, text, "seed: Input should be greater than or equal to 0")
    assert snapshot(run) == before


@pytest.mark.parametrize(
    "item", ["train.lr=inf", "train.weight_decay=inf", "train.lr=.nan", "method.dropout=-.inf"]
)
def test_float_fields_must_be_finite(item, run_cli, finished_run):
    run, before = finished_run
    code, text = run_cli("bench", "--method", "mlp", "--set", item, "--out", run, *SETS)
    assert_clean_exit_2(code, text, f"--set {item}: {item.split('=')[0]}", "finite number")
    assert snapshot(run) == before


# --------------------------------------------------------------------- 14: output folders
def test_out_is_a_file_or_lies_under_a_file(tmp_path, run_cli):
    f = tmp_path / "taken"
    f.write_text("keep me\n")
    code, text = run_cli("bench", "--method", "prior", "--out", f, *SETS)
    assert_clean_exit_2(code, text, f"--out {f} is a file")
    code, text = run_cli("bench", "--method", "prior", "--out", f / "run", *SETS)
    assert_clean_exit_2(code, text, f"lies under {f}, which is a file")
    code, text = run_cli("train", "--method", "prior", "--out", f / "ckpt", *SETS)
    assert_clean_exit_2(code, text, f"its folder {f} is a file")
    assert f.read_text() == "keep me\n"


@pytest.mark.parametrize(
    ("code_", "words"), [(errno.EROFS, "read-only file system"), (errno.EACCES, "permission")]
)
def test_out_on_a_read_only_folder(code_, words, tmp_path, run_cli, monkeypatch, finished_run):
    run, before = finished_run
    read_only(monkeypatch, run, code_)
    code, text = run_cli("bench", "--method", "prior", "--out", run, *SETS)
    assert_clean_exit_2(code, text, f"--out {run} cannot be written", words, "Pass --out")
    assert snapshot(run) == before


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into mode 555")
def test_out_with_mode_555(tmp_path, run_cli):
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o555)
    try:
        code, text = run_cli("bench", "--method", "prior", "--out", folder, *SETS)
        assert_clean_exit_2(code, text, str(folder), "permission denied")
    finally:
        folder.chmod(0o755)


def test_predict_out_read_only_or_a_folder(tmp_path, run_cli, monkeypatch, checkpoint):
    folder = tmp_path / "preds"
    folder.mkdir()
    code, text = run_cli("predict", "--checkpoint", checkpoint, "--out", folder, *SETS)
    assert_clean_exit_2(code, text, f"--out {folder} is a folder")
    read_only(monkeypatch, folder)
    code, text = run_cli("predict", "--checkpoint", checkpoint, "--out", folder / "p.csv", *SETS)
    assert_clean_exit_2(code, text, str(folder), "read-only file system")
    assert list(folder.iterdir()) == []


def test_report_on_a_read_only_run_directory(run_cli, monkeypatch, finished_run):
    run, before = finished_run
    read_only(monkeypatch, run)
    code, text = run_cli("report", run)
    assert_clean_exit_2(code, text, f"run directory {run} cannot be written", "read-only")
    assert snapshot(run) == before


# --------------------------------------------------------------------- 15: a full disk
def test_disk_full_keeps_finished_folds_and_the_same_command_resumes(
    tmp_path, run_cli, monkeypatch
):
    import affectkit.results as results_mod

    real = results_mod.atomic_write
    calls = []

    def full_after_two(path, writer):
        calls.append(path)
        if len(calls) == 3:  # the third fold's arrays
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, writer)

    run = tmp_path / "run"
    monkeypatch.setattr(results_mod, "atomic_write", full_after_two)
    args = ["bench", "--method", "prior", "--out", run, "--no-report", *SETS]
    code, text = run_cli(*args)
    assert_clean_exit_2(code, text, "the disk is full", "finished folds are saved in", str(run))
    assert f"--out {run}" in text
    kept = sorted(p.name for p in (run / "methods" / "prior" / "seed-0").glob("fold-*.json"))
    assert kept == ["fold-0.json", "fold-1.json"]
    assert not list(run.rglob("*.tmp"))  # no half-written file left behind

    monkeypatch.setattr(results_mod, "atomic_write", real)
    code, text = run_cli(*args)
    assert code == 0, text
    assert "computed 2 fold(s), reused 2" in text
    resumed = json.loads((run / "results.json").read_text())
    code, text = run_cli("bench", "--method", "prior", "--out", tmp_path / "clean", *SETS)
    assert code == 0, text
    clean = json.loads((tmp_path / "clean" / "results.json").read_text())

    def scores(res):
        return [(f["fold"], f["metrics"]) for f in res["methods"]["prior"]["folds"]]

    assert scores(resumed) == scores(clean)


def test_full_cache_disk_warns_and_the_run_goes_on(tmp_path, run_cli, monkeypatch):
    import affectkit.cache as cache_mod

    def full(path, writer):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(cache_mod, "atomic_write", full)
    code, text = run_cli("bench", "--method", "prior", "--out", tmp_path / "run", *SETS)
    assert code == 0, text
    assert "cache" in text and "the disk is full" in text and "going on" in text
    assert json.loads((tmp_path / "run" / "results.json").read_text())["complete"] is True


# --------------------------------------------------------------------- 8: plugin clashes
@pytest.fixture
def site(tmp_path):
    """``install(dist, version, module, source)``: a plugin distribution on sys.path, with
    its entry point, as pip would leave it; the plugin manager is rebuilt afterwards."""
    root = tmp_path / "site"
    root.mkdir()
    sys.path.insert(0, str(root))
    modules: list[str] = []

    def install(dist: str, version: str, module: str, source: str) -> None:
        (root / module).mkdir()
        (root / module / "__init__.py").write_text(source)
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[affectkit]\n{module} = {module}\n")
        modules.append(module)
        importlib.invalidate_caches()
        plugins._MANAGER = None

    yield install
    sys.path.remove(str(root))
    for m in modules:
        sys.modules.pop(m, None)
    importlib.invalidate_caches()
    plugins._MANAGER = None


PLUGIN = '''
from affectkit import Method, hookimpl


class Noop(Method):
    """{doc}"""

    def fit(self, train, valid=None, progress=None):
        return {{}}

    def predict(self, data):
        raise NotImplementedError


@hookimpl
def affectkit_register(registry):
{body}
'''


def test_clashing_plugin_is_reported_and_the_others_keep_working(
    site, run_cli, monkeypatch, finished_run
):
    monkeypatch.delenv("AFFECTKIT_STRICT_PLUGINS", raising=False)
    body = '    registry.register("method", "clash-own", Noop)\n'
    body += '    registry.register("method", "mlp", Noop)\n'
    site("affectkit-clash", "0.2.0", "clashplug", PLUGIN.format(doc="Clashes.", body=body))
    code, text = run_cli("plugins")
    assert code == 0, text
    assert "plugins that failed to load" in text and "affectkit-clash" in text
    assert "two plugins register the method 'mlp'" in text and "clashplug" in text
    assert "clash-own" not in text.split("plugins that failed")[0]  # skipped whole
    code, text = run_cli("methods")
    assert code == 0 and "mlp" in text and "Traceback" not in text

    run, before = finished_run
    monkeypatch.setenv("AFFECTKIT_STRICT_PLUGINS", "1")
    plugins._MANAGER = None
    for args in (["plugins"], ["bench", "--method", "prior", "--out", run, *SETS]):
        code, text = run_cli(*args)
        assert_clean_exit_2(code, text, "clashplug", "affectkit-clash", "'mlp'")
    assert snapshot(run) == before


def test_third_party_plugin_versions_in_results_and_checkpoint(tmp_path, site, run_cli):
    body = '    registry.register("method", "extra-noop", Noop)\n'
    site("affectkit-extra", "0.3.1", "extraplug", PLUGIN.format(doc="Does nothing.", body=body))
    code, text = run_cli("bench", "--method", "prior", "--out", tmp_path / "run", *SETS)
    assert code == 0, text
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["versions"]["plugins"] == {"affectkit-extra": "0.3.1"}
    code, text = run_cli("train", "--method", "prior", "--out", tmp_path / "ckpt", *SETS)
    assert code == 0, text
    meta = json.loads((tmp_path / "ckpt" / "meta.json").read_text())
    assert meta["versions"]["plugins"] == {"affectkit-extra": "0.3.1"}


# --------------------------------------------------------------------- 26 and plugins: width
def terminal(monkeypatch, width: int) -> io.StringIO:
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=True, color_system=None)
    monkeypatch.setattr(cli, "console", console)
    return buf


def expected_cells(results: dict) -> list[tuple[str, str]]:
    """(mean with its Holm marker, std) of every cell of the results table."""
    tests = paired_tests(results)
    return [
        (
            f"{r['summary'][m]['mean']:.4f}{cell_marker(tests, m, name)}",
            f"{r['summary'][m]['std']:.4f}",
        )
        for name, r in results["methods"].items()
        for m in METRIC_NAMES
    ]


@pytest.mark.slow
def test_results_table_complete_at_80_columns_and_in_a_log_file(tmp_path, run_cli, monkeypatch):
    args = [
        "bench",
        "--method",
        "prior,mlp",
        "--out",
        tmp_path / "run",
        "--no-report",
        "--set",
        "dataset.subjects=8",
        "--set",
        "dataset.trials=4",
        "--set",
        "dataset.windows=4",
        "--set",
        "protocol.folds=null",  # 8 folds: enough for Holm markers to be possible
        "--set",
        "train.epochs=3",
    ]
    code, text = run_cli(*args)  # captured stdout: not a terminal
    assert code == 0, text
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    cells = expected_cells(results)
    assert any(mean.endswith("*") for mean, _ in cells), "no Holm marker to check"
    assert "…" not in text
    for mean, std in cells:
        assert f"{mean[:6]} ± {std}{mean[6:]}" in text
    for metric in METRIC_NAMES:
        assert metric in text

    buf = terminal(monkeypatch, 80)  # the same command again reuses every fold
    code, _ = run_cli(*args)
    assert code == 0
    shown = buf.getvalue()
    assert "…" not in shown
    assert max(len(line) for line in shown.splitlines()) <= 80
    for mean, std in cells:
        assert mean in shown and f"± {std}" in shown
    for metric in METRIC_NAMES:
        assert metric in shown
    assert shown.count("★") == len(METRIC_NAMES) + 1  # one best per metric, and the legend


def test_plugins_listing_complete_at_80_columns_and_in_a_log_file(run_cli, monkeypatch):
    from affectkit.plugins import get_registry

    descriptions = [" ".join(e.description.split()) for e in get_registry().entries()]
    code, text = run_cli("plugins")  # not a terminal: one line per component
    assert code == 0 and "…" not in text
    for d in descriptions:
        assert d in text
    buf = terminal(monkeypatch, 80)
    code, _ = run_cli("plugins")
    assert code == 0
    shown = buf.getvalue()
    assert "…" not in shown
    assert max(len(line) for line in shown.splitlines()) <= 80
    folded = " ".join(shown.split())
    for d in descriptions:
        assert d in folded


def test_an_in_process_cli_run_leaves_the_affectkit_logger_as_it_was(run_cli, caplog):
    """main() prints affectkit's warnings itself while it runs; afterwards a notebook's or
    pytest's handlers must see them again (a stray propagate=False hid them for good)."""
    import logging

    log = logging.getLogger("affectkit")
    before = (list(log.handlers), log.propagate)
    run_cli("list")
    assert (list(log.handlers), log.propagate) == before
    logging.getLogger("affectkit.dmer_raw").warning("seen after the run")
    assert "seen after the run" in caplog.text


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (lambda p: np.full_like(p, np.nan), "predicted NaN or inf for"),
        (lambda p: p[:, :-1], "breaks the Method contract"),
        (lambda p: p * 2, "do not sum to 1"),
    ],
    ids=["nan", "shape", "not-distributions"],
)
def test_bad_predictions_exit_2_and_store_nothing(bad, says, tmp_path, run_cli, monkeypatch):
    """A method whose predictions are not distributions (diverged training, a plugin bug)
    stops the run with exit 2 and the fix, and no fold result is stored from them."""
    from affectkit_baselines.prior import Prior

    real = Prior.predict
    monkeypatch.setattr(Prior, "predict", lambda self, data: bad(real(self, data)))
    monkeypatch.setenv("AFFECTKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    code, text = run_cli(
        "bench", "--method", "prior", "--executor", "serial", "--out", out, "--no-report"
    )
    assert code == 2 and says in text and "method 'prior'" in text
    assert "Traceback" not in text
    assert not list(out.rglob("fold-*.json"))
