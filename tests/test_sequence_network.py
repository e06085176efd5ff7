"""The WTA grid's step kernel: numba against the plain NumPy step, the circuit rates, forced spikes on the
1x2 toy grids of the thesis (hand-computed weight changes), and thread independence."""

import numba
import numpy as np
import pytest

from spikeforge.core import rng as streams
from spikeforge.sequence import connectivity, network, reference


def small_grid(seed: int, shape=(3, 3), n_inputs=20, n_links=30):
    grid = connectivity.build_grid(shape, 2, 5, streams.stream(seed, "sequence", "circuits"))
    links = connectivity.circuit_links(grid.positions, n_links, 0.088, streams.stream(seed, "sequence", "links"))
    synapses = network.synapses_of(grid.circuit_of, links, n_inputs)
    rng = np.random.default_rng(seed)
    n = grid.n_neurons
    stp = (np.clip(rng.normal(0.5, 0.25, n), 0, None), np.clip(rng.normal(110, 55, n), 1, None),
           np.clip(rng.normal(5, 2.5, n), 1, None))
    return grid, links, synapses, stp


def dense(synapses, values, n, width):
    out = np.zeros((n, width))
    rows = np.repeat(np.arange(n), np.diff(synapses.offsets))
    out[rows, synapses.pre] = values
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("options", [network.Options(), network.Options(variance_tracking=False),
                                     network.Options(stp=False), network.Options(paper_stdp=True, stdp_c=0.5,
                                                                                 linear_escape=True),
                                     network.Options(intrinsic=True),
                                     network.Options(intrinsic=True, variance_tracking=False)])
def test_kernel_equals_the_plain_numpy_step(seed, options):
    n_inputs = 20
    grid, links, synapses, stp = small_grid(seed, n_inputs=n_inputs)
    n, steps = grid.n_neurons, 3000
    rng = np.random.default_rng(10 + seed)
    inputs = rng.random((steps, n_inputs)) < 0.02
    uniforms = rng.random((steps, n))
    state = network.initial_state(synapses, n_inputs, n, stp[0])
    spikes, rates = network.run(synapses, grid.starts, stp, state, inputs, uniforms, options, record_rates=True)
    mask = dense(synapses, 1.0, n, n_inputs + n) > 0
    w, s, q = np.zeros((n, n_inputs + n)), np.zeros((n, n_inputs + n)), np.ones((n, n_inputs + n))
    plain = [np.zeros(n), np.zeros(n_inputs + n), np.zeros(n_inputs + n), stp[0].copy(), np.ones(n),
             np.full(n, -1), np.zeros(n)]
    bias_s, bias_q = np.zeros(n), np.ones(n)
    plain_spikes, plain_rates = reference.run(mask, grid.starts, *stp, w, s, q, *plain, 0, inputs, uniforms, options,
                                              bias_s, bias_q)
    assert spikes.sum() > 100
    assert np.array_equal(spikes, plain_spikes)
    assert np.allclose(rates, plain_rates, rtol=1e-10)
    assert np.allclose(dense(synapses, state.weight, n, n_inputs + n)[mask], w[mask], rtol=1e-9, atol=1e-12)
    assert np.allclose(state.stp_u, plain[3]) and np.allclose(state.readout, plain[6])
    assert np.allclose(state.bias, plain[0], rtol=1e-9, atol=1e-12) and np.allclose(state.bias_s, bias_s)
    assert np.any(state.bias != 0) == options.intrinsic  # the bias moves only with intrinsic plasticity
    for c in range(grid.n_circuits):  # the rates of every circuit add up to r_max at every step
        assert np.allclose(rates[:, grid.starts[c]:grid.starts[c + 1]].sum(axis=1), options.r_max)


def test_thread_count_does_not_change_the_result():
    grid, links, synapses, stp = small_grid(4)
    rng = np.random.default_rng(5)
    inputs, uniforms = rng.random((2000, 20)) < 0.02, rng.random((2000, grid.n_neurons))
    results = []
    before = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            state = network.initial_state(synapses, 20, grid.n_neurons, stp[0])
            spikes, _ = network.run(synapses, grid.starts, stp, state, inputs, uniforms)
            results.append((spikes, state.weight.copy()))
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(results[0][0], results[1][0]) and np.array_equal(results[0][1], results[1][1])


