"""What ``run.py`` and the peer scripts share: the network file, rates, and CPU contention.

Plain numpy and the standard library, so the peers' virtual environment needs no spikeforge.

The network file (``.npz``) holds spikeforge's network in spikeforge's units (ms,
dimensionless voltage and current).  Model, per neuron ``i``::

    tau_m dv/dt = -v + x[i] + u_e + u_i        forward Euler, step dt
    spike when v > thresh; reset to vre; frozen for refrac (one step) after the spike
    u_e, u_i decay with tau_s and jump by w / tau_s one step after a presynaptic spike
             (E presynaptic weights are positive, I presynaptic weights negative)

Arrays: ``pre``, ``post`` (int64, 0-based), ``weight`` (float64) per synapse; ``v0``,
``x`` (float64) per neuron.  Scalars: ``n``, ``ne``, ``dt``, ``t_sim``, ``tau_m``,
``tau_s``, ``thresh``, ``vre``, ``refrac``.

The machine may be shared (2 cores, other work running), so every timed run is preceded
by :func:`wait_until_quiet` and measured with :class:`CpuMeter`, which reports the share of
the machine's CPU time that *other* processes used meanwhile.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

SCALARS = ("n", "ne", "dt", "t_sim", "tau_m", "tau_s", "thresh", "vre", "refrac")
ARRAYS = ("pre", "post", "weight", "v0", "x")


def save_network(path: str | Path, **fields) -> None:
    """Write a network file (every name of SCALARS and ARRAYS must be given)."""
    missing = [name for name in SCALARS + ARRAYS if name not in fields]
    if missing:
        raise ValueError(f"network file lacks {missing}")
    np.savez(path, **{name: np.asarray(fields[name]) for name in SCALARS + ARRAYS})


def load_network(path: str | Path) -> dict:
    """Read a network file: scalars as Python numbers, arrays as numpy arrays."""
    with np.load(path) as data:
        net = {name: data[name].item() for name in SCALARS}
        net.update({name: data[name] for name in ARRAYS})
    net["n"], net["ne"] = int(net["n"]), int(net["ne"])
    return net


def rates(counts: np.ndarray, ne: int, t_sim_ms: float) -> tuple[float, float]:
    """Mean excitatory and inhibitory rates [Hz] from per-neuron spike counts."""
    seconds = t_sim_ms / 1000.0
    return float(counts[:ne].mean() / seconds), float(counts[ne:].mean() / seconds)


def write_result(path: str | Path, result: dict) -> None:
    """Write a peer's result (JSON)."""
    Path(path).write_text(json.dumps(result, indent=1))


# ------------------------------------------------------------------------------- CPU contention

def _busy_seconds() -> float | None:
    """CPU seconds all processes have used since boot (Linux /proc/stat), or None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class CpuMeter:
    """Context manager: wall seconds of the block, and the share of the machine's CPU capacity
    (all cores) that other processes used during it (``others``, 0 .. 1; NaN if unknown)."""

    def __enter__(self):
        self._busy, self._own, self._wall = _busy_seconds(), _own_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._wall
        busy = _busy_seconds()
        if busy is None or self._busy is None or self.seconds <= 0:
            self.others = float("nan")
        else:
            other = (busy - self._busy) - (_own_seconds() - self._own)
            self.others = min(max(other / (self.seconds * (os.cpu_count() or 1)), 0.0), 1.0)
        return False


def wait_until_quiet(threshold: float = 0.1, max_wait_s: float = 120.0, probe_s: float = 1.0) -> float:
    """Sleep until other processes use less than ``threshold`` of the CPU capacity over a
    ``probe_s`` probe, or ``max_wait_s`` has passed.  Returns the last probe's share."""
    deadline = time.monotonic() + max_wait_s
    while True:
        with CpuMeter() as meter:
            time.sleep(probe_s)
        if not meter.others >= threshold or time.monotonic() >= deadline:  # NaN: cannot tell, go on
            return meter.others


def timed_repeats(one_run, repeats: int, budget_s: float, threshold: float = 0.1) -> list[dict]:
    """Call ``one_run()`` (which waits for quiet and returns a dict with ``sim_s`` and
    ``others_cpu``) until ``repeats`` runs were clean (other processes took less than
    ``threshold`` of the CPU), with at most ``repeats + 2`` calls, stopping early once the calls
    took ``budget_s`` wall seconds and one was clean (or ``3 budget_s`` in any case).  Each
    run gets ``clean``; :func:`best` picks the run to report."""
    runs: list[dict] = []
    started = time.perf_counter()
    while len(runs) < repeats + 2:
        run = one_run()
        run["clean"] = bool(run["others_cpu"] < threshold) or run["others_cpu"] != run["others_cpu"]
        runs.append(run)
        clean = sum(r["clean"] for r in runs)
        spent = time.perf_counter() - started
        if clean >= repeats or (clean and spent >= budget_s) or spent >= 3 * budget_s:
            break
    return runs


def best(runs: list[dict]) -> dict:
    """The fastest clean run, or the fastest run when none was clean."""
    clean = [r for r in runs if r.get("clean", True)]
    return min(clean or runs, key=lambda r: r["sim_s"])


def peer_arguments(description: str) -> "argparse.ArgumentParser":
    """The command-line options every peer script takes (network file, threads, repeats, budget, t-sim)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("network")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="clean timed runs wanted (see common.timed_repeats)")
    parser.add_argument("--budget", type=float, default=60.0, help="wall seconds after which fewer repeats do")
    parser.add_argument("--t-sim", type=float, default=None, help="simulated time [ms] (default: the file's)")
    return parser
