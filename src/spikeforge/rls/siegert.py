"""Siegert / Ricciardi transfer function of a leaky integrate-and-fire neuron, and its inverse.

Used to turn target firing rates (PSTHs, Hz) into target mean input currents, as
TrainSpikingNet's ``rate2utarg`` does (tsn.md 4.6).  Units: time in ms, rates in Hz, and
the mean input ``mu``, the input noise ``sigma``, the threshold ``theta`` and the reset
``v_r`` all in the (dimensionless) units of the membrane voltage.

The firing rate of a LIF neuron without refractory period, driven by white-noise input of
mean ``mu`` and standard deviation ``sigma``, is::

    Phi(mu, sigma) = (1000 / tau_m) / ( sqrt(pi) * Integral_a^b erfcx(s) ds ),
    a = (mu - theta) / sigma,   b = (mu - v_r) / sigma,   erfcx(s) = exp(s^2) erfc(s),

and for ``sigma == 0`` it is ``(1000 / tau_m) / ln((mu - v_r) / (mu - theta))`` above
threshold (``mu > theta``) and 0 otherwise.

Numerics.  With ``F(y) = Integral_0^y erfcx(s) ds`` the integral is ``F(b) - F(a)``.  For
``y >= 0`` the integrand is smooth and decays like ``1 / (s sqrt(pi))``; ``F`` is tabulated
at panel edges 0, 0.5, 1, 1.5, 2, 4, 8, ..., 2**27 and completed inside a panel by 20-point
Gauss-Legendre quadrature (beyond 2**27 by its asymptotic series).  For ``y < 0``,
``erfcx(s) = 2 exp(s^2) - erfcx(-s)`` gives ``F(y) = sqrt(pi) erfi(y) + F(-y)``; the factor
``exp(a^2)`` is kept apart (``sqrt(pi) erfi(x) = 2 exp(x^2) dawsn(x)``), so that the
logarithm of the rate stays finite however far below threshold ``mu`` is, and the rate
itself underflows quietly to 0 Hz.  Short intervals (``0 <= a``, ``b - a <= max(a, 1)``)
are integrated directly, which avoids cancelling ``F(b) - F(a)``; far above threshold
(``a > 2**27``) the integral is ``ln(b / a) / sqrt(pi)`` to 1e-17.  Accuracy against
40-digit quadrature: relative 1e-13 or better (the rounding of ``a^2`` in ``exp(a^2)``
alone costs that much near ``a = -26``).

The inverse is found per entry in normalised coordinates (``z = (mu - v_r) / (theta - v_r)``,
which leaves ``Phi * tau_m`` a function of ``z`` and ``sigma / (theta - v_r)`` only): a table of
``Phi`` on a fine ``z`` grid (one per distinct ``sigma / (theta - v_r)``) gives a bracket
and, by monotone (PCHIP) interpolation of ``z`` against ``log Phi``, a starting point (with
more than 16 distinct values, cubic Hermite interpolation with the exact slopes on coarser
tables, all vectorised); bracketed Newton steps on ``log Phi``, with the analytic slope
``dlog(Phi)/dmu = (erfcx(a) - erfcx(b)) / (sigma Integral_a^b erfcx)``, then converge to
machine precision (a bisection step replaces any Newton step that leaves the bracket).
A (100, 4096) PSTH converts in about a second.

Difference from the reference: TrainSpikingNet stores the solved ``mu`` itself as the
target current and ignores the constant external drive ``X_bal``, which is consistent
only when ``X_bal = 0`` (e.g. its K = 0 setup).  The neuron's mean input is
``X_bal + u``, so :func:`rates_to_currents` returns ``mu - x_bal``.
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial.legendre import leggauss
from scipy.interpolate import PchipInterpolator
from scipy.special import dawsn, erfcx

from spikeforge.errors import ParameterError

__all__ = ["transfer", "inverse_transfer", "rates_to_currents"]

_SQRT_PI = float(np.sqrt(np.pi))
_GL_X, _GL_W = leggauss(20)
_MIN_SIGMA_RATIO = 1e-250  # smaller nonzero sigma / (theta - v_r) would overflow z / s
_CHUNK = 1 << 15  # entries per quadrature block (block = _CHUNK x 20 doubles, 5 MB)

# Panel edges for F(y), y >= 0: fine near 0, then doubling; past the last edge F follows
# its asymptotic series F(y) = F(Y) + (ln(y/Y) + 1/(4 y^2) - 1/(4 Y^2)) / sqrt(pi).
_EDGES = np.concatenate([[0.0, 0.5, 1.0, 1.5], 2.0 ** np.arange(1, 28)])


def _gauss_legendre(lo: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Integral of erfcx over [lo, lo + length] (elementwise, 1-D arrays), 20-point Gauss-Legendre.

    Taking the length rather than the upper end keeps it exact when lo is large.
    """
    out = np.empty(lo.shape)
    for start in range(0, lo.size, _CHUNK):
        sl = slice(start, start + _CHUNK)
        half = 0.5 * length[sl]
        mid = lo[sl] + half
        out[sl] = half * (erfcx(mid[:, None] + half[:, None] * _GL_X[None, :]) @ _GL_W)
    return out


