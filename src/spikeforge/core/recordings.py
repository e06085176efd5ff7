"""Recorded spike trains, read from the formats of the field, and their trial-averaged PSTHs.

A recording is a :class:`SpikeTimes`: every spike as (trial, unit, time), with the time in ms
relative to the trial's alignment event, and the window ``[start, stop)`` [ms] that every
trial covers.  Three ways in, checked before anything is computed:

* **arrays** (:func:`from_arrays`, or :func:`load` of a ``.npz`` / HDF5 file with datasets
  ``trial``, ``unit``, ``time`` [ms] and ``window`` [ms, 2 values]; optional ``unit_ids`` and
  ``n_trials`` when some trials or units have no spike);
* **NWB** (:func:`from_nwb`, ``.nwb``): the ``units`` table's spike times and the ``trials``
  table; each trial is aligned at a column of the trials table (``start_time`` by default,
  or e.g. ``stimulus_onset``), and the window is relative to it.  Spikes between trials are
  not part of any trial;
* **neo** (:func:`from_neo`, a ``neo.Block`` or a file neo can read): one ``Segment`` per
  trial, one ``SpikeTrain`` per unit, matched across segments by their ``name`` (distinct
  within a segment; or by their order when they have none); the trains' times are taken as
  times after the trial's alignment (so build trial-aligned segments, e.g. ``t_start = -200
  ms``), the window is the trains' ``t_start .. t_stop``, the same in every segment, unless a
  window inside every train's is given.

:func:`load` reads a file of any of these formats, by its suffix, after checking that it exists.

:func:`psth` turns a recording into the trial-averaged firing rate of every unit [Hz] at the
times asked for: spikes are counted in 1-ms bins over the window, averaged over trials,
smoothed with a Gaussian kernel of standard deviation ``smoothing_ms`` (normalised, with the
edges reflected so that a constant rate stays constant), and read at the sample times by
linear interpolation between bin centres.  ``smoothing_ms = 0`` keeps the raw 1-ms PSTH.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from scipy.ndimage import gaussian_filter1d

from spikeforge.core.store import read_h5, require_file
from spikeforge.errors import DataFileError

BIN_MS = 1.0  # PSTH bin before smoothing [ms]
MAX_UNITS = 2**31 - 1  # unit indices are 32-bit, as neuron indices


class SpikeTimes(NamedTuple):
    """Spikes of ``n_units`` units in ``n_trials`` trials (arrays of one entry per spike)."""

    trial: np.ndarray  # int64 (n_spikes,) trial index, 0 .. n_trials - 1
    unit: np.ndarray  # int64 (n_spikes,) unit index, 0 .. n_units - 1
    time_ms: np.ndarray  # float64 (n_spikes,) time after the trial's alignment event [ms]
    window_ms: tuple[float, float]  # [start, stop) of every trial, relative to the alignment [ms]
    n_trials: int
    unit_ids: np.ndarray  # str (n_units,) the recording's name of each unit

    @property
    def n_units(self) -> int:
        """Units in the recording: the length of ``unit_ids`` (units without spikes included)."""
        return int(self.unit_ids.shape[0])


def from_arrays(trial, unit, time_ms, window_ms, n_trials: int | None = None, unit_ids=None,
                source: str = "spike arrays", cut_ms=None) -> SpikeTimes:
    """A checked recording from one entry per spike.

    Args:
        trial, unit: integer indices (>= 0) of each spike's trial and unit.
        time_ms: each spike's time after its trial's alignment [ms], inside ``window_ms``; within
            one unit's train of one trial the times must be increasing.
        window_ms: (start, stop) of every trial as recorded [ms], start < stop.
        n_trials: trials recorded (default: the largest trial index + 1).
        unit_ids: distinct names of the units (default "0", "1", ...; as many as the largest unit index + 1).
        source: how to name the data in error messages (e.g. the file).
        cut_ms: (start, stop) inside ``window_ms``: keep only this part of every trial.

    Raises:
        DataFileError: naming the first offending spike.
    """
    trial, unit = _indices(trial, "trial", source), _indices(unit, "unit", source)
    time_ms = _numbers(time_ms, "time", source)
    if not (trial.shape == unit.shape == time_ms.shape):
        raise DataFileError(f"{source}: trial, unit and time have {trial.size}, {unit.size} and {time_ms.size} "
                            f"entries; expected one of each per spike")
    start, stop = _window(window_ms, source)
    _first_bad(source, ~np.isfinite(time_ms), time_ms, trial, unit, "is not a finite time")
    _first_bad(source, (time_ms < start) | (time_ms >= stop), time_ms, trial, unit,
               f"is outside the window [{start:g}, {stop:g}) ms")
    order = np.lexsort((np.arange(trial.size), unit, trial))  # by trial, then unit, keeping the file's order
    same_train = (np.diff(trial[order]) == 0) & (np.diff(unit[order]) == 0)
    going_back = np.zeros(trial.size, dtype=bool)
    going_back[order[1:]] = same_train & (np.diff(time_ms[order]) < 0)
    _first_bad(source, going_back, time_ms, trial, unit, "comes before the spike listed ahead of it in its train "
               "(spike times must be sorted)")
    if trial.size == 0 and (n_trials is None or unit_ids is None):
        raise DataFileError(f"{source} holds no spikes; expected spikes, or n_trials and unit_ids for a silent "
                            f"recording")
    n_trials = _count(n_trials, trial, "n_trials", "trial", source)
    if unit_ids is None:
        if unit.max() >= MAX_UNITS:
            raise DataFileError(f"{source}: unit index {unit.max()}; expected indices below {MAX_UNITS}")
        unit_ids = np.arange(unit.max() + 1).astype(str)
    unit_ids = np.asarray(unit_ids)
    if unit_ids.ndim != 1 or unit_ids.size == 0:
        raise DataFileError(f"{source}: unit_ids has shape {unit_ids.shape}; expected one name per unit")
    unit_ids = unit_ids.astype(str)
    if unit.size and unit.max() >= unit_ids.size:
        raise DataFileError(f"{source}: unit index {unit.max()} but {unit_ids.size} unit ids; expected an id "
                            f"for every unit index")
    names, counts = np.unique(unit_ids, return_counts=True)
    if (counts > 1).any():
        raise DataFileError(f"{source}: unit id {str(names[counts > 1][0])!r} is given {counts.max()} times; expected "
                            f"distinct unit ids")
    if cut_ms is not None:
        cut_start, cut_stop = _window(cut_ms, source)
        if cut_start < start or cut_stop > stop:
            raise DataFileError(f"{source}: the window [{cut_start:g}, {cut_stop:g}) ms reaches outside the recorded "
                                f"window [{start:g}, {stop:g}) ms")
        inside = (time_ms >= cut_start) & (time_ms < cut_stop)
        trial, unit, time_ms, (start, stop) = trial[inside], unit[inside], time_ms[inside], (cut_start, cut_stop)
    return SpikeTimes(trial, unit, time_ms, (start, stop), n_trials, unit_ids)


def from_nwb(path: str | Path, window_ms, align_to: str = "start_time") -> SpikeTimes:
    """The recording in an NWB file: its units table, cut into the trials of its trials table,
    each aligned at the trials table's column ``align_to`` [s in the file] (``window_ms`` relative to it)."""
    path = Path(path)
    require_file(path, "NWB file")
    try:
        from pynwb import NWBHDF5IO
    except ImportError:
        raise DataFileError("reading NWB files needs pynwb: pip install 'spikeforge[data]'") from None
    source = f"NWB file {str(path)!r}"
    start, stop = _window(window_ms, source)
    try:
        with NWBHDF5IO(str(path), "r") as io:
            nwb = io.read()
            if nwb.units is None or len(nwb.units) == 0:
                raise DataFileError(f"NWB file {str(path)!r} has no units table (or it is empty); expected the "
                                    f"sorted units' spike times")
            if nwb.trials is None or len(nwb.trials) == 0:
                raise DataFileError(f"NWB file {str(path)!r} has no trials table; expected one row per trial")
            columns = nwb.trials.colnames
            if align_to not in columns:
                raise DataFileError(f"NWB file {str(path)!r}: the trials table has no column {align_to!r}; "
                                    f"expected one of {', '.join(columns)}")
            align_s, begins, ends = (_numbers(nwb.trials[name][:], f"trials-table column {name!r}", source)
                                     for name in (align_to, "start_time", "stop_time"))
            unit_ids = np.asarray(nwb.units.id[:]).astype(str)
            trains = [np.asarray(nwb.units.get_unit_spike_times(index), dtype=np.float64)
                      for index in range(len(unit_ids))]
    except DataFileError:
        raise
    except Exception as error:  # noqa: BLE001 - h5py/hdmf raise many kinds; the user needs the file named
        raise DataFileError(f"NWB file {str(path)!r} cannot be read ({type(error).__name__}: "
                            f"{' '.join(str(error).split())[:200]})") from None
    for name, values in ((align_to, align_s), ("start_time", begins), ("stop_time", ends)):
        if not np.all(np.isfinite(values)):
            t = int(np.argmax(~np.isfinite(values)))
            raise DataFileError(f"{source}: trial {t}'s {name} is {values[t]}; expected a time in s")
    outside = np.flatnonzero((align_s + start / 1000 < begins - 1e-9) | (align_s + stop / 1000 > ends + 1e-9))
    if outside.size:
        t = outside[0]
        raise DataFileError(f"NWB file {str(path)!r}: trial {t}'s window [{start:g}, {stop:g}) ms around "
                            f"{align_to} = {align_s[t]:g} s reaches outside the trial ({begins[t]:g} to {ends[t]:g} s)")
    trial, unit, time = [], [], []
    for index, train in enumerate(trains):
        _check_sorted_train(train, f"NWB file {str(path)!r}, unit {unit_ids[index]}")
        for t, anchor in enumerate(align_s):
            lo, hi = np.searchsorted(train, [anchor + start / 1000, anchor + stop / 1000])
            time.append((train[lo:hi] - anchor) * 1000.0)
            trial.append(np.full(hi - lo, t))
            unit.append(np.full(hi - lo, index))
    return from_arrays(np.concatenate(trial), np.concatenate(unit), np.concatenate(time), (start, stop),
                       n_trials=len(align_s), unit_ids=unit_ids, source=f"NWB file {str(path)!r}")


