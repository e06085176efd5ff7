"""``new`` and ``init``: create a data directory, then build and save the network.

``init`` follows the reference (tsn.md 4): static connectivity; a run of the static
network alone with the constant drive, which gives the init rates, each neuron's mean
current (the targets' offset) and the current's temporal std; plastic inputs chosen
among the most active neurons; targets and stimulus per task (each task from its own
streams, unlike the reference, whose tasks all got the same phases when seeded); the
initial P.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.core import provenance, recordings
from spikeforge.core import rng as streams
from spikeforge.core.interrupts import StopSignals
from spikeforge.core.backends import as_backend
from spikeforge.core.backends.layout import INIT, Connectivity
from spikeforge.errors import DataFileError, ParameterError, SpikeforgeWarning
from spikeforge.core import plugins
from spikeforge.rls import connectivity, data_targets, feedforward, p_matrix, target_checks
from spikeforge.rls.estimate import check_disk, check_host_memory, init_file_bytes
from spikeforge.rls.files import RunDir
from spikeforge.rls.model import Model
from spikeforge.rls.params import SCHEMA, Params
from spikeforge.rls.presets import preset_values
from spikeforge.rls.network_parameters import CELL_KEYS, cell_table, float_dtype, initial_voltage, network_parameters
from spikeforge.rls.trial import run_trial


def new(directory: str | Path, overrides: Mapping[str, Any] | None = None, preset: str | None = None) -> Params:
    """Create data directory ``directory`` with a ``params.toml`` of the defaults plus ``overrides``
    (on top of the values of ``preset``, :mod:`spikeforge.rls.presets`).

    A ``seed`` is drawn from the operating system when none is given, and written to the
    file, so every run of the directory is reproducible.  Warns (:class:`SpikeforgeWarning`)
    when the network would be silent or needs more memory than this machine has.

    Raises:
        ParameterError: an unknown name or invalid value (nothing is written).
        DataFileError: the directory already has a params.toml.
    """
    user = {**preset_values(preset), **(overrides or {})}
    if user.get("seed") is None:
        user["seed"] = streams.fresh_seed()
    params = Params(user)  # validate before touching the disk
    run = RunDir(directory, must_exist=False)
    if run.params_file.exists():
        raise DataFileError(f"{str(run.params_file)!r} already exists; edit it, or choose a new directory")
    try:
        run.path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataFileError(f"cannot create data directory {str(run.path)!r}: {error.strerror or error}") from None
    with run.lock("spikeforge new"):
        if run.params_file.exists():
            raise DataFileError(f"{str(run.params_file)!r} already exists; edit it, or choose a new directory")
        from_preset = {name: f"preset {preset}" for name, value in preset_values(preset).items()
                       if (overrides or {}).get(name, value) == value}
        SCHEMA.write_toml(run.params_file, params.user, origins=from_preset,
                          header=f"Made with --preset {preset} (spikeforge.rls.presets); [preset {preset}] marks its "
                                 "values." if preset else None)
    warn_if_drive_below_threshold(params)
    try:
        check_host_memory(params)
    except ParameterError as error:
        warnings.warn(f"{error} (on this machine)", SpikeforgeWarning, stacklevel=2)
    return params


def _drive_shortfall(p: Params, populations: str = "ei") -> str | None:
    """Words for the populations (of "e", "i") whose constant drive is below threshold, and what
    to change, or None when every drive reaches threshold."""
    below = [pop for pop in populations if p[f"x_bal{pop}"] < p[f"thresh{pop}"]]
    if not below:
        return None
    text = "the constant drive is below threshold: " + " and ".join(
        f"x_bal{pop} = {p[f'x_bal{pop}']:.3g} < thresh{pop} = {p[f'thresh{pop}']:.3g}" for pop in below)
    if {"jx", *(f"x_bal{pop}" for pop in below)} & set(p.user):
        return text + " (as set in params.toml)"
    pop = below[0]
    factor = (1.5 if pop == "e" else 1.0) * 0.08 * p.g  # x_bale = 1.5 jx, x_bali = jx, jx = 0.08 sqrt(k) g
    source = "k as set" if "k" in p.user else f"k = round(ne * pree) = {p.k} (n_cells = {p.n_cells}, pree = {p.pree})"
    hint = f"set k >= {math.ceil((p[f'thresh{pop}'] / factor) ** 2)}, or pree, or x_bal{pop}" if factor > 0 else (
        f"set x_bal{pop}")
    return f"{text} (the derived x_bal{pop} is {factor:.3g} sqrt(k), with {source}); {hint}"


def warn_if_drive_below_threshold(p: Params) -> None:
    """Warn when neither population's constant drive reaches its threshold and there is no noise:
    then no neuron can start to fire."""
    if p.sig_max == 0 and _drive_shortfall(p, "e") and _drive_shortfall(p, "i"):
        warnings.warn(f"the network will be silent: {_drive_shortfall(p)}", SpikeforgeWarning, stacklevel=3)


SILENT_RATE_HZ = 0.5  # init warns below this mean rate


def cell_table_from_plugin(p: Params, overrides) -> dict[str, np.ndarray]:
    """The per-neuron GLIF table of ``p``, with a cell-model plugin's result (a dict) on top."""
    if overrides is None:
        return cell_table(p)
    spec, n = p.cell_model, p.n_cells
    if not isinstance(overrides, dict):
        raise plugins.PluginError(f"plugin {spec!r} returned {type(overrides).__name__}; expected a dict with "
                                  f"'model' and any of {', '.join(CELL_KEYS)}, 'c'")
    unknown = set(overrides) - set(CELL_KEYS) - {"model", "c"}
    if unknown:
        raise plugins.PluginError(f"plugin {spec!r} returned unknown cell parameter {sorted(unknown)[0]!r}; "
                                  f"expected 'model' and any of {', '.join(CELL_KEYS)}, 'c'")
    models = np.asarray(overrides.get("model", "glif1")).astype(str)
    bad = [str(m) for m in np.unique(models) if m not in ("glif1", "glif2", "glif3", "glif4", "glif5")]
    if bad or models.shape not in ((), (n,)):
        raise plugins.PluginError(f"plugin {spec!r} returned model {bad[0] if bad else models.shape!r}; expected "
                                  f"glif1 .. glif5, one name or one per neuron ({n})")
    for name, value in overrides.items():
        if name in ("model", "asc_k", "asc_f", "asc_delta"):
            continue
        array = plugins.check_array(np.broadcast_to(value, (n,)) if np.ndim(value) == 0 else value, spec, name, (n,))
        if name in ("c", "r") and np.any(array <= 0):
            raise plugins.PluginError(f"plugin {spec!r} returned {name} <= 0; expected positive values")
    try:
        return cell_table(p, overrides)
    except ValueError as error:
        raise plugins.PluginError(f"plugin {spec!r} returned after-spike current parameters of the wrong shape "
                                  f"({error}); expected (n_asc,) or ({n}, n_asc)") from None


