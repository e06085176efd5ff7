"""A recorded cell's sweeps for a single-cell fit: spike times [ms from each sweep's start] and the
amplitude of each sweep's current step [pA].

Formats, by suffix (:func:`load_cell`):

* ``.csv`` / ``.txt``: one column of spike times (one sweep), or two columns ``sweep, time_ms``
  (a header line is allowed);
* ``.npy``: a 1-d array of spike times (one sweep), or a 2-d array of voltage traces [mV]
  (sweeps x samples, sampled every ``trace_dt`` ms), whose spikes are detected (below);
* ``.npz`` / ``.h5`` / ``.hdf5``: spike times as :mod:`spikeforge.core.recordings` reads them
  (``trial`` = sweep, ``unit``, ``time`` [ms], ``window``), or ``voltage`` (sweeps x samples) with
  ``dt`` [ms]; an optional ``amplitude`` array [pA] gives each sweep's step;
* ``.nwb``: the units table cut by the trials table (one trial per sweep), the trials table's
  ``amplitude`` column [pA] if it has one;
* files neo reads (``.abf``, ``.nix``, ...): one segment per sweep, with spike trains, or else the
  first analog signal as the voltage [mV]; each segment's annotation ``amplitude`` [pA] if present.

Spikes in a voltage trace are its upward crossings of ``threshold`` [mV] (the time interpolated
linearly between the two samples).  Amplitudes given by the user (``amplitudes``) take the place of
the file's; a sweep without an amplitude is an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeforge.core import recordings
from spikeforge.core.spikes import check_train
from spikeforge.core.store import read_h5, require_file
from spikeforge.errors import DataFileError, ParameterError

SPIKE_FORMATS = (".csv", ".txt", ".npy", ".npz", ".h5", ".hdf5", ".nwb", *recordings.NEO_SUFFIXES)


def detect_spikes(voltage: np.ndarray, dt: float, threshold: float = 0.0) -> np.ndarray:
    """Times [ms] of the upward crossings of ``threshold`` [mV] in one trace sampled every ``dt`` ms."""
    voltage = np.asarray(voltage, dtype=np.float64)
    if not np.isfinite(voltage).all():
        raise DataFileError(f"a voltage trace has a non-finite sample at index {int(np.argmax(~np.isfinite(voltage)))}")
    before, after = voltage[:-1], voltage[1:]
    k = np.flatnonzero((before < threshold) & (after >= threshold))
    return (k + (threshold - before[k]) / (after[k] - before[k])) * dt


def _traces(voltage: np.ndarray, dt, threshold: float, source: str) -> list[np.ndarray]:
    if dt is None:
        raise ParameterError(f"{source} holds voltage traces; give their sampling interval with --trace-dt MS")
    if not (np.isfinite(dt) and dt > 0):
        raise ParameterError(f"--trace-dt {dt:g}; expected the traces' sampling interval, a positive number of ms")
    voltage = np.asarray(voltage)
    if voltage.dtype.kind not in "iuf" or voltage.ndim not in (1, 2):
        raise DataFileError(f"{source} holds an array of shape {voltage.shape} and type {voltage.dtype}; expected "
                            "voltage traces [mV] of real numbers, sweeps x samples")
    voltage = np.atleast_2d(voltage.astype(np.float64))
    trains = [detect_spikes(trace, float(dt), threshold) for trace in voltage]
    if not any(train.size for train in trains):
        raise DataFileError(f"{source}: no voltage trace crosses {threshold:g} mV, so no spike was found; check the "
                            "units (mV) or lower --threshold")
    return trains


def _csv(path: Path) -> list[np.ndarray]:
    source = f"spike file {str(path)!r}"
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DataFileError(f"{source} is not text (a .csv or .txt file holds spike times as text; binary "
                            f"data goes into .npy, .h5 or .nwb files)") from None
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]

    def numbers(line: str) -> list[float]:
        return [float(x) for x in line.replace(",", " ").split()]

    if lines and any(ch.isalpha() and ch not in "eE" for ch in lines[0]):
        lines = lines[1:]  # a header (words; numbers may hold an exponent's e)
    try:
        rows = [numbers(line) for line in lines]
    except ValueError as error:
        raise DataFileError(f"{source}: {error}; expected numbers, one spike per line") from None
    widths = {len(row) for row in rows}
    if not rows:
        raise DataFileError(f"{source} has no spike times")
    if widths == {1}:
        return [np.array([row[0] for row in rows])]
    if widths == {2}:
        table = np.array(rows)
        sweeps = table[:, 0]
        if (sweeps != np.round(sweeps)).any() or sweeps.min() < 0:
            raise DataFileError(f"{source}: the first column holds sweep numbers; expected whole numbers >= 0")
        return [table[sweeps == s, 1] for s in range(int(sweeps.max()) + 1)]
    raise DataFileError(f"{source} has rows of {sorted(widths)} values; expected 1 (time_ms) or 2 (sweep, time_ms)")


def _from_recording(spikes: recordings.SpikeTimes, unit: str | None, source: str) -> list[np.ndarray]:
    if spikes.n_units > 1 and unit is None:
        raise ParameterError(f"{source} holds {spikes.n_units} units ({', '.join(spikes.unit_ids[:5])}); choose one "
                             "with --unit")
    index = 0 if unit is None else np.flatnonzero(spikes.unit_ids == str(unit))
    if unit is not None and index.size == 0:
        raise ParameterError(f"{source} has no unit {unit!r}; its units are {', '.join(spikes.unit_ids[:10])}")
    index = int(np.atleast_1d(index)[0])
    start = spikes.window_ms[0]
    return [np.sort(spikes.time_ms[(spikes.trial == t) & (spikes.unit == index)]) - start
            for t in range(spikes.n_trials)]


def _neo(path: Path, total_ms, unit, trace_dt, threshold) -> tuple[list[np.ndarray], list]:
    block = recordings._read_neo(path)
    source = f"neo file {str(path)!r}"
    segments = list(block.segments)
    if not segments:
        raise DataFileError(f"{source} has no segments; expected one segment per sweep")
    amplitudes = [segment.annotations.get("amplitude") for segment in segments]
    if segments[0].spiketrains:
        window = None if total_ms is None else (0.0, float(total_ms))
        return _from_recording(recordings.from_neo(block, window, source), unit, source), amplitudes
    trains = []
    for k, segment in enumerate(segments):
        if not segment.analogsignals:
            raise DataFileError(f"{source}: segment {k} has neither spike trains nor an analog signal")
        signal = segment.analogsignals[0]
        dt = float(signal.sampling_period.rescale("ms").magnitude)
        volts = signal.rescale("mV").magnitude[:, 0] if signal.units.dimensionality.string != "dimensionless" \
            else signal.magnitude[:, 0]
        trains.append(_traces(volts, dt, threshold, f"{source}, segment {k}")[0])
    return trains, amplitudes


def _nwb_amplitudes(path: Path) -> list:
    try:
        from pynwb import NWBHDF5IO

        with NWBHDF5IO(str(path), "r") as io:
            trials = io.read().trials
            if trials is not None and "amplitude" in trials.colnames:
                return [float(x) for x in trials["amplitude"][:]]
    except Exception:  # noqa: BLE001 - the spike reader has already reported an unreadable file
        pass
    return []


def load_cell(path: str | Path, amplitudes=None, total_ms: float | None = None, unit: str | None = None,
              trace_dt: float | None = None, threshold: float = 0.0,
              sweeps=None) -> tuple[np.ndarray, list[np.ndarray]]:
    """(amplitudes [pA] per sweep, spike times [ms] per sweep) from ``path`` (see the module docstring);
    ``sweeps``: indices of the sweeps to keep (all by default; ``amplitudes`` are then those sweeps')."""
    path = Path(path)
    require_file(path, "data file")
    suffix = path.suffix.lower()
    source = f"data file {str(path)!r}"
    found: list = []
    if suffix in (".csv", ".txt"):
        trains = _csv(path)
    elif suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            reason = " ".join(str(error).split())[:200]
            raise DataFileError(f"{source} is not a readable .npy array ({reason})") from None
        if array.ndim not in (1, 2):
            raise DataFileError(f"{source} holds an array of shape {array.shape}; expected spike times (1-d) or "
                                "voltage traces (sweeps x samples)")
        trains = [array] if array.ndim == 1 else _traces(array, trace_dt, threshold, source)
    elif suffix in (".h5", ".hdf5", ".npz"):
        arrays = dict(np.load(path, allow_pickle=False)) if suffix == ".npz" and _is_zip(path) else (
            read_h5(path, what="data file")[0] if suffix != ".npz" else {})
        found = list(np.atleast_1d(arrays["amplitude"])) if "amplitude" in arrays else []
        if "voltage" in arrays:
            dt = trace_dt if trace_dt is not None else (float(np.asarray(arrays["dt"])) if "dt" in arrays else None)
            trains = _traces(arrays["voltage"], dt, threshold, source)
        else:
            window = None if total_ms is None else (0.0, float(total_ms))
            trains = _from_recording(recordings.load(path, None if "window" in arrays else window), unit, source)
    elif suffix == ".nwb":
        if total_ms is None:
            raise ParameterError(f"{source}: give the sweep length (--total MS) to cut the NWB trials")
        trains = _from_recording(recordings.from_nwb(path, (0.0, float(total_ms))), unit, source)
        found = _nwb_amplitudes(path)
    elif suffix in recordings.NEO_SUFFIXES:
        trains, found = _neo(path, total_ms, unit, trace_dt, threshold)
    else:
        raise DataFileError(f"{source} has an unknown suffix {suffix!r}; expected one of {', '.join(SPIKE_FORMATS)}")
    trains = [check_train(train, f"{source}, sweep {k}") for k, train in enumerate(trains)]
    stored = found and all(a is not None for a in found)
    if amplitudes is not None:
        if stored:
            held = ", ".join(f"{float(getattr(a, 'magnitude', a)):g}" for a in found)
            raise ParameterError(f"{source} holds the sweeps' amplitudes ({held} pA); --amplitudes is for files "
                                 "without them")
        values = np.atleast_1d(np.asarray(amplitudes, dtype=np.float64))
    elif stored:
        values = np.asarray([float(getattr(a, "magnitude", a)) for a in found])
    else:
        raise ParameterError(f"{source} does not say the sweeps' current amplitudes; give them with --amplitudes "
                             f"(pA, one per sweep of the file: {len(trains)})")
    if values.size != len(trains):
        raise ParameterError(f"{values.size} amplitudes for the {len(trains)} sweeps of {source}")
    if sweeps is not None:
        chosen = [int(k) for k in sweeps]
        bad = [k for k in chosen if not 0 <= k < len(trains)]
        if bad or len(set(chosen)) != len(chosen) or not chosen:
            raise ParameterError(f"--sweeps {','.join(str(k) for k in chosen)}: {source} has sweeps 0 to "
                                 f"{len(trains) - 1}; expected distinct ones among them")
        trains = [trains[k] for k in chosen]
        values = values[chosen]
    return values, trains


def _is_zip(path: Path) -> bool:
    import zipfile

    if not zipfile.is_zipfile(path):
        raise DataFileError(f"data file {str(path)!r} is not a valid .npz archive (not a zip file)")
    return True


def load_network(path: str | Path, duration_ms: float) -> tuple[list[np.ndarray], np.ndarray]:
    """(spike times [ms] of every recorded cell, the cells' names) of one network recording: a file
    :func:`spikeforge.core.recordings.load` reads, holding one trial whose window starts at 0 ms; the
    cells in the order of their unit indices (E cells first, then I cells)."""
    path = Path(path)
    spikes = recordings.load(path, None if path.suffix.lower() in (".npz", ".h5", ".hdf5") else (0.0, duration_ms))
    source = f"data file {str(path)!r}"
    if spikes.n_trials != 1:
        raise DataFileError(f"{source} holds {spikes.n_trials} trials; a network fit takes one recording (one trial)")
    start, stop = spikes.window_ms
    if start != 0 or stop < duration_ms:
        raise DataFileError(f"{source} covers [{start:g}, {stop:g}) ms; the network fit simulates [0, {duration_ms:g}) "
                            "ms: give --duration within the recording")
    late = spikes.time_ms > duration_ms
    if late.any():
        raise DataFileError(f"{source} has {int(late.sum())} spikes after {duration_ms:g} ms (up to "
                            f"{spikes.time_ms.max():g} ms); give the recording's length with --duration")
    trains = [np.sort(spikes.time_ms[spikes.unit == k]) for k in range(spikes.n_units)]
    return [check_train(train, f"{source}, unit {spikes.unit_ids[k]}") for k, train in enumerate(trains)], \
        spikes.unit_ids


def write_spike_file(path: str | Path, trains, window_ms: tuple[float, float], amplitudes=None,
                     attrs: dict | None = None) -> Path:
    """Write trains as an HDF5 spike file (:mod:`spikeforge.core.recordings`' format): one trial per train
    with ``amplitudes`` [pA] (a cell's sweeps), or one trial with one unit per train (a network)."""
    from spikeforge.core.store import write_h5

    path = Path(path)
    trains = [np.asarray(t, dtype=np.float64) for t in trains]
    index = np.repeat(np.arange(len(trains)), [t.size for t in trains])
    zeros = np.zeros(index.size, dtype=np.int64)
    arrays = {"time": np.concatenate(trains) if trains else np.zeros(0),
              "trial": index if amplitudes is not None else zeros,
              "unit": zeros if amplitudes is not None else index,
              "window": np.asarray(window_ms, dtype=np.float64)}
    if amplitudes is not None:
        arrays["amplitude"] = np.asarray(amplitudes, dtype=np.float64)
        arrays["n_trials"] = np.array([len(trains)])
    else:
        arrays["unit_ids"] = np.array([str(k) for k in range(len(trains))], dtype="S")
    write_h5(path, arrays, attrs or {})
    return path