def from_neo(block: Any, window_ms=None, source: str = "neo block") -> SpikeTimes:
    """The recording in a ``neo.Block`` (or a file neo reads): one segment per trial, one spike
    train per unit, its times after the trial's alignment.

    Units are matched across segments by their trains' names, which must be distinct within a
    segment; when the trains of segment 0 have no names, by position.  Each train's ``t_start ..
    t_stop`` is the window its trial records.  Without ``window_ms``, that window is the
    recording's and must be the same (to 1e-6 ms) for every train of every segment: the PSTH
    divides each bin's spike count by the number of trials, so every trial must cover every bin.
    ``window_ms`` (start, stop) keeps only that part of every trial; the trains' windows may then
    differ, as long as each contains it.

    Raises:
        DataFileError: naming the segment (and unit) whose trains do not fit these rules.
    """
    if isinstance(block, (str, Path)):
        block, source = _read_neo(Path(block)), f"neo file {str(block)!r}"
    segments = list(getattr(block, "segments", []))
    if not segments:
        raise DataFileError(f"{source} has no segments; expected one segment per trial")
    first = segments[0].spiketrains
    if not first:
        raise DataFileError(f"{source}: segment 0 has no spike trains; expected one per unit")
    by_name = all(train.name for train in first)
    unit_ids = np.asarray(_neo_unit_keys(first, 0, by_name, source))
    index = {key: k for k, key in enumerate(unit_ids)}
    cut = None if window_ms is None else _window(window_ms, source)
    reference = (_train_window(first[0]), f"segment 0 (unit {unit_ids[0]})")
    start, stop = reference[0]  # the union of the trains' windows: all of them, or each contains the cut
    trial, unit, time = [], [], []
    for t, segment in enumerate(segments):
        trains = segment.spiketrains
        keys = _neo_unit_keys(trains, t, by_name, source)
        if sorted(keys) != sorted(unit_ids):
            raise DataFileError(f"{source}: segment {t} has {len(trains)} spike trains ({', '.join(keys[:5])}...); "
                                f"expected the {len(unit_ids)} units of segment 0")
        for key, train in zip(keys, trains):
            where = f"segment {t} (unit {key})"
            window = _train_window(train)
            _check_neo_window(window, where, reference, cut, source)
            start, stop = min(start, window[0]), max(stop, window[1])
            times = train.times.rescale("ms").magnitude.astype(np.float64)
            _check_sorted_train(times, f"{source}, segment {t}, unit {key}")
            time.append(times)
            trial.append(np.full(times.size, t))
            unit.append(np.full(times.size, index[key]))
    return from_arrays(np.concatenate(trial), np.concatenate(unit), np.concatenate(time), (start, stop),
                       n_trials=len(segments), unit_ids=unit_ids, source=source, cut_ms=cut)