def init(directory: str | Path, n_tasks: int | None = None, force: bool = False, verbose: bool = True,
         utarg_file: str | Path | None = None, spikerate_file: str | Path | None = None, backend="numba",
         device: str = "cpu", spikes_file: str | Path | None = None, window_ms=None, align_to: str = "start_time",
         smoothing_ms: float | None = None, rate_dt_ms: float | None = None) -> Model:
    """Build the network of ``directory`` and save it to ``init.h5``.

    Args:
        n_tasks: number of tasks (independent targets and stimuli); default 1, or the
            number of tasks in the target file.
        utarg_file: target currents, (time, neurons[, tasks]) in ``.npy`` or HDF5
            (see :mod:`spikeforge.rls.data_targets`); default random-phase sinusoids.
        spikerate_file: target firing rates [Hz], (time, units[, tasks]), converted to currents;
            with a time axis (a ``time`` dataset [ms] in an HDF5 file, or ``rate_dt_ms``) resampled
            onto the learning steps (:func:`spikeforge.rls.data_targets.rate_targets_from_file`).
        spikes_file: recorded spike trains (NWB, neo, or arrays; :mod:`spikeforge.core.recordings`)
            whose trial-averaged PSTHs become the target rates; the recording's window start is
            the model's ``stim_off``.  ``window_ms`` (start, stop) around each trial's
            ``align_to`` event (NWB's trials-table column), ``smoothing_ms`` the PSTH's Gaussian
            kernel (default 25 ms; for rate files default 0).
            Unit k of a recording or rate file is followed by neuron k; neurons beyond the
            units are hidden: held at their init-run mean current, with no target rate.
        force: replace a previous network: its checkpoints, learning curve and test results are
            deleted once the new init.h5 is written; without it their presence is an error.
        verbose: print the init-run rates.
        backend, device: where the init run (the static network, one trial) runs: "numba" on
            the cpu, or "torch" on "cpu" or "cuda[:N]" (worth it for large networks).

    Holds the directory's lock; every input is checked before the init run.  SIGINT or SIGTERM
    stops it at once with nothing written (:class:`~spikeforge.core.interrupts.Interrupted`),
    except during the final write, which is finished first.  Warns (:class:`SpikeforgeWarning`)
    when the network is (nearly) silent.

    Returns:
        The initialised model; ``model.init_stats`` has ``rate_exc_hz`` and ``rate_inh_hz``.
    """
    if n_tasks is not None and (isinstance(n_tasks, bool) or not isinstance(n_tasks, numbers.Integral) or n_tasks < 1):
        raise ParameterError(f"number of tasks = {n_tasks!r} must be an integer >= 1")
    given = [name for name, value in (("target-current", utarg_file), ("spike-rate", spikerate_file),
                                      ("spike", spikes_file)) if value is not None]
    if len(given) > 1:
        raise ParameterError(f"give one target file, not a {given[0]} file and a {given[1]} file")
    for option, value, needs, what in (("--window", window_ms, spikes_file, "a spike file (--spikes)"),
                                       ("--align-to", None if align_to == "start_time" else align_to, spikes_file,
                                        "a spike file (--spikes)"),
                                       ("--rate-dt", rate_dt_ms, spikerate_file, "a spike-rate file"),
                                       ("--smoothing", smoothing_ms, spikes_file or spikerate_file,
                                        "a spike or spike-rate file")):
        if value is not None and needs is None:
            raise ParameterError(f"{option} = {value} applies only to {what}")
    run = RunDir(directory)
    with StopSignals() as signals, run.lock("spikeforge init"):
        p = run.params()
        stale = [run.checkpoint_file(label) for label in run.checkpoint_labels()]
        stale += [f for f in (run.learning_curve_file, run.test_file) if f.exists()]
        if (stale or run.init_file.exists()) and not force:  # before reading any data
            what = stale[0].name if stale else run.init_file.name
            raise DataFileError(
                f"{str(run.path)!r} already holds an initialised network ({what}); init would replace it: "
                "use a new directory or pass --force to replace it and delete its results"
            )
        data_file = next((f for f in (utarg_file, spikerate_file, spikes_file) if f is not None), None)
        currents = rate_targets = None  # read and check before the (long) init run
        if utarg_file is not None:
            what = "target-current"
            currents = data_targets.as_task_major(data_targets.load_array(utarg_file, what), p, n_tasks, utarg_file,
                                                  what)
            n_tasks = currents.shape[0]
        elif spikerate_file is not None:
            rate_targets = data_targets.rate_targets_from_file(p, spikerate_file, n_tasks, rate_dt_ms,
                                                               0.0 if smoothing_ms is None else smoothing_ms)
        elif spikes_file is not None:
            spikes = recordings.load(spikes_file, window_ms, align_to)
            rate_targets = data_targets.rate_targets_from_spikes(
                p, spikes, data_targets.DEFAULT_PSTH_SMOOTHING_MS if smoothing_ms is None else smoothing_ms,
                f"spike file {str(spikes_file)!r}")
        if rate_targets is not None:
            target_checks.check_target_rates(p, rate_targets.rates, rate_targets.unit_ids, rate_targets.source)
            if n_tasks is not None and rate_targets.rates.shape[0] != n_tasks:
                raise DataFileError(f"{rate_targets.source} has {rate_targets.rates.shape[0]} task(s), but {n_tasks} "
                                    f"were asked for")
            n_tasks = rate_targets.rates.shape[0]
        n_tasks = 1 if n_tasks is None else n_tasks
        engine = as_backend(backend, device)  # checks the choice before the long work
        check_host_memory(p, n_tasks=n_tasks)
        check_disk(run.path, init_file_bytes(p, n_tasks), "init.h5")
        warn_if_drive_below_threshold(p)
        signals.raise_if_requested()  # a signal some library swallowed during start-up
        model = _build(run, p, engine, n_tasks, currents, rate_targets, verbose)
        signals.raise_if_requested()
        attrs = {"targets_from": "sinusoids" if data_file is None else str(data_file)}
        if data_file is not None:
            attrs["targets_sha256"] = provenance.file_digest(data_file)
        if rate_targets is not None:  # test measures the network's PSTHs with the targets' smoothing
            attrs["psth_smoothing_ms"] = data_targets.DEFAULT_PSTH_SMOOTHING_MS if smoothing_ms is None or (
                spikerate_file is not None and smoothing_ms == 0) else float(smoothing_ms)
        with signals.deferred("finishing the write of init.h5"):
            model.save_init(run, attrs, replaces=stale + (run.test_figures() if stale else []))
        signals.raise_if_requested(f"interrupted by a signal while writing {run.init_file}; the write was completed")
    return model


