"""Figures of the sequence-learning capability (the Klampfl & Maass 2013 replication's plots).

* :func:`raster`: the network's spikes (rows ordered by activation time, e.g. by
  :func:`ordered_by_last_pattern`) above the input spikes (noise black, pattern spikes red), pattern
  phases shaded, time in seconds;
* :func:`circuits`: the grid of winner-take-all circuits (neurons per circuit, or any value per circuit)
  as a colour map and as a 3D bar chart;
* :func:`weights`: histograms of the log weights at several times;
* :func:`selectivity`: each neuron's mean rate during patterns against its rate during noise.

Arrays are per 1-ms step: ``spikes`` (steps x neurons, bool), ``rates`` (steps x neurons) [Hz]; inputs are
a :class:`spikeforge.sequence.inputs.Inputs`.  Figures are built on :class:`matplotlib.figure.Figure` (no
pyplot, no display) and written atomically by :func:`spikeforge.core.store.save_figure`; every figure
function takes the output path (its suffix names the format) and returns it.  The ``draw_*`` helpers draw
onto given axes and return what they drew, so that the figures can be checked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from spikeforge.core.store import save_figure
from spikeforge.sequence import analysis

STEP_S = 1e-3  # one step [s]
NOISE_INPUT, PATTERN_INPUT, SELECTIVE, OTHER = "k", "tab:red", "tab:red", "0.45"
PATTERN_COLOURS = colormaps["tab10"]
LOG_WEIGHT_LOW, LOG_WEIGHT_HIGH = -5.0, 0.0  # the original's histogram range [log weight]


# ---------------------------------------------------------------------------------------------- rasters

def ordered_by_last_pattern(rates: np.ndarray, inputs, pattern: int | None = None) -> np.ndarray | None:
    """Neurons sorted by their mean activation time (:func:`analysis.activation_order`) in the last complete
    presentation of a pattern: the last phase of ``inputs.phases`` with pattern >= 0 (equal to ``pattern``
    when given) that ends inside the run (``rates`` and the inputs both cover it).  ``rates``: (steps x
    neurons) [Hz], or spikes (bool).  None when there is no such presentation."""
    rates = np.asarray(rates)
    n_steps = min(rates.shape[0], np.asarray(inputs.pattern).shape[0])
    complete = [phase for phase in inputs.phases
                if phase.pattern >= 0 and (pattern is None or phase.pattern == pattern)
                and phase.length > 0 and phase.start + phase.length <= n_steps]
    if not complete:
        return None
    last = complete[-1]
    return analysis.activation_order(rates.astype(np.float64), last.start, last.length)


def raster_rows(n_neurons: int, order=None, neurons=None) -> np.ndarray:
    """int64: the neuron drawn in each row of the network raster, row 0 first (at the bottom).

    ``order``: neuron indices, each at most once (e.g. :func:`analysis.activation_order`), the row order;
    None: 0, 1, 2, ....  ``neurons``: None (all), an int (the first that many rows), or neuron indices
    (only those are kept, in the rows' order)."""
    if order is None:
        rows = np.arange(n_neurons, dtype=np.int64)
    else:
        rows = np.asarray(order, dtype=np.int64).ravel()
        if rows.size and (rows.min() < 0 or rows.max() >= n_neurons):
            raise ValueError(f"order names neurons {rows.min()} to {rows.max()}; the raster has neurons 0 to "
                             f"{n_neurons - 1}")
        if np.unique(rows).size != rows.size:
            raise ValueError("order names a neuron more than once; expected each neuron at most once")
    if neurons is None:
        return rows
    if np.ndim(neurons) == 0:
        return rows[:max(int(neurons), 0)]
    return rows[np.isin(rows, np.asarray(neurons, dtype=np.int64))]


def _segments(pattern: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal labels in ``pattern`` (per step): first steps, lengths [steps], labels."""
    pattern = np.asarray(pattern)
    if pattern.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    starts = np.concatenate([[0], np.flatnonzero(np.diff(pattern)) + 1])
    lengths = np.diff(np.concatenate([starts, [pattern.size]]))
    return starts, lengths, pattern[starts]


def shade_patterns(ax, pattern: np.ndarray, low: float, high: float, legend: bool = True) -> list:
    """Shade each pattern phase (steps with ``pattern`` >= 0) between ``low`` and ``high`` (data units of
    the y axis) in a light colour per pattern index; the time axis is in s.  Returns the collections,
    labelled "pattern p" when ``legend``."""
    starts, lengths, labels = _segments(pattern)
    drawn = []
    for p in np.unique(labels[labels >= 0]):  # one collection per pattern index, not per phase
        chosen = labels == p
        spans = np.column_stack([starts[chosen], lengths[chosen]]) * STEP_S
        drawn.append(ax.broken_barh(spans, (low, high - low), facecolors=PATTERN_COLOURS(int(p) % 10), alpha=0.18,
                                    zorder=0, label=f"pattern {p}" if legend else None))
    return drawn


def draw_network_raster(ax, spikes: np.ndarray, inputs=None, order=None, neurons=None) -> np.ndarray:
    """The network raster on ``ax``: a tick at (step x 1 ms [s], row) for every spike, rows as
    :func:`raster_rows`, pattern phases of ``inputs`` shaded.  The spikes are ``ax.collections[0]``.
    Returns the rows (the neuron in each row)."""
    spikes = np.asarray(spikes, dtype=bool)
    rows = raster_rows(spikes.shape[1], order, neurons)
    row_of = np.full(spikes.shape[1], -1, dtype=np.int64)
    row_of[rows] = np.arange(rows.size)
    step, neuron = np.nonzero(spikes)
    shown = row_of[neuron] >= 0
    ax.scatter(step[shown] * STEP_S, row_of[neuron[shown]], s=4, marker="|", linewidths=0.6, color="k",
               rasterized=True)
    ax.set_ylim(-0.5, max(rows.size, 1) - 0.5)
    ax.set_xlim(0, spikes.shape[0] * STEP_S)
    if inputs is not None:
        handles = shade_patterns(ax, inputs.pattern, -0.5, max(rows.size, 1) - 0.5)
        if handles:
            ax.legend(handles=handles, loc="upper right", fontsize=7)
    ax.set_ylabel("neuron (row)" if order is None else "neuron (ordered)")
    return rows


def draw_input_raster(ax, inputs) -> None:
    """The input raster on ``ax``: noise spikes black, pattern spikes (``inputs.from_pattern``) red, time
    in s, pattern phases shaded."""
    spikes = np.asarray(inputs.spikes, dtype=bool)
    from_pattern = np.asarray(inputs.from_pattern, dtype=bool)
    for mask, colour, label in ((spikes & ~from_pattern, NOISE_INPUT, "noise"),
                                (from_pattern, PATTERN_INPUT, "pattern")):
        step, channel = np.nonzero(mask)
        ax.scatter(step * STEP_S, channel, s=4, marker="|", linewidths=0.6, color=colour, label=label,
                   rasterized=True)
    ax.set_ylim(-0.5, max(spikes.shape[1], 1) - 0.5)
    ax.set_xlim(0, spikes.shape[0] * STEP_S)
    shade_patterns(ax, inputs.pattern, -0.5, max(spikes.shape[1], 1) - 0.5, legend=False)
    ax.set(xlabel="time [s]", ylabel="input channel")
    ax.legend(loc="upper right", fontsize=7, markerscale=2)


def raster(path, spikes: np.ndarray, inputs, rates: np.ndarray | None = None, order=None, title: str | None = None,
           neurons=None) -> Path:
    """Network raster (top) above the input raster (bottom), sharing the time axis [s]; pattern phases
    shaded, one colour per pattern index.

    ``spikes``: bool (steps x neurons), 1-ms steps, the same steps as ``inputs``.  ``order``: the row order
    (see :func:`raster_rows`); when None and ``rates`` (steps x neurons) [Hz] are given, the order of
    :func:`ordered_by_last_pattern`.  ``neurons``: the rows kept (see :func:`raster_rows`)."""
    spikes = np.asarray(spikes, dtype=bool)
    if spikes.ndim != 2 or spikes.shape[0] != np.asarray(inputs.spikes).shape[0]:
        raise ValueError(f"network spikes of shape {spikes.shape} for inputs of {np.asarray(inputs.spikes).shape[0]} "
                         "steps; expected (steps, neurons) over the same steps")
    if order is None and rates is not None:
        order = ordered_by_last_pattern(rates, inputs)
    fig = Figure(figsize=(10.0, 6.0))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    draw_network_raster(top, spikes, inputs, order, neurons)
    draw_input_raster(bottom, inputs)
    if title:
        top.set_title(title)
    fig.tight_layout()
    return save_figure(fig, Path(path))


# --------------------------------------------------------------------------------------------- circuits

def grid_values(grid, values=None) -> np.ndarray:
    """The (n, m) array drawn for a grid of ``grid.shape = (n, m)`` circuits: entry [x, y] belongs to circuit
    c = x m + y (circuits are numbered row by row).  ``values``: one per circuit (length n m, or already
    (n, m)); None: the neurons per circuit, ``grid.sizes``."""
    n, m = grid.shape
    if values is None:
        return np.asarray(grid.sizes).reshape(n, m)
    values = np.asarray(values)
    if values.shape == (n, m):
        return values.copy()
    if values.ndim != 1 or values.size != grid.n_circuits:
        raise ValueError(f"{values.size} values (shape {values.shape}) for a grid of {grid.n_circuits} circuits "
                         f"({n} x {m}); expected one value per circuit")
    return values.reshape(n, m)


def draw_circuit_map(ax, table: np.ndarray, label: str, cmap="viridis"):
    """Colour map of the (n, m) ``table`` on ``ax`` (row x down, column y across), each cell's value
    written in it, with a colour bar labelled ``label``.  Returns the mesh."""
    n, m = table.shape
    finite = table[np.isfinite(table)] if np.issubdtype(table.dtype, np.floating) else table.ravel()
    norm = Normalize(finite.min(), finite.max()) if finite.size else Normalize(0, 1)
    mesh = ax.pcolormesh(np.arange(m + 1) - 0.5, np.arange(n + 1) - 0.5, table, cmap=cmap, norm=norm)
    ax.figure.colorbar(mesh, ax=ax, label=label)
    dark = norm(np.where(np.isfinite(table), table, norm.vmin)) < 0.5
    text = [f"{v:d}" if np.issubdtype(table.dtype, np.integer) else f"{v:.3g}" for v in table.ravel()]
    for c, (x, y) in enumerate(np.ndindex(n, m)):  # per circuit: there is no vectorised text
        ax.text(y, x, text[c], ha="center", va="center", fontsize=7, color="w" if dark[x, y] else "k")
    ax.set_xlim(-0.5, m - 0.5)
    ax.set_ylim(n - 0.5, -0.5)  # row 0 at the top
    ax.set_aspect("equal")
    ax.set(xlabel="column y", ylabel="row x", xticks=np.arange(m), yticks=np.arange(n))
    return mesh


def draw_circuit_bars(ax3d, grid, table: np.ndarray, label: str, cmap="viridis") -> None:
    """3D bars of the (n, m) ``table`` at the circuits' grid positions (``grid.positions``) on a 3D axes."""
    heights = np.nan_to_num(np.asarray(table, dtype=np.float64).ravel())  # row by row: circuit order
    x, y = np.asarray(grid.positions, dtype=np.float64).T
    norm = Normalize(heights.min(), heights.max()) if heights.size else Normalize(0, 1)
    ax3d.bar3d(x - 0.4, y - 0.4, np.zeros_like(heights), 0.8, 0.8, heights, color=colormaps[cmap](norm(heights)),
               shade=True)
    n, m = table.shape
    ax3d.set(xlabel="row x", ylabel="column y", zlabel=label, xticks=np.arange(n), yticks=np.arange(m))


def circuits(path, grid, values=None, label: str = "neurons per circuit") -> Path:
    """The grid of circuits, side by side as a colour map (values written in the cells) and as 3D bars.
    ``values``: one per circuit (see :func:`grid_values`); default the neurons per circuit."""
    table = grid_values(grid, values)
    fig = Figure(figsize=(11.0, 4.5))
    flat = fig.add_subplot(1, 2, 1)
    bars = fig.add_subplot(1, 2, 2, projection="3d")
    draw_circuit_map(flat, table, label)
    draw_circuit_bars(bars, grid, table, label)
    n, m = grid.shape
    fig.suptitle(f"{n} x {m} circuits, {grid.n_neurons} neurons")
    return save_figure(fig, Path(path))


# ---------------------------------------------------------------------------------------------- weights

def weight_bins(snapshots, width: float = 0.1) -> np.ndarray:
    """Histogram edges [log weight]: from -5 to 0 in steps of ``width`` (the original's range), extended
    upwards to cover the largest finite weight above 0."""
    finite = [np.asarray(s, dtype=np.float64) for s in snapshots]
    top = max((s[np.isfinite(s)].max(initial=LOG_WEIGHT_HIGH) for s in finite), default=LOG_WEIGHT_HIGH)
    n_bins = int(np.ceil(round((max(top, LOG_WEIGHT_HIGH) - LOG_WEIGHT_LOW) / width, 9)))
    n_bins = max(n_bins, 1)
    edges = LOG_WEIGHT_LOW + width * np.arange(n_bins + 1)
    if edges[-1] < top:  # rounding left the largest weight out (a weight on the last edge is in: it is closed)
        edges = np.append(edges, edges[-1] + width)
    return edges


def draw_weights(ax, snapshots, times_s, labels=None) -> np.ndarray:
    """One step-histogram line per snapshot (1-D arrays of log weights) on ``ax``, labelled with its time
    [s] (or ``labels``); weights below -5 are counted in the lowest bin, non-finite ones left out.  Returns
    the bin edges."""
    snapshots = [np.asarray(s, dtype=np.float64).ravel() for s in snapshots]
    times_s = np.atleast_1d(np.asarray(times_s, dtype=np.float64))
    if not snapshots:
        raise ValueError("no weight snapshots to plot")
    if times_s.size != len(snapshots):
        raise ValueError(f"{len(snapshots)} weight snapshots but {times_s.size} times; expected one time each")
    if labels is None:
        labels = [f"t = {t:g} s" for t in times_s]
    elif len(labels) != len(snapshots):
        raise ValueError(f"{len(snapshots)} weight snapshots but {len(labels)} labels; expected one label each")
    edges = weight_bins(snapshots)
    clipped = [np.maximum(s[np.isfinite(s)], LOG_WEIGHT_LOW) for s in snapshots]
    shades = colormaps["viridis"](np.linspace(0.0, 0.9, len(clipped)))  # early dark, late light: one colour each
    for weights_now, label, shade in zip(clipped, labels, shades):  # per snapshot (ax.hist reverses the legend)
        ax.stairs(np.histogram(weights_now, bins=edges)[0], edges, label=label, linewidth=1.2, color=shade)
    ax.set(xlabel="log weight w", ylabel="synapses", xlim=(edges[0], edges[-1]))
    ax.legend(fontsize=7)
    return edges


def weights(path, snapshots, times_s, labels=None) -> Path:
    """Histograms of the log weights (natural log, bins of 0.1 from -5 to 0 plus whatever is above) at
    several times: ``snapshots`` is a list of 1-D arrays, ``times_s`` their times [s]."""
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.subplots()
    draw_weights(ax, snapshots, times_s, labels)
    ax.set_title("log weights")
    fig.tight_layout()
    return save_figure(fig, Path(path))


# ------------------------------------------------------------------------------------------ selectivity

def pattern_rates(rates: np.ndarray, inputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each neuron's mean rate [Hz] during patterns (steps with ``inputs.pattern`` >= 0) and during noise,
    and :func:`analysis.selective`.  ``rates``: (steps x neurons) [Hz], or spikes (bool, 1-ms steps)."""
    rates = np.asarray(rates)
    in_pattern = np.asarray(inputs.pattern) >= 0
    if rates.ndim != 2 or rates.shape[0] != in_pattern.size:
        raise ValueError(f"rates of shape {rates.shape} for inputs of {in_pattern.size} steps; expected (steps, "
                         "neurons) over the same steps")
    chosen = analysis.selective(rates, in_pattern)  # raises when there is no pattern or no noise step
    scale = 1000.0 if rates.dtype == bool else 1.0  # spikes per 1-ms step -> Hz
    during = rates[in_pattern].mean(axis=0) * scale
    outside = rates[~in_pattern].mean(axis=0) * scale
    return during, outside, chosen


def draw_selectivity(ax, rates: np.ndarray, inputs) -> np.ndarray:
    """Scatter of the rate during noise (x) against during patterns (y) [Hz], the diagonal, the selectivity
    criterion (2 x + 5 Hz), selective neurons highlighted.  Returns the selective mask."""
    during, outside, chosen = pattern_rates(rates, inputs)
    ax.scatter(outside[~chosen], during[~chosen], s=8, color=OTHER, label=f"other ({int((~chosen).sum())})")
    ax.scatter(outside[chosen], during[chosen], s=10, color=SELECTIVE, label=f"selective ({int(chosen.sum())})")
    top = max(float(during.max(initial=0.0)), float(outside.max(initial=0.0)), 1.0) * 1.05
    ax.plot([0, top], [0, top], color="0.6", lw=0.8, label="equal rates")
    ax.plot([0, top], [5.0, 2.0 * top + 5.0], color="0.6", lw=0.8, ls="--", label="criterion 2x + 5 Hz")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="mean rate during noise [Hz]", ylabel="mean rate during patterns [Hz]")
    ax.legend(fontsize=7)
    return chosen


def selectivity(path, rates: np.ndarray, inputs) -> Path:
    """Each neuron's mean rate [Hz] during patterns against during noise, with the diagonal; selective
    neurons (:func:`analysis.selective`) highlighted.  ``rates``: (steps x neurons) [Hz] or spikes (bool)."""
    fig = Figure(figsize=(5.0, 4.6))
    ax = fig.subplots()
    draw_selectivity(ax, rates, inputs)
    ax.set_title("pattern selectivity")
    fig.tight_layout()
    return save_figure(fig, Path(path))
