"""Parameters of an RLS-trained spiking network (the TrainSpikingNet model).

Units follow the reference: time in ms, voltage dimensionless (threshold 1, reset 0),
currents in units of threshold per ms times ms, so that a static weight is the charge
a spike delivers.  Defaults are those of TrainSpikingNet.jl's ``param.jl``; derived
values (``k``, ``l``, ``je``, ``x_bale``, ``wpee``, ...) are recomputed from the values the
user sets, unless the user sets them too.

The README has a table from the reference's names to these.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from spikeforge.core.params import Param, Schema
from spikeforge.rls.p_matrix import LARGEST, default_scale, largest_initial_entry
from spikeforge.errors import ParameterError


def _sqrt_k(v: Mapping[str, Any]) -> float:
    return math.sqrt(v["k"])


def _largest_p(v: Mapping[str, Any]) -> float:
    """The largest entry of the initial P (of every neuron, recurrent and feed-forward inputs)."""
    return largest_initial_entry(v["penlambda"], v["penlam_ff"], v["lx"])


SEED_LIMIT = 2**63  # seeds are in [0, 2^63)
MAX_STEPS = 2**31 - 1  # steps per trial: spike times are stored as int32 step numbers
MAX_NEURONS = 2**31 - 1  # neurons plus feed-forward inputs: synapse targets are int32

# Parameters that init.h5 does not depend on: they may be changed in params.toml between
# `init` and `train`/`test`.  A change of any other parameter after init is refused.
CHANGEABLE_AFTER_INIT = ("wid", "max_rate", "benchmark", "rls_gain", "correlation_var", "task_schedule",
                         "cell_state_persists")


PARAMS = [
    # --- numerics and storage
    Param("seed", int, "master seed of every random stream, in [0, 2**63) (chosen at `new` when not given)",
          optional=True, low=0, high=SEED_LIMIT - 1),
    Param("dt", float, "Euler time step [ms]", 0.1, unit="ms"),
    Param("float_precision", str, "floating type of the simulation state and weights", "float64",
          choices=("float64", "float32")),
    Param("p_storage", str, "layout of each neuron's P: packed (upper triangle: half the memory, the fastest "
          "update), symmetric (full blocks kept exactly symmetric), or full (general rank-1 update)", "packed",
          choices=("packed", "symmetric", "full")),
    Param("p_precision", str, "element type of P", "float32", choices=("float32", "float64", "float16", "int16")),
    Param("p_compute", str, "RLS variant: fast keeps P per neuron; small keeps only a short history of r and "
          "re-solves at every update (memory-light, slower, a sliding-window least squares)", "fast",
          choices=("fast", "small")),
    Param("p_history", float, "small mode: length of the history of filtered spike trains [ms]", 100.0, unit="ms"),
    Param("rls_gain", str,
          "weight step: paper = w -= e*P_new*a (with 1/(1+a'Pa)), latest = w -= e*P_old*a (TrainSpikingNet HEAD)",
          "paper", choices=("paper", "latest")),
    Param("benchmark", bool, "compute RLS updates but do not apply them (rates stay constant)", False),
    # --- network size and timing
    Param("n_cells", int, "number of neurons", 4096, low=2),
    Param("ne", int, "number of excitatory neurons (0 .. ne-1); the rest are inhibitory",
          derive=lambda v: v["n_cells"] // 2, derive_doc="n_cells // 2"),
    Param("ni", int, "number of inhibitory neurons", derive=lambda v: v["n_cells"] - v["ne"],
          derive_doc="n_cells - ne"),
    Param("train_duration", float, "length of the learning window after the stimulus [ms]", 1000.0, unit="ms"),
    Param("stim_on", float, "stimulus onset [ms]", 800.0, unit="ms"),
    Param("stim_off", float, "stimulus offset; learning starts here [ms]", 1000.0, unit="ms"),
    Param("train_time", float, "length of a trial [ms]", derive=lambda v: v["stim_off"] + v["train_duration"],
          derive_doc="stim_off + train_duration", unit="ms"),
    Param("learn_every", float, "interval between RLS updates [ms]", 10.0, unit="ms"),
    Param("wid", float, "half-width of the boxcar averaging currents for correlation and plots [ms]", 50.0, unit="ms"),
    Param("max_rate", float, "spike times beyond max_rate * train_time per neuron and trial are not stored [Hz]",
          500.0, unit="Hz"),
    Param("u0_skip_time", float, "init run: average currents only after this time [ms]", 1000.0, unit="ms"),
    Param("u0_ncells", int, "init run: neurons whose current std is averaged into ustd0", 1000),
    # --- neurons
    Param("refrac", float, "absolute refractory period [ms]", 0.1, unit="ms"),
    Param("vre", float, "reset voltage (and mean initial voltage)", 0.0),
    Param("threshe", float, "threshold of excitatory neurons", 1.0),
    Param("threshi", float, "threshold of inhibitory neurons", 1.0),
    Param("tau_meme", float, "membrane time constant of excitatory neurons [ms]", 10.0, unit="ms"),
    Param("tau_memi", float, "membrane time constant of inhibitory neurons [ms]", 10.0, unit="ms"),
    Param("tau_bale", float, "decay time of static excitatory synapses [ms]", 3.0, unit="ms"),
    Param("tau_bali", float, "decay time of static inhibitory synapses [ms]", 3.0, unit="ms"),
    Param("tau_plas", float, "decay time of plastic synapses and filtered spike trains [ms]", 150.0, unit="ms"),
    Param("tau_plas_max", float, "per-neuron tau_plas drawn uniformly from [tau_plas, tau_plas_max] (the reference's "
          "example: U(70, 150)); equal to tau_plas: one value for all [ms]", derive=lambda v: v["tau_plas"],
          derive_doc="tau_plas", unit="ms"),
    Param("cell_model", str, "neuron model: lif, glif1 .. glif5, or a plugin returning per-neuron GLIF "
          "parameters (see spikeforge.core.cells)", "lif"),
    Param("cell_model_args", dict, "keyword arguments of a cell_model plugin", {}),
    Param("cell_state_persists", bool, "GLIF adaptation state carries over from one trial to the next", False),
    Param("glif_r", float, "GLIF membrane resistance; capacitance is tau_mem / glif_r", 1.0),
    Param("glif_el", float, "GLIF resting potential E_L", 0.0),
    Param("glif_b_s", float, "GLIF2/4/5 decay rate of the spike-induced threshold [1/ms]", 0.1, unit="1/ms"),
    Param("glif_delta_thresh_s", float, "GLIF2/4/5 threshold increment per spike", 0.1),
    Param("glif_f_v", float, "GLIF2/4/5 voltage reset: v <- E_L + f_v (v - E_L) - delta_v", 0.1),
    Param("glif_delta_v", float, "GLIF2/4/5 voltage reset offset", 0.1),
    Param("glif_asc_k", list, "GLIF3/4/5 decay rates of the after-spike currents [1/ms]", [0.1, 0.2, 0.3], unit="1/ms"),
    Param("glif_asc_f", list, "GLIF3/4/5 after-spike current reset factor, one per current", [0.9, 0.9, 0.9]),
    Param("glif_asc_delta", list, "GLIF3/4/5 after-spike current increment per spike, one per current",
          [0.1, 0.1, 0.1]),
    Param("glif_a_v", float, "GLIF5 coupling of the voltage-induced threshold to v - E_L [1/ms]", 0.1, unit="1/ms"),
    Param("glif_b_v", float, "GLIF5 decay rate of the voltage-induced threshold [1/ms]", 0.9, unit="1/ms"),
    Param("noise_model", str, "where white noise enters", "voltage", choices=("voltage", "current")),
    Param("sig", float, "noise standard deviation (voltage per sqrt(tau_meme) time; 0 = none)", 0.0),
    Param("sig_max", float, "per-neuron sig drawn uniformly from [sig, sig_max]; equal to sig: one value for all",
          derive=lambda v: v["sig"], derive_doc="sig"),
    # --- static connectivity
    Param("pree", float, "E->E connection probability; sets k", 0.1, low=0.0, high=1.0),
    Param("prie", float, "I<-E connection probability (not used by the default connectivity)", 0.1, low=0.0, high=1.0),
    Param("prei", float, "E<-I connection probability (not used by the default connectivity)", 0.1, low=0.0, high=1.0),
    Param("prii", float, "I<-I connection probability (not used by the default connectivity)", 0.1, low=0.0, high=1.0),
    Param("k", int, "static in-degree per population; each neuron has fixed out-degree 2k",
          derive=lambda v: round(v["ne"] * v["pree"]), derive_doc="round(ne * pree)", low=0),
    Param("g", float, "unit scale of currents", 1.0),
    Param("je", float, "excitatory static weight scale",
          derive=lambda v: 2 / _sqrt_k(v) * v["tau_meme"] * v["g"] if v["k"] > 0 else 0.0,
          derive_doc="2 / sqrt(k) * tau_meme * g"),
    Param("ji", float, "inhibitory static weight scale",
          derive=lambda v: 2 / _sqrt_k(v) * v["tau_memi"] * v["g"] if v["k"] > 0 else 0.0,
          derive_doc="2 / sqrt(k) * tau_memi * g"),
    Param("jx", float, "external drive scale", derive=lambda v: 0.08 * _sqrt_k(v) * v["g"],
          derive_doc="0.08 * sqrt(k) * g"),
    Param("jee", float, "E->E static weight (charge per spike)", derive=lambda v: 0.15 * v["je"],
          derive_doc="0.15 * je"),
    Param("jie", float, "E->I static weight", derive=lambda v: v["je"], derive_doc="je"),
    Param("jei", float, "I->E static weight", derive=lambda v: -0.75 * v["ji"], derive_doc="-0.75 * ji"),
    Param("jii", float, "I->I static weight", derive=lambda v: -v["ji"], derive_doc="-ji"),
    Param("x_bale", float, "constant external drive of excitatory neurons", derive=lambda v: 1.5 * v["jx"],
          derive_doc="1.5 * jx"),
    Param("x_bali", float, "constant external drive of inhibitory neurons", derive=lambda v: v["jx"],
          derive_doc="jx"),
    # --- stimulus (Ornstein-Uhlenbeck, added to the drive between stim_on and stim_off)
    Param("stim_mu", float, "mean of the OU stimulus", 0.0),
    Param("stim_b", float, "mean-reversion rate of the OU stimulus [1/ms]", 1 / 20, unit="1/ms"),
    Param("stim_sig", float, "noise amplitude of the OU stimulus [1/sqrt(ms)]", 0.2, unit="1/ms**0.5"),
    # --- targets (sinusoids)
    Param("target_amp", float, "amplitude of the sinusoid targets", 0.5),
    Param("target_period", float, "period of the sinusoid targets [ms]", 1000.0, unit="ms"),
    Param("rate_conversion", str, "how target rates become currents: siegert (the reference: the Siegert "
          "function with the assumed input noise) or calibrated (its threshold shifted per population so that it "
          "gives the init run's own rates at the init run's currents)", "siegert", choices=("siegert", "calibrated")),
    Param("target_bias", str, "a bias common to all neurons added to the sinusoid targets: zero, or ou (an "
          "Ornstein-Uhlenbeck process in time starting at 0, one per task)", "zero", choices=("zero", "ou")),
    Param("target_bias_mu", float, "mean the OU target bias reverts to", 0.0),
    Param("target_bias_b", float, "mean-reversion rate of the OU target bias [1/ms]", 1 / 400, unit="1/ms", low=0.0),
    Param("target_bias_sig", float, "noise amplitude of the OU target bias [1/sqrt(ms)]", 0.02, unit="1/ms**0.5",
          low=0.0),
    # --- plastic connectivity and learning
    Param("l", int, "plastic inputs per population", derive=lambda v: round(2 * _sqrt_k(v)),
          derive_doc="round(2 * sqrt(k))", low=0),
    Param("lexc", int, "plastic excitatory inputs per neuron", derive=lambda v: v["l"], derive_doc="l", low=0),
    Param("linh", int, "plastic inhibitory inputs per neuron", derive=lambda v: v["l"], derive_doc="l", low=0),
    Param("lx", int, "number of feed-forward Poisson neurons; each projects plastically to every neuron", 0, low=0),
    Param("wpx", float, "scale of the initial feed-forward weights (normal, mean 0)", 0.0),
    Param("ff_mu", float, "mean rate of the feed-forward neurons' OU rate profiles [Hz]", 5.0, unit="Hz"),
    Param("ff_b", float, "mean-reversion rate of the feed-forward OU rates [1/ms]", 1 / 400, unit="1/ms"),
    Param("ff_sig", float, "noise amplitude of the feed-forward OU rates [Hz/sqrt(ms)]", 0.2, unit="Hz/ms**0.5"),
    Param("ff_smooth", float, "half-width of the moving average smoothing the feed-forward rates [ms]", 50.0, unit="ms"),
    Param("frac", float, "plastic inputs are drawn from this top fraction of each population by init rate",
          1.0),
    Param("wpscale", float, "scale of the initial plastic weights", derive=lambda v: 2 * math.sqrt(v["l"]),
          derive_doc="2 * sqrt(l)"),
    Param("wpee", float, "initial plastic E->E weight",
          derive=lambda v: 2 * v["tau_meme"] * v["g"] / v["wpscale"] if v["wpscale"] > 0 else 0.0,
          derive_doc="2 * tau_meme * g / wpscale"),
    Param("wpie", float, "initial plastic E->I weight", derive=lambda v: 2 * v["tau_memi"] * v["g"] / v["wpscale"]
          if v["wpscale"] > 0 else 0.0, derive_doc="2 * tau_memi * g / wpscale"),
    Param("wpei", float, "initial plastic I->E weight", derive=lambda v: -v["wpee"], derive_doc="-wpee"),
    Param("wpii", float, "initial plastic I->I weight", derive=lambda v: -v["wpie"], derive_doc="-wpie"),
    Param("penlambda", float, "ridge penalty on recurrent plastic weights (diagonal of the initial P^-1)", 0.8, low=0.0, low_open=True),
    Param("penlam_ff", float, "ridge penalty on feed-forward plastic weights", 1.0, low=0.0, low_open=True),
    Param("p_scale", float, "P is stored as P * p_scale (for int16: round(P * p_scale))",
          derive=lambda v: default_scale(v["p_precision"], _largest_p(v)),
          derive_doc="for int16 the largest power of 2 keeping max(1/penlambda, 1/penlam_ff if lx > 0) * p_scale "
          "<= 32767; for float16 1 unless that exceeds 65504; else 1"),
    Param("penmu", float, "penalty coupling plastic weights of the same sign", 0.01),
    # --- plugins: "module:function" or "path/file.py:function" (relative to the data directory)
    Param("static_weights", str, "plugin building the static synapses", "spikeforge.rls.connectivity:static_weights"),
    Param("static_weights_args", dict, "keyword arguments of the static_weights plugin", {}),
    Param("plastic_weights", str, "plugin choosing the plastic inputs and their initial weights",
          "spikeforge.rls.connectivity:plastic_weights"),
    Param("plastic_weights_args", dict, "keyword arguments of the plastic_weights plugin", {}),
    Param("stimulus", str, "plugin making each task's stimulus", "spikeforge.rls.stimulus:ornstein_uhlenbeck"),
    Param("stimulus_args", dict, "keyword arguments of the stimulus plugin", {}),
    Param("targets", str, "plugin making each task's target currents", "spikeforge.rls.targets:sinusoids"),
    Param("targets_args", dict, "keyword arguments of the targets plugin", {}),
    Param("ff_rates", str, "plugin making the feed-forward spike probabilities",
          "spikeforge.rls.feedforward:spike_probabilities"),
    Param("ff_rates_args", dict, "keyword arguments of the ff_rates plugin", {}),
    Param("task_schedule", str, "task of each training loop: cyclic ((loop - 1) mod n_tasks) or random",
          "cyclic", choices=("cyclic", "random")),
    Param("correlation_var", str, "current compared with the target: total, or plastic only",
          derive=lambda v: "utotal" if v["k"] > 0 else "uplastic", derive_doc="utotal if k > 0 else uplastic",
          choices=("utotal", "uplastic")),
]


def _steps(values: Mapping[str, Any], name: str, unit_name: str = "dt") -> int:
    """``values[name] / values[unit_name]`` as an integer; error if it is not one."""
    ratio = values[name] / values[unit_name]
    if not ratio <= MAX_STEPS:
        raise ParameterError(f"{name} = {values[name]} is {ratio:.3g} times {unit_name} = {values[unit_name]}; "
                             f"expected at most {MAX_STEPS}")
    steps = round(ratio)
    if abs(ratio - steps) > 1e-9 * max(1.0, abs(ratio)):
        raise ParameterError(
            f"{name} = {values[name]} is not a whole multiple of {unit_name} = {values[unit_name]}"
        )
    return steps


def _validate(v: Mapping[str, Any]) -> None:
    def need(condition: bool, message: str) -> None:
        if not condition:
            raise ParameterError(message)

    for name in ("dt", "train_duration", "learn_every", "wid", "max_rate", "tau_meme", "tau_memi", "tau_bale",
                 "tau_bali", "tau_plas", "penlambda", "penlam_ff", "p_scale", "target_period", "g"):
        need(v[name] > 0, f"{name} = {v[name]} must be > 0")
    for name in ("stim_off", "train_time", "learn_every", "wid", "refrac", "u0_skip_time"):
        need(v[name] / v["dt"] <= MAX_STEPS, f"{name} = {v[name]} ms is {v[name] / v['dt']:.3g} steps of dt = "
             f"{v['dt']} ms; expected at most {MAX_STEPS} steps (a larger dt or a shorter trial)")
    need(1.0 / v["dt"] <= MAX_STEPS, f"dt = {v['dt']} ms is too small; expected at least {1 / MAX_STEPS:.3g} ms")
    need(v["n_cells"] + v["lx"] <= MAX_NEURONS,
         f"n_cells + lx = {v['n_cells'] + v['lx']} exceeds {MAX_NEURONS} (neuron indices are 32-bit)")
    need(v["max_rate"] <= 1000 / v["dt"], f"max_rate = {v['max_rate']} Hz exceeds one spike per step "
         f"(1000 / dt = {1000 / v['dt']:.6g} Hz)")
    for name in ("refrac", "sig", "penmu", "stim_on", "u0_skip_time", "stim_b", "stim_sig", "k", "lexc", "linh",
                 "lx", "ff_mu", "ff_b", "ff_sig", "ff_smooth"):
        need(v[name] >= 0, f"{name} = {v[name]} must be >= 0")
    need(v["n_cells"] >= 2, f"n_cells = {v['n_cells']} must be >= 2")
    for name in ("tau_plas", "sig"):
        need(v[f"{name}_max"] >= v[name], f"{name}_max = {v[name + '_max']} must be >= {name} = {v[name]} (per-neuron "
             f"values are drawn from [{name}, {name}_max])")
    need(0 < v["ne"] < v["n_cells"], f"ne = {v['ne']} must be between 1 and n_cells - 1 = {v['n_cells'] - 1}")
    need(v["ni"] == v["n_cells"] - v["ne"],
         f"ni = {v['ni']} must equal n_cells - ne = {v['n_cells'] - v['ne']}")
    need(v["stim_on"] <= v["stim_off"], f"stim_on = {v['stim_on']} must be <= stim_off = {v['stim_off']}")
    need(v["stim_off"] <= v["train_time"],
         f"stim_off = {v['stim_off']} must be <= train_time = {v['train_time']}")
    need(abs(v["train_time"] - (v["stim_off"] + v["train_duration"])) < 1e-9 * v["train_time"],
         f"train_time = {v['train_time']} must equal stim_off + train_duration = "
         f"{v['stim_off'] + v['train_duration']}")
    need(v["u0_skip_time"] < v["train_time"],
         f"u0_skip_time = {v['u0_skip_time']} must be < train_time = {v['train_time']}")
    need(v["u0_ncells"] >= 1, f"u0_ncells = {v['u0_ncells']} must be >= 1")
    need(v["threshe"] > v["vre"] and v["threshi"] > v["vre"],
         f"thresholds (threshe = {v['threshe']}, threshi = {v['threshi']}) must exceed vre = {v['vre']}")
    need(v["cell_model"] in ("lif", "glif1", "glif2", "glif3", "glif4", "glif5") or ":" in v["cell_model"],
         f"cell_model = {v['cell_model']!r} is not lif, glif1 .. glif5, or a plugin 'module:function'")
    need(len(v["glif_asc_k"]) == len(v["glif_asc_f"]) == len(v["glif_asc_delta"]),
         f"glif_asc_k, glif_asc_f and glif_asc_delta must have the same length (one entry per after-spike "
         f"current), not {len(v['glif_asc_k'])}, {len(v['glif_asc_f'])} and {len(v['glif_asc_delta'])}")
    need(v["glif_r"] > 0, f"glif_r = {v['glif_r']} must be > 0")
    need(all(k * v["dt"] < 1 for k in v["glif_asc_k"] + [v["glif_b_s"]]) and all(k >= 0 for k in v["glif_asc_k"]),
         f"GLIF decay rates (glif_asc_k = {v['glif_asc_k']}, glif_b_s = {v['glif_b_s']}) must be >= 0 and < 1/dt")
    need(0 < v["frac"] <= 1, f"frac = {v['frac']} must be in (0, 1]")
    need(2 * v["k"] <= v["n_cells"] - 1,
         f"k = {v['k']} gives out-degree 2k = {2 * v['k']}, more than the n_cells - 1 = {v['n_cells'] - 1} others")
    need(v["lexc"] + v["linh"] >= 1, "lexc + linh must be >= 1 (every neuron needs a plastic input; set l when k = 0)")
    if v["plastic_weights"] == "spikeforge.rls.connectivity:plastic_weights":
        n_exc_kept, n_inh_kept = round(v["frac"] * v["ne"]), round(v["frac"] * v["ni"])
        need(v["lexc"] <= n_exc_kept - 1, f"lexc = {v['lexc']} exceeds the {n_exc_kept - 1} excitatory candidates "
             "(frac * ne, minus the neuron itself); lower l (or lexc), or raise n_cells")
        need(v["linh"] <= n_inh_kept - 1, f"linh = {v['linh']} exceeds the {n_inh_kept - 1} inhibitory candidates "
             "(frac * ni, minus the neuron itself); lower l (or linh), or raise n_cells")
    for name in ("stim_on", "stim_off", "train_time", "refrac", "learn_every", "wid", "u0_skip_time", "ff_smooth"):
        _steps(v, name)
    _steps({"one_ms": 1.0, "dt": v["dt"]}, "one_ms")
    _steps(v, "train_duration", "learn_every")
    _steps(v, "wid", "learn_every")
    largest = _largest_p(v) * v["p_scale"]
    limit = LARGEST[v["p_precision"]]
    need(largest <= limit, f"p_scale = {v['p_scale']} with penlambda = {v['penlambda']}"
         + (f" and penlam_ff = {v['penlam_ff']}" if v["lx"] > 0 else "")
         + f" puts the initial P's largest entry at {largest:.6g}, beyond the {v['p_precision']} maximum {limit:.6g}; "
         f"expected a smaller p_scale (or let it be derived), a larger penalty, or another p_precision")
    need(v["p_history"] >= v["learn_every"],
         f"p_history = {v['p_history']} must be >= learn_every = {v['learn_every']} (at least one snapshot)")


SCHEMA = Schema(PARAMS, _validate, "spikeforge RLS network parameters (time in ms, voltage dimensionless)")


@dataclasses.dataclass(frozen=True)
class Derived:
    """Integer step counts and sizes computed from the parameters (never set by the user)."""

    n_steps: int  # steps per trial
    learn_step: int  # steps between RLS updates
    learn_nsteps: int  # RLS updates per trial (= target samples)
    stim_on_step: int
    stim_off_step: int
    refrac_steps: int
    u0_skip_steps: int
    steps_per_ms: int  # steps between the 1-ms samples of the rolling average
    wid_steps: int
    max_times: int  # stored spike times per neuron and trial
    n_plastic: int  # plastic inputs per neuron (lexc + linh)


def derived(values: Mapping[str, Any]) -> Derived:
    """Step counts for resolved parameter ``values``."""
    return Derived(
        n_steps=_steps(values, "train_time"),
        learn_step=_steps(values, "learn_every"),
        learn_nsteps=_steps(values, "train_duration", "learn_every"),
        stim_on_step=_steps(values, "stim_on"),
        stim_off_step=_steps(values, "stim_off"),
        refrac_steps=_steps(values, "refrac"),
        u0_skip_steps=_steps(values, "u0_skip_time"),
        steps_per_ms=_steps({"one_ms": 1.0, "dt": values["dt"]}, "one_ms"),
        wid_steps=_steps(values, "wid"),
        max_times=round(values["max_rate"] * values["train_time"] / 1000),
        n_plastic=values["lexc"] + values["linh"] + values["lx"],
    )


class Params(Mapping):
    """Resolved parameters of one network: a read-only mapping plus attribute access.

    ``p.n_cells``, ``p["n_cells"]`` and ``p.steps.n_steps`` all work; ``p.user`` holds only
    the values the user set (what is written uncommented to params.toml).
    """

    def __init__(self, user: Mapping[str, Any]):
        # numpy scalars as Python numbers, so that they can be written to TOML
        self.user = {name: value.item() if isinstance(value, np.generic) else value for name, value in user.items()}
        self._values = SCHEMA.resolve(self.user)
        self.steps = derived(self._values)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Params({self.user!r})"
