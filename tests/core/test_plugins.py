import importlib.util
import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from affectkit import ComponentConfig, Method, hookimpl
from affectkit.errors import PluginError, UnknownComponentError
from affectkit.plugins import PluginManager

EXAMPLE = Path(__file__).resolve().parents[1] / "example_plugin"
CSV_EXAMPLE = EXAMPLE.with_name("example_plugin_csv")
TINY = ["--set", "dataset.subjects=4", "--set", "dataset.trials=8", "--set", "dataset.windows=6"]


def make_plugin(
    name: str, method_name: str, fail: bool = False, first: str | None = None
) -> types.ModuleType:
    """A plugin registering the method ``method_name`` (after ``first``, when given)."""
    mod = types.ModuleType(name)

    class Cfg(ComponentConfig):
        pass

    class M(Method):
        def fit(self, train, valid=None, progress=None):
            return {}

        def predict(self, data):
            raise NotImplementedError

    def affectkit_register(registry):
        if first:
            registry.register("method", first, M)
        registry.register("method", method_name, M, Cfg)
        if fail:
            raise RuntimeError("boom while registering")

    mod.affectkit_register = hookimpl(affectkit_register)
    return mod


def test_inline_plugin_registers_with_origin():
    mgr = PluginManager()
    mgr.add_plugin(make_plugin("p1", "m1"), "p1", "dist-one")
    entry = mgr.registry.get("method", "m1")
    assert (entry.plugin, entry.distribution) == ("p1", "dist-one")
    assert entry.config_cls().name == "m1"  # the registry added the discriminator


def test_duplicate_name_skips_the_later_plugin_whole_and_names_both(monkeypatch):
    monkeypatch.delenv("AFFECTKIT_STRICT_PLUGINS", raising=False)
    mgr = PluginManager()
    mgr.add_plugin(make_plugin("p1", "same"), "p1", "dist-one")
    mgr.add_plugin(make_plugin("p2", "same", first="p2-own"), "p2", "dist-two")
    assert mgr.registry.get("method", "same").plugin == "p1"  # the first keeps the name
    assert ("method", "p2-own") not in mgr.registry  # no half plugin
    (failure,) = mgr.failures
    assert (failure.name, failure.distribution) == ("p2", "dist-two")
    for part in ("'same'", "p1", "dist-one", "p2", "dist-two"):
        assert part in failure.error
    monkeypatch.setenv("AFFECTKIT_STRICT_PLUGINS", "1")
    strict = PluginManager()
    strict.add_plugin(make_plugin("p1", "same"), "p1", "dist-one")
    with pytest.raises(PluginError, match="dist-two"):
        strict.add_plugin(make_plugin("p2", "same", first="p2-own"), "p2", "dist-two")


