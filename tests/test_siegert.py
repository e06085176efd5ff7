"""Siegert / Ricciardi transfer function and its inverse (rate -> target current, tsn.md 4.6)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import erfcx

from spikeforge.errors import ParameterError
from spikeforge.rls import siegert
from spikeforge.rls.siegert import inverse_transfer, rates_to_currents, transfer


def _quad_erfcx(a: float, b: float) -> float:
    """Integral_a^b erfcx by adaptive quadrature, split at 0, 1, 10, 100, ... for long ranges."""
    cuts = [a] + [c for c in (0.0, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5) if a < c < b] + [b]
    return sum(quad(erfcx, lo, hi, epsabs=0, epsrel=1e-13, limit=500)[0] for lo, hi in zip(cuts, cuts[1:]))


def _direct_rate(mu: float, sigma: float, tau_m: float, theta: float = 1.0, v_r: float = 0.0) -> float:
    """The formula evaluated by brute force, in its other form (tsn.md 4.6):
    1/Phi = tau_m sqrt(pi) Integral_{(v_r-mu)/sigma}^{(theta-mu)/sigma} exp(u^2)(1 + erf u) du,
    with 1 + erf(u) written erfc(-u) to keep its digits for u << 0."""
    integral = quad(lambda u: math.exp(u * u) * math.erfc(-u), (v_r - mu) / sigma, (theta - mu) / sigma,
                    epsabs=0, epsrel=1e-13, limit=500)[0]
    return 1000.0 / (tau_m * math.sqrt(math.pi) * integral)


# --- the integral of erfcx -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("a", "b"),
    [(-5.0, 3.0), (-20.0, -10.0), (-25.0, -1.0), (-3.0, -2.99), (-0.5, 0.5), (-8.0, 40.0),
     (0.0, 1e3), (0.3, 0.31), (1.2, 7.5), (10.0, 300.0), (50.0, 51.0), (1e3, 1e5), (0.0, 1e-6)],
)
def test_erfcx_integral_matches_adaptive_quadrature(a, b):
    assert siegert._erfcx_integral(a, b) == pytest.approx(_quad_erfcx(a, b), rel=1e-8)


def test_antiderivative_matches_quadrature_for_negative_positive_and_huge_arguments():
    ys = np.array([-26.0, -12.0, -3.0, -0.7, 0.0, 0.2, 0.5, 1.7, 3.0, 40.0, 1e4])
    expected = [math.copysign(_quad_erfcx(min(0.0, y), max(0.0, y)), y) for y in ys]
    np.testing.assert_allclose(siegert._f(ys), expected, rtol=1e-8, atol=0)
    # beyond the tabulated panels (2**27) F follows its asymptotic series; check it against
    # quadrature in s = exp(t), where s erfcx(s) -> 1/sqrt(pi) is smooth
    tail = quad(lambda t: math.exp(t) * erfcx(math.exp(t)), math.log(1e4), math.log(1e12),
                epsabs=0, epsrel=1e-13)[0]
    assert siegert._f(np.array([1e12]))[0] == pytest.approx(siegert._f(np.array([1e4]))[0] + tail, rel=1e-10)


def test_random_bounds_match_quadrature():
    rng = np.random.default_rng(5)
    bounds = np.sort(rng.uniform(-25.0, 60.0, (60, 2)), axis=1)
    got = siegert._erfcx_integral(bounds[:, 0], bounds[:, 1])
    expected = [_quad_erfcx(a, b) for a, b in bounds]
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=0)


# --- the transfer function -------------------------------------------------------------------

@pytest.mark.parametrize("mu", [0.2, 0.5, 1.0, 1.5, 3.0])
def test_known_values_for_tau_10_sigma_half(mu):
    direct = _direct_rate(mu, 0.5, 10.0)
    assert transfer(mu, 0.5, 10.0, 1.0, 0.0) == pytest.approx(direct, rel=1e-9)
    # and the erfcx form of the formula, evaluated by quadrature
    by_erfcx = 1000.0 / 10.0 / (math.sqrt(math.pi) * _quad_erfcx((mu - 1.0) / 0.5, mu / 0.5))
    assert transfer(mu, 0.5, 10.0) == pytest.approx(by_erfcx, rel=1e-9)


def test_known_value_with_other_threshold_reset_and_time_constant():
    assert transfer(0.4, 0.2, 20.0, theta=0.6, v_r=-0.3) == pytest.approx(
        _direct_rate(0.4, 0.2, 20.0, 0.6, -0.3), rel=1e-9)


def test_small_noise_approaches_the_deterministic_rate():
    mu = np.array([1.05, 1.2, 1.5, 2.0, 3.0, 10.0])
    deterministic = 1000.0 / 10.0 / np.log(mu / (mu - 1.0))
    np.testing.assert_allclose(transfer(mu, 0.0, 10.0), deterministic, rtol=1e-12)
    np.testing.assert_allclose(transfer(mu, 1e-3, 10.0), deterministic, rtol=1e-2)
    np.testing.assert_allclose(transfer(mu, 1e-6, 10.0), deterministic, rtol=1e-4)
    assert np.all(transfer(np.array([0.5, 0.9, 1.0]), 0.0, 10.0) == 0.0)
    assert np.all(transfer(np.array([0.5, 0.9]), 1e-3, 10.0) < 1e-100)


@pytest.mark.parametrize("sigma", [0.05, 0.3, 1.0])
def test_transfer_increases_with_mean_input(sigma):
    mu = np.linspace(1.0 - 5.0 * sigma, 6.0, 4001)
    rate = transfer(mu, sigma, 10.0)
    assert np.all(rate > 0) and np.all(np.diff(rate) > 0)


def test_analytic_derivative_matches_finite_differences_and_the_stated_formula():
    sigma, tau_m = 0.3, 10.0
    mu = np.array([-0.3, 0.2, 0.7, 1.0, 1.3, 2.5, 6.0])
    h = 1e-5
    numeric = (transfer(mu + h, sigma, tau_m) - transfer(mu - h, sigma, tau_m)) / (2 * h)
    analytic = siegert._transfer_derivative(mu, sigma, tau_m)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)
    a, b = (mu - 1.0) / sigma, mu / sigma
    rate = transfer(mu, sigma, tau_m)
    stated = -rate**2 * math.sqrt(math.pi) * tau_m / 1000.0 * (erfcx(b) - erfcx(a)) / sigma
    np.testing.assert_allclose(analytic, stated, rtol=1e-10)


def test_far_below_threshold_gives_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rate = transfer(np.array([-1e6, -100.0, -10.0, -1e300, -np.inf]), 0.3, 10.0)
        huge = transfer(np.array([1e300, np.inf]), 0.3, 10.0)
    assert np.all(rate == 0.0)
    assert huge[0] == pytest.approx(1e302, rel=1e-9) and huge[1] == np.inf


def test_transfer_broadcasts_and_keeps_shape():
    mu = np.linspace(0.0, 3.0, 12).reshape(3, 4)
    tau = np.array([5.0, 10.0, 15.0, 20.0])
    rate = transfer(mu, 0.3, tau)
    assert rate.shape == (3, 4)
    np.testing.assert_allclose(rate[:, 2], transfer(mu[:, 2], 0.3, 15.0), rtol=1e-14)


# --- the inverse -----------------------------------------------------------------------------

@pytest.mark.parametrize("sigma", [1e-3, 0.05, 0.3, 1.0, 5.0])
def test_inverse_round_trip(sigma):
    rates = np.geomspace(0.1, 200.0, 400)
    mu = inverse_transfer(rates, sigma, 10.0)
    np.testing.assert_allclose(transfer(mu, sigma, 10.0), rates, rtol=1e-9)
    assert np.all(np.diff(mu) > 0)


def test_inverse_round_trip_far_outside_the_usual_range():
    rates = np.concatenate([np.geomspace(1e-200, 1e-3, 30), np.geomspace(1e3, 1e6, 10)])
    mu = inverse_transfer(rates, 0.3, 10.0)
    np.testing.assert_allclose(transfer(mu, 0.3, 10.0), rates, rtol=1e-9)


def test_deterministic_inverse_is_closed_form():
    rates = np.geomspace(5.0, 500.0, 50)
    mu = inverse_transfer(rates, 0.0, 10.0, theta=1.2, v_r=-0.3)
    np.testing.assert_allclose(mu, -0.3 + 1.5 / (1.0 - np.exp(-1000.0 / (10.0 * rates))), rtol=1e-14)
    # at 5 Hz mu - theta = 3e-9: rounding mu costs 1e-9 relative in the rate, an ill-conditioning
    # of the deterministic model (transfer ~ -1 / ln(mu - theta)), not of the inversion
    np.testing.assert_allclose(transfer(mu, 0.0, 10.0, 1.2, -0.3), rates, rtol=1e-7)


def test_inverse_with_per_neuron_parameters_many_distinct():
    # many distinct sigma / (theta - v_r): the vectorised Hermite start instead of one PCHIP each
    rng = np.random.default_rng(2)
    n = 300
    sigma = rng.uniform(0.1, 0.5, n)
    tau = rng.uniform(5.0, 20.0, n)
    theta = rng.uniform(0.9, 1.1, n)
    v_r = rng.uniform(-0.1, 0.1, n)
    rates = rng.uniform(0.1, 150.0, (20, n))
    mu = inverse_transfer(rates, sigma, tau, theta, v_r)
    np.testing.assert_allclose(transfer(mu, sigma, tau, theta, v_r), rates, rtol=1e-9)
    # a neuron solved on its own gives the same answer
    np.testing.assert_allclose(mu[:, 7], inverse_transfer(rates[:, 7], sigma[7], tau[7], theta[7], v_r[7]),
                               rtol=1e-10)


@pytest.mark.parametrize("bad", [0.0, -3.0, float("nan"), float("inf")])
def test_inverse_rejects_non_positive_or_nan_rates_naming_the_value(bad):
    with pytest.raises(ParameterError, match=rf"rate_hz\[1\] = {bad!r}"):
        inverse_transfer(np.array([5.0, bad, 2.0]), 0.3, 10.0)


def test_bad_neuron_parameters_are_named():
    with pytest.raises(ParameterError, match=r"sigma = -0\.1"):
        inverse_transfer(5.0, -0.1, 10.0)
    with pytest.raises(ParameterError, match=r"sigma = nan"):
        transfer(1.0, float("nan"), 10.0)
    with pytest.raises(ParameterError, match=r"tau_m\[1\] = 0\.0"):
        transfer(1.0, 0.3, np.array([10.0, 0.0]))
    with pytest.raises(ParameterError, match=r"theta = 0\.0 .*v_r = 0\.5"):
        transfer(1.0, 0.3, 10.0, theta=0.0, v_r=0.5)


# --- rates -> target currents ----------------------------------------------------------------

def _tsn_psths() -> np.ndarray:
    """TrainSpikingNet's Ricciardi test (tsn.md 7): four PSTHs of 100 bins, (100, 4) in Hz."""
    t = np.arange(100)
    up = np.linspace(1.0, 100.0, 100)
    down = up[::-1].copy()
    triangle = 100.0 - 99.0 * np.abs(t - 50) / 50.0  # peaks (100 Hz) at bin 50
    sine = np.maximum(25.0 + 25.0 * np.sin(2 * np.pi * t / 100.0), 0.0)  # touches 0 at bin 75
    return np.stack([up, down, triangle, sine], axis=1)


