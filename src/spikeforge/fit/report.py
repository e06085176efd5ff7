"""``spikeforge fit report``: how well the fitted model reproduces the data it was fitted to.

From a fit directory (``fit.h5``), the best parameters are simulated again on the data's protocol
(a cell: every sweep at the fit's amplitudes; a network: the frozen connectivity) and compared with
the data (:mod:`spikeforge.fit.validation`): per cell or sweep the firing rate, CV and LV, and the
pooled ISIs, with Welch's t and Cohen's d; for a cell also each sweep's spike counts, SPIKE-distance
and coincidence factor Γ.  Written: ``report.csv`` (one row per population and measure),
``report.png`` (and ``report.pdf`` when asked): for a network rate and LV histograms, ISI distributions
and rasters of data and model per population; for a cell each sweep's spikes and spike counts and the
pooled ISIs.  A cell fit can also be compared with sweeps held out of the fit (``held_out.csv``,
``held_out.png``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from spikeforge.core.lock import DirectoryLock
from spikeforge.core.run_support import echo
from spikeforge.core.spikes import Trains
from spikeforge.core.store import atomic_write_text, save_figure
from spikeforge.errors import ParameterError
from spikeforge.fit import files, validation
from spikeforge.fit.plotting import DATA, MODEL, sweep_rasters

FORMATS = ("png", "pdf", "svg")


def rebuild(attrs: dict, data: Trains, amplitudes):
    """The objective a fit directory's settings describe (cell or network), on its stored data."""
    settings = attrs["settings"]
    if attrs["kind"] == "cell":
        from spikeforge.fit.cell import CellData, CellObjective
        from spikeforge.fit.models import model_named
        from spikeforge.fit.simulate import StepProtocol

        protocol = StepProtocol(**settings["protocol"])
        cell_data = CellData.build(amplitudes, data.to_list(), protocol)
        return CellObjective(model_named(settings["model"]), cell_data, settings["fitted"], settings["fixed"],
                             loss=settings["loss"], current=settings["current"], scale=settings["scale"],
                             reference=settings["reference"], window=settings["window"])
    from spikeforge.fit import network

    config = network.NetworkConfig(**{**settings["network"], "v_init": tuple(settings["network"]["v_init"])})
    return network.NetworkObjective(data, config, settings["connectivity_seed"], settings["loss"],
                                    settings["recorded"])


def held_out_objective(objective, best, path, sweeps, amplitudes):
    """The fitted cell on other sweeps: the fit's model current per pA applied to their amplitudes."""
    from spikeforge.fit.cell import CellData, CellObjective
    from spikeforge.fit.data import load_cell

    reference = objective.data.sweeps[objective.reference] if objective.reference >= 0 else None
    if objective.current == "search":
        per_pa = objective.amplitudes(objective.rows(best[None]))[0][0, objective.reference] / reference.amplitude
    else:
        per_pa = objective.scale
    protocol = objective.data.protocol
    recorded, trains = load_cell(path, amplitudes, protocol.total, sweeps=sweeps)
    return CellObjective(objective.model, CellData.build(recorded, trains, protocol), objective.fitted,
                         objective.fixed, loss=objective.loss, current="given", scale=per_pa, window=objective.window)


def _cell_rows(objective, best, labels) -> tuple[list[list], list, list]:
    from spikeforge.fit.simulate import simulate

    evaluation = objective.evaluate(best[None])
    sweeps = objective.data.sweeps
    model = simulate(objective.model, np.repeat(objective.rows(best[None]), len(sweeps), axis=0),
                     evaluation.amplitudes[0], objective.data.protocol).trains.to_list()
    rows = [[labels[k], f"{s.amplitude:g}", f"{evaluation.amplitudes[0, k]:.4g}", s.spikes.size, int(evaluation.counts[0, k]),
             f"{evaluation.spike_distance[0, k]:.4f}", f"{evaluation.gamma[0, k]:.4f}"] for k, s in enumerate(sweeps)]
    return rows, [s.spikes for s in sweeps], model


