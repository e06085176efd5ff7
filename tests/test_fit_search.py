"""The optimizers and the generational loop: determinism, resumption by replay, the stall criterion,
and synthetic single-cell fits with known parameters (issue 13's acceptance)."""

import numba
import numpy as np
import pytest

from spikeforge.core import spikes
from spikeforge.core.rng import stream
from spikeforge.errors import DataFileError, ParameterError
from spikeforge.fit import models, optimizers, search
from spikeforge.fit.cell import CellData, CellObjective
from spikeforge.fit.simulate import StepProtocol, simulate

PROTOCOL = StepProtocol(100.0, 1000.0, 1200.0, 0.1)


def sphere(values):
    return np.sum((values - 0.3) ** 2, axis=1)


@pytest.mark.parametrize("optimizer", optimizers.OPTIMIZERS)
def test_optimizers_minimise_a_quadratic(optimizer):
    bounds = search.Bounds(("x", "y", "z"), np.zeros(3), np.ones(3))
    history, why = search.run(sphere, bounds, optimizer, 12, 60, stream(0, "test"))
    best, loss, _ = history.best()
    assert why == "generations" and loss < 1e-3 and np.allclose(best, 0.3, atol=0.05)
    assert np.all(history.candidates >= 0) and np.all(history.candidates <= 1)  # inside the bounds


@pytest.mark.parametrize("optimizer", optimizers.OPTIMIZERS)
def test_same_seed_same_history_and_resume_by_replay(optimizer):
    bounds = search.Bounds(("x", "y"), np.array([-1.0, 0.0]), np.array([1.0, 5.0]))
    full, _ = search.run(sphere, bounds, optimizer, 8, 12, stream(3, "fit"))
    again, _ = search.run(sphere, bounds, optimizer, 8, 12, stream(3, "fit"))
    assert np.array_equal(full.candidates, again.candidates) and np.array_equal(full.losses, again.losses)
    calls = []
    part, why = search.run(sphere, bounds, optimizer, 8, 12, stream(3, "fit"),
                           should_stop=lambda: len(calls) >= 5, report=calls.append)
    assert why == "interrupted" and part.generations == 5
    evaluated = []
    resumed, _ = search.run(lambda v: evaluated.append(1) or sphere(v), bounds, optimizer, 8, 12, stream(3, "fit"),
                            history=part)
    assert len(evaluated) == 7  # the replayed generations are not evaluated again
    assert np.array_equal(resumed.candidates, full.candidates) and np.array_equal(resumed.losses, full.losses)
    other = search.run(sphere, bounds, optimizer, 8, 12, stream(4, "fit"))[0]
    assert not np.array_equal(other.candidates, full.candidates)
    with pytest.raises(DataFileError, match="does not match this optimizer at generation 0"):
        search.run(sphere, bounds, optimizer, 8, 12, stream(4, "fit"), history=part)


def test_correlations_of_a_covariance():
    covariance = np.array([[4.0, 2.0, 0.0], [2.0, 9.0, 0.0], [0.0, 0.0, 0.0]])
    assert np.allclose(search.correlations(covariance), [[1, 1 / 3, 0], [1 / 3, 1, 0], [0, 0, 0]])


def test_history_keeps_the_optimizers_covariance_in_parameter_units():
    """Bounds [0, 10] scale the unit cube's covariance by 100; the diagonal's root is the spread."""
    bounds = search.Bounds(("x", "y"), np.zeros(2), np.full(2, 10.0))
    history, _ = search.run(sphere, bounds, "cmaes", 8, 3, stream(0, "t"))
    assert history.covariance.shape == (3, 2, 2)
    assert np.allclose(np.sqrt(np.diagonal(history.covariance, axis1=1, axis2=2)), history.spread)


def test_stall_criterion_stops_a_flat_search():
    bounds = search.Bounds(("x",), np.zeros(1), np.ones(1))
    history, why = search.run(lambda v: np.ones(len(v)), bounds, "ga", 6, 100, stream(0, "t"), patience=5)
    assert why == "stalled" and history.generations == 6


