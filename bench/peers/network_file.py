"""The network file that ``run.py`` exports from spikeforge and the peer scripts read.

Plain numpy (``.npz``), so the peers' virtual environment needs no spikeforge.  Units are
spikeforge's (ms, dimensionless voltage and current).  Model, per neuron ``i``::

    tau_m dv/dt = -v + x[i] + u_e + u_i        forward Euler, step dt
    spike when v > thresh; reset to vre; frozen for refrac (one step) after the spike
    u_e, u_i decay with tau_s and jump by w / tau_s one step after a presynaptic spike
             (E presynaptic weights are positive, I presynaptic weights negative)

Arrays: ``pre``, ``post`` (int64, 0-based), ``weight`` (float64) per synapse; ``v0``,
``x`` (float64) per neuron.  Scalars: ``n``, ``ne``, ``dt``, ``t_sim``, ``tau_m``,
``tau_s``, ``thresh``, ``vre``, ``refrac``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SCALARS = ("n", "ne", "dt", "t_sim", "tau_m", "tau_s", "thresh", "vre", "refrac")
ARRAYS = ("pre", "post", "weight", "v0", "x")


def save(path: str | Path, **fields) -> None:
    """Write a network file (every name of SCALARS and ARRAYS must be given)."""
    missing = [name for name in SCALARS + ARRAYS if name not in fields]
    if missing:
        raise ValueError(f"network file lacks {missing}")
    np.savez(path, **{name: np.asarray(fields[name]) for name in SCALARS + ARRAYS})


def load(path: str | Path) -> dict:
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
