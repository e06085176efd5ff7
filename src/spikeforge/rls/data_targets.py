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
spikes a trial records).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeforge.core.store import read_h5, require_file
from spikeforge.errors import DataFileError
from spikeforge.rls import siegert
from spikeforge.rls.network_parameters import uniform_per_neuron
from spikeforge.rls.params import Params

PREFERRED_NAMES = ("utarg", "targets", "rate", "rates")
SIEGERT_NOISE_FACTOR = 1.3  # the reference's manual calibration of sigma


def load_array(path: str | Path, what: str) -> np.ndarray:
    """The array in a ``.npy`` or HDF5 file, as float64."""
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


def check_rates(rates: np.ndarray, p: Params, path: str | Path) -> None:
    """Raise DataFileError unless every rate of (tasks, time, neurons) ``rates`` is in [0, max_rate]."""
    bad = np.argwhere((rates < 0) | (rates > p.max_rate))
    if bad.size:
        task, t, i = bad[0]
        raise DataFileError(f"spike-rate file {str(path)!r}: the rate at time {t}, neuron {i}, task {task} is "
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
    if n_tasks is not None and array.shape[2] != n_tasks:
        raise DataFileError(f"{what} file {str(path)!r} has {array.shape[2]} tasks, but {n_tasks} were asked for")
    bad = np.argwhere(~np.isfinite(array))
    if bad.size:
        t, i, task = bad[0]
        raise DataFileError(f"{what} file {str(path)!r}: value at time {t}, neuron {i}, task {task} is "
                            f"{array[t, i, task]}; expected a finite number")
    return np.ascontiguousarray(np.moveaxis(array, 2, 0))


def siegert_sigma(p: Params, ustd0: float) -> float | np.ndarray:
    """Input noise of the Siegert conversion: from the init run's current std, or each neuron's
    ``sig`` if k = 0."""
    if p.k > 0:
        return ustd0 / np.sqrt(SIEGERT_NOISE_FACTOR * p.tau_bale)
    return p.sig if p.sig_max == p.sig else uniform_per_neuron(p, "sig", p.n_cells)


def currents_from_rates(p: Params, rates: np.ndarray, ustd0: float) -> np.ndarray:
    """Target currents for target ``rates`` [Hz] of shape (tasks, time, neurons), checked by
    :func:`check_rates`."""
    exc = np.arange(p.n_cells) < p.ne
    return siegert.rates_to_currents(
        rates, siegert_sigma(p, ustd0), tau_m=np.where(exc, p.tau_meme, p.tau_memi),
        theta=np.where(exc, p.threshe, p.threshi), v_r=p.vre, x_bal=np.where(exc, p.x_bale, p.x_bali))