def test_failing_plugin_is_skipped_and_reported(monkeypatch):
    monkeypatch.delenv("AFFECTKIT_STRICT_PLUGINS", raising=False)
    mgr = PluginManager()
    mgr.add_plugin(make_plugin("bad", "half", fail=True), "bad", "dist-bad")
    assert ("method", "half") not in mgr.registry  # half-done registrations are rolled back
    (failure,) = mgr.failures
    assert failure.name == "bad" and failure.distribution == "dist-bad"
    assert "boom while registering" in failure.error
    monkeypatch.setenv("AFFECTKIT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="boom"):
        PluginManager().add_plugin(make_plugin("bad", "half", fail=True), "bad", "dist-bad")


def test_unknown_name_lists_available_and_suggests():
    mgr = PluginManager()
    mgr.add_plugin(make_plugin("p1", "mpcl-lite"), "p1")
    with pytest.raises(UnknownComponentError) as exc:
        mgr.registry.get("method", "mpcl-lit")
    assert "Did you mean 'mpcl-lite'" in str(exc.value) and "Available methods: mpcl-lite" in str(
        exc.value
    )


def _run(args, env, cwd):
    return subprocess.run(
        [sys.executable, "-m", "affectkit.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def test_allowlist_and_core_never_imports_plugins(tmp_path, cli_env):
    proc = _run(["methods"], cli_env(tmp_path, AFFECTKIT_LOAD_PLUGINS=""), tmp_path)
    assert proc.returncode == 0 and "mlp" not in proc.stdout
    proc = _run(["methods"], cli_env(tmp_path, AFFECTKIT_LOAD_PLUGINS="baselines"), tmp_path)
    assert proc.returncode == 0 and "mlp" in proc.stdout
    # architecture rule: nothing in affectkit/ imports a plugin package
    core = Path(__file__).resolve().parents[2] / "affectkit"
    pattern = re.compile(r"^\s*(from|import)\s+(affectkit_\w+|plugins)\b", re.M)
    for py in core.rglob("*.py"):
        assert not pattern.search(py.read_text()), f"{py} imports a plugin package"


def _install(plugin: Path, tmp_path: Path) -> Path:
    """pip-install a plugin folder like a user would; returns the folder it went to."""
    src, target = tmp_path / "src" / plugin.name, tmp_path / "site"
    shutil.copytree(plugin, src)  # pip builds in the source folder: keep the repo clean
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    return target


@pytest.mark.slow
def test_out_of_tree_plugin_installs_and_benches(tmp_path, cli_env):
    """Install tests/example_plugin like a user would; its entry point adds ``ridge-ldl``."""
    target = _install(EXAMPLE, tmp_path)
    env = cli_env(tmp_path, PYTHONPATH=str(target))
    proc = _run(["plugins"], env, tmp_path)
    assert "ridge-ldl" in proc.stdout and "affectkit-example" in proc.stdout
    out = tmp_path / "run"
    proc = _run(
        [
            "bench",
            "--method",
            "prior,ridge-ldl",
            *TINY,
            "--out",
            str(out),
        ],
        env,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "results.json").read_text())
    assert set(res["methods"]) == {"prior", "ridge-ldl"}
    assert len(res["methods"]["ridge-ldl"]["folds"]) == 4
    if importlib.util.find_spec("optuna") is None:
        return  # the tune extra is not installed
    # its declared search space is what `affectkit tune` searches
    tiny = [f"--set=dataset.{k}" for k in ("subjects=4", "trials=8", "windows=6")]
    tuned = tmp_path / "tuned"
    args = ["tune", "-m", "ridge-ldl", "--trials", "2", "--out", str(tuned), *tiny]
    proc = _run(args, env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    best = (tuned / "best.yaml").read_text()
    assert "name: ridge-ldl" in best and "method.alpha=" in best


@pytest.mark.slow
def test_csv_example_plugin_installs_and_benches_mpcl_with_its_fusion(tmp_path, cli_env):
    """Install tests/example_plugin_csv; bench mpcl on its CSV layout with its fusion."""
    env = cli_env(tmp_path, PYTHONPATH=str(_install(CSV_EXAMPLE, tmp_path)))
    listing = _run(["plugins"], env, tmp_path).stdout
    assert "csv-windows" in listing and "gated-mean" in listing
    data = tmp_path / "data"
    export = ["data", "export", "--dataset", "synthetic", *TINY, "--format", "csv-windows",
              "--set", "dataset.behavioral_dim=32"]  # fmt: skip
    proc = _run([*export, "--out", str(data)], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "run"
    bench = ["bench", "--method", "mpcl", "--dataset", "csv-windows", "--data-dir", str(data),
             "--set", "dataset.behavioral=[behavioral]", "--set", "method.fusion.name=gated-mean",
             "--set", "method.dim=8", "--no-report"]  # fmt: skip
    proc = _run([*bench, "--out", str(out)], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"] == "csv-windows" and len(res["emotions"]) == 10
    mpcl = res["methods"]["mpcl"]
    assert mpcl["method"]["fusion"]["name"] == "gated-mean"
    assert sorted(s for f in mpcl["folds"] for s in f["test_subjects"]) == ["1", "2", "3", "4"]
    assert all(f["n_test"] == 48 and 0 < f["metrics"]["kl"] < 10 for f in mpcl["folds"])
    # one bad cell: exit 2, a message naming file, line and column, no traceback
    lines = (data / "4.csv").read_bytes().split(b"\n")
    cells = lines[8].split(b",")
    cells[3] = b"n/a"  # subject,trial,window, then eeg.0
    lines[8] = b",".join(cells)
    (data / "4.csv").write_bytes(b"\n".join(lines))
    proc = _run([*bench, "--out", str(tmp_path / "run2")], env, tmp_path)
    text = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2 and "Traceback" not in text, text
    assert "4.csv, line 9, column 'eeg.0': 'n/a' is not a number" in text