def report(directory: str | Path, formats=("png",), verbose: bool = True, held_out=None, sweeps=None,
           held_out_amplitudes=None, noise_seeds: int = 5) -> list[Path]:
    """Write and print the report of the fit in ``directory``; return the files written.

    ``held_out``: for a cell fit, a data file of other sweeps (``sweeps`` of it, at
    ``held_out_amplitudes`` if the file does not say them) to compare with instead, each simulated at
    the fit's model current per pA (the amplitude the fit found or used on its reference sweep,
    divided by that sweep's pA).  ``noise_seeds``: for a network fit, the loss of the best parameters
    under that many other connectivity seeds (the seeds after the fit's) is measured and written."""
    directory = Path(directory)
    formats = tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        named = unknown[0] if unknown else "(none)"
        raise ParameterError(f"figure format {named!r} is not one of {', '.join(FORMATS)}")
    histories, data, amplitudes, attrs = files.read_fit(directory / files.FIT)
    if not histories:
        raise ParameterError(f"{str(directory / files.FIT)!r} holds no completed generation; nothing to report")
    from spikeforge.fit.search import summarise

    result = summarise(attrs["names"], histories, attrs.get("stopped", []))
    objective = rebuild(attrs, data, amplitudes)
    name = "report"
    if held_out is not None:
        if attrs["kind"] != "cell":
            raise ParameterError("--data (held-out sweeps) is for cell fits; a network fit is compared with its data")
        objective = held_out_objective(objective, result.best, held_out, sweeps, held_out_amplitudes)
        name = "held_out"
    sweep_rows, floor = None, None
    if attrs["kind"] == "cell":
        labels = list(range(len(objective.data.sweeps))) if held_out is None or sweeps is None else list(sweeps)
        sweep_rows, data_trains, model_trains = _cell_rows(objective, result.best, labels)
        duration = objective.data.protocol.total
        groups = {"cell": (data_trains, model_trains)}
    else:
        _, trains = objective.simulate(result.best[None])
        data_trains, model_trains = data.to_list(), trains.to_list()
        duration = objective.config.duration
        n_e = objective.config.n_e
        groups = {"E": (data_trains[:n_e], model_trains[:n_e])}
        if len(data_trains) > n_e:
            groups["I"] = (data_trains[n_e:], model_trains[n_e:])
        if noise_seeds:
            from spikeforge.fit import network

            seeds = [objective.connectivity_seed + 1 + k for k in range(noise_seeds)]
            floor = (seeds, network.noise_floor(result.best, objective.data, objective.config, seeds,
                                                objective.loss, objective.recorded))
    comparisons = {name: validation.compare_trains(d, m, duration) for name, (d, m) in groups.items()}
    window = getattr(objective, "window", 4.0)  # a cell's Γ window [ms]
    text = _csv(comparisons, sweep_rows, floor, result.loss, window)
    with DirectoryLock(directory, "spikeforge fit report"):
        written = [directory / f"{name}.csv"]
        atomic_write_text(written[0], text)
        figure = (_cell_figure(sweep_rows, data_trains, model_trains, duration, comparisons["cell"])
                  if sweep_rows else _figure(groups, duration, comparisons))
        written += [save_figure(figure, directory / f"{name}.{fmt}") for fmt in formats]
    if verbose:
        _print(attrs, result, comparisons, sweep_rows, floor, window)
        echo(verbose, "wrote " + ", ".join(str(p) for p in written))
    return written