def test_genetic_algorithm_keeps_its_elite():
    ga = optimizers.GeneticAlgorithm(2, 10, np.random.default_rng(0), elite=3)
    population = ga.ask()
    losses = np.arange(10.0)[::-1]
    ga.tell(population, losses)
    assert np.array_equal(ga.ask()[:3], population[[9, 8, 7]])


def test_bad_optimizer_settings_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ParameterError, match="optimizer 'pso' is not one of cmaes, ga"):
        optimizers.make("pso", 2, 8, rng)
    with pytest.raises(ParameterError, match=r"bounds of a \[0.3, 0.002\] need low < high"):
        search.Bounds.build(("a",), {"a": (0.002, 0.3)}, {"a": (0.3, 0.002)})
    with pytest.raises(ParameterError, match="selective pressure = 3"):
        optimizers.GeneticAlgorithm(2, 8, rng, pressure=3)


def synthetic_cell(model_name, truth, amplitudes, gain=1.0):
    model = models.model_named(model_name)
    rows = models.parameter_rows(model, {k: [v] for k, v in truth.items()}, 1)
    trains = [simulate(model, rows, gain * a, PROTOCOL).trains.train(0) for a in amplitudes]
    return model, rows, CellData.build(amplitudes, trains, PROTOCOL)


def test_fit_is_the_same_with_one_thread_or_two():
    model, _, data = synthetic_cell("izhikevich", dict(zip("abcd", (0.02, 0.2, -65.0, 8.0))), [100.0, 150.0], 0.1)
    objective = CellObjective(model, data, model.fitted)
    bounds = search.Bounds.build(model.fitted, model.bounds)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append(search.run(lambda v: objective.evaluate(v).losses, bounds, "cmaes", 8, 4,
                                      stream(5, "fit"))[0])
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(results[0].losses, results[1].losses)
    assert np.array_equal(results[0].candidates, results[1].candidates)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("case", ["izhikevich", "adex"])
def test_synthetic_cell_fit_reproduces_counts_and_a_held_out_amplitude(case, seed):
    """Issue 13: the fit reproduces the spike count exactly and reaches Γ >= 0.9 (4 ms) on a held-out
    amplitude (two sweeps fitted, the one between them held out; 3 restarts of CMA-ES, population 32,
    at most 60 generations, stopping after 20 without improvement).  Izhikevich RS (a, b, c, d) with
    the current search (the pA -> model-unit scale is unknown to the fit); AdEx (tau_w, a, b, v_reset)
    with the amplitudes given, whose parameters are then recovered too."""
    if case == "izhikevich":
        truth, amplitudes, held_out, gain, current = (
            dict(zip("abcd", (0.02, 0.2, -65.0, 8.0))), [100.0, 150.0], 125.0, 0.1, "search")
    else:
        truth, amplitudes, held_out, gain, current = (
            {"tau_w": 144.0, "a": 4.0, "b": 80.5, "v_reset": -60.0}, [750.0, 1000.0], 875.0, 1.0, "given")
    model, rows, data = synthetic_cell(case, truth, amplitudes, gain)
    objective = CellObjective(model, data, model.fitted, current=current)
    result = search.fit(lambda v: objective.evaluate(v).losses, search.Bounds.build(model.fitted, model.bounds),
                        population=32, generations=60, seed=seed, restarts=3, patience=20)
    if case == "adex":
        assert np.allclose(result.best, list(truth.values()), rtol=0.02)
    evaluation = objective.evaluate(result.best[None])
    assert np.array_equal(evaluation.counts[0], data.counts)
    per_pa = evaluation.amplitudes[0, 0] / amplitudes[0]
    truth_train = simulate(model, rows, gain * held_out, PROTOCOL).trains.train(0)
    fitted_train = simulate(model, objective.rows(result.best[None]), per_pa * held_out, PROTOCOL).trains.train(0)
    assert truth_train.size >= 10
    assert spikes.gamma_factor(fitted_train, truth_train, 4.0, PROTOCOL.total) >= 0.9
