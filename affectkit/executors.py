"""Where fold jobs run: in this process, in a local process pool, or on a Ray cluster.

A job is ``(run config, seed, fold)``; :func:`run_job` turns it into a fold result and the
test predictions, and touches nothing else. The driver (``bench.run_bench``) writes each
result to the results store as it arrives, so resume, aggregation and the files on disk
are the same whichever engine ran the jobs, and workers need no shared filesystem.

Determinism: torch on CPU sums in a thread-count-dependent order, so a fold computed
with 1 thread and with 2 threads differs in the last bits. Every job therefore runs with
an explicit thread count (``threads``); runs with equal thread counts give identical
numbers on every executor.

Threads and workers (the CLI's defaults, :func:`make_executor`): every fold job runs with
**one torch thread** unless ``--threads`` says otherwise, and ``--executor auto`` runs the
jobs in a local process pool of ``cores // threads`` workers when that leaves room for more
than one fold (:func:`choose_executor`). One thread per fold and folds side by side use
every core without oversubscribing it: torch's threads wait for each other at every
operation, so two threads that share two cores with another busy process ran about 9×
slower than one (issue 18), while separate single-threaded processes only share the time.
The rule depends on the machine's core count only, never on its momentary load, so the same
command on the same machine always computes the same numbers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .data import EmotionDataset
from .errors import UserError
from .evaluate import SELECT_SECONDS, Callbacks, FoldPredictions, FoldResult, RefitPending
from .interfaces import Fold, Protocol

if TYPE_CHECKING:
    from .config import RunConfig

EXECUTORS = ("auto", "serial", "local", "ray")
DEFAULT_GPUS_PER_JOB = 0.25
#: torch threads per fold job unless --threads says otherwise (module docstring)
DEFAULT_THREADS = 1
#: below this many windows a fold trains in about a second, less than a pool worker's
#: start-up (importing torch and the plugins, 3-5 s of CPU), so ``auto`` stays in-process
POOL_MIN_WINDOWS = 1000

JobOutput = tuple[FoldResult, FoldPredictions]
OnDone = Callable[["FoldJob", FoldResult, FoldPredictions], None]


@dataclass(frozen=True)
class FoldJob:
    """One unit of work. ``config`` is the run config as JSON (only keys the user set)."""

    method: str
    config: dict[str, Any]
    seed: int
    fold: int
    config_hash: str
    threads: int | None = None
    #: ``bench --tune``: tuning settings (``TuneSettings.to_json``); the job then tunes on the
    #: fold's training part before it trains and scores the fold (affectkit.tuning)
    tune: dict[str, Any] | None = None
    #: ``bench --tune``: the SQLite file of this fold's search, so that a killed run resumes
    #: the search where it stopped (None: in memory, e.g. on a machine without the run dir)
    tune_study: str | None = None
    #: the fit in two halves (:func:`affectkit.evaluate.run_fold`): ``"select"`` stops
    #: after a refitting method's selection run, a selection's info resumes with the refit
    phase: str | dict[str, Any] | None = None


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op torch threads (unchanged when ``n`` is None)."""
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


# Per-process memo of protocol folds: a worker runs many jobs on the same dataset.
_FOLDS_MEMO: dict[tuple[int, str], list[Fold]] = {}


def _prepare(job: FoldJob, data: EmotionDataset) -> tuple[RunConfig, Protocol, list[Fold]]:
    from .config import validate_run_config
    from .evaluate import build_protocol
    from .results import results_hash

    cfg = validate_run_config(job.config)
    if results_hash(cfg) != job.config_hash:
        # the config did not survive the trip to the worker intact (e.g. a plugin of another
        # version there): computing would store numbers under the wrong hash
        raise UserError(
            f"method {job.method!r}: the run config rebuilt in the worker hashes to "
            f"{results_hash(cfg)}, not {job.config_hash}. Install the same affectkit and "
            "plugin versions on every worker."
        )
    protocol = build_protocol(cfg)
    key = (id(data), json.dumps(cfg.protocol.model_dump(mode="json"), sort_keys=True))
    if key not in _FOLDS_MEMO:
        _FOLDS_MEMO.clear()
        _FOLDS_MEMO[key] = protocol.folds(data)
    return cfg, protocol, _FOLDS_MEMO[key]