_EDGE_F = np.concatenate([[0.0], np.cumsum(_gauss_legendre(_EDGES[:-1], np.diff(_EDGES)))])


def _f_pos(y: np.ndarray) -> np.ndarray:
    """F(y) = Integral_0^y erfcx(s) ds for y >= 0 (1-D array)."""
    out = np.empty(y.shape)
    big = y > _EDGES[-1]
    if np.any(big):
        yb, top = y[big], _EDGES[-1]
        out[big] = _EDGE_F[-1] + (np.log(yb / top) + (0.5 / yb) ** 2 - (0.5 / top) ** 2) / _SQRT_PI
    small = ~big
    if np.any(small):
        ys = y[small]
        k = np.searchsorted(_EDGES, ys, side="right") - 1
        out[small] = _EDGE_F[k] + _gauss_legendre(_EDGES[k], ys - _EDGES[k])
    return out


def _f(y: np.ndarray) -> np.ndarray:
    """F(y) = Integral_0^y erfcx(s) ds for any finite y (overflows to -inf for y < -26.6)."""
    y = np.asarray(y, dtype=float)
    flat = y.ravel()
    out = _f_pos(np.abs(flat))
    neg = flat < 0
    with np.errstate(over="ignore"):
        out[neg] -= 2.0 * np.exp(flat[neg] ** 2) * dawsn(-flat[neg])
    return out.reshape(y.shape)


