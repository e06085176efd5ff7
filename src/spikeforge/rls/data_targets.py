"""Targets from data: currents, or firing rates converted to currents (tsn.md 4.6, 4.7).

Accepted files: ``.npy`` arrays, and HDF5 files (``.h5``, ``.hdf5``; also TrainSpikingNet's
``.jld2``, which are HDF5) holding one dataset, or several of which one is named ``utarg``,
``targets``, ``rate`` or ``rates``.  The array is (time, neurons) or (time, neurons, tasks),
with one time sample per learning step: ``train_duration / learn_every`` rows.

Rates [Hz] are converted with the inverse Siegert transfer function of each neuron
(:mod:`spikeforge.rls.siegert`) using the input noise ``sigma = ustd0 / sqrt(1.3 tau_bale)``
measured in the init run (``sig`` when the network has no static synapses), as the
reference does; rates below 0.1 Hz are raised to 0.1 Hz.  Unlike the reference, the
constant drive is subtracted, since the Siegert mean input is drive plus synaptic current.

Every file is checked before any simulation: real numbers (not complex), finite, and for
rates ``0 <= rate <= max_rate`` (the parameter, 500 Hz by default: the highest rate whose
spikes a trial records), at least one row, and a time axis (if any) of one finite, strictly
increasing time per row, at least two rows.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.ndimage import gaussian_filter1d

from spikeforge.core import recordings
from spikeforge.core.store import read_h5, require_file
from spikeforge.errors import DataFileError, SpikeforgeWarning
from spikeforge.rls import siegert
from spikeforge.rls.network_parameters import uniform_per_neuron
from spikeforge.rls.params import Params

PREFERRED_NAMES = ("utarg", "targets", "rate", "rates")
SIEGERT_NOISE_FACTOR = 1.3  # the reference's manual calibration of sigma
DEFAULT_PSTH_SMOOTHING_MS = 25.0  # standard deviation of the Gaussian kernel of PSTHs from spikes [ms]


def load_array(path: str | Path, what: str, exclude: tuple[str, ...] = ()) -> np.ndarray:
    """The array in a ``.npy`` or HDF5 file (its datasets other than ``exclude``), as float64."""
    path = Path(path)
    require_file(path, f"{what} file")
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            reason = " ".join(str(error).split())[:200] or type(error).__name__
            if "pickled" in reason or "allow_pickle" in reason:
                reason = "not in numpy's .npy format"
            raise DataFileError(f"{what} file {str(path)!r} is not a readable .npy array ({reason})") from None
    else:
        arrays, _ = read_h5(path, what=f"{what} file")
        arrays = {name: value for name, value in arrays.items() if name not in exclude}
        if not arrays:
            raise DataFileError(f"{what} file {str(path)!r} holds no dataset")
        names = [n for n in arrays if n.split("/")[-1] in PREFERRED_NAMES] if len(arrays) > 1 else list(arrays)
        if len(names) != 1:
            raise DataFileError(f"{what} file {str(path)!r} has datasets {sorted(arrays)}; expected one, or one "
                                f"named {' or '.join(PREFERRED_NAMES)}")
        array = arrays[names[0]]
    if np.iscomplexobj(array):
        raise DataFileError(f"{what} file {str(path)!r} holds complex values; expected real numbers")
    if not np.issubdtype(array.dtype, np.number):
        raise DataFileError(f"{what} file {str(path)!r} holds {array.dtype} values; expected numbers")
    return np.asarray(array, dtype=np.float64)


def check_rates(rates: np.ndarray, p: Params, source: str | Path) -> None:
    """Raise DataFileError unless every rate of (tasks, time, units) ``rates`` is in [0, max_rate]."""
    bad = np.argwhere((rates < 0) | (rates > p.max_rate) | ~np.isfinite(rates))
    if bad.size:
        task, t, i = bad[0]
        raise DataFileError(f"{source}: the rate at time {t}, unit {i}, task {task} is "
                            f"{rates[task, t, i]} Hz; expected a rate in [0, max_rate = {p.max_rate}] Hz")


def as_task_major(array: np.ndarray, p: Params, n_tasks: int | None, path: str | Path, what: str) -> np.ndarray:
    """Check a (time, neurons[, tasks]) array against ``p`` and return it as (tasks, time, neurons)."""
    expected = f"(time = {p.steps.learn_nsteps}, neurons = {p.n_cells}[, tasks])"
    shape = array.shape
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[:2] != (p.steps.learn_nsteps, p.n_cells):
        raise DataFileError(f"{what} file {str(path)!r} has shape {shape}; expected {expected}, one row per "
                            f"learning step (train_duration / learn_every)")
    return _task_major(array, n_tasks, path, what, "neuron")


def _task_major(array: np.ndarray, n_tasks: int | None, path: str | Path, what: str, column: str,
                time_ms: np.ndarray | None = None) -> np.ndarray:
    """A (time, columns, tasks) array checked for its number of tasks and finite values, as
    (tasks, time, columns); ``column`` names a column in messages ("neuron", "unit"), and
    ``time_ms`` (the rows' times, if any) is given with the row of a bad value."""
    if n_tasks is not None and array.shape[2] != n_tasks:
        raise DataFileError(f"{what} file {str(path)!r} has {array.shape[2]} tasks, but {n_tasks} were asked for")
    bad = np.argwhere(~np.isfinite(array))
    if bad.size:
        t, i, task = bad[0]
        raise DataFileError(f"{what} file {str(path)!r}: the value at {_row(t, time_ms)}, {column} {i}, task {task} "
                            f"is {array[t, i, task]}; expected a finite number")
    return np.ascontiguousarray(np.moveaxis(array, 2, 0))


def _row(row: int, time_ms: np.ndarray | None) -> str:
    """How messages name row ``row`` of a data file: "row 4", or "row 4 (time 40 ms)" with a time axis."""
    return f"row {row}" + ("" if time_ms is None else f" (time {time_ms[row]:g} ms)")


def siegert_sigma(p: Params, ustd0: float) -> float | np.ndarray:
    """Input noise of the Siegert conversion: from the init run's current std, or each neuron's
    ``sig`` if k = 0."""
    if p.k > 0:
        return ustd0 / np.sqrt(SIEGERT_NOISE_FACTOR * p.tau_bale)
    return p.sig if p.sig_max == p.sig else uniform_per_neuron(p, "sig", p.n_cells)


def currents_from_rates(p: Params, rates: np.ndarray, ustd0: float, neurons: np.ndarray | None = None,
                        threshold_shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Target currents for target ``rates`` [Hz] of shape (tasks, time, len(neurons)), checked by
    :func:`check_rates`, with the Siegert function of each of ``neurons`` (default all), its
    threshold raised by ``threshold_shift`` (excitatory, inhibitory; :func:`calibrated_threshold_shift`)."""
    neurons = np.arange(p.n_cells) if neurons is None else neurons
    exc = neurons < p.ne
    sigma = _sigma_of(p, ustd0, neurons)
    return siegert.rates_to_currents(
        rates, sigma, tau_m=np.where(exc, p.tau_meme, p.tau_memi),
        theta=np.where(exc, p.threshe + threshold_shift[0], p.threshi + threshold_shift[1]), v_r=p.vre,
        x_bal=np.where(exc, p.x_bale, p.x_bali))


CALIBRATION_MIN_RATE_HZ = 0.5  # neurons firing less in the init run do not enter the calibration
CALIBRATION_MIN_NEURONS = 10  # a population with fewer firing neurons is not calibrated


def calibrated_threshold_shift(p: Params, ustd0: float, u_mean: np.ndarray, init_rates: np.ndarray
                               ) -> tuple[float, float]:
    """Threshold shifts [voltage] (excitatory, inhibitory) that make the Siegert function give the
    init run's rates ``init_rates`` [Hz] at its mean currents ``u_mean`` (plus the drive): the
    median over the population's firing neurons of log(Siegert rate / init rate) is 0.

    The Siegert function is exact for the continuous-time diffusion; a network in discrete time
    misses threshold crossings between steps (fewer spikes, as a threshold about
    ``sigma sqrt(dt / tau_m)`` higher would give) and its inputs fluctuate beyond the assumed
    sigma.  The shift absorbs both, measured on the network itself.  0 for a population with
    fewer than CALIBRATION_MIN_NEURONS neurons above CALIBRATION_MIN_RATE_HZ.  The init rates
    count the whole trial, whose first milliseconds hold a burst of the neurons that start above
    threshold: over a trial of a few hundred ms that burst lowers the shift noticeably.
    """
    from scipy.optimize import brentq

    shifts = []
    for population, theta, tau_m, x_bal in (((np.arange(p.n_cells) < p.ne), p.threshe, p.tau_meme, p.x_bale),
                                            ((np.arange(p.n_cells) >= p.ne), p.threshi, p.tau_memi, p.x_bali)):
        firing = population & (init_rates >= CALIBRATION_MIN_RATE_HZ)
        if firing.sum() < CALIBRATION_MIN_NEURONS:
            shifts.append(0.0)
            continue
        mu = u_mean[firing] + x_bal
        sigma = _sigma_of(p, ustd0, np.flatnonzero(firing))
        span = theta - p.vre

        def mismatch(shift):
            return np.median(np.log(siegert.transfer(mu, sigma, tau_m, theta + shift, p.vre) / init_rates[firing]))

        low, high = -0.5 * span, 0.5 * span
        if mismatch(low) * mismatch(high) > 0:
            raise DataFileError(f"the rate conversion cannot be calibrated: no threshold within +/- {0.5 * span:g} of "
                                f"{theta:g} gives the init run's rates; use rate_conversion = 'siegert'")
        shifts.append(float(brentq(mismatch, low, high, xtol=1e-6)))
    return shifts[0], shifts[1]


def _sigma_of(p: Params, ustd0: float, neurons: np.ndarray):
    sigma = siegert_sigma(p, ustd0)
    return sigma if np.ndim(sigma) == 0 else sigma[neurons]


class RateTargets(NamedTuple):
    """Target rates of the recorded units, on the model's learning steps, and which neuron learns each."""

    rates: np.ndarray  # (tasks, learn_nsteps, n_units) [Hz]
    unit_ids: np.ndarray  # str (n_units,) the recording's names of the units
    neurons: np.ndarray  # int64 (n_units,) the model neuron that follows each unit (the rest are hidden)
    source: str  # where they came from, for the init file's attributes


def learning_sample_times(p: Params, window_start_ms: float) -> np.ndarray:
    """Data times [ms] of the model's learning times ``stim_off + j learn_every`` (j = 1 ..
    learn_nsteps) when the model's ``stim_off`` is the data's ``window_start_ms``."""
    return window_start_ms + p.learn_every * np.arange(1, p.steps.learn_nsteps + 1)


def rate_targets_from_spikes(p: Params, spikes: recordings.SpikeTimes, smoothing_ms: float, source: str) -> RateTargets:
    """Trial-averaged PSTHs of a recording (:func:`spikeforge.core.recordings.psth`) at the
    learning times; the recording's window start is the model's ``stim_off``."""
    start, stop = spikes.window_ms
    _check_unit_count(p, spikes.n_units, source)
    _check_window_covers_training(p, start, stop, source)
    rates = recordings.psth(spikes, learning_sample_times(p, start), smoothing_ms)
    return _rate_targets(p, rates[None], spikes.unit_ids, source)


def rate_targets_from_file(p: Params, path: str | Path, n_tasks: int | None, rate_dt_ms: float | None,
                           smoothing_ms: float) -> RateTargets:
    """Target rates from a rate file (see the module docstring) resampled onto the learning times.

    Without a time axis (no ``time`` dataset and no ``rate_dt_ms``) the file must already have one
    row per learning step.  With one, row k is at ``time[k]`` [ms] (or ``k rate_dt_ms``), the first
    row's time is the model's ``stim_off``, and each unit's rate is smoothed with a Gaussian of
    ``smoothing_ms`` (0: none) and linearly interpolated at the learning times.

    The file is checked in this order: its shape (at least one row), the time axis
    (:func:`_check_time_axis`), finite rates in [0, max_rate] on every row, then the time the
    axis covers against ``train_duration``.
    """
    what = "spike-rate"
    source = f"{what} file {str(path)!r}"
    array, time_ms = _rates_and_time(path, rate_dt_ms, source)
    rates = _task_major(array if array.ndim == 3 else array[:, :, None], n_tasks, path, what, "unit", time_ms)
    _check_unit_count(p, rates.shape[2], source)
    bad = np.argwhere((rates < 0) | (rates > p.max_rate))
    if bad.size:  # every row, also those between the learning times
        task, row, i = bad[0]
        raise DataFileError(f"{source}: the rate at {_row(row, time_ms)}, unit {i}, task {task} is "
                            f"{rates[task, row, i]} Hz; expected a rate in [0, max_rate = {p.max_rate}] Hz")
    if time_ms is None:
        if rates.shape[1] != p.steps.learn_nsteps:
            raise DataFileError(f"{source} has {rates.shape[1]} time rows; expected one per learning step "
                                f"({p.steps.learn_nsteps} = train_duration / learn_every), or a time axis: a "
                                f"'time' dataset [ms] or --rate-dt")
    else:
        _check_window_covers_training(p, time_ms[0], time_ms[-1], source)
        rates = resample(rates, time_ms, learning_sample_times(p, time_ms[0]), smoothing_ms, source)
    return _rate_targets(p, rates, np.arange(rates.shape[2]).astype(str), source)


def resample(rates: np.ndarray, time_ms: np.ndarray, sample_ms: np.ndarray, smoothing_ms: float,
             source: str) -> np.ndarray:
    """(tasks, time, units) rates given at ``time_ms`` (one time per row, strictly increasing and
    finite, as :func:`_check_time_axis` ensures; evenly spaced), smoothed along time by a
    Gaussian of standard deviation ``smoothing_ms`` (edges reflected) and linearly interpolated
    at ``sample_ms``, which must lie within the time axis."""
    step = np.diff(time_ms)
    if not np.allclose(step, step[0], rtol=1e-6, atol=1e-9):
        raise DataFileError(f"{source}: the time axis is not evenly spaced (steps from {step.min():g} to "
                            f"{step.max():g} ms); expected one sampling interval")
    if sample_ms[0] < time_ms[0] - 1e-9 or sample_ms[-1] > time_ms[-1] + 1e-9:
        raise DataFileError(f"{source}: the learning times need rates from {sample_ms[0]:g} to {sample_ms[-1]:g} ms "
                            f"(train_duration after the first time), but the file covers {time_ms[0]:g} to "
                            f"{time_ms[-1]:g} ms")
    if not (0 <= smoothing_ms <= time_ms[-1] - time_ms[0]):
        raise DataFileError(f"rate smoothing = {smoothing_ms} ms; expected a standard deviation from 0 to the time "
                            f"axis's length, {time_ms[-1] - time_ms[0]:g} ms")
    if smoothing_ms > 0:
        rates = gaussian_filter1d(rates, smoothing_ms / step[0], axis=1, mode="reflect")
    positions = np.interp(sample_ms, time_ms, np.arange(time_ms.size))
    below = np.clip(np.floor(positions).astype(np.int64), 0, time_ms.size - 2)
    weight = (positions - below)[None, :, None]
    return rates[:, below] * (1 - weight) + rates[:, below + 1] * weight


def currents_for_rate_targets(p: Params, targets: RateTargets, ustd0: float, u_mean: np.ndarray,
                              threshold_shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Target currents (tasks, learn_nsteps, n_cells): each recorded unit's rates converted with
    its neuron's Siegert function (:func:`currents_from_rates`, with ``threshold_shift``); hidden
    neurons (no unit) are held at their init-run mean current ``u_mean``."""
    currents = np.broadcast_to(u_mean, (targets.rates.shape[0], p.steps.learn_nsteps, p.n_cells)).copy()
    currents[:, :, targets.neurons] = currents_from_rates(p, targets.rates, ustd0, targets.neurons, threshold_shift)
    return currents


def rates_per_neuron(p: Params, targets: RateTargets) -> np.ndarray:
    """(tasks, learn_nsteps, n_cells) target rates [Hz], NaN for hidden neurons."""
    rates = np.full((targets.rates.shape[0], p.steps.learn_nsteps, p.n_cells), np.nan)
    rates[:, :, targets.neurons] = targets.rates
    return rates


def _rate_targets(p: Params, rates: np.ndarray, unit_ids: np.ndarray, source: str) -> RateTargets:
    check_rates(rates, p, source)
    return RateTargets(rates, unit_ids, np.arange(rates.shape[2], dtype=np.int64), source)


def _check_unit_count(p: Params, n_units: int, source: str) -> None:
    if n_units > p.n_cells:
        raise DataFileError(f"{source}: {n_units} recorded units but the network has n_cells = {p.n_cells} neurons; "
                            f"expected at most one unit per neuron (set n_cells >= {n_units}; extra neurons are hidden)")


UNUSED_WINDOW_WARNING = 0.1  # warn when more than this fraction of the recording's window is not trained on


def _check_window_covers_training(p: Params, start: float, stop: float, source: str) -> None:
    """Error if the data window is shorter than train_duration; warn when much of it is unused."""
    if stop - start < p.train_duration - 1e-9:
        raise DataFileError(f"{source}: the window [{start:g}, {stop:g}) ms is {stop - start:g} ms long; training "
                            f"needs train_duration = {p.train_duration:g} ms (set train_duration <= {stop - start:g}, "
                            f"or a longer window)")
    if stop - start > (1 + UNUSED_WINDOW_WARNING) * p.train_duration:
        warnings.warn(f"{source}: the window [{start:g}, {stop:g}) ms is {stop - start:g} ms long; training follows "
                      f"only [{start:g}, {start + p.train_duration:g}) ms (train_duration = {p.train_duration:g} ms); "
                      f"set train_duration or --window to choose", SpikeforgeWarning, stacklevel=4)


def _rates_and_time(path: str | Path, rate_dt_ms: float | None,
                    source: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The (time, units[, tasks]) rate array of a file, with at least one row, and its time axis
    [ms], checked by :func:`_check_time_axis` (None: no time axis, one row per learning step)."""
    path = Path(path)
    time_ms = None
    if path.suffix != ".npy":
        require_file(path, "spike-rate file")
        arrays, _ = read_h5(path, what="spike-rate file")
        time_ms = arrays.get("time")
        if time_ms is not None and rate_dt_ms is not None:
            raise DataFileError(f"{source} has a time axis; --rate-dt would contradict it")
    array = load_array(path, "spike-rate", exclude=("time",))
    if array.ndim not in (2, 3):
        raise DataFileError(f"{source} has shape {array.shape}; expected (time, units[, tasks])")
    if array.shape[0] == 0:
        raise DataFileError(f"{source} has no rows (shape {array.shape}); expected rates over time, one row per time")
    if rate_dt_ms is not None:
        if not (rate_dt_ms > 0 and np.isfinite(rate_dt_ms)):
            raise DataFileError(f"--rate-dt = {rate_dt_ms} ms; expected a sampling interval > 0 ms")
        time_ms = rate_dt_ms * np.arange(array.shape[0])
    if time_ms is not None:
        time_ms = _check_time_axis(time_ms, array.shape[0], source)
    return array, time_ms


def _check_time_axis(time_ms: np.ndarray, n_rows: int, source: str) -> np.ndarray:
    """The time axis of ``n_rows`` rows of rates as float64, or DataFileError unless it is 1-D,
    one real time per row, at least 2 rows (rates are interpolated between rows), finite and
    strictly increasing."""
    time_ms = np.asarray(time_ms)
    if time_ms.ndim != 1:
        raise DataFileError(f"{source}: the time axis has shape {time_ms.shape}; expected a 1-D axis of one time [ms] "
                            f"per row of rates, shape ({n_rows},)")
    if time_ms.size != n_rows:
        raise DataFileError(f"{source}: the time axis has {time_ms.size} values but the rates have {n_rows} rows; "
                            f"expected one time [ms] per row")
    if time_ms.dtype.kind not in "iuf":
        kind = "text" if time_ms.dtype.kind in "SUO" else f"{time_ms.dtype} values"
        raise DataFileError(f"{source}: the time axis holds {kind}; expected real times [ms]")
    if n_rows < 2:
        raise DataFileError(f"{source} has {n_rows} row; a time axis needs at least 2 rows (rates are interpolated "
                            f"between rows)")
    time_ms = time_ms.astype(np.float64)
    if not np.all(np.isfinite(time_ms)):
        row = int(np.argmax(~np.isfinite(time_ms)))
        raise DataFileError(f"{source}: the time axis holds {time_ms[row]} at row {row}; expected finite times [ms]")
    back = np.flatnonzero(np.diff(time_ms) <= 0)
    if back.size:
        row = int(back[0]) + 1
        raise DataFileError(f"{source}: the time axis is not strictly increasing: row {row} is at {time_ms[row]:g} ms, "
                            f"row {row - 1} at {time_ms[row - 1]:g} ms; expected increasing times [ms]")
    return time_ms