def run_job(
    job: FoldJob, data: EmotionDataset, callbacks: Callbacks | None = None
) -> JobOutput | RefitPending:
    """Pure job: (run config, seed, fold) + data -> (fold result, test predictions), or a
    :class:`~affectkit.evaluate.RefitPending` for a ``phase="select"`` job that stopped
    before its refit."""
    from .evaluate import run_fold

    cfg, protocol, folds = _prepare(job, data)
    callbacks = callbacks or Callbacks()
    callbacks.fold_start(job.method, folds[job.fold], len(folds))
    with torch_threads(job.threads):
        if job.tune is not None:
            from .tuning import TuneSettings, run_tuned_fold

            settings = TuneSettings.from_json(job.tune)
            return run_tuned_fold(
                cfg,
                data,
                protocol,
                folds[job.fold],
                settings,
                seed=job.seed,
                callbacks=callbacks,
                study=job.tune_study,
            )
        fold = folds[job.fold]
        return run_fold(
            cfg, data, protocol, fold, seed=job.seed, callbacks=callbacks, phase=job.phase
        )


def _parallel_group(pending: Sequence[FoldJob], data: EmotionDataset) -> list[FoldJob]:
    """Jobs that can train as one vmapped model with ``pending[0]`` (``train.fold_parallel``)."""
    from .evaluate import method_train_config
    from .parallel import can_run_parallel

    first = pending[0]
    if first.tune is not None:  # each fold trains its own tuned configuration
        return [first]
    cfg, protocol, folds = _prepare(first, data)
    width = method_train_config(cfg).fold_parallel
    if width <= 1:
        return [first]
    group = [
        j
        for j in pending
        if (j.method, j.seed, j.config_hash, j.threads)
        == (first.method, first.seed, first.config_hash, first.threads)
    ][:width]
    chosen = [folds[j.fold] for j in group]
    if len(group) < 2 or not can_run_parallel(cfg, data, protocol, chosen, first.seed):
        return [first]
    return group


