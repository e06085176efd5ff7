"""A synthetic recording with the response types of real PSTHs, for tutorials, tests and the fidelity study.

:func:`psth_set` draws ``n_units`` firing-rate profiles [Hz] over a window of ``duration_ms``,
one sixth of each type (in this order, repeating):

=============  ==================================================================  ============================
type           profile                                                             timescale
=============  ==================================================================  ============================
transient      baseline 3-8 Hz plus a Gaussian bump of 10-22 Hz at 10-60 % of      bump s.d. 60-150 ms
               the window
ramp           baseline 3-8 Hz rising linearly by 5-15 Hz from 10-40 % of the      rise over 40-80 % of the window
               window
suppressed     baseline 10-16 Hz with a Gaussian dip to 1-3 Hz                     dip s.d. 100-250 ms
oscillating    6-10 Hz plus a sinusoid of 3-6 Hz amplitude                          period 500-1000 ms
biphasic       baseline 5-8 Hz, a bump of 8-15 Hz then a dip of 3-5 Hz 150-300 ms  s.d. 60-120 ms each
               later
flat           a constant 2-10 Hz                                                  -
=============  ==================================================================  ============================

So baselines lie around 5 Hz and peaks reach about 30 Hz; every profile changes on a timescale
of 60 ms or slower.  :func:`poisson_trials` draws trials of inhomogeneous Poisson spikes from
the profiles, as a recording of those units would give.
"""

from __future__ import annotations

import numpy as np

TYPES = ("transient", "ramp", "suppressed", "oscillating", "biphasic", "flat")


def psth_set(n_units: int, duration_ms: float, dt_ms: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rates (time, n_units) [Hz] at times ``(k + 0.5) dt_ms``, types (n_units,) str)."""
    rng = np.random.default_rng(seed)
    t = (np.arange(int(round(duration_ms / dt_ms))) + 0.5) * dt_ms
    rates = np.empty((t.size, n_units))
    types = np.array([TYPES[unit % len(TYPES)] for unit in range(n_units)])

    def bump(centre, sd):
        return np.exp(-0.5 * ((t - centre) / sd) ** 2)

    for unit, kind in enumerate(types):
        u = rng.uniform
        if kind == "transient":
            rates[:, unit] = u(3, 8) + u(10, 22) * bump(u(0.1, 0.6) * duration_ms, u(60, 150))
        elif kind == "ramp":
            start, length = u(0.1, 0.4) * duration_ms, u(0.4, 0.8) * duration_ms
            rates[:, unit] = u(3, 8) + u(5, 15) * np.clip((t - start) / length, 0, 1)
        elif kind == "suppressed":
            base = u(10, 16)
            rates[:, unit] = base - (base - u(1, 3)) * bump(u(0.2, 0.8) * duration_ms, u(100, 250))
        elif kind == "oscillating":
            rates[:, unit] = u(6, 10) + u(3, 6) * np.sin(2 * np.pi * t / u(500, 1000) + u(0, 2 * np.pi))
        elif kind == "biphasic":
            centre = u(0.1, 0.5) * duration_ms
            rates[:, unit] = (u(5, 8) + u(8, 15) * bump(centre, u(60, 120))
                              - u(3, 5) * bump(centre + u(150, 300), u(60, 120)))
        else:
            rates[:, unit] = u(2, 10)
    return np.maximum(rates, 0.0), types


def poisson_trials(rates: np.ndarray, dt_ms: float, n_trials: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Inhomogeneous Poisson spikes of (time, units) ``rates`` [Hz] sampled every ``dt_ms``:
    (trial, unit, time [ms]) arrays, one entry per spike, times uniform within their bin and
    sorted within each (trial, unit) train."""
    rng = np.random.default_rng(seed)
    expected = rates.T * dt_ms / 1000.0  # (unit, bin) spikes per bin
    parts = []
    for trial in range(n_trials):  # a trial at a time: (units x bins) counts stay small
        counts = rng.poisson(expected)
        unit, bin_ = np.nonzero(counts)
        repeat = counts[unit, bin_]
        unit, bin_ = np.repeat(unit, repeat), np.repeat(bin_, repeat)
        time = (bin_ + rng.random(bin_.size)) * dt_ms
        order = np.lexsort((time, unit))
        parts.append((np.full(unit.size, trial), unit[order], time[order]))
    return tuple(np.concatenate([part[k] for part in parts]) for k in range(3))