def _csv(comparisons: dict, sweep_rows, floor, loss: float, window: float) -> str:
    """The report's CSV text; ``window``: the Γ coincidence window [ms], named in its column."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for k, (group, rows) in enumerate(comparisons.items()):
        lines = validation.table(rows).splitlines()
        if k == 0:
            writer.writerow(["population", *lines[0].split(",")])
        for line in lines[1:]:
            writer.writerow([group, *line.split(",")])
    if sweep_rows:
        out.write("\n")
        writer.writerow(["sweep", "amplitude_pA", "model_amplitude", "spikes_data", "spikes_model", "spike_distance",
                         f"gamma_{window:g}ms"])
        writer.writerows(sweep_rows)
    if floor is not None:
        out.write("\n")
        writer.writerow(["connectivity_seed", "loss_of_best_parameters"])
        writer.writerows([[seed, f"{value:.6g}"] for seed, value in zip(*floor)])
        writer.writerow(["fit", f"{loss:.6g}"])
    return out.getvalue()


def _print(attrs, result, comparisons, sweep_rows, floor, window: float) -> None:
    names = ", ".join(f"{n} = {v:.4g}" for n, v in zip(result.names, result.best))
    print(f"{attrs['kind']} fit ({attrs.get('status', '?')}), best loss {result.loss:.4g}: {names}")
    for group, rows in comparisons.items():
        print(f"{group}: measure  data mean  model mean  Welch t  p  Cohen's d [95% CI]  matched (|d| < "
              f"{validation.MATCHED_D})")
        for c in rows:
            print(f"  {c.measure:>5}  {c.mean_data:9.4g}  {c.mean_model:10.4g}  {c.t:7.3g}  {c.p:8.3g}  {c.d:6.3g} "
                  f"[{c.d_low:.3g}, {c.d_high:.3g}]  {c.matched}")
    if sweep_rows:
        print(f"sweep  amplitude (pA)  spikes data/model  SPIKE-distance  Γ ({window:g} ms)")
        for row in sweep_rows:
            print(f"  {row[0]:>3}  {row[1]:>14}  {row[3]:>7}/{row[4]:<7}  {row[5]:>14}  {row[6]:>8}")
    if floor is not None:
        seeds, values = floor
        print(f"noise floor: the best parameters under {len(seeds)} other connectivity seeds have loss "
              f"{values.mean():.3g} ± {values.std():.2g} (the fit: {result.loss:.3g})")


def _cell_figure(sweep_rows, data_trains, model_trains, duration: float, comparisons) -> Figure:
    """A cell's sweeps: the spikes of data and model, their counts with each sweep's SPIKE-distance and
    Γ, and the pooled inter-spike intervals (a cell's rates and LVs are one number per sweep, too few
    for the population histograms of a network)."""
    fig = Figure(figsize=(11.0, 1.2 + 0.55 * max(len(sweep_rows), 3)))
    raster_ax, count_ax, isi_ax = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.8, 1, 1]})
    labels = [f"{row[1]} pA" for row in sweep_rows]
    sweep_rasters(raster_ax, data_trains, model_trains, duration, labels)
    where = np.arange(len(sweep_rows))
    count_ax.barh(where - 0.2, [row[3] for row in sweep_rows], 0.4, color=DATA, alpha=0.6, label="data")
    count_ax.barh(where + 0.2, [row[4] for row in sweep_rows], 0.4, color=MODEL, alpha=0.6, label="model")
    for k, row in enumerate(sweep_rows):
        count_ax.annotate(f" D={float(row[5]):.3f}, Γ={float(row[6]):.2f}", (max(row[3], row[4]), k), va="center",
                          fontsize=7)
    count_ax.set_yticks(where, labels, fontsize=7)
    count_ax.set_xlim(0, 1.6 * max(max(row[3], row[4]) for row in sweep_rows) + 1)
    count_ax.set_ylim(-1.0, len(sweep_rows))
    count_ax.set(xlabel="spikes", title="spike counts (D: SPIKE-distance)")
    count_ax.legend(fontsize=7, loc="lower right")
    intervals = [np.concatenate([np.diff(t) for t in trains] or [np.zeros(0)]) for trains in (data_trains, model_trains)]
    if any(i.size for i in intervals):
        edges = np.histogram_bin_edges(np.concatenate(intervals), bins=20)
        isi_ax.hist(intervals[0], edges, color=DATA, alpha=0.5, label="data")
        isi_ax.hist(intervals[1], edges, color=MODEL, alpha=0.5, label="model")
        isi_ax.legend(fontsize=7)
    d = {c.measure: c.d for c in comparisons}["isi"]
    isi_ax.set(xlabel="inter-spike interval (ms)", ylabel="count", title=f"pooled ISIs, d = {d:.2f}")
    fig.tight_layout()
    return fig


def _figure(groups: dict, duration: float, comparisons: dict) -> Figure:
    fig = Figure(figsize=(11.0, 2.8 * len(groups)))
    axes = np.atleast_2d(fig.subplots(len(groups), 4))
    for row, (group, (data_trains, model_trains)) in zip(axes, groups.items()):
        data = validation.per_train_measures(data_trains, duration)
        model = validation.per_train_measures(model_trains, duration)
        d = {c.measure: c.d for c in comparisons[group]}
        for ax, name, label in ((row[0], "rate", "rate (Hz)"), (row[1], "lv", "LV"), (row[2], "isi", "ISI (ms)")):
            values = [v[np.isfinite(v)] for v in (data[name], model[name])]
            if not any(v.size for v in values):
                ax.set(title=f"{group}: no {label}")
                continue
            edges = np.histogram_bin_edges(np.concatenate(values), bins=20)
            ax.hist(values[0], edges, color=DATA, alpha=0.5, label="data")
            ax.hist(values[1], edges, color=MODEL, alpha=0.5, label="model")
            ax.set(xlabel=label, ylabel="count", title=f"{group}: {label}, d = {d[name]:.2f}")
            ax.legend(fontsize=7)
        shown = min(len(data_trains), 40)
        for i in range(shown):
            row[3].plot(data_trains[i], np.full(len(data_trains[i]), i), "|", ms=2, color=DATA)
            row[3].plot(model_trains[i], np.full(len(model_trains[i]), i + shown + 3), "|", ms=2, color=MODEL)
        row[3].set(xlabel="time (ms)", yticks=[], xlim=(0, duration), title=f"{group}: data (black), model (red)")
    fig.tight_layout()
    return fig
