import importlib.util
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from affectkit import ComponentConfig, Method, hookimpl
from affectkit.errors import PluginError, UnknownComponentError
from affectkit.plugins import PluginManager

EXAMPLE = Path(__file__).resolve().parents[1] / "example_plugin"


def make_plugin(name: str, method_name: str, fail: bool = False) -> types.ModuleType:
    mod = types.ModuleType(name)

    class Cfg(ComponentConfig):
        pass

    class M(Method):
        def fit(self, train, valid=None, progress=None):
            return {}

        def predict(self, data):
            raise NotImplementedError

    def affectkit_register(registry):
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


def test_duplicate_names_are_an_error_naming_both():
    mgr = PluginManager()
    mgr.add_plugin(make_plugin("p1", "same"), "p1", "dist-one")
    with pytest.raises(PluginError) as exc:
        mgr.add_plugin(make_plugin("p2", "same"), "p2", "dist-two")
    msg = str(exc.value)
    assert "p1" in msg and "dist-one" in msg and "p2" in msg and "dist-two" in msg


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


@pytest.mark.slow
def test_out_of_tree_plugin_installs_and_benches(tmp_path, cli_env):
    """Install tests/example_plugin like a user would; its entry point adds ``ridge-ldl``."""
    target = tmp_path / "site"
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
            str(EXAMPLE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    env = cli_env(tmp_path, PYTHONPATH=str(target))
    proc = _run(["plugins"], env, tmp_path)
    assert "ridge-ldl" in proc.stdout and "affectkit-example" in proc.stdout
    out = tmp_path / "run"
    proc = _run(
        [
            "bench",
            "--method",
            "prior,ridge-ldl",
            "--set",
            "dataset.subjects=4",
            "--set",
            "dataset.trials=8",
            "--set",
            "dataset.windows=6",
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