def _log_integral_and_slope(a: np.ndarray, b: np.ndarray, width: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log I and (erfcx(a) - erfcx(b)) / I, with I = Integral_a^b erfcx(s) ds (1-D arrays).

    ``a <= 2**27`` finite, ``b = a + width`` finite, ``width > 0``.  Nothing overflows: below
    threshold the factor exp(a^2) is carried in the logarithm (which may reach +inf).
    """
    log_i = np.empty(a.shape)
    slope = np.empty(a.shape)

    pos = a >= 0
    if np.any(pos):
        ap, bp = a[pos], b[pos]
        integral = np.empty(ap.shape)
        short = width[pos] <= np.maximum(ap, 1.0)  # integrate directly: no cancellation
        integral[short] = _gauss_legendre(ap[short], width[pos][short])
        integral[~short] = _f_pos(bp[~short]) - _f_pos(ap[~short])
        log_i[pos] = np.log(integral)
        slope[pos] = (erfcx(ap) - erfcx(bp)) / integral

    neg = ~pos
    if np.any(neg):
        # I = exp(x^2) J with x = -a > 0, E = exp(-x^2), D = Dawson's function:
        #   J = 2 D(x) - E F(x) + E F(b),  and for b < 0  E F(b) = E F(|b|) - 2 Eb D(|b|),
        #   Eb = exp(b^2 - x^2) = exp(-width (x + |b|));
        #   erfcx(a) - erfcx(b) = exp(x^2) (2 - E erfcx(x) - E erfcx(b)),
        #   and for b < 0  E erfcx(b) = 2 Eb - E erfcx(|b|).
        x, bn, wn = -a[neg], b[neg], width[neg]
        with np.errstate(over="ignore"):
            x2 = x * x  # inf far below threshold: the rate is then 0
            bneg = bn < 0
            babs = np.abs(bn)
            e = np.exp(-x2)
            eb = np.exp(-wn[bneg] * (x[bneg] + babs[bneg]))
        j = 2.0 * dawsn(x) - e * _f_pos(x) + e * _f_pos(babs)
        j[bneg] -= 2.0 * eb * dawsn(babs[bneg])
        e_erfcx_b = e * erfcx(babs)
        e_erfcx_b[bneg] = 2.0 * eb - e_erfcx_b[bneg]
        log_i[neg] = x2 + np.log(j)
        slope[neg] = (2.0 - e * erfcx(x) - e_erfcx_b) / j
    return log_i, slope


def _erfcx_integral(a, b) -> np.ndarray:
    """Integral_a^b erfcx(s) ds for finite a < b <= 2**27, a > -26 (overflows below)."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    log_i, _ = _log_integral_and_slope(a.ravel(), b.ravel(), (b - a).ravel())
    return np.exp(log_i).reshape(a.shape)


def _log_rate_norm(z: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log of nu = Phi * tau_m / 1000 and d log(nu) / dz, for z = (mu - v_r) / (theta - v_r).

    s = sigma / (theta - v_r) >= 1e-250; z finite; 1-D arrays of equal length.  log nu may
    be -inf (far below threshold) or +inf (z overflowing).
    """
    with np.errstate(over="ignore"):
        a = (z - 1.0) / s
        b = z / s
        width = 1.0 / s
    log_nu = np.empty(z.shape)
    slope = np.empty(z.shape)

    # Far above threshold erfcx(s) = (1 - 1/(2 s^2) + ...) / (s sqrt(pi)) gives
    # sqrt(pi) I = ln(b / a) = ln(1 + 1 / (z - 1)) to relative 1e-17: the deterministic rate.
    above = a > _EDGES[-1]
    if np.any(above):
        zm1 = z[above] - 1.0
        ln_ratio = np.log1p(1.0 / zm1)
        log_nu[above] = -np.log(ln_ratio)
        slope[above] = 1.0 / (z[above] * (zm1 * ln_ratio))
    below = a == -np.inf
    log_nu[below] = -np.inf
    slope[below] = np.inf
    rest = ~(above | below)
    if np.any(rest):
        log_i, slope_i = _log_integral_and_slope(a[rest], b[rest], width[rest])
        log_nu[rest] = -np.log(_SQRT_PI) - log_i
        slope[rest] = slope_i / s[rest]
    return log_nu, slope


def _as_float(name: str, value) -> np.ndarray:
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{name} must be a number or an array of numbers, got {value!r}") from exc


def _where(shape: tuple[int, ...], flat: int) -> str:
    """'' for a scalar, '[i]' for a vector, '[(i, j, ...)]' otherwise."""
    if not shape:
        return ""
    index = tuple(int(i) for i in np.unravel_index(flat, shape))
    return f"[{index[0]}]" if len(index) == 1 else f"[{index}]"


def _first_bad(name: str, arr: np.ndarray, bad: np.ndarray, expected: str) -> None:
    """Raise a ParameterError naming the first entry of ``arr`` where ``bad`` holds."""
    if not np.any(bad):
        return
    flat = int(np.flatnonzero(np.ravel(bad))[0])
    value = float(arr.ravel()[flat])
    raise ParameterError(f"{name}{_where(arr.shape, flat)} = {value!r} is invalid: expected {expected}")


def _check_neuron(sigma, tau_m, theta, v_r) -> tuple[np.ndarray, ...]:
    """Validate the neuron parameters (ParameterError naming the first bad value); as float arrays."""
    sigma = _as_float("sigma", sigma)
    tau_m = _as_float("tau_m", tau_m)
    theta = _as_float("theta", theta)
    v_r = _as_float("v_r", v_r)
    _first_bad("sigma", sigma, ~(sigma >= 0) | ~np.isfinite(sigma), "a finite noise level >= 0")
    _first_bad("tau_m", tau_m, ~(tau_m > 0) | ~np.isfinite(tau_m), "a finite time constant > 0 ms")
    _first_bad("theta", theta, ~np.isfinite(theta), "a finite threshold")
    _first_bad("v_r", v_r, ~np.isfinite(v_r), "a finite reset")
    th, vr, sg = np.broadcast_arrays(theta, v_r, sigma)
    with np.errstate(over="ignore"):
        gap = th - vr
    bad = ~(gap > 0) | ~np.isfinite(gap)
    if np.any(bad):
        k = int(np.flatnonzero(bad.ravel())[0])
        raise ParameterError(
            f"theta{_where(th.shape, k)} = {float(th.ravel()[k])!r} is invalid: "
            f"expected a threshold above the reset v_r = {float(vr.ravel()[k])!r}"
        )
    _first_bad("sigma", sg, (sg > 0) & (sg < _MIN_SIGMA_RATIO * gap),
               f"0 (deterministic) or at least {_MIN_SIGMA_RATIO:g} * (theta - v_r)")
    return sigma, tau_m, theta, v_r


def _flat_inputs(mu, sigma, tau_m, theta, v_r) -> tuple[tuple[int, ...], tuple[np.ndarray, ...]]:
    """The checked arguments of the transfer function broadcast together: (their common shape,
    the five of them as flat float arrays)."""
    mu = _as_float("mu", mu)
    sigma, tau_m, theta, v_r = _check_neuron(sigma, tau_m, theta, v_r)
    arrays = np.broadcast_arrays(mu, sigma, tau_m, theta, v_r)
    return arrays[0].shape, tuple(np.ravel(x) for x in arrays)


def transfer(mu, sigma, tau_m, theta=1.0, v_r=0.0) -> np.ndarray:
    """Firing rate [Hz] of a LIF neuron with mean input mu and input noise sigma (same units as voltage), membrane time constant tau_m [ms], threshold theta, reset v_r.

    Args:
        mu: mean input (voltage units: the stationary voltage without threshold); any shape.
        sigma: standard deviation of the input noise (voltage units), >= 0.  0 gives the
            deterministic rate ``(1000 / tau_m) / ln((mu - v_r) / (mu - theta))`` (0 Hz at or
            below threshold).
        tau_m: membrane time constant [ms], > 0.
        theta: threshold (voltage units); must exceed ``v_r``.
        v_r: reset (voltage units).

    All arguments broadcast against each other.

    Returns:
        Rates [Hz], float array of the broadcast shape.  Far below threshold the rate
        underflows to 0 Hz (no warning); ``mu = +inf`` gives ``inf``, ``mu = -inf`` gives 0 and
        NaN gives NaN.

    Raises:
        ParameterError: sigma < 0, tau_m <= 0, theta <= v_r or a non-finite parameter.
    """
    shape, (mu, sigma, tau_m, theta, v_r) = _flat_inputs(mu, sigma, tau_m, theta, v_r)
    gap = theta - v_r
    z = (mu - v_r) / gap
    out = np.full(mu.shape, np.nan)
    out[mu == np.inf] = np.inf
    out[mu == -np.inf] = 0.0

    finite = np.isfinite(mu)
    det = finite & (sigma == 0)
    if np.any(det):
        zd = z[det]
        nu = np.zeros(zd.shape)
        above = zd > 1
        nu[above] = -1.0 / np.log1p(-1.0 / zd[above])
        out[det] = 1000.0 / tau_m[det] * nu

    noisy = finite & (sigma > 0)
    if np.any(noisy):
        log_nu, _ = _log_rate_norm(z[noisy], sigma[noisy] / gap[noisy])
        with np.errstate(over="ignore", under="ignore"):  # 0 Hz far below, inf for mu ~ 1e308
            out[noisy] = 1000.0 / tau_m[noisy] * np.exp(log_nu)
    return out.reshape(shape)


def _transfer_derivative(mu, sigma, tau_m, theta=1.0, v_r=0.0) -> np.ndarray:
    """dPhi/dmu [Hz per voltage unit] for sigma > 0 (the slope used by the Newton steps).

    Equals ``-Phi^2 sqrt(pi) tau_m / 1000 (erfcx(b) - erfcx(a)) / sigma``, computed as
    ``Phi * dlog(Phi)/dmu`` so that it cannot overflow.
    """
    shape, (mu, sigma, tau_m, theta, v_r) = _flat_inputs(mu, sigma, tau_m, theta, v_r)
    gap = theta - v_r
    log_nu, dlog_dz = _log_rate_norm((mu - v_r) / gap, sigma / gap)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        slope = 1000.0 / tau_m * np.exp(log_nu) * dlog_dz / gap
    return np.where(log_nu == -np.inf, 0.0, slope).reshape(shape)


_PCHIP_MAX_GROUPS = 16  # up to this many distinct sigma / (theta - v_r): one PCHIP per table


def _group_extremes(values: np.ndarray, inverse: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    lo = np.full(n_groups, np.inf)
    hi = np.full(n_groups, -np.inf)
    np.minimum.at(lo, inverse, values)
    np.maximum.at(hi, inverse, values)
    return lo, hi


def _tables(s: np.ndarray, lmin: np.ndarray, lmax: np.ndarray, m: int) -> tuple[np.ndarray, ...]:
    """z grid, log nu and d log nu / dz on it, shape (groups, 2 m + 1), one row per s.

    Row g spans a z range with log nu below lmin[g] and above lmax[g], points spaced
    geometrically away from threshold (z = 1), where nu changes fastest.
    """

    def log_nu(z: np.ndarray, sg: np.ndarray) -> np.ndarray:
        return _log_rate_norm(z, sg)[0]

    # Above threshold nu ~ z - 1/2; far below, log nu ~ -((1 - z) / s)^2.  Widen until outside.
    z_hi = np.maximum(2.0, 2.0 * np.exp(np.minimum(lmax, 700.0)) + 2.0)
    short = ~(log_nu(z_hi, s) > lmax)
    while np.any(short):
        z_hi[short] *= 2.0
        short[short] = ~(log_nu(z_hi[short], s[short]) > lmax[short])
    z_lo = -s * np.sqrt(np.maximum(-lmin, 0.0) + 1.0)
    short = ~(log_nu(z_lo, s) < lmin)
    while np.any(short):
        z_lo[short] = 1.0 - 2.0 * (1.0 - z_lo[short])
        short[short] = ~(log_nu(z_lo[short], s[short]) < lmin[short])

    d0 = np.minimum(np.maximum(1e-3 * s, 1e-12), 0.5 * np.minimum(1.0 - z_lo, z_hi - 1.0))
    t = np.linspace(0.0, 1.0, m)[None, :]
    below = 1.0 - np.exp(np.log(d0)[:, None] + t * np.log((1.0 - z_lo) / d0)[:, None])
    above = 1.0 + np.exp(np.log(d0)[:, None] + t * np.log((z_hi - 1.0) / d0)[:, None])
    grid = np.concatenate([below[:, ::-1], np.ones((s.size, 1)), above], axis=1)
    grid[:, 0], grid[:, -1] = z_lo, z_hi  # exactly the checked ends
    value, slope = _log_rate_norm(grid.ravel(), np.repeat(s, grid.shape[1]))
    return grid, value.reshape(grid.shape), slope.reshape(grid.shape)


def _solve_z(log_nu: np.ndarray, s: np.ndarray, max_iter: int = 100) -> np.ndarray:
    """z with log nu(z, s) = log_nu, elementwise (1-D arrays, s > 0).

    Start: a table of log nu per distinct s gives each entry a bracket [lo, hi] and a first
    guess (PCHIP of z against log nu, or, with many distinct s, cubic Hermite with the exact
    slopes).  Then bracketed Newton steps on log nu.
    """
    groups, inverse = np.unique(s, return_inverse=True)
    n_groups = groups.size
    m = int(np.clip(200_000 // n_groups, 32, 1000))
    lmin, lmax = _group_extremes(log_nu, inverse, n_groups)
    grid, table, dtable = _tables(groups, lmin, lmax, m)

    # Per-entry bracket: binary search in the entry's row for table[k-1] < log_nu <= table[k]
    # (each row is non-decreasing, starts below its smallest and ends above its largest target).
    left = np.zeros(log_nu.shape, dtype=np.intp)
    right = np.full(log_nu.shape, grid.shape[1] - 1, dtype=np.intp)
    while np.any(right - left > 1):
        mid = (left + right) // 2
        below = table[inverse, mid] < log_nu
        left = np.where(below, mid, left)
        right = np.where(below, right, mid)
    lo, hi = grid[inverse, left], grid[inverse, right]

    if n_groups <= _PCHIP_MAX_GROUPS:
        z = np.empty(log_nu.shape)
        for g in range(n_groups):
            members = inverse == g
            keep = np.concatenate([[True], np.diff(table[g]) > 0])  # PCHIP needs strictly increasing x
            z[members] = PchipInterpolator(table[g, keep], grid[g, keep])(log_nu[members])
    else:
        l0, l1 = table[inverse, left], table[inverse, right]
        h = l1 - l0
        u = np.divide(log_nu - l0, h, out=np.ones_like(h), where=h > 0)
        m0 = h / dtable[inverse, left]  # dz/dlog(nu) * h at both ends
        m1 = h / dtable[inverse, right]
        z = (
            (1 + 2 * u) * (1 - u) ** 2 * lo
            + u * (1 - u) ** 2 * m0
            + u**2 * (3 - 2 * u) * hi
            - u**2 * (1 - u) * m1
        )
    z = np.clip(np.where(np.isfinite(z), z, 0.5 * (lo + hi)), lo, hi)

    active = np.arange(z.size)
    for _ in range(max_iter):
        if active.size == 0:
            break
        za = z[active]
        value, slope = _log_rate_norm(za, s[active])
        g = value - log_nu[active]
        la = np.where(g < 0, za, lo[active])
        ha = np.where(g > 0, za, hi[active])
        step = g / slope
        z_new = za - step
        bisect = ~((z_new >= la) & (z_new <= ha))
        z_new[bisect] = 0.5 * (la[bisect] + ha[bisect])
        z[active], lo[active], hi[active] = z_new, la, ha
        # Quadratic convergence: after a Newton step of relative size <= 1e-9 the error
        # left is of order (curvature / slope) * step^2, far below 1e-13 relative.
        scale = np.maximum(np.abs(za), 1.0)
        done = (g == 0) | ((np.abs(step) <= 1e-9 * scale) & ~bisect) | (ha - la <= 1e-15 * scale)
        active = active[~done]
    return z


def inverse_transfer(rate_hz, sigma, tau_m, theta=1.0, v_r=0.0) -> np.ndarray:
    """Mean input mu for which transfer(mu, ...) == rate_hz (array, Hz, > 0). Raises spikeforge.errors.ParameterError naming the bad value for a negative, zero or NaN rate, or sigma < 0.

    Args:
        rate_hz: target rates [Hz], any shape, every entry finite and > 0.
        sigma: input noise (voltage units), >= 0; 0 uses the closed-form deterministic inverse
            ``mu = v_r + (theta - v_r) / (1 - exp(-1000 / (tau_m rate)))``, in which ``mu``
            rounds to ``theta`` (and ``transfer`` gives 0 Hz back) for rates below about
            ``1000 / (37 tau_m)`` Hz: the deterministic neuron cannot fire that slowly in
            double precision.
        tau_m: membrane time constant [ms], > 0.
        theta, v_r: threshold and reset (voltage units), theta > v_r.

    All arguments broadcast against each other.

    Returns:
        mu (voltage units), float array of the broadcast shape; ``transfer(mu, ...)``
        reproduces ``rate_hz`` to about 1e-13 relative.
    """
    rate = _as_float("rate_hz", rate_hz)
    _first_bad("rate_hz", rate, ~(rate > 0) | ~np.isfinite(rate), "a finite rate > 0 Hz")
    sigma, tau_m, theta, v_r = _check_neuron(sigma, tau_m, theta, v_r)
    rate, sigma, tau_m, theta, v_r = np.broadcast_arrays(rate, sigma, tau_m, theta, v_r)
    shape = rate.shape
    rate, sigma, tau_m, theta, v_r = (np.ravel(x) for x in (rate, sigma, tau_m, theta, v_r))
    gap = theta - v_r
    log_nu = np.log(rate) + np.log(tau_m / 1000.0)  # nu = rate * tau_m / 1000, dimensionless
    z = np.empty(rate.shape)

    det = sigma == 0
    if np.any(det):
        with np.errstate(over="ignore", divide="ignore"):
            z[det] = -1.0 / np.expm1(-np.exp(-log_nu[det]))
    noisy = ~det
    if np.any(noisy):
        z[noisy] = _solve_z(log_nu[noisy], sigma[noisy] / gap[noisy])
    return (v_r + gap * z).reshape(shape)


def rates_to_currents(rates_hz, sigma, tau_m, theta, v_r, x_bal, min_rate_hz=0.1) -> np.ndarray:
    """Target synaptic currents from target rates: replaces rates below min_rate_hz (zeros) by min_rate_hz, solves mu per entry, and returns mu - x_bal (x_bal: constant external drive per neuron, broadcast along the last axis = neurons). tau_m, theta, v_r, x_bal may be scalars or per-neuron arrays (last axis). Negative or NaN rates raise ParameterError naming the first bad entry (index and value).

    Args:
        rates_hz: target rates [Hz], e.g. a PSTH of shape (n_time, n_cells) or
            (n_tasks, n_time, n_cells): any shape whose last axis is the neurons when a
            per-neuron parameter is given.  Entries must be finite and >= 0.
        sigma: input noise (voltage units), >= 0 (scalar or per neuron); TrainSpikingNet uses
            ``ustd0 / sqrt(1.3 tau_bale)`` with K > 0, else ``p.sig``.
        tau_m: membrane time constant [ms].
        theta, v_r: threshold and reset (voltage units).
        x_bal: constant external drive (voltage units); the target current is the mean input
            minus this drive.  (The reference omits the subtraction; see the module docstring.)
        min_rate_hz: floor [Hz] applied before inversion (the reference replaces zeros by 0.1 Hz).

    Returns:
        Target currents ``mu - x_bal`` (voltage units), float array of ``rates_hz``'s shape
        broadcast with the parameters.
    """
    rates = _as_float("rates_hz", rates_hz)
    _first_bad("rates_hz", rates, ~(rates >= 0) | ~np.isfinite(rates), "a finite rate >= 0 Hz")
    floor = _as_float("min_rate_hz", min_rate_hz)
    _first_bad("min_rate_hz", floor, ~(floor > 0) | ~np.isfinite(floor), "a finite rate > 0 Hz")
    x_bal = _as_float("x_bal", x_bal)
    _first_bad("x_bal", x_bal, ~np.isfinite(x_bal), "a finite drive")
    mu = inverse_transfer(np.maximum(rates, floor), sigma, tau_m, theta, v_r)
    return mu - x_bal
