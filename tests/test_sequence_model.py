"""The WTA grid's pieces against the deterministic values of sequence.md 12: the EPSP kernel, short-term
plasticity sequences and steady states, the STDP window, the circuit softmax, and the connectivity
invariants."""

import math

import numpy as np
import pytest

from spikeforge.core import rng as streams
from spikeforge.core.cells import wta
from spikeforge.errors import ParameterError
from spikeforge.sequence import connectivity, plasticity

P = wta.Parameters()


def epsp_seen(n_steps: int, spike_step: int = 0) -> np.ndarray:
    """y seen by u at every step, for one presynaptic spike, in the original's step order (y is read
    before this step's spikes enter the traces)."""
    decay = rise = 0.0
    seen = []
    for step in range(n_steps):
        seen.append(decay - rise)
        decay, rise = wta.epsp_step(decay, rise, 1.0 if step == spike_step else 0.0, P.decay_factor, P.rise_factor)
    return np.array(seen)


def test_epsp_kernel_values():
    y = epsp_seen(41)
    expected = {0: 0.0, 1: 0.0, 2: 0.45, 3: 0.6525, 4: 0.73238, 5: 0.75201, 6: 0.74253, 10: 0.6283, 20: 0.37735,
                40: 0.13528}
    for n, value in expected.items():
        assert y[n] == pytest.approx(value, abs=1e-5), n
    assert int(np.argmax(y)) == 5
    n = np.arange(1, 41)
    assert np.allclose(y[1:], 0.95 ** (n - 1) - 0.5 ** (n - 1), atol=1e-12)


def stp_train(interval: float, spikes: int, U=0.5, D=110.0, F=5.0) -> list[float]:
    u, r, amplitudes = U, 1.0, []
    for _ in range(spikes):
        amplitudes.append(u * r)
        u, r = plasticity.stp_advance(u, r, U, D, F, interval - 1.0)
    return amplitudes


def test_stp_sequence_and_steady_states():
    assert stp_train(10.0, 3) == pytest.approx([0.5, 0.2919, 0.1670], abs=1e-4)
    for interval, steady in ((10.0, 0.0737), (20.0, 0.1373), (50.0, 0.2644), (100.0, 0.3724)):
        assert stp_train(interval, 400)[-1] == pytest.approx(steady, abs=1e-4)
        assert plasticity.stp_steady_amplitude(0.5, 110.0, 5.0, interval) == pytest.approx(steady, abs=1e-4)


def test_stdp_window_of_the_code_rule():
    """w = ln 0.5, one presynaptic spike at step 0, the postsynaptic spike at step n: potentiation iff
    3 <= n <= 14; post before pre (y = 0) depresses by eta; at w = 0 every single pairing depresses."""
    eta = plasticity.tracked_rate(0.0, 1.0, 0.05)
    assert eta == pytest.approx(0.025)
    y = epsp_seen(60)
    positive = [n for n in range(60) if plasticity.stdp_step(math.log(0.5), y[n], eta) > 0]
    assert positive == list(range(3, 15))
    assert plasticity.stdp_step(math.log(0.5), 0.0, eta) == pytest.approx(-eta)
    assert max(plasticity.stdp_step(0.0, value, eta) for value in y) < 0


def test_paper_stdp_window():
    """The thesis' window, c = 0.05 e^5 and w = 0: -1 for post before pre, zero-crossing about 40 ms.
    Its peak of about +4.2 is that of the exact kernel e^(-t/20) - e^(-t/2) (0.697 at 5.1 ms); with the
    Euler traces the network uses, the EPSP peaks at 0.752 and the change at 4.58."""
    c = 0.05 * math.exp(5)
    t = np.linspace(0, 40, 40001)
    assert c * np.max(np.exp(-t / 20) - np.exp(-t / 2)) - 1 == pytest.approx(4.17, abs=0.01)
    y = epsp_seen(80)
    changes = np.array([plasticity.stdp_paper_step(0.0, value, c) for value in y])
    assert changes.max() == pytest.approx(c * 0.75201 - 1, abs=1e-3)
    assert plasticity.stdp_paper_step(0.0, 0.0, c) == -1
    crossing = np.flatnonzero((changes[5:-1] > 0) & (changes[6:] <= 0))[0] + 6
    assert 35 <= crossing <= 45  # zero-crossing about 40 ms


def test_variance_tracking_moves_the_moments_towards_the_weight():
    s, q = plasticity.track(0.0, 1.0, -1.0, 0.025)
    assert (s, q) == pytest.approx((-0.025, 1.0))


def test_circuit_softmax_sums_to_r_max_and_spike_probabilities():
    rng = np.random.default_rng(0)
    u = rng.normal(0, 30, 12)  # large potentials: the softmax must not overflow
    rates = np.zeros(12)
    wta.circuit_rates(u, 0, 5, 100.0, rates)
    wta.circuit_rates(u, 5, 12, 100.0, rates)
    assert rates[:5].sum() == pytest.approx(100.0) and rates[5:].sum() == pytest.approx(100.0)
    assert np.isfinite(rates).all()
    assert wta.spike_probability(100.0, 1.0, False) == pytest.approx(0.09516, abs=1e-5)
    assert wta.spike_probability(100.0, 1.0, True) == pytest.approx(0.1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_connectivity_invariants(seed):
    grid = connectivity.build_grid((10, 5), 2, 10, streams.stream(seed, "sequence", "circuits"))
    assert grid.n_circuits == 50 and grid.sizes.min() >= 2 and grid.sizes.max() <= 10
    assert 200 <= grid.n_neurons <= 400
    links = connectivity.circuit_links(grid.positions, 1000, 0.088, streams.stream(seed, "sequence", "links"))
    assert links.sum() == 1000 and not links.diagonal().any()
    distance = np.linalg.norm(grid.positions[:, None] - grid.positions[None], axis=2)
    off_diagonal = ~np.eye(50, dtype=bool)
    # a drawn distance picks uniformly among the pairs within +-1 of it: the few neighbouring pairs are
    # linked more often than the many at middle distances (and the few farthest ones most often)
    near = links[off_diagonal & (distance <= 2)].mean()
    middle = links[off_diagonal & (distance > 2) & (distance <= 6)].mean()
    far = links[off_diagonal & (distance > 8)].mean()
    assert near > middle + 0.1 and far > middle + 0.2
    mask = connectivity.neuron_mask(grid, links)
    circuit = grid.circuit_of
    assert mask.sum() == sum(grid.sizes[i] * grid.sizes[j] for i, j in zip(*np.nonzero(links)))
    assert not mask[circuit[:, None] == circuit[None, :]].any()  # nothing within a circuit
    a, b = np.nonzero(mask)[0][0], np.nonzero(mask)[1][0]
    assert links[circuit[b], circuit[a]]


def test_grid_and_link_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ParameterError, match="k_min = 5, k_max = 2"):
        connectivity.build_grid((2, 2), 5, 2, rng)
    with pytest.raises(ParameterError, match="grid shape 0 x 5 is empty"):
        connectivity.build_grid((0, 5), 2, 3, rng)
    with pytest.raises(ParameterError, match="expected 0 to 2"):
        connectivity.circuit_links(np.array([[0.0, 0.0], [0.0, 1.0]]), 3, 0.088, rng)
    with pytest.raises(ValueError, match="escape 'step' is not one of"):
        wta.check(wta.Parameters(escape="step"))