def test_tsn_psth_shapes_keep_their_monotonic_pattern():
    rates = _tsn_psths()
    currents = rates_to_currents(rates, 0.3, 10.0, 1.0, 0.0, 1.7)
    assert currents.shape == (100, 4)
    floored = np.maximum(rates, 0.1)
    rate_steps, current_steps = np.sign(np.diff(floored, axis=0)), np.sign(np.diff(currents, axis=0))
    np.testing.assert_array_equal(current_steps, rate_steps)
    assert np.all(current_steps[:, 0] > 0) and np.all(current_steps[:, 1] < 0)
    assert np.argmax(currents[:, 2]) == 50
    assert np.argmax(currents[:, 3]) == 25
    # bins 74-76 are below 0.1 Hz, floored to 0.1 Hz: the lowest current, all three equal
    np.testing.assert_array_equal(np.flatnonzero(currents[:, 3] == currents[:, 3].min()), [74, 75, 76])
    # the currents reproduce the (floored) rates when the drive x_bal is added back
    np.testing.assert_allclose(transfer(currents + 1.7, 0.3, 10.0), floored, rtol=1e-9)


def test_x_bal_is_subtracted_per_neuron_along_the_last_axis():
    rates = _tsn_psths()
    x_bal = np.array([1.7, 1.1, 0.0, -0.4])
    mu = inverse_transfer(np.maximum(rates, 0.1), 0.3, 10.0)
    currents = rates_to_currents(rates, 0.3, 10.0, 1.0, 0.0, x_bal)
    np.testing.assert_allclose(currents, mu - x_bal, rtol=0, atol=1e-12)