NEO_SUFFIXES = (".nix", ".pkl", ".pickle", ".mat", ".nev", ".plx", ".smr", ".abf")


def load(path: str | Path, window_ms=None, align_to: str = "start_time") -> SpikeTimes:
    """The recording in ``path``, by its suffix: ``.nwb`` (:func:`from_nwb`; ``window_ms`` needed),
    ``.npz`` or HDF5 (arrays, see the module docstring), or a format neo reads (:func:`from_neo`)."""
    path = Path(path)
    require_file(path, "spike file")
    suffix = path.suffix.lower()
    if suffix != ".nwb" and align_to != "start_time":
        raise DataFileError(f"spike file {str(path)!r}: --align-to applies to NWB files only; align the trials of "
                            f"other formats when writing them (times after the alignment event)")
    if suffix == ".nwb":
        if window_ms is None:
            raise DataFileError(f"NWB file {str(path)!r}: give the window around each trial's {align_to} "
                                f"(--window START STOP, in ms)")
        return from_nwb(path, window_ms, align_to)
    if suffix in (".npz", ".h5", ".hdf5"):
        return _from_array_file(path, window_ms)
    if suffix in NEO_SUFFIXES:
        return from_neo(path, window_ms)
    raise DataFileError(f"spike file {str(path)!r} has suffix {path.suffix!r}; expected .nwb, .npz, .h5 or a format "
                        f"neo reads ({', '.join(NEO_SUFFIXES)})")


