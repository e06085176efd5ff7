"""The files of a ``spikeforge sequence run`` directory.

``run.h5`` (HDF5, readable from any language; times in ms, neurons numbered circuit after circuit):

* ``network/``: ``circuit_sizes``, ``circuit_starts`` (circuit c holds neurons starts[c] to
  starts[c + 1] - 1), ``circuit_positions`` (grid x, y), ``links`` (bool circuits x circuits: i
  projects to j), ``synapse_offsets`` and ``synapse_pre`` (neuron k's synapses are
  ``synapse_pre[offsets[k]:offsets[k + 1]]``; presynaptic indices: the inputs first, then the
  neurons), ``stp_U``, ``stp_D`` [ms], ``stp_F`` [ms];
* ``state/``: the network's state after the last saved training step (log ``weight`` per synapse,
  variance-tracking ``s`` and ``q``, EPSP traces ``decay`` and ``rise``, ``stp_u``, ``stp_r``,
  ``last_spike``, ``readout``, ``bias``, ``step``);
* ``training/spike_ms`` and ``training/spike_neuron``: every training spike;
  ``training/snapshot_ms`` and ``training/weights`` (snapshots x synapses, float32): the log weights
  every ``snapshot_every_s``;
* ``untrained/test_<k>/`` and ``trained/test_<k>/``: ``spike_ms``, ``spike_neuron``, ``rates`` (steps x
  neurons, float32, Hz), ``input_spike_ms``, ``input_spike_channel``, ``input_from_pattern`` (bool per
  input spike: a pattern's, not noise), ``pattern`` and ``sequence`` (per step, -1 in noise), ``phases``
  (rows: first step, steps, pattern, sequence, time-warp factor);
* root attributes: ``kind`` ("sequence"), ``config`` (the configuration, JSON), ``seed``, ``status``
  ("running", "interrupted", "finished"), ``trained_steps``, ``spiking_state`` (the training spiking
  stream's position, for a resume), ``scores`` (JSON, when finished).

``scores.csv``: one row per score, its value before and after training.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import NamedTuple

import numpy as np

from spikeforge.core.store import atomic_write_text, read_h5, write_h5
from spikeforge.errors import DataFileError
from spikeforge.sequence.inputs import Inputs, Phase
from spikeforge.sequence.model import Run

RUN = "run.h5"
SCORES = "scores.csv"
STATE_FIELDS = ("weight", "s", "q", "bias", "decay", "rise", "stp_u", "stp_r", "last_spike", "readout", "step",
                "bias_s", "bias_q")


class Progress(NamedTuple):
    """How far a sequence run has got: what run.h5 saves besides the network and its state, and what a resumed
    run continues from.  ``trained_steps`` counts the training steps done (of ``dt`` ms each);
    ``spiking_state`` is the bit generator state of the training spike stream after them (None before
    training)."""

    untrained: list  # of Run
    trained_steps: int
    training_spikes: tuple  # (steps int64, neurons int64)
    snapshots: list  # of (time [ms], float32 weights)
    spiking_state: dict | None
    trained: list = []  # of Run


def empty_spikes() -> tuple[np.ndarray, np.ndarray]:
    """No spikes: (steps, neurons) as two empty int64 arrays, the form of ``Progress.training_spikes``."""
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)


def add_spikes(spikes: tuple, chunk: np.ndarray, first_step: int) -> tuple[np.ndarray, np.ndarray]:
    """``spikes`` (steps, neurons) with those of ``chunk`` (bool, steps x neurons) from ``first_step``."""
    steps, neurons = np.nonzero(chunk)
    return np.concatenate([spikes[0], steps + first_step]), np.concatenate([spikes[1], neurons])


def _run_arrays(prefix: str, run: Run, dt: float) -> dict:
    steps, neurons = np.nonzero(run.spikes)
    input_steps, channels = np.nonzero(run.inputs.spikes)
    return {f"{prefix}/spike_ms": steps * dt, f"{prefix}/spike_neuron": neurons, f"{prefix}/rates": run.rates,
            f"{prefix}/input_spike_ms": input_steps * dt, f"{prefix}/input_spike_channel": channels,
            f"{prefix}/input_from_pattern": run.inputs.from_pattern[input_steps, channels],
            f"{prefix}/pattern": run.inputs.pattern, f"{prefix}/sequence": run.inputs.sequence,
            f"{prefix}/phases": np.array([tuple(p) for p in run.inputs.phases], dtype=np.float64).reshape(-1, 5)}


def _run_from(arrays: dict, prefix: str, n_neurons: int, n_inputs: int, dt: float) -> Run:
    pattern = arrays[f"{prefix}/pattern"]
    n_steps = pattern.size
    spikes = np.zeros((n_steps, n_neurons), dtype=bool)
    spikes[np.rint(arrays[f"{prefix}/spike_ms"] / dt).astype(np.int64), arrays[f"{prefix}/spike_neuron"]] = True
    input_spikes = np.zeros((n_steps, n_inputs), dtype=bool)
    from_pattern = np.zeros_like(input_spikes)
    rows = np.rint(arrays[f"{prefix}/input_spike_ms"] / dt).astype(np.int64)
    channels = arrays[f"{prefix}/input_spike_channel"]
    input_spikes[rows, channels] = True
    from_pattern[rows, channels] = arrays[f"{prefix}/input_from_pattern"]
    phases = tuple(Phase(int(a), int(b), int(c), int(d), float(e)) for a, b, c, d, e in arrays[f"{prefix}/phases"])
    inputs = Inputs(input_spikes, pattern, arrays[f"{prefix}/sequence"], from_pattern, phases)
    return Run(spikes, arrays[f"{prefix}/rates"], inputs)


class Saver:
    """Writes run.h5 (atomically, whole) from the network and the progress."""

    def __init__(self, path: Path, network, attrs: dict):
        self.path, self.network, self.attrs = Path(path), network, attrs
        grid, synapses = network.grid, network.synapses
        U, D, F = network.stp_parameters
        self.fixed = {"network/circuit_sizes": grid.sizes, "network/circuit_starts": grid.starts,
                      "network/circuit_positions": grid.positions, "network/links": network.links,
                      "network/synapse_offsets": synapses.offsets, "network/synapse_pre": synapses.pre,
                      "network/stp_U": U, "network/stp_D": D, "network/stp_F": F}

    def __call__(self, progress: Progress, status: str, scores: dict | None = None) -> None:
        dt = self.network.neuron.dt
        arrays = dict(self.fixed)
        arrays.update({f"state/{name}": value for name, value in zip(STATE_FIELDS, self.network.state)})
        arrays["training/spike_ms"] = progress.training_spikes[0] * dt
        arrays["training/spike_neuron"] = progress.training_spikes[1]
        arrays["training/snapshot_ms"] = np.array([t for t, _ in progress.snapshots], dtype=np.float64)
        arrays["training/weights"] = np.array([w for _, w in progress.snapshots], dtype=np.float32)
        for name, runs in (("untrained", progress.untrained), ("trained", progress.trained)):
            for k, run in enumerate(runs):
                arrays.update(_run_arrays(f"{name}/test_{k}", run, dt))
        attrs = {**self.attrs, "status": status, "trained_steps": int(progress.trained_steps),
                 "spiking_state": progress.spiking_state, "scores": scores}
        write_h5(self.path, arrays, attrs)


class SavedRun(NamedTuple):
    """The contents of a run.h5 (:func:`read_run`): ``arrays``, every dataset by its path (e.g. "state/weight");
    ``attrs``, the root attributes, JSON-decoded."""

    arrays: dict
    attrs: dict

    @property
    def trained_steps(self) -> int:
        """The training steps saved in the file (0 when it records none)."""
        return int(self.attrs.get("trained_steps", 0))

    def progress(self, network) -> Progress:
        """The saved progress; the saved state is copied into ``network`` (built from the same
        configuration, so of the same shape)."""
        a = self.arrays
        if a["network/synapse_pre"].shape != network.synapses.pre.shape or not np.array_equal(
                a["network/synapse_pre"], network.synapses.pre):
            raise DataFileError(f"the network saved in {RUN} is not the one this configuration builds; it was "
                                "written by another version; use --force to start again")
        for name, target in zip(STATE_FIELDS, network.state):
            target[...] = a[f"state/{name}"]
        dt = network.neuron.dt
        count = self.attrs["config"]["tests"]
        untrained = [_run_from(a, f"untrained/test_{k}", network.n_neurons, network.n_inputs, dt)
                     for k in range(count)]
        snapshots = list(zip(a["training/snapshot_ms"].tolist(), a["training/weights"]))
        spikes = (np.rint(a["training/spike_ms"] / dt).astype(np.int64), a["training/spike_neuron"].astype(np.int64))
        return Progress(untrained, self.trained_steps, spikes, snapshots, self.attrs.get("spiking_state"))


def read_run(path: Path) -> SavedRun:
    """Every dataset and the root attributes of the sequence run file ``path``.

    Raises:
        DataFileError: the file is missing, is not readable HDF5, or is not a sequence run (its ``kind`` is not
            "sequence" or it records no configuration).
    """
    arrays, attrs = read_h5(path, None, "sequence run file")
    if attrs.get("kind") != "sequence" or "config" not in attrs:
        raise DataFileError(f"{str(path)!r} is not a spikeforge sequence run (no configuration); it was not "
                            "written by `spikeforge sequence run`")
    return SavedRun(arrays, attrs)


def tests(path: Path, which: str = "trained") -> list[Run]:
    """The test runs saved in ``path`` (``which``: "trained" or "untrained")."""
    saved = read_run(Path(path))
    a = saved.arrays
    n_neurons = int(a["network/circuit_starts"][-1])
    n_inputs = saved.attrs["config"]["network"].get("n_inputs", 100)
    runs, k = [], 0
    while f"{which}/test_{k}/pattern" in a:
        runs.append(_run_from(a, f"{which}/test_{k}", n_neurons, n_inputs, 1.0))
        k += 1
    return runs


def write_scores(path: Path, scores: dict) -> None:
    """Write ``scores`` (``{"untrained": {name: value}, "trained": {name: value}}``) to the CSV file ``path``
    (atomically): a header row, then one row per score with its value before and after training (6 significant
    digits), in the order of the trained scores."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["score", "untrained", "trained"])
    for name in scores["trained"]:
        writer.writerow([name, f"{scores['untrained'][name]:.6g}", f"{scores['trained'][name]:.6g}"])
    atomic_write_text(path, buffer.getvalue())


def write_seed_table(path: Path, rows: list[dict]) -> None:
    """One row per seed (its scores, status, error), then the mean and standard deviation of every score."""
    names = sorted({name for row in rows for name in row} - {"seed", "status", "error"})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["seed", "status", *names, "error"])
    for row in rows:
        writer.writerow([row["seed"], row["status"], *(f"{row[n]:.6g}" if n in row else "" for n in names),
                         row["error"]])
    done = [row for row in rows if row["status"] == "done"]
    if done:
        statistics = [mean_and_sd([row[n] for row in done]) for n in names]
        for label, k in (("mean", 0), ("sd", 1)):
            writer.writerow([label, "", *(f"{values[k]:.6g}" for values in statistics), ""])
    atomic_write_text(path, buffer.getvalue())


def mean_and_sd(values) -> tuple[float, float]:
    """Mean and standard deviation over the finite values (NaN, NaN when there are none)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return (float(values.mean()), float(values.std())) if values.size else (float("nan"), float("nan"))