def test_per_neuron_parameters_along_the_last_axis():
    rates = _tsn_psths()[None].repeat(2, axis=0)  # (tasks, time, neurons)
    tau = np.array([10.0, 20.0, 10.0, 5.0])
    theta = np.array([1.0, 1.0, 0.8, 1.2])
    currents = rates_to_currents(rates, 0.3, tau, theta, 0.0, 1.7)
    assert currents.shape == (2, 100, 4)
    for i in range(4):
        alone = rates_to_currents(rates[0, :, i], 0.3, tau[i], theta[i], 0.0, 1.7)
        np.testing.assert_allclose(currents[1, :, i], alone, rtol=0, atol=1e-12)


def test_zeros_and_rates_below_the_floor_become_the_floor():
    rates = np.array([[0.0, 0.05, 0.1, 7.0]])
    currents = rates_to_currents(rates, 0.3, 10.0, 1.0, 0.0, 1.7)
    assert currents[0, 0] == currents[0, 1] == currents[0, 2]
    np.testing.assert_allclose(transfer(currents + 1.7, 0.3, 10.0), [[0.1, 0.1, 0.1, 7.0]], rtol=1e-9)
    higher_floor = rates_to_currents(rates, 0.3, 10.0, 1.0, 0.0, 1.7, min_rate_hz=1.0)
    np.testing.assert_allclose(transfer(higher_floor[0, :3] + 1.7, 0.3, 10.0), 1.0, rtol=1e-9)


def test_negative_or_nan_rates_raise_naming_index_and_value():
    rates = np.full((3, 5), 4.0)
    rates[1, 3] = -2.5
    rates[2, 0] = -1.0
    with pytest.raises(ParameterError, match=r"rates_hz\[\(1, 3\)\] = -2\.5"):
        rates_to_currents(rates, 0.3, 10.0, 1.0, 0.0, 1.7)
    rates[1, 3] = np.nan
    with pytest.raises(ParameterError, match=r"rates_hz\[\(1, 3\)\] = nan"):
        rates_to_currents(rates, 0.3, 10.0, 1.0, 0.0, 1.7)