def psth(spikes: SpikeTimes, sample_ms: np.ndarray, smoothing_ms: float) -> np.ndarray:
    """Trial-averaged firing rate [Hz] of every unit at the times ``sample_ms`` [ms, inside the
    window], shape (len(sample_ms), n_units); see the module docstring for the method."""
    start, stop = spikes.window_ms
    sample_ms = np.asarray(sample_ms, dtype=np.float64)
    if sample_ms.size and (sample_ms.min() < start or sample_ms.max() > stop):
        raise DataFileError(f"PSTH samples from {sample_ms.min():g} to {sample_ms.max():g} ms fall outside the "
                            f"recording's window [{start:g}, {stop:g}) ms")
    if not (0 <= smoothing_ms <= stop - start):
        raise DataFileError(f"PSTH smoothing = {smoothing_ms} ms; expected a standard deviation from 0 to the "
                            f"window's length, {stop - start:g} ms")
    n_bins = max(1, int(np.ceil((stop - start) / BIN_MS - 1e-9)))
    bins = np.minimum(((spikes.time_ms - start) / BIN_MS).astype(np.int64), n_bins - 1)
    counts = np.bincount(spikes.unit * n_bins + bins, minlength=spikes.n_units * n_bins).reshape(spikes.n_units, n_bins)
    return binned_psth(counts, spikes.n_trials, start, sample_ms, smoothing_ms)


