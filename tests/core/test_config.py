import subprocess
import sys

import pytest

from affectkit.bench import resolve_configs
from affectkit.cli import main
from affectkit.errors import ConfigError, UserError


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return exc.value.code, out.out + out.err


def test_unknown_key_names_the_field_path(tmp_path, capsys):
    f = tmp_path / "run.yaml"
    f.write_text("method:\n  name: mlp\n  hiden: [64]\ntrain:\n  epochs: 3\n")
    code, out = run_cli(capsys, "config", "validate", str(f))
    assert code == 2
    assert "method.hiden: unknown key" in out
    assert "Traceback" not in out


def test_wrong_type_and_every_error_reported(tmp_path, capsys):
    f = tmp_path / "run.toml"
    f.write_text('[train]\nepochs = "many"\nlr = -1\n[method]\nname = "mlp"\ndropout = "x"\n')
    code, out = run_cli(capsys, "config", "validate", str(f))
    assert code == 2
    assert "train.epochs:" in out and "train.lr:" in out and "method.dropout:" in out
    assert "3 error(s)" in out


def test_unknown_component_name_suggests(tmp_path, capsys):
    f = tmp_path / "run.yaml"
    f.write_text("method: {name: mlpp}\n")
    code, out = run_cli(capsys, "config", "validate", str(f))
    assert code == 2
    assert "unknown method 'mlpp'" in out and "Did you mean 'mlp'" in out
    code, out = run_cli(capsys, "bench", "--method", "priorr", "--out", str(tmp_path / "r"))
    assert code == 2 and "Did you mean 'prior'" in out


def test_valid_file_passes_and_show_prints_effective_config(tmp_path, capsys):
    f = tmp_path / "run.yaml"
    f.write_text("method: {name: mlp, hidden: [32]}\nprotocol: {name: subject-dependent}\n")
    code, out = run_cli(capsys, "config", "validate", str(f))
    assert code in (0, None) and "valid" in out
    code, out = run_cli(capsys, "config", "show", "--method", "mlp", "--set", "train.epochs=7")
    assert code in (0, None)
    assert "epochs: 7" in out and "hidden:" in out and "subject-independent" in out


def test_set_overrides_are_type_checked():
    (cfg,) = resolve_configs(["mlp"], overrides=["train.epochs=5", "method.hidden=[8, 4]"])
    assert cfg.train.epochs == 5 and cfg.method.hidden == [8, 4]
    with pytest.raises(ConfigError) as exc:
        resolve_configs(["mlp"], overrides=["train.epochs=lots"])
    assert exc.value.errors[0][0] == "train.epochs"
    with pytest.raises(UserError, match="KEY=VALUE"):
        resolve_configs(["mlp"], overrides=["train.epochs"])


def test_layering_files_flags_and_method_switch(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("method: {name: mlp, dropout: 0.1}\ntrain: {epochs: 4}\nseed: 3\n")
    mlp, prior = resolve_configs(["mlp", "prior"], files=[f])
    assert mlp.method.dropout == 0.1 and mlp.train.epochs == 4 and mlp.seed == 3
    assert prior.method.name == "prior" and prior.train.epochs == 4
    # the synthetic reader suggests 4-fold; an explicit protocol setting wins
    assert mlp.protocol.folds == 4
    (cfg,) = resolve_configs(["mlp"], overrides=["protocol.folds=null"])
    assert cfg.protocol.folds is None


def test_bad_config_exits_2_without_traceback_in_a_real_process(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("dataset: {name: synthetic, subjects: one}\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "affectkit.cli",
            "bench",
            "--config",
            str(f),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "dataset.subjects" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists(), "a bad config must fail before any work"


def test_method_precedence_default_then_file_then_flag(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("method: {name: mlp, dropout: 0.2}\n")
    (cfg,) = resolve_configs([None], files=[f], default_method="prior")
    assert cfg.method.name == "mlp" and cfg.method.dropout == 0.2
    (cfg,) = resolve_configs(["prior"], files=[f], default_method="mlp")
    assert cfg.method.name == "prior"
    (cfg,) = resolve_configs([None], overrides=["method.name=prior"], default_method="mlp")
    assert cfg.method.name == "prior"
    f.write_text("method: {dropout: 0.3}\n")  # no name: the default method, with this field
    (cfg,) = resolve_configs([None], files=[f], default_method="mlp")
    assert cfg.method.name == "mlp" and cfg.method.dropout == 0.3


def test_config_error_origins_per_source(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("train: {epochs: 0}\n")
    with pytest.raises(ConfigError) as exc:
        resolve_configs(["mlp"], files=[f], overrides=["train.lr=inf"])
    origins = dict(zip([p for p, _ in exc.value.errors], exc.value.origins, strict=True))
    assert origins == {"train.epochs": str(f), "train.lr": "--set train.lr=inf"}
