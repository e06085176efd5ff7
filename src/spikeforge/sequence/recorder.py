"""``Recorder``: runs a :class:`~spikeforge.sequence.model.Network` on an
:class:`~spikeforge.sequence.inputs.InputGenerator`'s inputs and keeps what the original's recorder
kept (sequence.md 8): the network's and the inputs' spikes, every neuron's rate, and snapshots of the
log weights and EPSP traces every ``dt_rec`` ms.

    grid = Network(grid_shape=(10, 5), k_min=2, k_max=10, n_inputs=100, seed=1)
    inputs = InputGenerator(grid, r_noise=5, r_input=5, r_noise_pattern=2, t_noise_range=[500, 800],
                            n_patterns=2, t_pattern=[300] * 2, pattern_sequences=[[0], [1]])
    recorder = Recorder(grid)
    training = recorder.run_network(inputs, t_sim=100_000, train=True)
    test = recorder.run_network(inputs, t_sim=3000, dt_rec=100, train=False)
    test.order()        # neurons by mean activation time in the last complete presentation
    recorder.raster(test, "test.png")

Run k of a recorder draws its inputs and spikes from the streams ("sequence", "recorder", k, "inputs")
and ("sequence", "recorder", k, "spiking") of the network's seed (or of ``seed``), so a script gives the
same result every time.  A test (``train=False``) starts from rest (EPSP traces, readout state and
short-term plasticity reset; the legacy behaviour keeps short-term plasticity on during tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from spikeforge.core import rng as streams
from spikeforge.errors import ParameterError
from spikeforge.sequence.inputs import InputGenerator, Inputs, window


class Recording(NamedTuple):
    """One run: spikes of every neuron and input, rates, and the snapshots."""

    spikes: np.ndarray  # bool (steps, neurons)
    rates: np.ndarray | None  # float32 (steps, neurons) [Hz] (None when not recorded)
    inputs: Inputs
    train: bool
    snapshot_ms: np.ndarray  # float64 (snapshots,) time of each snapshot [ms from the run's start]
    neurons: np.ndarray  # int64: the neurons whose incoming weights are snapshotted
    synapse_post: np.ndarray  # int64 (recorded synapses,) postsynaptic neuron of each recorded weight
    synapse_pre: np.ndarray  # int64 (recorded synapses,) presynaptic index (inputs first, then neurons)
    weights: np.ndarray  # float32 (snapshots, recorded synapses) log weights w
    epsps: np.ndarray  # float32 (snapshots, inputs + neurons) EPSP traces y of every presynaptic index

    def rate_fractions(self, r_max_hz: float) -> np.ndarray:
        """The circuit softmax of every neuron and step (the rates over R_max); sums to 1 per circuit."""
        if self.rates is None:
            raise ValueError("this run did not record rates (record_rates=False)")
        return self.rates / np.float32(r_max_hz)

    def order(self, pattern: int | None = None) -> np.ndarray | None:
        """Neurons by mean activation time in the last complete presentation (of ``pattern`` if given), or
        None when the run holds none."""
        from spikeforge.sequence.plotting import ordered_by_last_pattern

        activity = self.rates if self.rates is not None else self.spikes.astype(np.float32)
        return ordered_by_last_pattern(activity, self.inputs, pattern)


class Recorder:
    """Runs of one network, recorded (see the module docstring).  ``neurons``: the neurons whose incoming
    weights are snapshotted (all by default; a sample keeps long runs small)."""

    def __init__(self, network, neurons=None, seed: int | None = None):
        self.network = network
        self.seed = network.seed if seed is None else int(seed)
        self.runs = 0
        self.neurons = self._neurons(neurons)

    def _neurons(self, neurons) -> np.ndarray:
        n = self.network.n_neurons
        if neurons is None:
            return np.arange(n)
        given = np.asarray(neurons).ravel()
        if given.size == 0:
            raise ParameterError("neurons is empty; expected neuron ids, or None for all")
        if given.dtype.kind not in "iu":
            raise ParameterError(f"neurons {given[:5].tolist()}; expected whole-number neuron ids (a boolean mask: "
                                 "pass np.flatnonzero(mask))")
        if given.min() < 0 or given.max() >= n:
            raise ParameterError(f"neurons {given.min()}..{given.max()}; expected ids in 0..{n - 1}")
        if np.unique(given).size != given.size:
            raise ParameterError("neurons names a neuron twice")
        return np.sort(given.astype(np.int64))

    def set(self, neurons=None) -> None:
        """Change what is recorded between runs."""
        if neurons is not None:
            self.neurons = self._neurons(neurons)

    def run_network(self, inpgen: InputGenerator, t_sim: float, dt_rec: float | None = None, train: bool = True,
                    record_rates: bool = True, inputs: Inputs | None = None) -> Recording:
        """Simulate ``t_sim`` ms of ``inpgen``'s inputs (or the given ``inputs``), STDP on when ``train``;
        snapshots at the start, every ``dt_rec`` ms (None: only at the start and the end) and at the end."""
        network = self.network
        if not isinstance(inpgen, InputGenerator):
            raise ParameterError(f"inpgen is {type(inpgen).__name__}; expected an InputGenerator")
        if inputs is None and not (isinstance(t_sim, (int, float, np.integer, np.floating))
                                   and not isinstance(t_sim, bool)):
            raise ParameterError(f"t_sim = {t_sim!r}; expected a duration in ms")
        if inpgen.config.n_inputs != network.n_inputs:
            raise ParameterError(f"the input generator has {inpgen.config.n_inputs} channels; the network has "
                                 f"{network.n_inputs}")
        dt = network.neuron.dt
        if dt_rec is not None and not (np.isfinite(dt_rec) and dt_rec >= dt):
            raise ParameterError(f"dt_rec = {dt_rec} ms; expected at least dt = {dt} ms, or None")
        k = self.runs
        if inputs is None:
            inputs = inpgen.generate(t_sim, streams.stream(self.seed, "sequence", "recorder", k, "inputs"))
        spiking = streams.stream(self.seed, "sequence", "recorder", k, "spiking")
        self.runs += 1
        if not train:
            network.reset_transients()
        n_steps = inputs.spikes.shape[0]
        every = n_steps if dt_rec is None else max(1, int(round(dt_rec / dt)))
        rows = [np.arange(network.synapses.offsets[j], network.synapses.offsets[j + 1]) for j in self.neurons]
        recorded = np.concatenate(rows)
        post = np.repeat(self.neurons, [row.size for row in rows])
        spikes = np.zeros((n_steps, network.n_neurons), dtype=bool)
        rates = np.zeros((n_steps, network.n_neurons), dtype=np.float32) if record_rates else None
        times, weights, epsps = [], [], []

        def snapshot(step: int) -> None:
            state = network.state
            times.append(step * dt)
            weights.append(state.weight[recorded].astype(np.float32))
            epsps.append((state.decay - state.rise).astype(np.float32))

        snapshot(0)
        for start in range(0, n_steps, every):
            stop = min(start + every, n_steps)
            part = network.run(window(inputs, start, stop), spiking, train=train, record_rates=record_rates)
            spikes[start:stop] = part.spikes
            if record_rates:
                rates[start:stop] = part.rates
            snapshot(stop)
        return Recording(spikes, rates, inputs, bool(train), np.array(times), self.neurons.copy(), post,
                         network.synapses.pre[recorded].copy(), np.array(weights), np.array(epsps))

    def raster(self, recording: Recording, path, order_neurons: bool = True, title: str | None = None) -> Path:
        """The ordered network raster above the input raster (pattern spikes in red)."""
        from spikeforge.sequence import plotting

        if not isinstance(recording, Recording):
            raise ParameterError(f"recording is {type(recording).__name__}; expected what run_network returned")
        order = recording.order() if order_neurons else None
        return plotting.raster(path, recording.spikes, recording.inputs, order=order, title=title)