def binned_psth(counts: np.ndarray, n_trials: int, start_ms: float, sample_ms: np.ndarray,
                smoothing_ms: float) -> np.ndarray:
    """(len(sample_ms), units) PSTH [Hz] from (units, bins) spike counts summed over ``n_trials``
    in BIN_MS bins from ``start_ms``: smoothed and sampled as :func:`psth` does."""
    rates = counts / n_trials / (BIN_MS / 1000.0)
    if smoothing_ms > 0:
        rates = gaussian_filter1d(rates, smoothing_ms / BIN_MS, axis=1, mode="reflect")
    centres = start_ms + (np.arange(counts.shape[1]) + 0.5) * BIN_MS
    return np.stack([np.interp(sample_ms, centres, row) for row in rates], axis=1) if counts.shape[0] else (
        np.zeros((np.size(sample_ms), 0)))


def _from_array_file(path: Path, window_ms) -> SpikeTimes:
    if path.suffix.lower() == ".npz":
        if not zipfile.is_zipfile(path):  # np.load would read it as .npy, or advise allow_pickle
            raise DataFileError(f"spike file {str(path)!r} is not a valid .npz archive (not a zip file); expected "
                                f"the arrays written by numpy.savez")
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
            reason = " ".join(str(error).split())[:200]
            if "pickle" in reason:  # numpy's advice (allow_pickle) would run code from the file
                raise DataFileError(f"spike file {str(path)!r} holds an array of Python objects; expected arrays of "
                                    f"numbers (and text for unit_ids)") from None
            raise DataFileError(f"spike file {str(path)!r} is not a valid .npz archive ({reason})") from None
    else:
        arrays, _ = read_h5(path, what="spike file")
    missing = [name for name in ("trial", "unit", "time") if name not in arrays]
    if missing:
        raise DataFileError(f"spike file {str(path)!r} lacks {', '.join(missing)}; expected arrays trial, unit, "
                            f"time [ms] (one entry per spike) and window [ms]")
    source = f"spike file {str(path)!r}"
    if "window" not in arrays and window_ms is None:
        raise DataFileError(f"{source} has no window; store window = [start, stop] in ms, or give --window START STOP")
    recorded = _numbers(arrays["window"], "window", source) if "window" in arrays else window_ms
    n_trials = None
    if "n_trials" in arrays:
        count = _numbers(arrays["n_trials"], "n_trials", source)
        if count.size != 1 or count[0] != round(count[0]) or count[0] < 1:
            raise DataFileError(f"{source}: n_trials = {arrays['n_trials'].tolist()}; expected one whole number >= 1")
        n_trials = int(count[0])
    unit_ids = arrays.get("unit_ids")
    if unit_ids is not None and unit_ids.dtype.kind == "S":
        unit_ids = unit_ids.astype(str)
    return from_arrays(arrays["trial"], arrays["unit"], arrays["time"], recorded, n_trials, unit_ids, source=source,
                       cut_ms=window_ms if "window" in arrays else None)


def _read_neo(path: Path):
    require_file(path, "neo file")
    try:
        import neo
    except ImportError:
        raise DataFileError("reading neo files needs neo: pip install 'spikeforge[data]'") from None
    try:
        return neo.io.get_io(str(path)).read_block()
    except Exception as error:  # noqa: BLE001 - neo's readers raise many kinds
        raise DataFileError(f"neo file {str(path)!r} cannot be read ({type(error).__name__}: "
                            f"{' '.join(str(error).split())[:200]})") from None


def _neo_unit_keys(trains, segment: int, by_name: bool, source: str) -> list[str]:
    """The unit of each of a segment's spike trains: its name (every train named, no name twice),
    or with ``by_name`` False its position."""
    if not by_name:
        return [str(k) for k in range(len(trains))]
    keys, seen = [], set()
    for k, train in enumerate(trains):
        if not train.name:
            raise DataFileError(f"{source}: spike train {k} of segment {segment} has no name; expected every train "
                                f"named, as in segment 0 (units are matched by name across segments)")
        if train.name in seen:
            raise DataFileError(f"{source}: segment {segment} has two spike trains named {train.name!r}; expected "
                                f"distinct names (units are matched by name across segments)")
        seen.add(train.name)
        keys.append(str(train.name))
    return keys


NEO_WINDOW_TOLERANCE_MS = 1e-6  # trains' windows closer than this are the same (units rescaled to ms)


def _train_window(train) -> tuple[float, float]:
    """A neo spike train's ``t_start, t_stop`` [ms]."""
    return float(train.t_start.rescale("ms").magnitude), float(train.t_stop.rescale("ms").magnitude)


