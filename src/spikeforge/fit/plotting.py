"""Figures of fits: convergence, data against the fitted model, and the parameters of each restart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from spikeforge.core.store import save_figure

DATA, MODEL = "k", "tab:red"


def convergence(ax, histories) -> None:
    """Best loss so far against generation, one line per restart."""
    for k, history in enumerate(histories):
        ax.plot(np.arange(1, history.generations + 1), history.best_per_generation(), label=f"restart {k + 1}")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set(xlabel="generation", ylabel="best loss", title="convergence")
    ax.legend(fontsize=7)


def cell_fit(path: Path, objective, result, bounds) -> Path:
    """Convergence; the data's and the best model's spikes in every sweep; the restarts' parameters
    within their bounds (a wide spread: the data do not constrain that parameter)."""
    evaluation = objective.evaluate(result.best[None])
    from spikeforge.fit.simulate import simulate

    rows = objective.rows(result.best[None])
    sweeps = objective.data.sweeps
    model_trains = simulate(objective.model, np.repeat(rows, len(sweeps), axis=0), evaluation.amplitudes[0],
                            objective.data.protocol).trains
    fig = Figure(figsize=(10.0, 3.4))
    loss_ax, raster_ax, parameter_ax = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1.6, 1]})
    convergence(loss_ax, result.histories)
    sweep_rasters(raster_ax, [s.spikes for s in sweeps], model_trains.to_list(), objective.data.protocol.total,
                  [f"{s.amplitude:g} pA\nΓ={evaluation.gamma[0, k]:.2f}" for k, s in enumerate(sweeps)])
    restart_parameters(parameter_ax, result, bounds)
    fig.tight_layout()
    return save_figure(fig, Path(path))


def sweep_rasters(ax, data_trains, model_trains, duration: float, labels) -> None:
    """One row per sweep: the data's spikes (black, below) and the model's (red, above) [ms]."""
    for k, (data, model) in enumerate(zip(data_trains, model_trains)):
        ax.vlines(data, 2 * k + 0.55, 2 * k + 1.0, color=DATA, lw=1)
        ax.vlines(model, 2 * k + 1.0, 2 * k + 1.45, color=MODEL, lw=1)
    ax.set_yticks(2 * np.arange(len(labels)) + 1.0, labels, fontsize=7)
    ax.set(xlabel="time (ms)", xlim=(0, duration), title="data (black, below) and model (red, above)")


def restart_parameters(ax, result, bounds) -> None:
    """Each restart's best parameters, placed within their bounds."""
    for k in range(result.restart_best.shape[0]):
        ax.plot((result.restart_best[k] - bounds.low) / (bounds.high - bounds.low), np.arange(len(result.names)),
                "o", ms=4, alpha=0.7, label=f"restart {k + 1}")
    ax.set_yticks(np.arange(len(result.names)), result.names)
    ax.set(xlim=(-0.02, 1.02), xlabel="position within bounds", title="parameters per restart")


def network_fit(path: Path, objective, result, bounds) -> Path:
    """Convergence; per-cell spike counts of the data against the best network; rasters of both; the
    restarts' parameters."""
    counts, trains = objective.simulate(result.best[None])
    fig = Figure(figsize=(12.0, 3.4))
    loss_ax, count_ax, raster_ax, parameter_ax = fig.subplots(1, 4, gridspec_kw={"width_ratios": [1, 1, 1.6, 1]})
    convergence(loss_ax, result.histories)
    data_counts = objective.data.counts
    n_e = objective.config.n_e
    count_ax.plot(data_counts[:n_e], counts[0, :n_e], ".", ms=3, color="tab:red", label="E")
    count_ax.plot(data_counts[n_e:], counts[0, n_e:], ".", ms=3, color="tab:blue", label="I")
    top = max(data_counts.max(initial=1), counts.max(initial=1))
    count_ax.plot([0, top], [0, top], color="0.5", lw=0.8)
    count_ax.set(xlabel="data: spikes per cell", ylabel="model: spikes per cell", title="spike counts")
    count_ax.legend(fontsize=7)
    shown = min(len(objective.data), 60)
    for i in range(shown):
        raster_ax.plot(objective.data.train(i), np.full(objective.data.counts[i], i), "|", ms=2, color=DATA)
        raster_ax.plot(trains.train(i), np.full(trains.counts[i], i + shown + 5), "|", ms=2, color=MODEL)
    raster_ax.set(xlabel="time (ms)", yticks=[], xlim=(0, objective.config.duration),
                  title=f"first {shown} cells: data (black), model (red)")
    restart_parameters(parameter_ax, result, bounds)
    fig.tight_layout()
    return save_figure(fig, Path(path))