def toy(k: int, stp_on: bool, input_times, output_times, steps=400):
    """A 1x2 grid of circuits of k neurons, one input, each circuit linked to the other; neuron 0's spikes
    forced at ``output_times`` (uniform 0 there, 1 elsewhere; no other neuron fires)."""
    starts = np.arange(0, 2 * k + 1, k)
    circuit_of = np.repeat([0, 1], k)
    synapses = network.synapses_of(circuit_of, np.array([[False, True], [True, False]]), 1)
    n = 2 * k
    stp = (np.full(n, 0.5), np.full(n, 110.0), np.full(n, 5.0))
    inputs = np.zeros((steps, 1), dtype=bool)
    inputs[list(input_times), 0] = True
    uniforms = np.ones((steps, n))
    uniforms[list(output_times), 0] = 0.0
    state = network.initial_state(synapses, 1, n, stp[0])
    spikes, _ = network.run(synapses, starts, stp, state, inputs, uniforms, network.Options(stp=stp_on))
    return synapses, state, spikes


def test_toy_grid_weight_changes_by_hand():
    """K = 1: an input spike at step 10 and forced output spikes at 15 and 40.  At step 15 the input's
    EPSP is 0.95^4 - 0.5^4; w goes from 0 by eta (y - 1) / 1 with eta = 0.025, and S, Q follow."""
    synapses, state, spikes = toy(1, False, [10], [15, 40])
    assert np.flatnonzero(spikes[:, 0]).tolist() == [15, 40] and not spikes[:, 1].any()
    eta, y15 = 0.025, 0.95**4 - 0.5**4
    w1 = eta * (y15 - 1.0)
    s1, q1 = eta * w1, 1.0 + eta * (w1**2 - 1.0)
    eta2 = 0.05 * (q1 - s1**2) / (np.exp(-s1) + 1.0)
    y40 = 0.95**29 - 0.5**29
    w2 = w1 + eta2 * (y40 - np.exp(w1)) / max(np.exp(w1), eta2)
    assert synapses.pre.tolist()[:2] == [0, 2]  # neuron 0 hears the input, then neuron 1
    assert state.weight[0] == pytest.approx(w2, rel=1e-12)
    # from neuron 1, silent (y = 0): each of neuron 0's spikes depresses by eta e^w / max(e^w, eta)
    w, s_, q_ = 0.0, 0.0, 1.0
    for _ in range(2):
        eta = 0.05 * (q_ - s_**2) / (np.exp(-s_) + 1.0)
        w += eta * (0.0 - np.exp(w)) / max(np.exp(w), eta)
        s_, q_ = s_ + eta * (w - s_), q_ + eta * (w**2 - q_)
    assert state.weight[1] == pytest.approx(w, rel=1e-12) and w < -0.04


@pytest.mark.parametrize("k, stp_on", [(1, False), (1, True), (2, False), (2, True)])
def test_recurrent_epsp_carries_the_stp_amplitude(k, stp_on):
    """Neuron 0 (circuit 0) fires at 10, 30 and 50: its EPSP at circuit 1 carries 0.5, then the
    short-term plasticity amplitudes (or 1 without STP)."""
    steps = 60
    synapses, state, spikes = toy(k, stp_on, [], [10, 30, 50], steps)
    trace = state.decay[1] - state.rise[1]  # neuron 0's trace (presynaptic index 1) after step 59
    u, r = 0.5, 1.0
    expected_amplitudes = []
    for spike, previous in ((10, -1), (30, 10), (50, 30)):
        expected_amplitudes.append(u * r if stp_on else 1.0)
        interval = spike - previous - 1
        r, u = 1 + (r - r * u - 1) * np.exp(-interval / 110.0), 0.5 + u * 0.5 * np.exp(-interval / 5.0)
    expected = sum(a * (0.95 ** (steps - 1 - t) - 0.5 ** (steps - 1 - t))
                   for a, t in zip(expected_amplitudes, (10, 30, 50)))
    assert trace == pytest.approx(expected, rel=1e-12)
    if stp_on:
        assert expected_amplitudes[0] == 0.5 and expected_amplitudes[1] < 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_intrinsic_plasticity_drives_each_bias_to_log_of_its_spike_probability(seed):
    """The legacy bias rule's fixed point: e^(w_k0) = P(neuron k spikes in a step) (sequence.md 3.3)."""
    from spikeforge.core import rng as streams
    from spikeforge.sequence.inputs import InputGenerator
    from spikeforge.sequence.model import Network

    net = Network(grid_shape=(3, 2), k_min=2, k_max=4, n_inputs=20, n_links=10, seed=seed,
                  use_intrinsic_plasticity=True)
    inputs = InputGenerator(net).generate(60_000.0, streams.stream(seed, "sequence", "train"))
    run = net.run(inputs, streams.stream(seed, "sequence", "spiking"), train=True)
    probability = run.spikes[-30_000:].mean(axis=0)
    assert np.corrcoef(np.exp(net.state.bias), probability)[0, 1] > 0.9
    assert np.allclose(np.exp(net.state.bias), probability, rtol=0.25)
