"""Kill a real `affectkit bench` process mid-run (SIGKILL, SIGINT) and resume it."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from affectkit.bench import resolve_configs, run_bench
from affectkit.executors import Executor

# 6 subjects, leave-one-subject-out, 2 seeds: 12 folds of ~0.1-0.3 s each, so a kill right
# after the first fold file appears lands in the middle of the run
SETS = [
    "dataset.subjects=6",
    "dataset.trials=8",
    "dataset.windows=6",
    "train.epochs=6",
    "protocol.folds=null",
]
SEEDS = [0, 1]
N_FOLDS = 12


def cli(out):
    args = [
        sys.executable,
        "-m",
        "affectkit.cli",
        "bench",
        "--method",
        "mlp",
        "--out",
        str(out),
        "--seeds",
        "0,1",
        "--threads",
        "1",
        "--no-report",
    ]
    for s in SETS:
        args += ["--set", s]
    return args


def env(tmp_path):
    # one OpenMP thread: what --threads 1 sets for torch, also for import-time pools
    return dict(
        os.environ, AFFECTKIT_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1", COLUMNS="200"
    )


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_and_stop_after_first_fold(tmp_path, out, sig):
    proc = subprocess.Popen(
        cli(out),
        env=env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a test run started in the background (nohup, `cmd &` without job control) inherits
        # SIGINT ignored, and an ignored signal stays ignored across exec: the child would
        # never see the Ctrl-C. Default disposition = Python installs its KeyboardInterrupt.
        preexec_fn=_sigint_default,
    )
    deadline = time.monotonic() + 180
    while not list(out.glob("methods/mlp/seed-*/fold-*.json")):
        if proc.poll() is not None:
            pytest.fail(f"bench ended before the first fold: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no fold finished within 180 s")
        time.sleep(0.005)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return proc.returncode, stdout + stderr


def finished_folds(out):
    return sorted(p for p in out.glob("methods/mlp/seed-*/fold-*.json"))


def assert_every_file_whole(out):
    """Every non-temp file parses completely: nothing was left half-written."""
    for p in out.rglob("*"):
        if not p.is_file() or p.name.endswith(".tmp") or p.name == ".lock":
            continue
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                assert z["pred"].shape == z["target"].shape
        elif p.suffix in (".md", ".csv"):
            p.read_text()


def reference(tmp_path):
    """The same benchmark, uninterrupted, in this process."""
    import torch

    old = torch.get_num_threads()
    try:
        res, _ = run_bench(
            resolve_configs(["mlp"], overrides=SETS),
            seeds=SEEDS,
            run_dir=tmp_path / "ref",
            executor=Executor(threads=1),
        )
    finally:
        torch.set_num_threads(old)
    return {(f["run_seed"], f["fold"]): f["metrics"] for f in res["methods"]["mlp"]["folds"]}


def metrics_of(out):
    res = json.loads((out / "results.json").read_text())
    return res, {(f["run_seed"], f["fold"]): f["metrics"] for f in res["methods"]["mlp"]["folds"]}


def test_sigkill_mid_run_then_resume_computes_only_missing_folds(tmp_path):
    out = tmp_path / "run"
    code, log = start_and_stop_after_first_fold(tmp_path, out, signal.SIGKILL)
    assert code == -signal.SIGKILL, log
    done = finished_folds(out)
    assert 1 <= len(done) < N_FOLDS, "the kill should land mid-run"
    assert_every_file_whole(out)
    partial = json.loads((out / "results.json").read_text())
    assert partial["complete"] is False
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in done}

    proc = subprocess.run(cli(out), env=env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"computed {N_FOLDS - len(done)} fold(s), reused {len(done)}" in proc.stdout
    # the folds that had finished were read, not recomputed or rewritten
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in done} == before
    assert len(finished_folds(out)) == N_FOLDS
    assert not list(out.rglob("*.tmp")), "stale temp files are cleaned on resume"
    assert_every_file_whole(out)
    res, resumed = metrics_of(out)
    assert res["complete"] is True
    assert resumed == reference(tmp_path)  # identical to a run that was never killed


def test_sigint_stops_cleanly_and_resumes(tmp_path):
    out = tmp_path / "run"
    code, log = start_and_stop_after_first_fold(tmp_path, out, signal.SIGINT)
    assert code == 130, log
    assert "interrupted" in log and "Traceback" not in log
    done = finished_folds(out)
    assert 1 <= len(done) < N_FOLDS
    assert not list(out.rglob("*.tmp")), "an interrupted write removes its temp file"
    assert_every_file_whole(out)
    _, partial = metrics_of(out)
    assert len(partial) == len(done)  # results.json was current at the interrupt

    import torch

    old = torch.get_num_threads()
    try:
        res, _ = run_bench(
            resolve_configs(["mlp"], overrides=SETS),
            seeds=SEEDS,
            run_dir=out,
            executor=Executor(threads=1),
        )
    finally:
        torch.set_num_threads(old)
    assert res["last_invocation"]["reused_folds"] == len(done)
    assert res["last_invocation"]["computed_folds"] == N_FOLDS - len(done)
    _, resumed = metrics_of(out)
    assert {k: resumed[k] for k in partial} == partial


def _children(pid: int) -> list[int]:
    out = []
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(stat))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pool_workers_exit_when_their_driver_is_killed(tmp_path):
    """SIGKILL leaves the driver no chance to stop its process pool: the workers must notice
    and exit by themselves instead of training on (and then idling) as orphans."""
    args = cli(tmp_path / "run")
    args[args.index("--threads") : args.index("--threads") + 2] = [
        "--executor", "local", "--workers", "2", "--threads", "1"
    ]  # fmt: skip
    args += ["--set", "train.epochs=400"]  # folds of several seconds
    scratch = tmp_path / "tmp"  # where the driver puts the pool's data file
    scratch.mkdir()
    proc = subprocess.Popen(
        args,
        env={**env(tmp_path), "TMPDIR": str(scratch)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    deadline = time.monotonic() + 120
    workers: list[int] = []
    while len(workers) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the pool did not start"
        time.sleep(0.05)
        # the spawn start method adds a resource tracker; the workers are the other children
        workers = [c for c in _children(proc.pid) if "resource_tracker" not in _cmdline(c)]
    time.sleep(1.0)  # let them import and pick up their first fold
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while any(_alive(w) for w in workers):
        assert time.monotonic() < deadline, f"workers {workers} outlived their driver"
        time.sleep(0.1)
    assert list(scratch.iterdir()) == []  # nor is the dataset copy left in the temp dir


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return False
