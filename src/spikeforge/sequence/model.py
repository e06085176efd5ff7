"""``Network``: the WTA grid with its state, trained and tested on inputs (sequence.md 2-4).

``Network(grid_shape=(10, 5), k_min=2, k_max=10, n_inputs=100)`` builds the grid as the original's
README does, with no simulator set-up call.  Its random draws come from named streams of ``seed``:
circuit sizes ("sequence", "circuits"), circuit links ("sequence", "links"), the short-term plasticity
parameters ("sequence", "stp"), random initial weights ("sequence", "weights"); :meth:`Network.run`
takes the spiking stream of each run from the caller.

Short-term plasticity parameters per neuron: U ~ N(0.5, 0.25) clipped at 0, D ~ N(110, 55) ms and
F ~ N(5, 2.5) ms clipped at dt (the classic E-to-E values divided by ``frac_tau_DS`` = 10).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spikeforge.core import rng as streams
from spikeforge.core.cells import wta
from spikeforge.errors import ParameterError
from spikeforge.sequence import connectivity, network
from spikeforge.sequence.inputs import Inputs

CHUNK_STEPS = 10_000  # uniforms are drawn per chunk of steps (10 s): memory stays small on long runs


class Run(NamedTuple):
    """One simulation by :meth:`Network.run`: the neurons' spikes and (when recorded) rates per step of ``dt``,
    with the inputs they ran on."""

    spikes: np.ndarray  # bool (steps, neurons)
    rates: np.ndarray | None  # float (steps, neurons) [Hz] when recorded
    inputs: Inputs


class Network:
    """The grid of WTA circuits, its synapses and its state (see the module docstring)."""

    def __init__(self, grid_shape=(10, 5), k_min: int = 2, k_max: int = 10, n_inputs: int = 100,
                 n_links: int = 1000, lam: float = 0.088, seed: int = 0, neuron: wta.Parameters = wta.Parameters(),
                 use_stp: bool = True, use_variance_tracking: bool = True, eta0: float = 0.05,
                 paper_stdp: bool = False, stdp_c: float = 1.0, random_initial_weights: bool = False,
                 use_intrinsic_plasticity: bool = False):
        try:
            wta.check(neuron)
        except ValueError as error:
            raise ParameterError(str(error)) from None
        for name, value in (("k_min", k_min), ("k_max", k_max), ("n_inputs", n_inputs), ("n_links", n_links),
                            ("seed", seed)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise ParameterError(f"{name} = {value!r}; expected a whole number")
        if not 0 <= seed < 2**63:
            raise ParameterError(f"seed = {seed}; expected a whole number in [0, 2**63)")
        if int(n_inputs) < 1:
            raise ParameterError(f"n_inputs = {n_inputs}; expected at least 1 input channel")
        if not (np.isfinite(eta0) and eta0 > 0):
            raise ParameterError(f"eta0 = {eta0}; expected a positive learning rate")
        self.seed, self.n_inputs, self.neuron = int(seed), int(n_inputs), neuron
        self.grid = connectivity.build_grid(grid_shape, k_min, k_max, streams.stream(seed, "sequence", "circuits"))
        self.links = connectivity.circuit_links(self.grid.positions, int(n_links), lam,
                                                streams.stream(seed, "sequence", "links"))
        self.synapses = network.synapses_of(self.grid.circuit_of, self.links, self.n_inputs)
        n = self.grid.n_neurons
        draw = streams.stream(seed, "sequence", "stp")
        self.stp_parameters = (np.clip(draw.normal(0.5, 0.25, n), 0.0, None),
                               np.clip(draw.normal(110.0, 55.0, n), neuron.dt, None),
                               np.clip(draw.normal(5.0, 2.5, n), neuron.dt, None))
        weights = None
        if random_initial_weights:
            weights = np.log(1.0 - streams.stream(seed, "sequence", "weights").random(self.synapses.pre.size))
        self.state = network.initial_state(self.synapses, self.n_inputs, n, self.stp_parameters[0], weights)
        self.options = network.Options(dt=neuron.dt, decay_factor=neuron.decay_factor, rise_factor=neuron.rise_factor,
                                       r_max=neuron.r_max, linear_escape=neuron.escape == "linear",
                                       variance_tracking=use_variance_tracking, eta0=eta0, paper_stdp=paper_stdp,
                                       stdp_c=stdp_c, stp=use_stp, state_decay=neuron.dt / 20.0,
                                       intrinsic=bool(use_intrinsic_plasticity))

    @property
    def n_neurons(self) -> int:
        """The number of neurons of all circuits together."""
        return self.grid.n_neurons

    def reset_transients(self) -> None:
        """EPSP traces, the readout state and short-term plasticity back to rest (before a test); the
        weights stay."""
        s = self.state
        for array in (s.decay, s.rise, s.readout):
            array[:] = 0.0
        s.stp_u[:] = self.stp_parameters[0]
        s.stp_r[:] = 1.0
        s.last_spike[:] = s.step[0] - 1  # a first spike's interval counts from the step before this run

    def run(self, inputs: Inputs, spiking: np.random.Generator, train: bool = True,
            record_rates: bool = False) -> Run:
        """Simulate the steps of ``inputs`` (STDP on when ``train``), drawing spikes from ``spiking``."""
        if inputs.spikes.shape[1] != self.n_inputs:
            raise ParameterError(f"inputs have {inputs.spikes.shape[1]} channels; the network has "
                                 f"{self.n_inputs}")
        options = self.options._replace(train=bool(train))
        n_steps = inputs.spikes.shape[0]
        spikes = np.zeros((n_steps, self.n_neurons), dtype=bool)
        rates = np.zeros((n_steps, self.n_neurons), dtype=np.float32) if record_rates else None
        for start in range(0, n_steps, CHUNK_STEPS):
            stop = min(start + CHUNK_STEPS, n_steps)
            uniforms = spiking.random((stop - start, self.n_neurons))
            chunk_spikes, chunk_rates = network.run(self.synapses, self.grid.starts, self.stp_parameters, self.state,
                                                    inputs.spikes[start:stop], uniforms, options, record_rates)
            spikes[start:stop] = chunk_spikes
            if record_rates:
                rates[start:stop] = chunk_rates
        return Run(spikes, rates, inputs)