def _check_neo_window(window: tuple[float, float], where: str, reference: tuple[tuple[float, float], str],
                      cut: tuple[float, float] | None, source: str) -> None:
    """DataFileError unless the train of ``where`` records the ``reference`` train's window
    (``cut`` None) or a window containing ``cut``; see :func:`from_neo`."""
    if cut is None:
        if not np.allclose(window, reference[0], rtol=0, atol=NEO_WINDOW_TOLERANCE_MS):
            raise DataFileError(f"{source}: {where} records the window [{window[0]:g}, {window[1]:g}) ms but "
                                f"{reference[1]} records [{reference[0][0]:g}, {reference[0][1]:g}) ms; expected the "
                                f"same t_start and t_stop in every trial (or --window START STOP inside every "
                                f"trial's window)")
    elif cut[0] < window[0] or cut[1] > window[1]:
        raise DataFileError(f"{source}: the window [{cut[0]:g}, {cut[1]:g}) ms reaches outside the window "
                            f"[{window[0]:g}, {window[1]:g}) ms that {where} records")


def _numbers(values, name: str, source: str) -> np.ndarray:
    """``values`` as a flat float64 array, or DataFileError if they are not real numbers."""
    array = np.asarray(values)
    if array.dtype.kind not in "iuf":
        kind = {"c": "complex numbers", "b": "booleans", "U": "text", "S": "text", "O": "objects"}.get(
            array.dtype.kind, f"{array.dtype} values")
        raise DataFileError(f"{source}: {name} holds {kind}; expected real numbers")
    return array.astype(np.float64).reshape(-1)


def _indices(values, name: str, source: str) -> np.ndarray:
    array = np.asarray(values).reshape(-1) if np.size(values) else np.zeros(0, dtype=np.int64)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        as_int = _numbers(array, name, source)
        if not (np.all(np.isfinite(as_int)) and np.all(as_int == np.round(as_int))):
            bad = np.flatnonzero(~np.isfinite(as_int) | (as_int != np.round(as_int)))[0]
            raise DataFileError(f"{source}: {name} index {array[bad]} of spike {bad} is not a whole number")
        array = as_int
    array = array.astype(np.int64)
    if array.size and array.min() < 0:
        bad = int(np.argmax(array < 0))
        raise DataFileError(f"{source}: {name} index {array[bad]} of spike {bad} is negative; expected >= 0")
    return array


def _window(window_ms, source: str) -> tuple[float, float]:
    values = _numbers(window_ms, "window", source)
    if values.size != 2 or not np.all(np.isfinite(values)) or not values[0] < values[1]:
        raise DataFileError(f"{source}: window = {values.tolist()} ms; expected [start, stop] with start < stop")
    return float(values[0]), float(values[1])


def _count(given, indices: np.ndarray, name: str, what: str, source: str) -> int:
    needed = int(indices.max()) + 1 if indices.size else 0
    if given is not None and (isinstance(given, bool) or given != int(given)):
        raise DataFileError(f"{source}: {name} = {given}; expected a whole number")
    count = needed if given is None else int(given)
    if count < max(needed, 1):
        raise DataFileError(f"{source}: {name} = {count} but {what} index {needed - 1} occurs; expected at least "
                            f"{max(needed, 1)}")
    return count


def _first_bad(source: str, bad: np.ndarray, time_ms, trial, unit, what: str) -> None:
    if bad.any():
        k = int(np.argmax(bad))
        raise DataFileError(f"{source}: spike {k} (trial {trial[k]}, unit {unit[k]}) at {time_ms[k]} ms {what}")


def _check_sorted_train(times: np.ndarray, what: str) -> None:
    if times.size and not np.all(np.isfinite(times)):
        k = int(np.argmax(~np.isfinite(times)))
        raise DataFileError(f"{what}: spike time {k} is {times[k]}; expected finite times")
    back = np.flatnonzero(np.diff(times) < 0)
    if back.size:
        k = back[0] + 1
        raise DataFileError(f"{what}: spike time {times[k]} comes after {times[k - 1]}; expected sorted spike times")
