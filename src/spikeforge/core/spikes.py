"""Spike-train distances and statistics; every time in ms, every rate in Hz.

Distances between two trains ``a`` and ``b`` (sorted spike times) observed over ``[t_start, t_end]``:

* **SPIKE-distance** (Kreuz et al. 2013), :func:`spike_distance`.  For train n at time t, with
  t_P and t_F its previous and following spikes, x_P = t - t_P, x_F = t_F - t, x_ISI = t_F - t_P,
  and Δt_P, Δt_F the distances of those spikes to the nearest spike of the other train::

      S_n(t) = (Δt_P x_F + Δt_F x_P) / x_ISI
      S(t)   = 2 (S_1 x_ISI,2 + S_2 x_ISI,1) / (x_ISI,1 + x_ISI,2)^2
      D_S    = 1/(t_end - t_start) ∫ S(t) dt

  S is linear between the events of either train, so the trapezoid rule is exact.  What lies
  before the first and after the last spike depends on ``edges``:

  - ``"pyspike"`` (the default; PySpike >= 0.7, Kreuz et al. 2017's edge correction): auxiliary
    spikes at min(t_start, 2 s_1 - s_2) and max(t_end, 2 s_n - s_(n-1)) (t_start and t_end for a
    train of one spike), each with the Δt of the real spike next to it; an empty train counts as
    spikes at t_start and t_end.  Equal to ``pyspike.spike_distance``.
  - ``"auxiliary"`` (SpikeSynchrony.jl, which SpikeNetOpt used): auxiliary spikes at t_start and
    t_end in both trains (so their Δt is 0).  Gives the closed-form values of spikenetopt.md 7.1.

* **ISI-distance** (Kreuz et al. 2007), :func:`isi_distance`: the mean over the window of
  |x_ISI,1 - x_ISI,2| / max(x_ISI,1, x_ISI,2), with PySpike's edges.
* **van Rossum distance** (van Rossum 2001), :func:`van_rossum_distance`: with exponential kernels
  of time constant ``tau``, d^2 = Σ_ij e^(-|a_i-a_j|/tau) + Σ_ij e^(-|b_i-b_j|/tau)
  - 2 Σ_ij e^(-|a_i-b_j|/tau), the normalisation of Elephant and SpikeSynchrony.jl (one extra
  spike far from all others gives d = 1).  Computed in O(n + m) with running traces.
* **Victor-Purpura distance** (Victor & Purpura 1996), :func:`victor_purpura_distance`: the
  cheapest edit of ``a`` into ``b`` with insertions and deletions costing 1 and a shift by Δt
  costing q |Δt| (q in 1/ms).
* **Coincidence factor** Γ (Jolivet et al. 2008, as brian2modelfitting's ``GammaFactor``),
  :func:`gamma_factor`: N_coinc data spikes have a model spike within ±``window`` (each model
  spike matched once); with r the data's rate and N the counts::

      Γ = 2 / (1 - 2 window r) * (N_coinc - 2 window r N_data) / (N_data + N_model)

  Γ = 1 for identical trains and about 0 for independent Poisson trains.

Statistics: :func:`firing_rate`, :func:`isi`, :func:`cv` (std/mean of the ISIs),
:func:`lv` (Shinomoto's local variation, 3/(n-1) Σ ((I_i - I_(i+1))/(I_i + I_(i+1)))^2 over
the n ISIs), :func:`isi_histogram`, :func:`psth` (pooled spikes per bin per trial; the smoothed
PSTH of recorded trials is :func:`spikeforge.core.recordings.psth`).

Batches: :class:`Trains` holds many trains in two flat arrays (the spike times, and where each
train starts), as a population of simulated candidates produces them; the ``*_distances``
functions compare train i of one batch with train i of another (or with one train) in a
parallel numba loop, without Python per pair.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from spikeforge.errors import ParameterError

EDGES = ("pyspike", "auxiliary")


class Trains(NamedTuple):
    """Many spike trains in flat arrays: train i is ``times[offsets[i]:offsets[i + 1]]`` [ms]."""

    times: np.ndarray  # float64 (total spikes,), sorted within each train [ms]
    offsets: np.ndarray  # int64 (n_trains + 1,), offsets[0] = 0

    @classmethod
    def from_list(cls, trains) -> "Trains":
        """From a sequence of 1-d arrays of spike times [ms] (checked: finite, sorted)."""
        arrays = [check_train(train, f"spike train {i}") for i, train in enumerate(trains)]
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([a.size for a in arrays])
        times = np.concatenate(arrays) if arrays else np.zeros(0)
        return cls(times.astype(np.float64), offsets)

    def __len__(self) -> int:  # the number of trains
        return int(self.offsets.shape[0] - 1)

    def train(self, i: int) -> np.ndarray:
        """Spike times of train ``i`` [ms], shape (counts[i],): a view into ``times``, not a copy."""
        return self.times[self.offsets[i]:self.offsets[i + 1]]

    def to_list(self) -> list[np.ndarray]:
        """Every train's spike times [ms] as a list of 1-d arrays (views into ``times``), in order."""
        return [self.train(i) for i in range(len(self))]

    @property
    def counts(self) -> np.ndarray:
        """Spikes per train."""
        return np.diff(self.offsets)

    def tile(self, n: int) -> "Trains":
        """These trains repeated ``n`` times, in order (to pair them with n candidates' trains)."""
        offsets = np.zeros(len(self) * n + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(np.tile(self.counts, n))
        return Trains(np.tile(self.times, n), offsets)


def check_train(times, what: str = "spike train") -> np.ndarray:
    """``times`` as a float64 array, or a ParameterError if it is not a 1-d list of finite,
    non-negative, non-decreasing spike times [ms]; repeated times are merged into one spike (with a
    warning)."""
    raw = np.asarray(times)
    if raw.dtype.kind not in "iuf" and not (raw.dtype.kind == "O" and raw.size == 0):
        kind = {"b": "booleans", "c": "complex numbers", "U": "text", "S": "text", "O": "Python objects"}.get(
            raw.dtype.kind, f"values of type {raw.dtype}")
        raise ParameterError(f"{what} holds {kind}; expected spike times in ms (real numbers)")
    array = raw.astype(np.float64)
    if array.ndim != 1:
        raise ParameterError(f"{what} has shape {array.shape}; expected a 1-d list of spike times in ms")
    if not np.isfinite(array).all():
        where = int(np.flatnonzero(~np.isfinite(array))[0])
        raise ParameterError(f"{what} has a non-finite spike time ({array[where]}) at position {where}")
    if array.size and array.min() < 0:
        where = int(np.flatnonzero(array < 0)[0])
        raise ParameterError(f"{what} has a negative spike time ({array[where]:g} ms) at position {where}; "
                             "expected times >= 0 ms")
    if array.size > 1 and (np.diff(array) < 0).any():
        where = int(np.flatnonzero(np.diff(array) < 0)[0])
        raise ParameterError(f"{what} is not sorted: {array[where]:g} ms comes before {array[where + 1]:g} ms "
                             f"(position {where})")
    if array.size > 1 and (np.diff(array) == 0).any():
        import warnings

        from spikeforge.errors import SpikeforgeWarning

        merged = int((np.diff(array) == 0).sum())
        warnings.warn(f"{what} repeats {merged} spike time(s), e.g. {array[np.flatnonzero(np.diff(array) == 0)[0]]:g} "
                      "ms; each counts as one spike", SpikeforgeWarning, stacklevel=2)
        array = np.unique(array)
    return array


def _check_window(t_start: float, t_end: float, *trains: np.ndarray) -> tuple[float, float]:
    t_start, t_end = float(t_start), float(t_end)
    if not (np.isfinite(t_start) and np.isfinite(t_end) and t_end > t_start):
        raise ParameterError(f"window [{t_start:g}, {t_end:g}] ms must have t_end > t_start")
    for train in trains:
        if train.size and (train[0] < t_start or train[-1] > t_end):
            raise ParameterError(f"spikes from {train[0]:g} to {train[-1]:g} ms fall outside the window "
                                 f"[{t_start:g}, {t_end:g}] ms")
    return t_start, t_end


def _edges_code(edges: str) -> int:
    if edges not in EDGES:
        raise ParameterError(f"edges {edges!r} is not one of {', '.join(EDGES)}")
    return EDGES.index(edges)


# --- the kernels: one pair of trains ------------------------------------------------------------


@numba.njit(cache=True)
def _extended(spikes, t_start, t_end, auxiliary):
    """The train with its auxiliary spikes (see the module docstring): a sorted array that starts
    at or before ``t_start`` and ends at or after ``t_end``."""
    if auxiliary:
        inner = spikes[(spikes > t_start) & (spikes < t_end)]
        out = np.empty(inner.size + 2)
        out[0] = t_start
        out[1:-1] = inner
        out[-1] = t_end
        return out
    if spikes.size == 0:
        spikes = np.array([t_start, t_end])
    n = spikes.size
    out = np.empty(n + 2)
    out[1:-1] = spikes
    if n > 1:
        out[0] = min(t_start, 2 * spikes[0] - spikes[1])
        out[-1] = max(t_end, 2 * spikes[-1] - spikes[-2])
    else:
        out[0] = t_start
        out[-1] = t_end
    return out


@numba.njit(cache=True)
def _nearest_distances(own, other, auxiliary, t_start):
    """Δt of every entry of ``own``: the distance to the nearest entry of ``other`` (both sorted).
    PySpike's auxiliary spikes take the Δt of their real neighbour, except that a train whose
    only spike is at t_start keeps the end's own distance (as PySpike does)."""
    out = np.empty(own.size)
    j = 0
    for i in range(own.size):
        t = own[i]
        while j + 1 < other.size and other[j + 1] <= t:
            j += 1
        best = abs(t - other[j])
        if j + 1 < other.size:
            best = min(best, abs(other[j + 1] - t))
        out[i] = best
    if not auxiliary:
        out[0] = out[1]
        if not (own.size == 3 and own[1] == t_start):
            out[-1] = out[-2]
    else:
        out[0] = 0.0
        out[-1] = 0.0
    return out


@numba.njit(cache=True)
def _events(e1, e2, t_start, t_end):
    """The sorted distinct times of both extended trains inside [t_start, t_end], ends included."""
    merged = np.concatenate((e1, e2, np.array([t_start, t_end])))
    merged = np.unique(merged)
    return merged[(merged >= t_start) & (merged <= t_end)]


@numba.njit(cache=True)
def _segments(e1, e2, events):
    """For each interval between consecutive events, the index in each extended train of the spike
    that precedes it (the interval lies within [e[k], e[k + 1]))."""
    k1 = np.empty(events.size - 1, dtype=np.int64)
    k2 = np.empty(events.size - 1, dtype=np.int64)
    i1 = 0
    i2 = 0
    for m in range(events.size - 1):
        while e1[i1 + 1] <= events[m]:
            i1 += 1
        while e2[i2 + 1] <= events[m]:
            i2 += 1
        k1[m] = i1
        k2[m] = i2
    return k1, k2


@numba.njit(cache=True)
def _spike_distance_pair(a, b, t_start, t_end, edges):
    auxiliary = edges == 1
    e1 = _extended(a, t_start, t_end, auxiliary)
    e2 = _extended(b, t_start, t_end, auxiliary)
    d1 = _nearest_distances(e1, e2, auxiliary, t_start)
    d2 = _nearest_distances(e2, e1, auxiliary, t_start)
    events = _events(e1, e2, t_start, t_end)
    before1, before2 = _segments(e1, e2, events)
    total = 0.0
    for m in range(events.size - 1):
        lo = events[m]
        hi = events[m + 1]
        k1 = before1[m]
        k2 = before2[m]
        x1 = e1[k1 + 1] - e1[k1]
        x2 = e2[k2 + 1] - e2[k2]
        norm = 2.0 / ((x1 + x2) * (x1 + x2))
        value = 0.0
        for t in (lo, hi):
            s1 = (d1[k1] * (e1[k1 + 1] - t) + d1[k1 + 1] * (t - e1[k1])) / x1
            s2 = (d2[k2] * (e2[k2 + 1] - t) + d2[k2 + 1] * (t - e2[k2])) / x2
            value += norm * (s1 * x2 + s2 * x1)
        total += 0.5 * value * (hi - lo)
    return total / (t_end - t_start)


@numba.njit(cache=True)
def _isi_distance_pair(a, b, t_start, t_end):
    e1 = _extended(a, t_start, t_end, False)
    e2 = _extended(b, t_start, t_end, False)
    events = _events(e1, e2, t_start, t_end)
    before1, before2 = _segments(e1, e2, events)
    total = 0.0
    for m in range(events.size - 1):
        lo = events[m]
        k1 = before1[m]
        k2 = before2[m]
        x1 = e1[k1 + 1] - e1[k1]
        x2 = e2[k2 + 1] - e2[k2]
        total += abs(x1 - x2) / max(x1, x2) * (events[m + 1] - lo)
    return total / (t_end - t_start)


@numba.njit(cache=True)
def _van_rossum_pair(a, b, tau):
    """d^2 from running traces over the merged spikes (at equal times b's spike goes first)."""
    same_a = 0.0
    same_b = 0.0
    cross = 0.0
    trace_a = 0.0
    trace_b = 0.0
    t_last = -np.inf
    i = 0
    j = 0
    while i < a.size or j < b.size:
        take_b = j < b.size and (i >= a.size or b[j] <= a[i])
        t = b[j] if take_b else a[i]
        if t_last > -np.inf:
            decay = np.exp(-(t - t_last) / tau)
            trace_a *= decay
            trace_b *= decay
        t_last = t
        if take_b:
            cross += trace_a  # a's spikes strictly before
            same_b += 1.0 + 2.0 * trace_b
            trace_b += 1.0
            j += 1
        else:
            cross += trace_b  # b's spikes before or at the same time
            same_a += 1.0 + 2.0 * trace_a
            trace_a += 1.0
            i += 1
    return max(same_a + same_b - 2.0 * cross, 0.0)


@numba.njit(cache=True)
def _victor_purpura_pair(a, b, q):
    n, m = a.size, b.size
    previous = np.arange(m + 1).astype(np.float64)
    current = np.empty(m + 1)
    for i in range(1, n + 1):
        current[0] = i
        for j in range(1, m + 1):
            current[j] = min(previous[j] + 1.0, current[j - 1] + 1.0,
                             previous[j - 1] + q * abs(a[i - 1] - b[j - 1]))
        previous, current = current, previous
    return previous[m]


@numba.njit(cache=True)
def _coincidences(model, data, window):
    """Data spikes with a model spike within ±window, each model spike matched at most once."""
    count = 0
    j = 0
    for i in range(data.size):
        while j < model.size and model[j] < data[i] - window:
            j += 1
        if j < model.size and model[j] <= data[i] + window:
            count += 1
            j += 1
    return count


@numba.njit(cache=True)
def _gamma_pair(model, data, window, duration):
    n_data = data.size
    n_model = model.size
    if n_data + n_model == 0:
        return 1.0
    rate = n_data / duration
    chance = 2.0 * window * rate
    coincident = _coincidences(model, data, window)
    return 2.0 / (1.0 - chance) * (coincident - chance * n_data) / (n_data + n_model)


# --- batches ------------------------------------------------------------------------------------


@numba.njit(parallel=True, cache=True)
def _batch(kind, times_a, offsets_a, times_b, offsets_b, x, y, code):
    """Distance ``kind`` between train i of a and train i of b (or b's only train) for every i."""
    n = offsets_a.size - 1
    out = np.empty(n)
    stride = 0 if offsets_b.size == 2 else 1  # b has one train: pair it with every train of a
    for i in numba.prange(n):
        a = times_a[offsets_a[i]:offsets_a[i + 1]]
        k = i * stride
        b = times_b[offsets_b[k]:offsets_b[k + 1]]
        if kind == 0:
            out[i] = _spike_distance_pair(a, b, x, y, code)
        elif kind == 1:
            out[i] = _isi_distance_pair(a, b, x, y)
        elif kind == 2:
            out[i] = np.sqrt(_van_rossum_pair(a, b, x))
        elif kind == 3:
            out[i] = _victor_purpura_pair(a, b, x)
        else:
            out[i] = _gamma_pair(a, b, x, y)
    return out


def _pairs(kind: int, a: Trains, b: Trains, x: float, y: float, code: int = 0) -> np.ndarray:
    if not isinstance(a, Trains) or not isinstance(b, Trains):
        raise TypeError("batched distances take Trains; build them with Trains.from_list")
    if len(b) not in (1, len(a)):
        raise ParameterError(f"cannot pair {len(a)} trains with {len(b)}; expected as many, or one")
    return _batch(kind, a.times, a.offsets, b.times, b.offsets, float(x), float(y), code)


def spike_distances(a: Trains, b: Trains, t_start: float, t_end: float, edges: str = "pyspike") -> np.ndarray:
    """SPIKE-distance of train i of ``a`` and train i of ``b`` (or of ``b``'s one train), for every i."""
    code = _edges_code(edges)
    _check_window(t_start, t_end, a.times, b.times)
    return _pairs(0, a, b, t_start, t_end, code)


def gamma_factors(model: Trains, data: Trains, window: float, duration: float) -> np.ndarray:
    """Coincidence factor Γ of model train i against data train i (or ``data``'s one train)."""
    _check_positive(window, "coincidence window", "ms")
    _check_positive(duration, "duration", "ms")
    if 2 * window * data.counts.max(initial=0) / duration >= 1:
        raise ParameterError(f"coincidence window ±{window:g} ms is too wide for the data's rate: chance "
                             "coincidences would cover the whole train")
    return _pairs(4, model, data, window, duration)


# --- one pair -----------------------------------------------------------------------------------


def _two(a, b) -> tuple[np.ndarray, np.ndarray]:
    return check_train(a, "first spike train"), check_train(b, "second spike train")


def _check_positive(value: float, name: str, unit: str) -> float:
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ParameterError(f"{name} = {value:g} {unit}; expected a positive number")
    return value


def spike_distance(a, b, t_start: float, t_end: float, edges: str = "pyspike") -> float:
    """SPIKE-distance D_S of trains ``a`` and ``b`` [ms] over [t_start, t_end] ms, in [0, 1]."""
    a, b = _two(a, b)
    code = _edges_code(edges)
    t_start, t_end = _check_window(t_start, t_end, a, b)
    return float(_spike_distance_pair(a, b, t_start, t_end, code))


def isi_distance(a, b, t_start: float, t_end: float) -> float:
    """ISI-distance of trains ``a`` and ``b`` [ms] over [t_start, t_end] ms (PySpike's edges), in [0, 1]."""
    a, b = _two(a, b)
    t_start, t_end = _check_window(t_start, t_end, a, b)
    return float(_isi_distance_pair(a, b, t_start, t_end))


def van_rossum_distance(a, b, tau: float) -> float:
    """van Rossum distance of trains ``a`` and ``b`` [ms] with kernel time constant ``tau`` [ms]."""
    a, b = _two(a, b)
    return float(np.sqrt(_van_rossum_pair(a, b, _check_positive(tau, "tau", "ms"))))


def victor_purpura_distance(a, b, q: float) -> float:
    """Victor-Purpura distance of trains ``a`` and ``b`` [ms] with shift cost ``q`` [1/ms] (q = 0: the
    difference of the spike counts)."""
    a, b = _two(a, b)
    q = float(q)
    if not (np.isfinite(q) and q >= 0):
        raise ParameterError(f"q = {q:g} per ms; expected a cost >= 0")
    return float(_victor_purpura_pair(a, b, q))


def gamma_factor(model, data, window: float, duration: float) -> float:
    """Coincidence factor Γ of ``model`` against ``data`` (spike times [ms]) with a coincidence window
    of ±``window`` ms, over a recording of ``duration`` ms."""
    model, data = check_train(model, "model spike train"), check_train(data, "data spike train")
    return float(gamma_factors(Trains.from_list([model]), Trains.from_list([data]), window, duration)[0])


# --- statistics ---------------------------------------------------------------------------------


def firing_rate(train, duration: float) -> float:
    """Mean rate [Hz] of ``train`` [ms] over ``duration`` ms."""
    return check_train(train).size / _check_positive(duration, "duration", "ms") * 1000.0


def isi(train) -> np.ndarray:
    """Inter-spike intervals [ms]."""
    return np.diff(check_train(train))


def cv(train) -> float:
    """Coefficient of variation of the ISIs (population std / mean); NaN with fewer than 2 ISIs."""
    intervals = isi(train)
    return float(intervals.std() / intervals.mean()) if intervals.size >= 2 else float("nan")


def lv(train) -> float:
    """Local variation LV of the ISIs (0 for a regular train, about 1 for Poisson); NaN with fewer than 2 ISIs."""
    intervals = isi(train)
    if intervals.size < 2:
        return float("nan")
    first, second = intervals[:-1], intervals[1:]
    return float(3.0 / (intervals.size - 1) * np.sum(((first - second) / (first + second)) ** 2))


def isi_histogram(train, bin_ms: float, max_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """(counts, bin edges [ms]) of the ISIs in bins of ``bin_ms`` from 0 to ``max_ms`` (longer ISIs
    go into the last bin)."""
    _check_positive(bin_ms, "ISI bin", "ms")
    _check_positive(max_ms, "ISI histogram range", "ms")
    edges = np.arange(0.0, max_ms + bin_ms / 2, bin_ms)
    counts, _ = np.histogram(np.minimum(isi(train), edges[-1]), bins=edges)
    return counts, edges


def psth(spike_times_ms: np.ndarray, edges_ms: np.ndarray, n_trials: int) -> np.ndarray:
    """Peri-stimulus time histogram: spikes per bin per trial divided by the bin width, in Hz.

    Args:
        spike_times_ms: pooled spike times of all trials [ms]; times outside the edges are ignored.
        edges_ms: increasing bin edges [ms]; bins are [e_k, e_{k+1}), the last one closed.
        n_trials: number of trials pooled.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials = {n_trials} must be >= 1")
    counts, _ = np.histogram(spike_times_ms, bins=edges_ms)
    return counts / n_trials / (np.diff(edges_ms) / 1000.0)
