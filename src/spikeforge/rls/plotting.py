"""Figures of a test run: synaptic input vs target, and PSTHs, per task.

For each task ``t`` two figures are written next to the test file, as PNG and PDF, with
one panel per neuron (a grid of ``isqrt(n)`` rows):

* ``<stem>-syninput-task<t>``: the target ("target"), the median over trials of the
  boxcar-averaged total current ("model median") with a band of +/- the normalised
  median absolute deviation, and trial 0 ("trial 0"), against time [s];
* ``<stem>-psth-task<t>``: the firing rate over trials in bins of ``learn_every`` between
  ``stim_off`` and ``train_time`` [Hz], with the target rate when the targets came from rates
  (and the smoothed PSTH that the rate-space scores compare with it).

When the test file has rate-space scores (:mod:`spikeforge.rls.rate_evaluation`), also
``<stem>-rates-summary``: the distribution over all tested recorded neurons of the PSTH
correlation beside the Poisson ceiling, the network's mean rate against the target's, and the
RMS error.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from spikeforge.core.lock import DirectoryLock
from spikeforge.core.spikes import psth
from spikeforge.core.selection import describe, neuron_indices
from spikeforge.core.store import atomic_output, dataset_names, read_h5
from spikeforge.errors import ParameterError, SpikeforgeWarning

MAD_TO_SIGMA = 1.4826  # normalised MAD: equals the standard deviation for Gaussian data
PANEL_SIZE_IN = (3.15, 2.56)  # 8 cm x 6.5 cm per panel, as the reference


MARGINS_IN = {"left": 0.85, "right": 0.15, "bottom": 0.5, "top": 0.6}  # room for labels and the title


def _fixed_margins(fig, rows: int, cols: int) -> None:
    """Margins of a fixed size in inches (matplotlib's tight_layout measures every label, which
    doubled the time of writing a figure)."""
    width, height = PANEL_SIZE_IN[0] * cols, PANEL_SIZE_IN[1] * rows
    fig.subplots_adjust(left=MARGINS_IN["left"] / width, right=1 - MARGINS_IN["right"] / width,
                        bottom=MARGINS_IN["bottom"] / height, top=1 - MARGINS_IN["top"] / height,
                        wspace=0.3, hspace=0.35)


def _grid(n: int) -> tuple[int, int]:
    rows = max(1, math.isqrt(n))
    return rows, math.ceil(n / rows)


DEFAULT_PANELS = 16  # neurons plotted when none are chosen (about 0.15 s each, PNG and PDF)
MANY_PANELS = 100  # more than this: a warning that it takes a while


def plot(test_file: str | Path, neurons: Sequence[int] | str | None = None) -> list[Path]:
    """Write the figures of ``test_file`` for ``neurons`` (default: the first 16 tested ones),
    holding the lock of the file's directory.

    Returns:
        Paths of the files written.
    """
    test_file = Path(test_file)
    with DirectoryLock(test_file.parent, "spikeforge plot"):
        return write_figures(test_file, neurons)


def write_figures(test_file: str | Path, neurons: Sequence[int] | str | None = None) -> list[Path]:
    """:func:`plot` without taking the lock (for a caller that holds it)."""
    from matplotlib.figure import Figure

    test_file = Path(test_file)
    data, attrs = read_h5(test_file, ["neurons", "spike_step", "spike_trial", "spike_task", "spike_neuron",
                                      "u_total", "target", "learn_times"], what="test file")
    tested = [int(n) for n in data["neurons"]]
    present = dataset_names(test_file, "test file")
    rates = read_h5(test_file, [n for n in ("target_rate", "rate/psth") if n in present], "test file")[0]
    target_rate, smoothed = rates.get("target_rate"), rates.get("rate/psth")
    chosen = tested[:DEFAULT_PANELS] if neurons is None else [int(n) for n in neuron_indices(neurons)]
    missing = [n for n in chosen if n not in tested]
    if missing:
        raise ParameterError(f"neuron {missing[0]} was not tested; tested neurons are {describe(tested)}")
    if len(chosen) > MANY_PANELS:
        warnings.warn(f"plotting {len(chosen)} neurons takes about {0.15 * len(chosen):.0f} s per task; choose "
                      "fewer with --neurons", SpikeforgeWarning, stacklevel=2)
    columns = [tested.index(n) for n in chosen]
    ntrials, n_tasks = int(attrs["ntrials"]), int(attrs["n_tasks"])
    dt, learn_every = float(attrs["dt"]), float(attrs["learn_every"])
    edges = np.arange(float(attrs["stim_off"]), float(attrs["train_time"]) + learn_every / 2, learn_every)
    seconds = data["learn_times"] / 1000
    rows, cols = _grid(len(chosen))
    stem = test_file.with_suffix("")
    written: list[Path] = []
    for task in range(n_tasks):
        figures = {}
        for kind in ("syninput", "psth"):
            fig = Figure(figsize=(PANEL_SIZE_IN[0] * cols, PANEL_SIZE_IN[1] * rows))
            figures[kind] = (fig, fig.subplots(rows, cols, squeeze=False, sharex=True))
        current = data["u_total"][:, task]  # (ntrials, bins, n)
        median = np.median(current, axis=0)
        spread = MAD_TO_SIGMA * np.median(np.abs(current - median), axis=0)
        for panel, (neuron, column) in enumerate(zip(chosen, columns)):
            ax = figures["syninput"][1].flat[panel]
            ax.plot(seconds, data["target"][task, :, column], color="black", lw=1.5, label="target")
            ax.fill_between(seconds, median[:, column] - spread[:, column], median[:, column] + spread[:, column],
                            color="tab:blue", alpha=0.25, lw=0)
            ax.plot(seconds, median[:, column], color="tab:blue", lw=1.2, label="model median")
            ax.plot(seconds, current[0, :, column], color="tab:orange", lw=0.8, label="trial 0")
            ax.set_title(f"neuron {neuron}", fontsize=9)
            mine = (data["spike_task"] == task) & (data["spike_neuron"] == neuron)
            rate = psth(data["spike_step"][mine] * dt, edges, ntrials)
            ax = figures["psth"][1].flat[panel]
            ax.stairs(rate, edges / 1000, fill=True, color="tab:blue", alpha=0.7, label="model")
            if smoothed is not None:
                ax.plot(seconds, smoothed[task, :, column], color="tab:blue", lw=1.2, label="model, smoothed")
            if target_rate is not None:
                ax.plot(seconds, target_rate[task, :, column], color="black", lw=1.2, label="target")
            ax.set_title(f"neuron {neuron}", fontsize=9)
        for kind, (fig, axes) in figures.items():
            for ax in axes.flat[len(chosen):]:
                ax.set_visible(False)
            for ax in axes[-1]:
                ax.set_xlabel("time (s)")
            for ax in axes[:, 0]:
                ax.set_ylabel("synaptic input" if kind == "syninput" else "rate (Hz)")
            if kind == "syninput" or target_rate is not None:
                axes.flat[0].legend(fontsize=7, loc="best")
            fig.suptitle(f"task {task}: {'synaptic input vs target' if kind == 'syninput' else 'PSTH'}, "
                         f"{ntrials} trial{'s' if ntrials > 1 else ''}", fontsize=10)
            _fixed_margins(fig, rows, cols)
            for suffix in (".png", ".pdf"):
                path = Path(f"{stem}-{kind}-task{task}{suffix}")
                with atomic_output(path) as temporary:
                    fig.savefig(temporary, dpi=110, format=suffix[1:])
                written.append(path)
    if "rate/correlation" in present:
        written += _rate_summary(test_file, stem, ntrials)
    return written


def _rate_summary(test_file: Path, stem: Path, ntrials: int) -> list[Path]:
    """The rate-space summary figure of every tested recorded neuron (see the module docstring)."""
    from matplotlib.figure import Figure

    scores = read_h5(test_file, ["rate/correlation", "rate/poisson_correlation", "rate/psth", "target_rate",
                                 "rate/rms_error_hz"], "test file")[0]
    recorded = np.isfinite(scores["target_rate"]).all(axis=(0, 1))
    fig = Figure(figsize=(3 * PANEL_SIZE_IN[0], PANEL_SIZE_IN[1] + 0.4))
    left, middle, right = fig.subplots(1, 3)
    bins = np.linspace(-1, 1, 41)
    for name, label, color in (("rate/poisson_correlation", "Poisson ceiling", "0.6"),
                               ("rate/correlation", "network", "tab:blue")):
        values = scores[name][recorded]
        values = values[np.isfinite(values)]
        left.hist(values, bins=bins, color=color, alpha=0.7, label=f"{label} (median {np.median(values):.2f})"
                  if values.size else label)
    left.set_xlabel("PSTH correlation with the target")
    left.set_ylabel("neurons")
    left.legend(fontsize=7, loc="upper left")
    model_mean = scores["rate/psth"].mean(axis=(0, 1))[recorded]
    target_mean = scores["target_rate"].mean(axis=(0, 1))[recorded]
    middle.scatter(target_mean, model_mean, s=6, color="tab:blue")
    top = max(float(np.max(target_mean, initial=1)), float(np.max(model_mean, initial=1))) * 1.05
    middle.plot([0, top], [0, top], color="black", lw=0.8)
    middle.set_xlabel("target mean rate (Hz)")
    middle.set_ylabel("network mean rate (Hz)")
    right.hist(scores["rate/rms_error_hz"][recorded], bins=30, color="tab:blue", alpha=0.7)
    right.set_xlabel("RMS error (Hz)")
    fig.suptitle(f"rate space: {int(recorded.sum())} recorded neurons, {ntrials} trials", fontsize=10)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.2, top=0.85, wspace=0.3)
    written = []
    for suffix in (".png", ".pdf"):
        path = Path(f"{stem}-rates-summary{suffix}")
        with atomic_output(path) as temporary:
            fig.savefig(temporary, dpi=110, format=suffix[1:])
        written.append(path)
    return written
