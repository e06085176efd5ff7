"""``spikeforge fit``: fit neuron models to recorded spike trains, and report how well they match.

Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from spikeforge.cli_support import PathArgument, backend_options, dask_options, user_errors
from spikeforge.errors import ParameterError

SEED_HELP = "Seed of every random stream, in [0, 2**63) (default: a fresh one, printed and saved)."


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise ParameterError(f"--fit {text!r} is not a comma-separated list of parameter names")
    return names


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ParameterError(f"{what}: {text!r} is not a number") from None


def _assignments(texts: tuple[str, ...], option: str) -> dict[str, str]:
    """The values of a repeatable option, each ``a=1`` or a comma-separated ``a=1,b=2``, as
    {"a": "1", "b": "2"}; a name given twice is refused."""
    out = {}
    for text in texts:
        for part in text.split(","):
            name, sep, value = part.partition("=")
            if not sep or not name.strip() or not value.strip():
                raise ParameterError(f"{option} {text!r}: {part!r} is not NAME=VALUE")
            if name.strip() in out:
                raise ParameterError(f"{option}: {name.strip()!r} is given twice; expected each name once")
            out[name.strip()] = value.strip()
    return out


def _values(texts: tuple[str, ...]) -> dict[str, float]:
    """``--set`` assignments as numbers."""
    return {name: _number(value, f"--set {name}") for name, value in _assignments(texts, "--set").items()}


def _bounds(texts: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    out = {}
    for name, value in _assignments(texts, "--bounds").items():
        low, sep, high = value.partition(":")
        if not sep:
            raise ParameterError(f"--bounds {name}={value}: expected LOW:HIGH")
        out[name] = (_number(low, f"--bounds {name}"), _number(high, f"--bounds {name}"))
    return out


def _amplitudes(text: str | None):
    if text is None:
        return None
    return [_number(part, "--amplitudes") for part in text.split(",")]


def _indices(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ParameterError(f"--sweeps {text!r} is not a comma-separated list of sweep numbers") from None


@click.group()
def fit() -> None:
    """Fit neuron models to recorded spike trains (SpikeNetOpt, done properly)."""


@fit.command()
@click.argument("data", type=PathArgument(dir_okay=False, path_type=Path))
@click.argument("directory", type=PathArgument(file_okay=False, path_type=Path))
@click.option("--model", default="izhikevich", show_default=True, type=click.Choice(["izhikevich", "adex", "lif"]),
              help="The neuron model.")
@click.option("--fit", "fitted", default=None, metavar="A,B,...",
              help="Parameters to fit [default: izhikevich a,b,c,d; adex tau_w,a,b,v_reset; lif tau_m,R,v_th,v_reset].")
@click.option("--bounds", multiple=True, metavar="NAME=LOW:HIGH",
              help="A search range, in the parameter's unit (repeatable, or comma-separated: a=0:10,b=0:150) "
                   "[default: the model's].")
@click.option("--set", "fixed", multiple=True, metavar="NAME=VALUE",
              help="The value of a parameter not fitted, in its unit (repeatable, or comma-separated: a=0.02,b=0.2) "
                   "[default: the preset's, else the model's].")
@click.option("--preset", default=None, help="Izhikevich cell type for the parameters not fitted: "
                                             "RS, IB, CH, FS, LTS, TC or RZ.")
@click.option("--loss", default="spike", show_default=True, type=click.Choice(["spike", "gamma", "both"]),
              help="spike: SPIKE-distance + |spike-count difference|; gamma: 1 - coincidence factor + relative "
                   "count difference; both: their sum.")
@click.option("--gamma-window", "window", default=4.0, show_default=True, type=float,
              help="Coincidence window of the Γ factor [ms] (Jolivet et al. 2008: ±4 ms).")
@click.option("--current", default="search", show_default=True, type=click.Choice(["search", "given"]),
              help="search: find each candidate's current that reproduces the reference sweep's spike count, and "
                   "scale the other sweeps alike; given: use the amplitudes as they are.")
@click.option("--scale", default=1.0, show_default=True, type=float,
              help="With --current given: model current per pA (for Izhikevich, whose current has its own units).")
@click.option("--amplitudes", default=None, metavar="PA,...",
              help="Current step of each sweep [pA] (when the data file does not say).")
@click.option("--delay", default=None, type=float,
              help="Time before the step [ms]  [default: the data file's, else 1000].")
@click.option("--duration", default=None, type=float,
              help="Length of the step [ms]  [default: the data file's, else 2000].")
@click.option("--total", default=None, type=float, help="Length of each sweep [ms]  [default: the data file's, else 3400].")
@click.option("--dt", default=None, type=float,
              help="Time step of the simulations [ms], at most 1  [default: the data file's, else 0.1].")
@click.option("--sweeps", default=None, metavar="K,...",
              help="Fit only these sweeps (0-based; the others can be held out for `fit report --data`).")
@click.option("--unit", default=None, help="The unit to fit, when the file holds several.")
@click.option("--trace-dt", default=None, type=float, help="Sampling interval of voltage traces in the file [ms].")
@click.option("--threshold", default=0.0, show_default=True, type=float,
              help="Spike detection threshold of voltage traces [mV].")
@click.option("--optimizer", default="cmaes", show_default=True, type=click.Choice(["cmaes", "ga"]),
              help="CMA-ES (the cma package) or SpikeNetOpt's genetic algorithm.")
@click.option("--population", default=32, show_default=True, type=int, help="Candidates per generation.")
@click.option("--generations", default=100, show_default=True, type=int, help="At most this many generations.")
@click.option("--patience", default=20, show_default=True, type=int,
              help="Stop a restart after this many generations without improvement (0: never).")
@click.option("--restarts", default=3, show_default=True, type=int,
              help="Independent searches; their spread shows which parameters the data constrain.")
@click.option("--seed", default=None, type=int, help=SEED_HELP)
@backend_options
@dask_options("the restarts")
@click.option("--force", is_flag=True, help="Replace a fit already in DIRECTORY.")
@user_errors
def cell(data: Path, directory: Path, model: str, fitted: str | None, bounds: tuple[str, ...], fixed: tuple[str, ...],
         preset: str | None, loss: str, window: float, current: str, scale: float, amplitudes: str | None,
         delay: float | None, duration: float | None, total: float | None, dt: float | None, sweeps: str | None, unit: str | None, trace_dt: float | None,
         threshold: float, optimizer: str, population: int, generations: int, patience: int, restarts: int,
         seed: int | None, backend: str, device: str, scheduler: str | None, workers: int | None, force: bool) -> None:
    """Fit a single-neuron MODEL to the spikes of a recorded cell in DATA (spike times or voltage traces of
    current-step sweeps); results in DIRECTORY (fit.h5, parameters.csv, fit.png).  Ctrl-C keeps the
    completed generations; the same command resumes."""
    from spikeforge.fit import runs

    runs.cell(data, directory, model=model, fitted=_names(fitted), bounds=_bounds(bounds), fixed=_values(fixed), preset=preset,
              loss=loss, window=window, current=current, scale=scale, optimizer=optimizer, population=population,
              generations=generations, patience=patience, restarts=restarts, seed=seed,
              protocol={"delay": delay, "duration": duration, "total": total, "dt": dt},
              amplitudes=_amplitudes(amplitudes), unit=unit,
              trace_dt=trace_dt, threshold=threshold, sweeps=_indices(sweeps), backend=backend, device=device,
              scheduler=scheduler, workers=workers,
              force=force)


def _four(text: str, option: str) -> list[float]:
    values = [_number(part, option) for part in text.split(",")]
    if len(values) != 4:
        raise ParameterError(f"{option} {text!r}: expected 4 values, sigma_ee,p_ee,sigma_ei,p_ei")
    return values


def _network_options(command):
    """The network's own settings (shared by `fit network` and `fit synthetic network`)."""
    options = [
        click.option("--n-e", default=200, show_default=True, type=int, help="Excitatory (RS) cells."),
        click.option("--n-i", default=50, show_default=True, type=int, help="Inhibitory (FS) cells."),
        click.option("--drive", default=11.5, show_default=True, type=float, help="Constant current into every E cell, in the Izhikevich model's units (I of "
                                                                        "dv/dt = 0.04 v^2 + 5 v + 140 - u + I, mV/ms)."),
        click.option("--drive-spread", default=0.2, show_default=True, type=float,
                     help="Each E cell's drive is drive x (1 + spread x U(-1, 1)); 0: the original's identical cells."),
        click.option("--v-init", default="-75,-65", show_default=True, metavar="LOW,HIGH",
                     help="Initial voltages uniform in [LOW, HIGH] mV; -65,-65: the original's."),
        click.option("--duration", default=1000.0, show_default=True, type=float, help="Simulated time [ms]."),
        click.option("--dt", default=1.0, show_default=True, type=float, help="Time step [ms] (the original's: 1)."),
        click.option("--connectivity-seed", default=0, show_default=True, type=int,
                     help="Seed of the frozen connectivity, drives and initial voltages."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _config(n_e, n_i, drive, drive_spread, v_init, duration, dt):
    from spikeforge.fit.network import NetworkConfig

    low, sep, high = v_init.partition(",")
    if not sep:
        raise ParameterError(f"--v-init {v_init!r}: expected LOW,HIGH in mV")
    return NetworkConfig(n_e, n_i, drive, drive_spread, (_number(low, "--v-init"), _number(high, "--v-init")),
                         duration, dt).check()


@fit.command()
@click.argument("data", type=PathArgument(dir_okay=False, path_type=Path))
@click.argument("directory", type=PathArgument(file_okay=False, path_type=Path))
@_network_options
@click.option("--loss", default="count", show_default=True, type=click.Choice(["count", "spike", "both"]),
              help="count: per-cell spike-count error; spike: summed SPIKE-distance (the original's); both.")
@click.option("--recorded", default="all", show_default=True, type=click.Choice(["all", "excitatory"]),
              help="Which cells DATA holds, in order: all (E then I) or the E cells only (the original's).")
@click.option("--bounds", multiple=True, metavar="NAME=LOW:HIGH",
              help="A search range (repeatable, or comma-separated: sigma_ee=0:2,p_ee=0:1) [default: 0:1 each].")
@click.option("--optimizer", default="cmaes", show_default=True, type=click.Choice(["cmaes", "ga"]),
              help="CMA-ES (the cma package) or SpikeNetOpt's genetic algorithm.")
@click.option("--population", default=32, show_default=True, type=int, help="Candidates per generation.")
@click.option("--generations", default=100, show_default=True, type=int, help="At most this many generations.")
@click.option("--patience", default=30, show_default=True, type=int,
              help="Stop a restart after this many generations without improvement (0: never).")
@click.option("--restarts", default=4, show_default=True, type=int, help="Independent searches.")
@click.option("--seed", default=None, type=int, help=SEED_HELP)
@dask_options("the restarts")
@click.option("--force", is_flag=True, help="Replace a fit already in DIRECTORY.")
@user_errors
def network(data: Path, directory: Path, n_e: int, n_i: int, drive: float, drive_spread: float, v_init: str,
            duration: float, dt: float, connectivity_seed: int, loss: str, recorded: str, bounds: tuple[str, ...],
            optimizer: str, population: int, generations: int, patience: int, restarts: int, seed: int | None,
            scheduler: str | None, workers: int | None, force: bool) -> None:
    """Fit the connectivity (sigma_ee, p_ee, sigma_ei, p_ei) of an E/I Izhikevich network to the recorded spike
    trains in DATA (one trial, one unit per cell), with the connectivity of --connectivity-seed frozen; results in
    DIRECTORY.  Ctrl-C keeps the completed generations; the same command resumes."""
    from spikeforge.fit import runs

    runs.network(data, directory, _config(n_e, n_i, drive, drive_spread, v_init, duration, dt), connectivity_seed,
                 loss=loss, recorded=recorded, bounds=_bounds(bounds), optimizer=optimizer, population=population,
                 generations=generations, patience=patience, restarts=restarts, seed=seed, force=force,
                 scheduler=scheduler, workers=workers)


@fit.command()
@click.argument("directory", type=PathArgument(file_okay=False, exists=True, path_type=Path))
@click.option("--format", "formats", default="png", show_default=True, metavar="png,pdf,svg",
              help="Figure formats, comma-separated.")
@click.option("--data", "held_out", default=None, type=PathArgument(dir_okay=False, path_type=Path),
              help="A cell fit only: compare with these sweeps instead (held out from the fit), at the fit's "
                   "model current per pA.")
@click.option("--sweeps", default=None, metavar="K,...", help="With --data: only these sweeps of it.")
@click.option("--amplitudes", default=None, metavar="PA,...", help="With --data: its sweeps' amplitudes [pA].")
@click.option("--noise-seeds", default=5, show_default=True, type=click.IntRange(min=0),
              help="A network fit only: other connectivity seeds under which the best parameters' loss is measured "
                   "(the noise floor of a fit that cannot know the connectivity; 0: skip).")
@user_errors
def report(directory: Path, formats: str, held_out: Path | None, sweeps: str | None, amplitudes: str | None,
           noise_seeds: int) -> None:
    """Compare the fit in DIRECTORY with its data (or held-out sweeps): rates, CV, LV and ISIs with Welch's t and
    Cohen's d (effect sizes decide: |d| < 0.5 counts as matched), spike counts and Γ per sweep; report.csv and
    report.png."""
    from spikeforge.fit.report import report as write_report

    if held_out is None and (sweeps is not None or amplitudes is not None):
        raise ParameterError("--sweeps and --amplitudes choose held-out sweeps; they need --data FILE")
    write_report(directory, tuple(part.strip() for part in formats.split(",")), held_out=held_out,
                 sweeps=_indices(sweeps), held_out_amplitudes=_amplitudes(amplitudes), noise_seeds=noise_seeds)


@fit.group()
def synthetic() -> None:
    """Make data with known parameters, to try a fit on."""


@synthetic.command("cell")
@click.argument("output", type=PathArgument(dir_okay=False, path_type=Path))
@click.option("--model", default="izhikevich", show_default=True, type=click.Choice(["izhikevich", "adex", "lif"]),
              help="The neuron model.")
@click.option("--preset", default=None, help="Izhikevich cell type (RS, IB, CH, FS, LTS, TC, RZ).")
@click.option("--set", "fixed", multiple=True, metavar="NAME=VALUE",
              help="A parameter's value, in its unit (repeatable, or comma-separated: a=0.02,b=0.2) "
                   "[default: the preset's, else the model's].")
@click.option("--amplitudes", required=True, metavar="PA,...", help="Current step of each sweep [pA].")
@click.option("--gain", default=1.0, show_default=True, type=float,
              help="Model current per pA (for Izhikevich, whose current has its own units).")
@click.option("--delay", default=1000.0, show_default=True, type=float, help="Time before the step [ms].")
@click.option("--duration", default=2000.0, show_default=True, type=float, help="Length of the step [ms].")
@click.option("--total", default=3400.0, show_default=True, type=float, help="Length of each sweep [ms].")
@click.option("--dt", default=0.1, show_default=True, type=float, help="Time step [ms].")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@user_errors
def synthetic_cell(output: Path, model: str, preset: str | None, fixed: tuple[str, ...], amplitudes: str, gain: float,
                   delay: float, duration: float, total: float, dt: float, force: bool) -> None:
    """Simulate a cell with known parameters on current steps; write its spikes (HDF5, with the amplitudes) to
    OUTPUT, ready for `spikeforge fit cell`."""
    from spikeforge.fit import synthetic as make
    from spikeforge.fit.simulate import StepProtocol

    make.cell(output, model, _values(fixed), preset, _amplitudes(amplitudes), StepProtocol(delay, duration, total, dt), gain,
              force)


@synthetic.command("network")
@click.argument("output", type=PathArgument(dir_okay=False, path_type=Path))
@_network_options
@click.option("--truth", default="0.5,0.8,0.5,0.8", show_default=True, metavar="S_EE,P_EE,S_EI,P_EI",
              help="The connectivity parameters (the original's ground truth by default).")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@user_errors
def synthetic_network(output: Path, n_e: int, n_i: int, drive: float, drive_spread: float, v_init: str,
                      duration: float, dt: float, connectivity_seed: int, truth: str, force: bool) -> None:
    """Simulate the E/I network with known connectivity parameters; write every cell's spikes (HDF5, E cells first)
    to OUTPUT, ready for `spikeforge fit network`."""
    from spikeforge.fit import synthetic as make

    make.network(output, _four(truth, "--truth"), _config(n_e, n_i, drive, drive_spread, v_init, duration, dt),
                 connectivity_seed, force)