def _build(run: RunDir, p: Params, engine, n_tasks: int, currents: np.ndarray | None,
           rate_targets: data_targets.RateTargets | None, verbose: bool) -> Model:
    """Connectivity, init run, plastic inputs, targets, stimulus and initial P of a new network."""
    seed, dtype, n = p.seed, float_dtype(p), p.n_cells

    def plugin(slot: str, *arguments):
        return plugins.call(p[slot], run.path, p[f"{slot}_args"], p, *arguments)

    static = connectivity.static_from_plugin(plugin("static_weights", streams.stream(seed, "static_weights")),
                                             p.static_weights, n)
    static = static._replace(weight=static.weight.astype(dtype))
    cells = None
    if p.cell_model != "lif":
        overrides = plugin("cell_model") if ":" in p.cell_model else None
        cells = cell_table_from_plugin(p, overrides)
    net = Connectivity(static.ptr, static.post, static.weight, np.zeros(p.n_cells + 1, dtype=np.int64),
                       np.zeros(0, dtype=np.int32), np.zeros(0, dtype=dtype))
    run_rng = streams.stream(seed, "init_run")
    no_stimulus = np.zeros((1, p.n_cells), dtype=dtype)
    result = run_trial(p, engine.put(net), engine.put(network_parameters(p, cells)), INIT, initial_voltage(p, run_rng, cells),
                       engine.put(no_stimulus), run_rng, backend=engine)
    rates = result.spike_count / (p.train_time / 1000)
    rate_exc, rate_inh = float(rates[: p.ne].mean()), float(rates[p.ne:].mean())
    if verbose:
        print(f"init run: mean excitatory rate {rate_exc:.3f} Hz, mean inhibitory rate {rate_inh:.3f} Hz")
    _check_init_activity(p, result.spike_count, rate_exc, rate_inh)
    ff_rng = streams.stream(seed, "feedforward")
    rows_after_stimulus = p.steps.n_steps - p.steps.stim_off_step
    ff_probability = plugins.check_array(plugin("ff_rates", ff_rng), p.ff_rates, "feed-forward spike probabilities",
                                         (rows_after_stimulus, p.lx))
    plastic = connectivity.plastic_from_plugin(
        plugin("plastic_weights", result.spike_count, streams.stream(seed, "plastic_weights")), p.plastic_weights, n)
    plastic = connectivity.with_feedforward(plastic, feedforward.initial_weights(p, ff_rng))
    plastic = plastic._replace(weight=plastic.weight.astype(dtype))
    ustd0 = float(result.u_std[: min(p.u0_ncells, p.n_cells)].mean())
    if currents is not None:
        task_targets = currents
    elif rate_targets is not None:
        shift = (data_targets.calibrated_threshold_shift(p, ustd0, result.u_mean, rates)
                 if p.rate_conversion == "calibrated" else (0.0, 0.0))
        task_targets = data_targets.currents_for_rate_targets(p, rate_targets, ustd0, result.u_mean, shift)
    else:
        task_targets = np.stack([
            plugins.check_array(plugin("targets", result.u_mean, streams.stream(seed, "targets", task), task),
                                p.targets, f"targets of task {task}", (p.steps.learn_nsteps, n))
            for task in range(n_tasks)])
    stimulus_rows = p.steps.stim_off_step - p.steps.stim_on_step
    task_stimuli = np.stack([
        plugins.check_array(plugin("stimulus", streams.stream(seed, "stimulus", task), task), p.stimulus,
                            f"stimulus of task {task}", (stimulus_rows, n)).astype(dtype)
        for task in range(n_tasks)])
    if p.p_compute == "small":  # no P: the history of filtered spike trains starts empty
        P = np.zeros((0,), dtype=p.p_precision)
    else:
        P = connectivity.initial_p(plastic.weight, plastic.count, p.penlambda, p.penmu, n_ff=p.lx,
                                   penlam_ff=p.penlam_ff)
        P = p_matrix.to_memory_layout(p_matrix.to_file_layout(P * p.p_scale, p.p_storage, p.p_precision),
                                      p.p_storage)
    init_stats = {"spike_count": result.spike_count, "u_mean": result.u_mean, "u_std": result.u_std,
                  "rate_exc_hz": rate_exc, "rate_inh_hz": rate_inh, "ustd0": ustd0, "seed": seed,
                  "n_tasks": n_tasks}
    if rate_targets is not None:
        init_stats["rate_conversion_threshold_shift"] = list(shift)  # excitatory, inhibitory [voltage]
    stream_paths = [("static_weights",), ("init_run",), ("plastic_weights",), ("feedforward",)]
    stream_paths += [(kind, task) for task in range(n_tasks) for kind in ("targets", "stimulus")]
    init_stats["rng_streams"] = [streams.describe(seed, *path) for path in stream_paths]
    return Model(p, static, plastic, P, task_targets, task_stimuli, init_stats, ff_probability,
                 target_rates=None if rate_targets is None else data_targets.rates_per_neuron(p, rate_targets),
                 unit_ids=None if rate_targets is None else rate_targets.unit_ids,
                 unit_neurons=None if rate_targets is None else rate_targets.neurons, cells=cells,
                 network_id=provenance.new_identity())


