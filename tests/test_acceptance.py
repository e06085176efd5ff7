"""Acceptance: the default 4096-neuron model against TrainSpikingNet's reference run (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge import rls

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("default") / "net"
    rls.new(directory, {"seed": 1})
    model = rls.init(directory)
    return directory, model


def test_default_model_init_rates_match_the_reference(default_model):
    _, model = default_model
    # TrainSpikingNet README: 3.43 Hz (E) and 6.15 Hz (I)
    assert 2.5 <= model.init_stats["rate_exc_hz"] <= 4.5
    assert 4.5 <= model.init_stats["rate_inh_hz"] <= 8.0


def test_default_model_reaches_correlation_0_6_within_100_loops(default_model):
    directory, _ = default_model
    result = rls.train(directory, nloops=100, correlation_interval=10)
    measured = {loop: c for loop, c in zip(result.loops, result.correlation) if not np.isnan(c)}
    print("correlation at loops 10, 50, 100:", measured[10], measured[50], measured[100])
    print("firing rate at loops 1, 100 (Hz):", result.firing_rate[0], result.firing_rate[-1])
    # the reference run: -0.03 at loop 1, 0.07 at loop 10, 0.73 at loop 100, rates 4.6 -> 5.9 Hz
    assert measured[10] < 0.3
    assert max(measured.values()) >= 0.6
    assert 3.0 < result.firing_rate[0] < 7.0 and 3.0 < result.firing_rate[-1] < 9.0


def test_default_model_trains_identically_with_the_torch_backend_on_the_cpu(default_model, tmp_path):
    """torch(cpu) follows numba's learning trajectory exactly (both in float32 P), so it reaches the
    same correlation band; 4 loops here (every spike of them must agree for the correlations and rates
    to be equal), since the torch CPU backend is ~7x slower than numba."""
    pytest.importorskip("torch")
    import shutil

    directory, _ = default_model
    curves = {}
    for backend in ("numba", "torch"):
        copy = tmp_path / backend
        copy.mkdir()
        for name in ("params.toml", "init.h5"):
            shutil.copy(directory / name, copy / name)
        result = rls.train(copy, nloops=4, correlation_interval=2, backend=backend, verbose=False)
        curves[backend] = result
    assert curves["torch"].correlation[1] == curves["numba"].correlation[1]
    assert curves["torch"].correlation[3] == curves["numba"].correlation[3]
    assert curves["torch"].firing_rate == curves["numba"].firing_rate
    assert curves["numba"].correlation[3] > curves["numba"].correlation[1] > -0.1
