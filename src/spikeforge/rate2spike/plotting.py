"""Figures of rate-to-spike runs: the training curve, accuracy against the scaling factor, rate
against LIF outputs per condition, and rasters with excitatory and inhibitory neurons coloured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from spikeforge.core.store import save_figure as _save

EXCITATORY, INHIBITORY = "tab:red", "tab:blue"  # the original's raster colours


def training_curve(path: Path, log, training) -> Path:
    """Loss per step and the evaluations' loss and accuracy, against trials."""
    fig = Figure(figsize=(7.0, 3.0))
    loss_ax, accuracy_ax = fig.subplots(1, 2)
    steps = np.arange(1, len(log.losses) + 1) * training.batch
    loss_ax.plot(steps, log.losses, lw=0.5, color="0.6", label="training trial")
    loss_ax.plot(log.eval_trial, log.eval_loss, "o-", ms=3, color="k", label="evaluation (mean)")
    loss_ax.axhline(training.loss_threshold, ls="--", color="tab:green", lw=1, label="stopping threshold")
    loss_ax.set(xlabel="trials", ylabel=f"loss ({training.loss})", yscale="log")
    loss_ax.legend(fontsize=7)
    accuracy_ax.plot(log.eval_trial, log.eval_accuracy, "o-", ms=3, color="k")
    accuracy_ax.axhline(training.accuracy_threshold, ls="--", color="tab:green", lw=1)
    accuracy_ax.set(xlabel="trials", ylabel="fraction correct", ylim=(0, 1.02))
    fig.tight_layout()
    return _save(fig, Path(path))


def search_curve(path: Path, result, task: str) -> Path:
    """Accuracy against the scaling factor 1/lambda, the chosen one and its held-out accuracy."""
    fig = Figure(figsize=(4.0, 3.0))
    ax = fig.subplots()
    ax.plot(result.scaling_factors, result.accuracy, "o-", color="k", label="grid trials")
    ax.plot([result.best], [result.held_out_accuracy], "s", color="tab:orange",
            label=f"held out at 1/lambda = {result.best:g}")
    ax.axhline(0.95, ls="--", color="tab:green", lw=1)
    ax.set(xlabel="scaling factor 1/lambda", ylabel="LIF accuracy", ylim=(0, 1.02), title=f"{task}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, Path(path))


def outputs_and_rasters(path: Path, conditions: list[dict], inh: np.ndarray, lif_dt_ms: float) -> Path:
    """One column per condition: rate and LIF outputs on top, the LIF raster below.

    ``conditions``: dicts with ``name``, ``rate_output`` (T-1,), ``lif_output`` (n_t,), ``spikes``
    (n_t, N) bool, ``target`` (T,)."""
    fig = Figure(figsize=(3.6 * len(conditions), 5.0))
    axes = fig.subplots(2, len(conditions), squeeze=False, sharex=True)
    order = np.argsort(inh, kind="stable")  # excitatory first
    for column, condition in enumerate(conditions):
        top, raster = axes[0, column], axes[1, column]
        rate_t = np.arange(1, condition["rate_output"].size + 1) * 5.0 / 1000.0
        lif_t = np.arange(1, condition["lif_output"].size + 1) * lif_dt_ms / 1000.0
        top.plot(np.arange(condition["target"].size) * 5.0 / 1000.0, condition["target"], color="tab:green", lw=1,
                 ls="--", label="target")
        top.plot(rate_t, condition["rate_output"], color="k", lw=1, label="rate RNN")
        top.plot(lif_t, condition["lif_output"], color="tab:orange", lw=0.8, label="LIF")
        top.set_title(condition["name"], fontsize=9)
        step, neuron = np.nonzero(condition["spikes"][:, order])
        colours = np.where(inh[order][neuron], INHIBITORY, EXCITATORY)
        raster.scatter(lif_t[step], neuron, s=0.3, c=colours, marker="|", linewidths=0.5)
        raster.set(xlabel="time (s)", ylim=(-1, inh.size))
    axes[0, 0].set_ylabel("output")
    axes[1, 0].set_ylabel("neuron (E red, I blue)")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, Path(path))
