"""Batches of independent jobs on Dask (``dask.distributed``): a parameter sweep's points, seeds, trials.

Where the jobs run: a ``LocalCluster`` sized to this machine (one single-threaded worker process per
core) by default; ``scheduler="tcp://host:8786"`` (or the environment variable ``SPIKEFORGE_SCHEDULER``)
for a running cluster, such as one started by ``dask-jobqueue`` on SLURM or PBS (docs/scaling.md).
Never a scheduler of our own: Dask reschedules the jobs of a lost worker, and its nanny restarts the
worker.

What the batch guarantees (:func:`run_jobs`):

* each finished job's result is written to ``<results>/<key>.h5`` atomically as it arrives, with the
  job's inputs; a crash of the client or of a worker loses only the jobs then running;
* a job whose result file exists with the same inputs is not run again; one whose file holds other
  inputs is refused before any work (``force`` recomputes it), or recomputed where the caller says that
  such results are a cache (``changed="recompute"``);
* a job that raises is reported (its error in the outcome and in ``<key>.error.txt``) and does not
  stop the others; the next run of the batch tries it again;
* one progress bar for the batch; SIGINT or SIGTERM stops it with every finished result kept.

A job is a module-level function and its arguments (they travel to other processes by pickle) and
returns a mapping: NumPy arrays (and lists of numbers) become datasets of the result file, other values
(numbers, strings, None) its attribute ``values`` (JSON).  Inside a job, numba uses the worker's threads
(one by default), so jobs do not compete for the cores.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from spikeforge.core.provenance import differences
from spikeforge.core.run_support import echo, progress_bar, progress_line
from spikeforge.core.store import atomic_write_text, read_h5, write_h5
from spikeforge.errors import ParameterError, SpikeforgeError

SCHEDULER_VARIABLE = "SPIKEFORGE_SCHEDULER"
POLL_SECONDS = 0.25  # how often a batch checks for a stop while its jobs run
SAFE_KEY = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789=_.,+-")


@dataclass(frozen=True)
class Job:
    """One independent piece of work: ``function(*arguments)``, its result named ``key``; ``inputs``: what
    the result depends on (recorded with it, compared on a re-run)."""

    key: str
    function: Callable[..., Mapping[str, Any]]
    arguments: tuple = ()
    inputs: Mapping[str, Any] = field(default_factory=dict)


class Outcome(NamedTuple):
    """What became of one job of a batch: its key, its status, its scalar results and its error."""

    key: str
    status: str  # "done" (this run), "kept" (an earlier run's result), "failed", "stopped" (not run: a stop)
    values: dict  # the scalar results (empty when failed)
    error: str | None  # "ErrorType: message" when failed


def scheduler_address(given: str | None, workers: int | None = None) -> str | None:
    """The scheduler to use: ``given``, else ``$SPIKEFORGE_SCHEDULER`` unless ``workers`` asks for a local
    cluster, else None (a LocalCluster)."""
    if given is not None and workers is not None:
        raise ParameterError("--workers sets the size of a local cluster and --scheduler names a running one; "
                             "give one of them")
    address = given if given is not None else (os.environ.get(SCHEDULER_VARIABLE) or None if workers is None
                                               else None)
    where = "the scheduler address" if given is not None else f"${SCHEDULER_VARIABLE}"
    if address is not None and not str(address).strip():
        raise ParameterError(f"{where} is empty; expected e.g. tcp://host:8786")
    if address is not None:
        scheme, _, rest = str(address).strip().rpartition("://")
        host, colon, port = rest.rpartition(":")
        if scheme not in ("", "tcp", "tls", "ucx", "ws", "wss", "inproc") or not (colon and host and port.isdigit()):
            raise ParameterError(f"{where} = {address!r} is not a Dask scheduler address; expected "
                                 "tcp://host:port, e.g. tcp://10.1.2.3:8786")
    return address


def uses_dask(scheduler: str | None, workers: int | None) -> bool:
    """Whether a command whose batches can run in its own process goes to Dask: when given ``--scheduler``
    or ``--workers``, or when ``$SPIKEFORGE_SCHEDULER`` names a cluster."""
    address = scheduler_address(scheduler, workers)  # validates both, whatever is given
    return workers is not None or address is not None


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ParameterError("running jobs on Dask needs the 'dist' extra: pip install 'spikeforge[dist]'") from None
    return distributed


class Cluster:
    """A Dask client: on ``scheduler`` (an address), or on a LocalCluster of ``workers`` single-threaded
    processes (default: one per core).  A context manager; the LocalCluster ends with it."""

    def __init__(self, scheduler: str | None = None, workers: int | None = None, threads_per_worker: int = 1):
        self.address = scheduler_address(scheduler, workers)
        if workers is not None and int(workers) < 1:
            raise ParameterError(f"workers = {workers}; expected at least 1")
        if int(threads_per_worker) < 1:
            raise ParameterError(f"threads_per_worker = {threads_per_worker}; expected at least 1")
        self.workers = int(workers) if workers is not None else (os.cpu_count() or 1)
        self.threads_per_worker = int(threads_per_worker)
        self.client = self._cluster = None

    def __enter__(self) -> "Cluster":
        distributed = _import_distributed()
        if self.address is not None:
            try:
                self.client = distributed.Client(self.address, timeout="10s")
            except (OSError, TimeoutError, ValueError) as error:
                raise ParameterError(f"cannot reach the Dask scheduler at {self.address!r} ({error})") from None
        else:
            import dask

            # Ctrl-C in a terminal signals the whole process group: the local workers ignore SIGINT
            # (spikeforge.core.dask_worker), so only this process sees it and stops the batch in order
            settings = {"distributed.worker.daemon": False, "logging.distributed": "error",
                        "distributed.worker.preload": ["spikeforge.core.dask_worker"]}
            with dask.config.set(settings):
                self._cluster = distributed.LocalCluster(n_workers=self.workers,
                                                         threads_per_worker=self.threads_per_worker,
                                                         processes=True, dashboard_address=":0",
                                                         silence_logs=40)
            self.client = distributed.Client(self._cluster)
        return self

    def __exit__(self, *exc_info) -> None:
        if self.client is not None:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def describe(self) -> str:
        """Where the jobs run, in words for a progress message (the scheduler's address or the local worker count)."""
        if self.address is not None:
            return f"the Dask scheduler at {self.address}"
        return f"a local Dask cluster of {self.workers} worker process(es)"


def _call(function, arguments: tuple, threads: int) -> dict:
    """Run a job in a worker: numba on ``threads`` threads; errors become values (so the traceback
    of a user error does not reach the client as a failure of Dask)."""
    try:
        import numba

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    try:
        return {"ok": True, "result": dict(function(*arguments))}
    except SpikeforgeError as error:
        return {"ok": False, "error": f"{type(error).__name__}: {error}", "trace": None}
    except Exception as error:  # a crash of one job is reported, the batch goes on
        return {"ok": False, "error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()}


def result_path(results: Path, key: str) -> Path:
    """The result file of the job ``key``: ``<results>/<key>.h5``."""
    return Path(results) / f"{key}.h5"


def _split(result: Mapping[str, Any]) -> tuple[dict, dict]:
    arrays, values = {}, {}
    for name, value in result.items():
        if isinstance(value, np.ndarray) or (isinstance(value, (list, tuple)) and value
                                             and all(isinstance(v, (int, float)) for v in value)):
            arrays[name] = np.asarray(value)
        elif isinstance(value, np.generic):
            values[name] = value.item()
        else:
            values[name] = value
    return arrays, values


def read_result(results: Path, key: str) -> tuple[dict, dict, dict]:
    """(arrays, scalar values, inputs) of a finished job."""
    arrays, attrs = read_h5(result_path(results, key), None, "job result")
    return arrays, attrs.get("values") or {}, attrs.get("inputs") or {}


def _existing(results: Path, job: Job, force: bool, on_changed: str) -> Outcome | None:
    path = result_path(results, job.key)
    if not path.exists():
        return None
    if force:
        path.unlink()
        return None
    _, values, inputs = read_result(results, job.key)
    changed = differences(inputs, dict(job.inputs), list(job.inputs))
    if changed and on_changed == "recompute":
        path.unlink()
        return None
    if changed:
        name, old, new = changed[0]
        raise ParameterError(f"{str(path)!r} holds the result of {job.key} made with {name} = {old}, not {new}; "
                             "use --force to recompute it, or another directory")
    return Outcome(job.key, "kept", values, None)


def run_jobs(jobs: Iterable[Job], results: str | Path, cluster: Cluster | None = None, force: bool = False,
             verbose: bool = True, what: str = "job", on_result: Callable[[Outcome], None] | None = None,
             changed: str = "refuse", should_stop: Callable[[], bool] | None = None) -> list[Outcome]:
    """Run ``jobs`` (see the module docstring) on ``cluster`` (default: a LocalCluster for this call);
    results under ``results``; ``on_result`` is called with each new outcome once it is saved.
    ``changed``: "refuse" a result file made with other inputs, or "recompute" it.  ``should_stop`` is
    asked after each result: a true answer cancels the jobs not yet finished (their outcome: "stopped").
    Returns one outcome per job, in the jobs' order."""
    if changed not in ("refuse", "recompute"):
        raise ParameterError(f"changed = {changed!r}; expected 'refuse' or 'recompute'")
    jobs = list(jobs)
    keys = [job.key for job in jobs]
    for key in keys:
        if not key or not set(key) <= SAFE_KEY or key.startswith("."):
            raise ParameterError(f"job key {key!r} is not a safe file name (letters, digits, = _ . , + -)")
    if len(set(keys)) != len(keys):
        raise ParameterError(f"job keys repeat: {sorted(k for k in set(keys) if keys.count(k) > 1)[:3]}")
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    outcomes = {job.key: _existing(results, job, force, changed) for job in jobs}  # refusals before any work
    pending = [job for job in jobs if outcomes[job.key] is None]
    kept = len(jobs) - len(pending)
    if kept:
        echo(verbose, f"{kept} of {len(jobs)} {what}s already done (kept)")
    if pending:
        if cluster is None:
            with Cluster() as own:
                return run_jobs(jobs, results, own, False, verbose, what, on_result, changed, should_stop)
        _run_pending(pending, results, cluster, outcomes, verbose, what, on_result, should_stop)
    return [outcomes[key] or Outcome(key, "stopped", {}, None) for key in keys]


def _run_pending(pending: list[Job], results: Path, cluster: Cluster, outcomes: dict, verbose: bool,
                 what: str, on_result, should_stop) -> None:
    distributed = _import_distributed()
    client = cluster.client
    echo(verbose, f"running {len(pending)} {what}(s) on {cluster.describe()}")
    futures = {client.submit(_call, job.function, job.arguments, cluster.threads_per_worker, key=f"{job.key}-{id(job)}",
                             pure=False): job for job in pending}
    bar = progress_bar(len(pending), f"{what}s", what, verbose)
    remaining = set(futures)
    try:
        with bar:
            while remaining:
                try:  # wake up now and then, so that a stop is seen while long jobs run
                    finished = distributed.wait(remaining, timeout=POLL_SECONDS, return_when="FIRST_COMPLETED").done
                except TimeoutError:
                    finished = set()
                remaining -= finished
                for future in finished:
                    _record(future, futures[future], results, outcomes, bar, verbose, on_result)
                if should_stop is not None and should_stop():
                    break
    finally:
        for future in futures:
            if not future.done():
                future.cancel()


def raise_failures(outcomes: list[Outcome], what: str, results: Path) -> None:
    """Raise SpikeforgeError naming the first failed job of a batch, if one failed (the finished jobs' results
    are kept in ``results``, and the next run of the batch retries the failed ones)."""
    failed = [outcome for outcome in outcomes if outcome.status == "failed"]
    if failed:
        raise SpikeforgeError(f"{len(failed)} of {len(outcomes)} {what}s failed ({failed[0].key}: {failed[0].error}); "
                              f"the finished ones are kept in {results}, and the same command runs the rest")


def _record(future, job: Job, results: Path, outcomes: dict, bar, verbose: bool, on_result) -> None:
    """Save the result of ``job`` (or its error) from its finished ``future``."""
    try:
        answer = future.result()
    except Exception as error:  # the worker died too often, or the job could not be sent
        answer = {"ok": False, "error": f"{type(error).__name__}: {error}", "trace": None}
    error_file = results / f"{job.key}.error.txt"
    if answer["ok"]:
        arrays, values = _split(answer["result"])
        write_h5(result_path(results, job.key), arrays,
                 {"job": job.key, "inputs": dict(job.inputs), "values": values})
        error_file.unlink(missing_ok=True)
        outcomes[job.key] = Outcome(job.key, "done", values, None)
        progress_line(bar, verbose, f"{job.key}: done")
    else:
        atomic_write_text(error_file, answer["error"] + "\n" + (answer.get("trace") or ""))
        outcomes[job.key] = Outcome(job.key, "failed", {}, answer["error"])
        progress_line(bar, verbose, f"{job.key}: failed: {answer['error']}")
    bar.update(1)
    if on_result is not None:
        on_result(outcomes[job.key])


__all__ = ["Job", "Outcome", "Cluster", "run_jobs", "read_result", "result_path", "scheduler_address",
           "raise_failures", "uses_dask"]
