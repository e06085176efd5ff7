"""What a network cannot reach in its target rates, reported before the expensive work.

``init`` runs these checks on target rates (from a spike or rate file) before the init run, and
reports each finding as one warning with the number of units and the first unit indices:

* **below the floor**: rates under the Siegert conversion's floor (0.1 Hz) are raised to it;
  a unit whose rate is under it throughout is reported as silent;
* **above the ceiling**: rates over ``1000 / (2 tau_m)`` Hz (50 Hz for tau_m = 10 ms), where a
  neuron would have to fire within two membrane time constants of its last spike: RLS rarely
  drives a balanced network's neurons there;
* **too fast**: units with more than a quarter of their rate's variance at frequencies the
  plastic synapses pass at less than 10 % (``f > 10 / (2 pi tau_plas)``, 10.6 Hz for
  150 ms): the filtered spike trains that RLS combines cannot follow such components, e.g.
  a 20-ms transient.

It is an error (nothing is written) when no unit has a rate above the floor anywhere: there
would be nothing to learn.  After the init run, a network that did not spike at all is an error
too (RLS learns from filtered spike trains), a nearly silent or saturated one a warning
(:mod:`spikeforge.rls.initialize`).
"""

from __future__ import annotations

import warnings

import numpy as np

from spikeforge.errors import DataFileError, SpikeforgeWarning
from spikeforge.rls.params import Params

RATE_FLOOR_HZ = 0.1  # the Siegert conversion's floor (spikeforge.rls.siegert)
FAST_VARIANCE_FRACTION = 0.25  # a unit is "too fast" above this fraction of its variance
FILTER_PASS = 0.1  # ... at frequencies the plastic filter passes at less than this
SHOWN = 10  # unit indices listed in a warning


def rate_ceiling_hz(p: Params) -> float:
    """The highest target rate not reported [Hz]: one spike per two membrane time constants."""
    return 1000.0 / (2.0 * min(p.tau_meme, p.tau_memi))


def fastest_followed_hz(p: Params) -> float:
    """The frequency above which the plastic filter ``1 / (1 + i 2 pi f tau_plas)`` passes less than
    FILTER_PASS of an input [Hz] (with the longest tau_plas of the network)."""
    return np.sqrt(1.0 / FILTER_PASS**2 - 1.0) / (2.0 * np.pi * p.tau_plas_max / 1000.0)


def fast_variance_fraction(rates: np.ndarray, sample_ms: float, above_hz: float) -> np.ndarray:
    """Fraction of each unit's variance at frequencies above ``above_hz``, from the periodogram
    of its (tasks, time, units) rates sampled every ``sample_ms``; per unit, the largest over tasks."""
    centred = rates - rates.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(centred, axis=1)) ** 2
    frequencies = np.fft.rfftfreq(rates.shape[1], sample_ms / 1000.0)
    total = power[:, 1:].sum(axis=1)
    fast = power[:, frequencies > above_hz].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(total > 0, fast / total, 0.0)
    return fraction.max(axis=0)


def check_target_rates(p: Params, rates: np.ndarray, unit_ids: np.ndarray, source: str) -> list[str]:
    """Warn (and return the warnings) about what the network cannot reach in (tasks, time, units)
    ``rates`` [Hz]; raise DataFileError when no unit has anything to learn."""
    findings = []
    below = (rates < RATE_FLOOR_HZ).any(axis=(0, 1))
    silent = (rates < RATE_FLOOR_HZ).all(axis=(0, 1))
    if silent.all():
        raise DataFileError(f"{source}: every unit's rate is below {RATE_FLOOR_HZ} Hz throughout; expected at "
                            f"least one unit that fires (there is nothing to learn)")
    if silent.any():
        findings.append(f"{_units(silent, unit_ids)} never reach {RATE_FLOOR_HZ} Hz (silent; their targets become the "
                        f"current of a {RATE_FLOOR_HZ}-Hz neuron)")
    if (below & ~silent).any():
        findings.append(f"{_units(below & ~silent, unit_ids)} have rates below {RATE_FLOOR_HZ} Hz, raised to it for the "
                        f"conversion to currents")
    ceiling = rate_ceiling_hz(p)
    above = (rates > ceiling).any(axis=(0, 1))
    if above.any():
        findings.append(f"{_units(above, unit_ids)} exceed {ceiling:g} Hz (one spike per two membrane time "
                        f"constants, up to {rates.max():.3g} Hz), which a balanced network rarely reaches")
    limit = fastest_followed_hz(p)
    fast = fast_variance_fraction(rates, p.learn_every, limit) > FAST_VARIANCE_FRACTION
    if fast.any():
        findings.append(f"{_units(fast, unit_ids)} have more than {FAST_VARIANCE_FRACTION:.0%} of their variance above "
                        f"{limit:.3g} Hz, faster than the plastic synapses (tau_plas = {p.tau_plas_max:g} ms) can "
                        f"follow; smooth the targets or lower tau_plas")
    for finding in findings:
        warnings.warn(f"{source}: {finding}", SpikeforgeWarning, stacklevel=3)
    return findings


def _units(mask: np.ndarray, unit_ids: np.ndarray) -> str:
    indices = np.flatnonzero(mask)
    shown = ", ".join(str(unit_ids[k]) for k in indices[:SHOWN]) + (", ..." if indices.size > SHOWN else "")
    return f"{indices.size} of {mask.size} units ({shown})"