def _check_init_activity(p: Params, spike_count: np.ndarray, rate_exc: float, rate_inh: float) -> None:
    """Raise ParameterError when the init run had no spike at all (RLS would change nothing); warn
    when either population's mean rate is below SILENT_RATE_HZ or above the rate ceiling of
    :func:`spikeforge.rls.target_checks.rate_ceiling_hz` (saturated)."""
    shortfall = _drive_shortfall(p)
    advice = f"; {shortfall}" if shortfall else "; raise the drive (x_bale, x_bali), the noise (sig) or k"
    if not spike_count.any():
        raise ParameterError(f"the init run produced no spike in {p.train_time:g} ms: RLS learns from the network's "
                             f"filtered spike trains and would change nothing{advice}")
    rates = (("excitatory", rate_exc), ("inhibitory", rate_inh))
    low = [f"{name} {rate:.3g} Hz" for name, rate in rates if rate < SILENT_RATE_HZ]
    if low:
        warnings.warn(f"the init run is nearly silent ({' and '.join(low)}, below {SILENT_RATE_HZ} Hz): RLS cannot "
                      f"learn from neurons that do not spike{advice}", SpikeforgeWarning, stacklevel=3)
    ceiling = target_checks.rate_ceiling_hz(p)
    high = [f"{name} {rate:.3g} Hz" for name, rate in rates if rate > ceiling]
    if high:
        warnings.warn(f"the init run is saturated ({' and '.join(high)}, above {ceiling:g} Hz): lower the drive "
                      f"(x_bale, x_bali) or raise the inhibition (jei, jii)", SpikeforgeWarning, stacklevel=3)
