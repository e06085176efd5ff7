"""Single-neuron models of the fitting capability: hand-computed steps, the named Izhikevich types,
numba against torch, and the spike-count current search (spikenetopt.md 13.2-13.3)."""

import math

import numpy as np
import pytest

from spikeforge.core.cells import adex, izhikevich
from spikeforge.errors import ParameterError
from spikeforge.fit import models
from spikeforge.fit.current_search import search_current
from spikeforge.fit.simulate import StepProtocol, simulate, simulate_torch


def test_izhikevich_step_by_hand():
    v, u, dt, current = -60.0, -12.0, 0.5, 10.0
    a, b, c, d = 0.02, 0.2, -65.0, 8.0
    half = v + 0.25 * (0.04 * v * v + 5 * v + 140 - u + current)
    full = half + 0.25 * (0.04 * half * half + 5 * half + 140 - u + current)
    expected_u = u + 0.5 * a * (b * full - u)
    assert izhikevich.step(v, u, current, a, b, c, d, 30.0, dt) == (full, expected_u, False)
    # above the cut-off: reset to c, recovery incremented by d after its own update
    v2, u2, fired = izhikevich.step(29.0, 0.0, 200.0, a, b, c, d, 30.0, dt)
    assert fired and v2 == c and u2 > d


def test_adex_step_by_hand():
    p = adex.Parameters()
    v, w, current, dt = -55.0, 20.0, 500.0, 0.1
    dv = (-p.g_L * (v - p.E_L) + p.g_L * p.delta_T * math.exp((v - p.V_T) / p.delta_T) - w + current) / p.C
    dw = (p.a * (v - p.E_L) - w) / p.tau_w
    assert adex.step(v, w, current, *p, dt) == (v + dt * dv, w + dt * dw, False)
    v2, w2, fired = adex.step(-1.0, w, current, *p, dt)
    assert fired and v2 == p.v_reset and w2 == pytest.approx(w + dt * (p.a * (-1.0 - p.E_L) - w) / p.tau_w + p.b)


@pytest.mark.parametrize("name", ["RS", "IB", "CH", "FS", "LTS", "TC", "RZ"])
def test_every_named_izhikevich_type_spikes(name):
    model = models.model_named("izhikevich")
    response = simulate(model, np.array([model.presets[name]]), 10.0, StepProtocol(0.0, 200.0, 200.0, 0.1))
    assert response.counts[0] >= 1


def test_regular_spiking_f_i_curve_is_monotonic():
    model = models.model_named("izhikevich")
    amplitudes = np.linspace(4, 40, 19)
    counts = simulate(model, np.repeat([model.presets["RS"]], amplitudes.size, axis=0), amplitudes,
                      StepProtocol(100.0, 1000.0, 1200.0, 0.1)).counts
    assert counts[0] >= 1 and (np.diff(counts) >= 0).all() and counts[-1] > 3 * counts[0]


def test_adex_with_brette_gerstner_values_adapts():
    """Spike-triggered adaptation: the ISIs lengthen over the step."""
    model = models.model_named("adex")
    train = simulate(model, models.parameter_rows(model), 800.0, StepProtocol(0.0, 1000.0, 1000.0, 0.05)).trains
    intervals = np.diff(train.train(0))
    assert intervals.size > 5 and intervals[-1] > 1.5 * intervals[0]


@pytest.mark.parametrize("name", ["izhikevich", "adex", "lif"])
def test_torch_backend_gives_numbas_spikes(name):
    pytest.importorskip("torch")
    model = models.model_named(name)
    rng = np.random.default_rng(1)
    n = 12
    rows = models.parameter_rows(model, {k: rng.uniform(*model.bounds[k], n) for k in model.fitted}, n)
    amplitude = {"izhikevich": rng.uniform(3, 20, n), "adex": rng.uniform(300, 1200, n),
                 "lif": rng.uniform(100, 600, n)}[name]
    protocol = StepProtocol(50.0, 500.0, 600.0, 0.1)
    cpu, tensors = simulate(model, rows, amplitude, protocol), simulate_torch(model, rows, amplitude, protocol)
    assert cpu.counts.sum() > 20
    assert np.array_equal(cpu.counts, tensors.counts)
    assert np.allclose(cpu.trains.times, tensors.trains.times, rtol=0, atol=1e-9)