def run_jobs_parallel(
    group: Sequence[FoldJob], data: EmotionDataset, callbacks: Callbacks | None = None
) -> list[JobOutput]:
    """Folds of one (method, seed) trained at once; same outputs as :func:`run_job` each."""
    from .parallel import run_folds_parallel

    cfg, protocol, folds = _prepare(group[0], data)
    callbacks = callbacks or Callbacks()
    callbacks.fold_start(group[0].method, folds[group[0].fold], len(folds))
    with torch_threads(group[0].threads):
        return run_folds_parallel(
            cfg,
            data,
            protocol,
            [folds[j.fold] for j in group],
            seed=group[0].seed,
            callbacks=callbacks,
        )


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under taskset or a
    container's cpuset), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _free_memory() -> int | None:
    """Bytes of memory free now, where the OS says (Linux); None elsewhere."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _in_process_only(jobs: Sequence[FoldJob]) -> str | None:
    """Why these jobs must run in this process (GPU or fold-parallel training), if so."""
    import torch

    from .config import validate_run_config
    from .evaluate import method_train_config

    seen: set[str] = set()
    for job in jobs:
        if job.config_hash in seen:
            continue
        seen.add(job.config_hash)
        train = method_train_config(validate_run_config(job.config))
        if train.device == "cuda" or (train.device == "auto" and torch.cuda.is_available()):
            return f"{job.method} trains on the GPU, which one process uses best"
        if train.fold_parallel > 1:
            return f"{job.method} trains folds as one vmapped model (train.fold_parallel)"
    return None


def _unspawnable_main() -> str | None:
    """The main script, when spawned workers could not start from it: spawn re-runs the
    main module by path in each worker, and a script read from standard input
    (``python - <<EOF``) has none, so every worker would die at start."""
    import sys

    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if path is None or os.path.isfile(path):
        return None  # an interactive session or ``python -c`` (nothing to re-run), or a file
    return str(path)


def choose_executor(
    jobs: Sequence[FoldJob],
    data: EmotionDataset,
    *,
    threads: int,
    max_workers: int | None = None,
    cores: int | None = None,
    free_memory: int | None = None,
) -> tuple[int, str]:
    """``--executor auto``: (number of pool workers, why); 1 worker means serial.

    A pool pays when the machine has room for more than one fold (``cores // threads``
    workers), there is more than one fold job, the folds are worth a worker's start-up
    (:data:`POOL_MIN_WINDOWS`), they train on the CPU one fold at a time, and the dataset
    copy each worker holds fits in half the free memory.
    """
    cores = usable_cores() if cores is None else cores
    free = _free_memory() if free_memory is None else free_memory
    if len(jobs) < 2:
        return 1, f"{len(jobs)} fold job(s) to run"
    slots = cores // threads
    if slots < 2:
        return 1, f"{cores} core(s) at {threads} thread(s) per fold: room for one fold"
    if len(data) < POOL_MIN_WINDOWS:
        return 1, f"{len(data)} windows: folds this small finish before a worker starts"
    reason = _in_process_only(jobs)
    if reason is not None:
        return 1, reason
    main = _unspawnable_main()
    if main is not None:
        return 1, f"the main script ({main}) is not a file that pool workers could start from"
    workers = min(slots, len(jobs), max_workers or slots)
    why = f"{len(jobs)} fold jobs, {cores} cores at {threads} thread(s) per fold"
    if free is not None:
        data_bytes = data.targets.nbytes + sum(x.nbytes for x in data.modalities.values())
        fit = int(free // 2 // max(data_bytes, 1))
        if fit < workers:
            workers = max(1, fit)
            why += f"; {workers} dataset copies fit in half the free memory"
    return workers, why


class Executor:
    """Runs jobs one after the other in this process (``--executor serial``).

    With ``train.fold_parallel = F > 1``, up to F folds of one method and seed whose splits
    have equal sizes train together as one vmapped model (see :mod:`affectkit.parallel`).

    Subclasses run them elsewhere; all call ``on_done`` in the driver as each job ends.
    """

    name = "serial"
    #: why ``--executor auto`` chose this executor (recorded in results.json); "" otherwise
    reason = ""

    def __init__(self, *, threads: int | None = None) -> None:
        self.threads = threads

    def job_threads(self) -> int | None:
        return self.threads

    def resolve(self, jobs: Sequence[FoldJob], data: EmotionDataset) -> Executor:
        """The executor that runs ``jobs``: itself, except for ``auto``."""
        return self

    def run(
        self,
        jobs: Sequence[FoldJob],
        data: EmotionDataset,
        on_done: OnDone,
        callbacks: Callbacks | None = None,
    ) -> None:
        pending = list(jobs)
        while pending:
            group = _parallel_group(pending, data)
            if len(group) > 1:
                for job, (result, preds) in zip(
                    group, run_jobs_parallel(group, data, callbacks), strict=True
                ):
                    on_done(job, result, preds)
                pending = [j for j in pending if j not in group]
                continue
            job = pending.pop(0)
            out = run_job(job, data, callbacks)
            assert not isinstance(out, RefitPending), "serial jobs fit in one piece"
            on_done(job, *out)

    def describe(self) -> str:
        threads = f", {self.threads} threads" if self.threads else ""
        return f"serial{threads}"


# --------------------------------------------------------------------------- process pool
_WORKER_DATA: EmotionDataset | None = None


def _exit_with_driver(driver: int, data_file: str, every: float = 0.5) -> None:
    """End this worker once its driver is gone (then the worker's parent pid changes),
    removing the pool's data file, which a killed driver leaves behind."""
    import shutil
    import time

    while os.getppid() == driver:
        time.sleep(every)
    shutil.rmtree(os.path.dirname(data_file), ignore_errors=True)
    os._exit(1)


def _worker_init(data_file: str, driver: int) -> None:
    global _WORKER_DATA
    # a terminal Ctrl-C reaches the whole process group: let only the driver handle it,
    # it stops the pool itself
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A driver killed outright (SIGKILL, OOM killer) cannot stop its pool, and a worker
    # blocked on the job queue never sees it go (it holds that pipe's write end too): it
    # would train its fold to the end and then wait forever, holding a core and its memory.
    # The driver's pid comes from the driver: a worker still importing when its driver died
    # has been reparented already, and its own getppid() would name the new parent.
    threading.Thread(
        target=_exit_with_driver, args=(driver, data_file), daemon=True, name="exit-with-driver"
    ).start()
    with open(data_file, "rb") as fh:
        _WORKER_DATA = pickle.load(fh)


def _worker_job(job: FoldJob) -> JobOutput | RefitPending:
    assert _WORKER_DATA is not None, "worker started without data"
    return run_job(job, _WORKER_DATA)


class _PoolQueue:
    """Which job a free pool worker takes next.

    Every fold starts as a ``phase="select"`` job; a refitting method's fold comes back
    after its selection run as a refit job (:func:`~affectkit.evaluate.run_fold`), so
    that the two halves of a long fold can land on different workers. A fold's length is
    not known in advance (early stopping decides it), a refit's is nearly: the selected
    steps at the selection run's seconds per step. So a free worker starts the next fold
    in the caller's order (costliest first), unless a ready refit is expected to take longer
    than that fold will (its :attr:`~affectkit.interfaces.Method.fold_cost` at the seconds
    per unit of cost the finished selection runs took): longest first, which keeps the
    last workers from finishing far apart. Results do not depend on the order.
    """

    #: a fold's selection run plus its refit, in units of the selection run (typical: the
    #: refit retrains for the selected epochs, about half of the steps the selection ran)
    FOLD_OVER_SELECTION = 1.5
    #: a refit's steps per selected step: it trains on fit + validation (the protocols hold
    #: out about a fifth), so an epoch has about 1.25 x the fit split's steps
    REFIT_OVER_SELECTED = 1.25

    def __init__(self, jobs: Sequence[FoldJob]) -> None:
        self.folds = [dataclasses.replace(job, phase="select") for job in jobs]
        self.refits: list[tuple[float, FoldJob]] = []
        self.per_cost: list[float] = []  # selection seconds per unit of fold_cost

    def __bool__(self) -> bool:
        return bool(self.folds or self.refits)

    def pending(self, job: FoldJob, out: RefitPending) -> None:
        """A selection run ended: queue its fold's refit."""
        info = out.selection
        seconds = float(info.get(SELECT_SECONDS, 0.0))
        self.per_cost.append(seconds / max(method_cost(job.method), 1e-9))
        ran, best = max(int(info.get("steps_run", 1)), 1), int(info.get("best_step", 0))
        estimate = seconds * self.REFIT_OVER_SELECTED * best / ran
        self.refits.append((estimate, dataclasses.replace(job, phase=info)))

    def take(self) -> FoldJob:
        if self.refits:
            longest = max(range(len(self.refits)), key=lambda i: self.refits[i][0])
            fold = self._fold_estimate(self.folds[0]) if self.folds else 0.0
            if self.refits[longest][0] >= fold:
                return self.refits.pop(longest)[1]
        return self.folds.pop(0)

    def _fold_estimate(self, job: FoldJob) -> float:
        if not self.per_cost:
            return float("inf")
        per_cost = sum(self.per_cost) / len(self.per_cost)
        return method_cost(job.method) * per_cost * self.FOLD_OVER_SELECTION


def method_cost(method: str) -> float:
    """The method's :attr:`~affectkit.interfaces.Method.fold_cost` (1 if it declares none)."""
    from .plugins import get_registry

    reg = get_registry()
    if ("method", method) not in reg:
        return 1.0
    return float(getattr(reg.get("method", method).factory, "fold_cost", 1.0))


class LocalExecutor(Executor):
    """A pool of ``workers`` processes (spawn: no state inherited from the driver)."""

    name = "local"

    def __init__(self, *, workers: int | None = None, threads: int | None = None) -> None:
        super().__init__(threads=threads)
        # as many workers as there are cores for them, so that they do not oversubscribe
        self.workers = max(1, workers or usable_cores() // (threads or 1))

    def job_threads(self) -> int:
        # without an explicit count, share the cores out so that workers do not oversubscribe
        return self.threads or max(1, usable_cores() // self.workers)

    def run(self, jobs, data, on_done, callbacks=None):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        if not jobs:
            return
        main = _unspawnable_main()
        if main is not None:
            raise UserError(
                f"a process pool cannot start its workers from a script read from {main}: "
                "each worker re-runs the main script by its path. Save the script to a file "
                "and run that, or use the serial executor (affectkit.executors.Executor, "
                "--executor serial)."
            )
        with tempfile.TemporaryDirectory(prefix="affectkit-pool-") as tmp:
            # The dataset reaches the workers through a file, not as an initializer argument:
            # spawn writes the arguments into each child's pipe, and a child reads them only
            # after its imports, so the driver sat blocked on every child's start in turn
            # (58 MB for the synthetic benchmark: the second worker started ~1.3 s late).
            data_file = os.path.join(tmp, "data.pkl")
            with open(data_file, "wb") as fh:
                pickle.dump(data, fh, protocol=pickle.HIGHEST_PROTOCOL)
            workers = min(self.workers, len(jobs))
            pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=mp.get_context("spawn"),
                initializer=_worker_init,
                initargs=(data_file, os.getpid()),
            )
            self._run_pool(pool, workers, jobs, on_done)

    @staticmethod
    def _run_pool(pool, workers, jobs, on_done) -> None:  # type: ignore[no-untyped-def]
        from concurrent.futures import FIRST_COMPLETED, wait

        queue = _PoolQueue(jobs)
        pending: dict[Any, FoldJob] = {}
        try:
            while queue or pending:
                # one job per worker in flight: the next is chosen when a worker frees up
                while queue and len(pending) < workers:
                    job = queue.take()
                    pending[pool.submit(_worker_job, job)] = job
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    job = pending.pop(fut)
                    out = fut.result()
                    if isinstance(out, RefitPending):
                        queue.pending(job, out)
                    else:
                        on_done(dataclasses.replace(job, phase=None), *out)
        except BaseException:
            # interrupted or a job failed: stop now, finished folds are already stored
            for fut in pending:
                fut.cancel()
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        # every job is done: the workers exit on their own while the driver writes the
        # summaries and the report (a worker's exit, torch's teardown, takes about a second;
        # the interpreter joins them at exit)
        pool.shutdown(wait=False)

    def describe(self) -> str:
        return f"local ({self.workers} workers × {self.job_threads()} threads)"


class AutoExecutor(Executor):
    """``--executor auto``: a local process pool where it pays, else serial
    (:func:`choose_executor`); the choice and its reason go into results.json."""

    name = "auto"

    def __init__(self, *, workers: int | None = None, threads: int | None = None) -> None:
        super().__init__(threads=threads or DEFAULT_THREADS)
        self.max_workers = workers

    def job_threads(self) -> int:
        return self.threads or DEFAULT_THREADS

    def resolve(self, jobs: Sequence[FoldJob], data: EmotionDataset) -> Executor:
        threads = self.job_threads()
        workers, why = choose_executor(jobs, data, threads=threads, max_workers=self.max_workers)
        chosen = (
            LocalExecutor(workers=workers, threads=threads)
            if workers > 1
            else Executor(threads=threads)
        )
        chosen.reason = f"auto: {why}"
        return chosen

    def run(self, jobs, data, on_done, callbacks=None):
        self.resolve(jobs, data).run(jobs, data, on_done, callbacks)

    def describe(self) -> str:
        return f"auto, {self.job_threads()} thread(s) per fold"


# --------------------------------------------------------------------------- ray
_RAY_LOCAL_ENV = {
    # Ray's switch for single-machine use: node address 127.0.0.1, every socket bound there
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
}


@contextlib.contextmanager
def _ray_loopback_only() -> Iterator[None]:
    """Start a private Ray instance that listens on 127.0.0.1 only.

    On Linux a new instance otherwise advertises the machine's outward address and its
    servers listen on every interface. Ray reads the switch from the environment when it
    is imported (and its spawned processes read it again), so set both for the run.
    """
    old_env = {k: os.environ.get(k) for k in _RAY_LOCAL_ENV}
    os.environ.update(_RAY_LOCAL_ENV)
    try:
        from ray._private import ray_constants
    except ImportError:  # layout of another Ray version: the environment still applies
        ray_constants = None
    old_flag = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    if ray_constants is not None and old_flag is not None:
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if ray_constants is not None and old_flag is not None:
            ray_constants.ENABLE_RAY_CLUSTER = old_flag
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _ray_job(job: FoldJob, data: EmotionDataset) -> JobOutput:
    return run_job(job, data)


class RayExecutor(Executor):
    """Ray tasks, one per fold job. Starts a private loopback instance without ``address``."""

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        workers: int | None = None,
        threads: int | None = None,
        cpus_per_job: float = 1.0,
        gpus_per_job: float | None = None,
    ) -> None:
        super().__init__(threads=threads)
        self.address = address
        self.workers = workers
        self.cpus_per_job = cpus_per_job
        self.gpus_per_job = gpus_per_job
        self.node_addresses: list[str] = []

    def job_threads(self) -> int:
        return self.threads or max(1, int(self.cpus_per_job))

    def _gpus(self, ray: Any, jobs: Sequence[FoldJob]) -> float:
        if self.gpus_per_job is not None:
            return float(self.gpus_per_job)
        wants_gpu = any((j.config.get("train") or {}).get("device", "auto") != "cpu" for j in jobs)
        has_gpu = ray.cluster_resources().get("GPU", 0) > 0
        return DEFAULT_GPUS_PER_JOB if wants_gpu and has_gpu else 0.0

    def run(self, jobs, data, on_done, callbacks=None):
        try:
            import ray
        except ImportError:
            raise UserError(
                "--executor ray needs Ray, which is not installed. Install it with "
                "`pip install 'affectkit[ray]'`, or use --executor local --workers N."
            ) from None
        if not jobs:
            return
        started = False
        with contextlib.ExitStack() as stack:
            if not ray.is_initialized():
                if self.address:
                    ray.init(address=self.address, log_to_driver=False)
                else:
                    stack.enter_context(_ray_loopback_only())
                    ray.init(
                        num_cpus=self.workers or os.cpu_count(),
                        include_dashboard=False,
                        log_to_driver=False,
                    )
                started = True
            self._run(ray, jobs, data, on_done, started)

    def _run(
        self,
        ray: Any,
        jobs: Sequence[FoldJob],
        data: EmotionDataset,
        on_done: OnDone,
        started: bool,
    ) -> None:
        # where the nodes advertise themselves (a private instance: 127.0.0.1 only)
        self.node_addresses = sorted({n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]})
        pending: dict[Any, FoldJob] = {}
        try:
            # retries cover lost workers/nodes only (a job is pure, so rerunning it is safe);
            # an exception raised by the job itself is not retried
            remote = ray.remote(_ray_job).options(
                num_cpus=self.cpus_per_job, num_gpus=self._gpus(ray, jobs), max_retries=2
            )
            data_ref = ray.put(data)  # shipped once, shared by every task on a node
            pending = {remote.remote(job, data_ref): job for job in jobs}
            while pending:
                finished, _ = ray.wait(list(pending), num_returns=1)
                for ref in finished:
                    job = pending.pop(ref)
                    try:
                        result, preds = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        cause = getattr(exc, "cause", None)
                        if isinstance(cause, BaseException):
                            raise cause from None
                        raise
                    on_done(job, result, preds)
        finally:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            if started:
                ray.shutdown()

    def describe(self) -> str:
        where = self.address or "local instance on 127.0.0.1"
        return f"ray ({where}, {self.cpus_per_job:g} CPU per job)"


def make_executor(
    name: str = "auto",
    *,
    workers: int | None = None,
    threads: int | None = None,
    ray_address: str | None = None,
    gpus_per_job: float | None = None,
) -> Executor:
    """The CLI's executor: ``threads`` defaults to :data:`DEFAULT_THREADS` per fold job."""
    if name == "auto":
        return AutoExecutor(workers=workers, threads=threads)
    if name == "serial":
        if workers not in (None, 1):
            raise UserError(
                "--workers needs --executor auto, local or ray; serial runs one job at a time."
            )
        return Executor(threads=threads or DEFAULT_THREADS)
    if name == "local":
        return LocalExecutor(workers=workers, threads=threads or DEFAULT_THREADS)
    if name == "ray":
        cpus = float(threads) if threads else 1.0
        return RayExecutor(
            address=ray_address,
            workers=workers,
            threads=threads,
            cpus_per_job=cpus,
            gpus_per_job=gpus_per_job,
        )
    raise UserError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}.")
