"""``new`` and ``init``: create a data directory, then build and save the network.

``init`` follows the reference (tsn.md 4): static connectivity; a run of the static
network alone with the constant drive, which gives the init rates, each neuron's mean
current (the targets' offset) and the current's temporal std; plastic inputs chosen
among the most active neurons; targets and stimulus per task (each task from its own
streams, unlike the reference, whose tasks all got the same phases when seeded); the
initial P.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.core import rng as streams
from spikeforge.core.backends import get_backend
from spikeforge.core.backends.layout import INIT, Connectivity
from spikeforge.errors import DataFileError, ParameterError
from spikeforge.core import plugins
from spikeforge.rls import connectivity, data_targets, feedforward, p_matrix
from spikeforge.rls.files import RunDir
from spikeforge.rls.model import Model
from spikeforge.rls.params import SCHEMA, Params
from spikeforge.rls.simulation import CELL_KEYS, cell_table, constants, float_dtype, initial_voltage, run_trial


def new(directory: str | Path, overrides: Mapping[str, Any] | None = None) -> Params:
    """Create data directory ``directory`` with a ``params.toml`` of the defaults plus ``overrides``.

    A ``seed`` is drawn from the operating system when none is given, and written to the
    file, so every run of the directory is reproducible.

    Raises:
        ParameterError: an unknown name or invalid value (nothing is written).
        DataFileError: the directory already has a params.toml.
    """
    user = dict(overrides or {})
    if user.get("seed") is None:
        user["seed"] = streams.fresh_seed()
    params = Params(user)  # validate before touching the disk
    run = RunDir(directory, must_exist=False)
    if run.params_file.exists():
        raise DataFileError(f"{str(run.params_file)!r} already exists; edit it, or choose a new directory")
    run.path.mkdir(parents=True, exist_ok=True)
    SCHEMA.write_toml(run.params_file, params.user)
    return params


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
         utarg_file: str | Path | None = None, spikerate_file: str | Path | None = None, backend: str = "numba",
         device: str = "cpu") -> Model:
    """Build the network of ``directory`` and save it to ``init.h5``.

    Args:
        n_tasks: number of tasks (independent targets and stimuli); default 1, or the
            number of tasks in the target file.
        utarg_file: target currents, (time, neurons[, tasks]) in ``.npy`` or HDF5
            (see :mod:`spikeforge.rls.data_targets`); default random-phase sinusoids.
        spikerate_file: target firing rates [Hz], same shapes, converted to currents.
        force: delete existing checkpoints, learning curve and test results, which belong
            to the previous network; without it their presence is an error.
        verbose: print the init-run rates.
        backend, device: where the init run (the static network, one trial) runs: "numba" on
            the cpu, or "torch" on "cpu" or "cuda[:N]" (worth it for large networks).

    Returns:
        The initialised model; ``model.init_stats`` has ``rate_exc_hz`` and ``rate_inh_hz``.
    """
    run = RunDir(directory)
    p = run.params()
    if n_tasks is not None and n_tasks < 1:
        raise ParameterError(f"number of tasks = {n_tasks} must be >= 1")
    if utarg_file is not None and spikerate_file is not None:
        raise ParameterError("give either a target-current file or a spike-rate file, not both")
    data_file, what = (utarg_file, "target-current") if utarg_file is not None else (spikerate_file, "spike-rate")
    data = None
    if data_file is not None:  # read and check before the (long) init run
        data = data_targets.as_task_major(data_targets.load_array(data_file, what), p, n_tasks, data_file, what)
        n_tasks = data.shape[0]
    n_tasks = 1 if n_tasks is None else n_tasks
    stale = [run.checkpoint_file(label) for label in run.checkpoint_labels()]
    stale += [f for f in (run.learning_curve_file, run.test_file) if f.exists()]
    if stale and not force:
        raise DataFileError(
            f"{str(run.path)!r} already holds results of a trained network ({stale[0].name}); "
            "init would make them inconsistent: use a new directory or pass --force to delete them"
        )
    engine = get_backend(backend, device)  # checks the choice before the long work
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
    result = run_trial(p, engine.put(net), engine.put(constants(p, cells)), INIT, initial_voltage(p, run_rng, cells),
                       engine.put(no_stimulus), run_rng, backend=engine)
    rates = result.spike_count / (p.train_time / 1000)
    rate_exc, rate_inh = float(rates[: p.ne].mean()), float(rates[p.ne:].mean())
    if verbose:
        print(f"init run: mean excitatory rate {rate_exc:.3f} Hz, mean inhibitory rate {rate_inh:.3f} Hz")
    ff_rng = streams.stream(seed, "feedforward")
    rows_after_stimulus = p.steps.n_steps - p.steps.stim_off_step
    ff_probability = plugins.check_array(plugin("ff_rates", ff_rng), p.ff_rates, "feed-forward spike probabilities",
                                         (rows_after_stimulus, p.lx))
    plastic = connectivity.plastic_from_plugin(
        plugin("plastic_weights", result.spike_count, streams.stream(seed, "plastic_weights")), p.plastic_weights, n)
    plastic = connectivity.with_feedforward(plastic, feedforward.initial_weights(p, ff_rng))
    plastic = plastic._replace(weight=plastic.weight.astype(dtype))
    ustd0 = float(result.u_std[: min(p.u0_ncells, p.n_cells)].mean())
    if utarg_file is not None:
        task_targets = data
    elif spikerate_file is not None:
        task_targets = data_targets.currents_from_rates(p, data, ustd0)
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
                  "rate_exc_hz": rate_exc, "rate_inh_hz": rate_inh,
                  "ustd0": ustd0, "targets_from": str(data_file) if data_file is not None else "sinusoids"}
    model = Model(p, static, plastic, P, task_targets, task_stimuli, init_stats, ff_probability,
                  target_rates=data if spikerate_file is not None else None, cells=cells)
    stream_paths = [("static_weights",), ("init_run",), ("plastic_weights",), ("feedforward",)]
    stream_paths += [(kind, task) for task in range(n_tasks) for kind in ("targets", "stimulus")]
    attrs = {k: v for k, v in init_stats.items() if not isinstance(v, np.ndarray)}
    attrs |= {"seed": seed, "n_tasks": n_tasks, "rng_streams": [streams.describe(seed, *path) for path in stream_paths]}
    for stale_file in stale:
        stale_file.unlink()
    model.save_init(run, attrs)
    return model