def test_lif_fires_at_the_rate_its_equation_gives():
    """Constant drive above threshold: the interval is tau ln((V_inf - v_reset)/(V_inf - v_th)) + tau_ref."""
    model = models.model_named("lif")
    tau, e_l, r, v_th, v_reset, tau_ref = models.LIF_DEFAULTS
    current = 300.0  # pA -> V_inf = -70 + 100 MOhm * 0.3 nA = -40 mV
    v_inf = e_l + r * current * 1e-3
    expected = tau * math.log((v_inf - v_reset) / (v_inf - v_th)) + tau_ref
    train = simulate(model, models.parameter_rows(model), current, StepProtocol(0.0, 2000.0, 2000.0, 0.01)).trains
    assert np.diff(train.train(0))[1:].mean() == pytest.approx(expected, rel=2e-3)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_current_search_hits_the_target_count(seed):
    """spikenetopt.md 13.3: for RS and a random target in 5..15, the amplitude found gives exactly the
    target in the 2-s step."""
    rng = np.random.default_rng(seed)
    target = int(rng.integers(5, 16))
    model = models.model_named("izhikevich")
    rows = np.array([model.presets["RS"]])
    protocol = StepProtocol(1000.0, 2000.0, 3400.0, 0.1)
    found = search_current(model, rows, target, protocol)
    assert found.exact[0] and found.count[0] == target
    assert simulate(model, rows, found.amplitude, protocol).counts[0] == target


def test_current_search_falls_back_to_the_closest_count():
    """A target the cell cannot reach (bursts come in fixed numbers): the closest count, not a current."""
    model = models.model_named("izhikevich")
    rows = np.array([model.presets["RS"]])
    found = search_current(model, rows, 10**6, StepProtocol(0.0, 100.0, 100.0, 0.1), high=50.0, max_doublings=2,
                           max_rounds=5)
    assert not found.exact[0]
    assert simulate(model, rows, found.amplitude, StepProtocol(0.0, 100.0, 100.0, 0.1)).counts[0] == found.count[0]
    assert found.count[0] > 10


def test_bad_model_inputs_are_refused():
    with pytest.raises(ParameterError, match="model 'hh' is not one of izhikevich, adex, lif"):
        models.model_named("hh")
    with pytest.raises(ParameterError, match="izhikevich has no parameter 'tau'"):
        models.parameter_rows(models.model_named("izhikevich"), {"tau": [1.0]})
    with pytest.raises(ParameterError, match="shorter than delay"):
        StepProtocol(100.0, 1000.0, 500.0, 0.1).check()


def test_cell_losses_with_the_current_search_are_the_same_on_torch():
    pytest.importorskip("torch")
    from spikeforge.fit.cell import CellData, CellObjective

    protocol = StepProtocol(50.0, 300.0, 400.0, 0.1)
    model = models.model_named("izhikevich")
    rows = np.array([model.presets["RS"]])
    trains = [simulate(model, rows, a * 0.1, protocol).trains.train(0) for a in (100.0, 150.0)]
    assert [t.size for t in trains] == [8, 11]
    data = CellData.build([100.0, 150.0], trains, protocol)
    values = np.random.default_rng(0).uniform([0.01, 0.1, -70, 2], [0.05, 0.3, -50, 10], (6, 4))
    on_numba = CellObjective(model, data, model.fitted).evaluate(values)
    on_torch = CellObjective(model, data, model.fitted, backend="torch").evaluate(values)
    assert np.array_equal(on_numba.amplitudes, on_torch.amplitudes) and np.array_equal(on_numba.losses,
                                                                                      on_torch.losses)


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA device")
def test_cuda_population_gives_the_cpus_spikes():
    model = models.model_named("adex")
    rng = np.random.default_rng(2)
    rows = models.parameter_rows(model, {k: rng.uniform(*model.bounds[k], 16) for k in model.fitted}, 16)
    amplitude = rng.uniform(300, 1200, 16)
    protocol = StepProtocol(50.0, 500.0, 600.0, 0.1)
    cpu, gpu = simulate(model, rows, amplitude, protocol), simulate_torch(model, rows, amplitude, protocol, "cuda")
    assert np.array_equal(cpu.counts, gpu.counts)
    assert np.allclose(cpu.trains.times, gpu.trains.times, rtol=0, atol=0.2)  # exp may round differently
