"""What stays constant in a trial of an RLS network, derived from its parameters: the cell models'
parameters (LIF, or the per-neuron GLIF table), the synaptic filters, the external drive and noise,
and the trial's timeline (:class:`spikeforge.core.backends.layout.NetworkParameters`); and the
initial voltages the cell model prescribes.
"""

from __future__ import annotations

import numpy as np

from spikeforge.core import rng as streams
from spikeforge.core.backends.layout import (GLIF, LIF, Drive, NetworkParameters, Synapses, Timeline,
                                             with_population_split)
from spikeforge.core.cells import glif, lif
from spikeforge.rls.params import Params


def float_dtype(p: Params) -> type:
    """numpy dtype of the simulation state and weights."""
    return np.float64 if p.float_precision == "float64" else np.float32


def per_neuron(p: Params, exc_value: float, inh_value: float) -> np.ndarray:
    """An (n_cells,) float64 array with one value for E neurons and another for I neurons."""
    return np.where(np.arange(p.n_cells) < p.ne, exc_value, inh_value).astype(np.float64)


def thresholds(p: Params) -> np.ndarray:
    """Spike threshold of each neuron."""
    return per_neuron(p, p.threshe, p.threshi)


def uniform_per_neuron(p: Params, name: str, count: int) -> np.ndarray:
    """(count,) values of parameter ``name``: all ``p.<name>``, or, when ``p.<name>_max`` is larger,
    drawn uniformly from [name, name_max] from the stream ``(name,)`` of the run's seed."""
    low, high = p[name], p[f"{name}_max"]
    if high == low:
        return np.full(count, low, dtype=np.float64)
    return low + (high - low) * streams.stream(p.seed, name).random(count)


def network_parameters(p: Params, cells: dict[str, np.ndarray] | None = None) -> NetworkParameters:
    """What stays constant in a trial of the network of parameters ``p``, by concern; ``cells``: for
    GLIF models the per-neuron cell table (default: from the parameters)."""
    dtype = float_dtype(p)
    s = p.steps
    tau_plas = uniform_per_neuron(p, "tau_plas", p.n_cells + p.lx)  # feed-forward neurons last
    # noise std per step (tsn.md 3.4): voltage sig*sqrt(dt/tau), current sig*sqrt(tau/dt); tau_meme for all
    scale = np.sqrt(p.dt / p.tau_meme) if p.noise_model == "voltage" else np.sqrt(p.tau_meme / p.dt)
    constants = NetworkParameters(
        cell_kind=LIF if p.cell_model == "lif" else GLIF,
        lif=lif.parameters(p.dt, per_neuron(p, p.tau_meme, p.tau_memi), thresholds(p), p.vre, s.refrac_steps, dtype),
        glif=glif_parameters(p, cells),
        # scalars in the state's type too: numba would compute a float32 state's filters in float64
        synapses=Synapses(decay_e=dtype(1 - p.dt / p.tau_bale), kick_e=dtype(1 / p.tau_bale),
                          decay_i=dtype(1 - p.dt / p.tau_bali), kick_i=dtype(1 / p.tau_bali),
                          decay_plastic=(1 - p.dt / tau_plas).astype(dtype),
                          kick_plastic=(1 / tau_plas).astype(dtype)),
        drive=Drive(x_bal=per_neuron(p, p.x_bale, p.x_bali).astype(dtype),
                    noise_scale=(uniform_per_neuron(p, "sig", p.n_cells) * scale).astype(dtype),
                    noise_on_voltage=p.noise_model == "voltage"),
        timeline=Timeline(stim_on_step=s.stim_on_step, stim_off_step=s.stim_off_step, u0_skip_steps=s.u0_skip_steps,
                          steps_per_ms=s.steps_per_ms, wid_steps=s.wid_steps, learn_step=s.learn_step,
                          wid_bins=round(2 * p.wid / p.learn_every - 1)),
    )
    return with_population_split(constants, p.n_cells)


CELL_KEYS = ("r", "el", "b_s", "delta_thresh_s", "f_v", "delta_v", "a_v", "b_v", "asc_k", "asc_f", "asc_delta")


def cell_table(p: Params, overrides: dict | None = None) -> dict[str, np.ndarray]:
    """Per-neuron GLIF parameters: the ``glif_*`` parameters of ``p`` for model ``p.cell_model``,
    with ``overrides`` (from a cell-model plugin: "model" and any of CELL_KEYS, "c") on top.

    Returns the per-neuron fields of glif.Parameters except thresh and dt_over_c, plus "c" (capacitance) and "model"
    (one name per neuron).  For ``cell_model = "lif"`` the table describes GLIF1 neurons, which
    the LIF kernel does not read.
    """
    overrides = dict(overrides or {})
    default_model = p.cell_model if p.cell_model in glif.MODELS else "glif1"
    models = np.broadcast_to(np.asarray(overrides.pop("model", default_model)), (p.n_cells,)).astype(str)
    values = {"r": p.glif_r, "el": p.glif_el, "b_s": p.glif_b_s, "delta_thresh_s": p.glif_delta_thresh_s,
              "f_v": p.glif_f_v, "delta_v": p.glif_delta_v, "a_v": p.glif_a_v, "b_v": p.glif_b_v,
              "asc_k": p.glif_asc_k, "asc_f": p.glif_asc_f, "asc_delta": p.glif_asc_delta}
    capacitance = overrides.pop("c", per_neuron(p, p.tau_meme, p.tau_memi) / np.asarray(overrides.get("r", p.glif_r)))
    values.update(overrides)
    n_asc = np.asarray(values["asc_k"]).shape[-1] if any(glif.MODELS[m][0] for m in set(models)) else 0
    table = glif.per_neuron_parameters(models, values, n_asc, p.dt)
    table["c"] = np.broadcast_to(np.asarray(capacitance, dtype=np.float64), (p.n_cells,)).copy()
    table["model"] = models
    return table


def glif_parameters(p: Params, table: dict[str, np.ndarray] | None = None) -> glif.Parameters:
    """The GLIF parameters of a cell table (default: from the parameters, :func:`cell_table`)."""
    table = cell_table(p) if table is None else table
    dtype = float_dtype(p)
    per_neuron_fields = [name for name in glif.Parameters._fields
                         if name not in ("thresh", "vre", "dt", "dt_over_c")]
    fields = {name: np.asarray(table[name]).astype(np.uint8 if name == "reset_rule" else dtype)
              for name in per_neuron_fields}
    return glif.Parameters(thresh=thresholds(p).astype(dtype), vre=float(p.vre), dt=dtype(p.dt),
                           dt_over_c=(p.dt / table["c"]).astype(dtype), **fields)



def initial_voltage(p: Params, rng: np.random.Generator, cells: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """A trial's initial voltages, from the trial's stream, as the cell model prescribes."""
    if p.cell_model == "lif":
        return lif.initial_voltage(rng, p.vre, thresholds(p))
    table = cell_table(p) if cells is None else cells
    return glif.initial_voltage(rng, table["reset_rule"], p.vre, thresholds(p), table["e_l"])
