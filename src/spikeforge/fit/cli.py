"""``spikeforge fit``: fit neuron models to recorded spike trains, and report how well they match.

Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from spikeforge.cli_support import PathArgument, user_errors
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


def _assignments(text: str | None, option: str) -> dict[str, str]:
    """``a=1,b=2`` -> {"a": "1", "b": "2"}."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ParameterError(f"{option} {text!r}: {part!r} is not NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def _bounds(text: str | None) -> dict[str, tuple[float, float]]:
    out = {}
    for name, value in _assignments(text, "--bounds").items():
        low, sep, high = value.partition(":")
        if not sep:
            raise ParameterError(f"--bounds {name}={value}: expected LOW:HIGH")
        out[name] = (_number(low, f"--bounds {name}"), _number(high, f"--bounds {name}"))
    return out


def _amplitudes(text: str | None):
    if text is None:
        return None
    return [_number(part, "--amplitudes") for part in text.split(",")]


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
@click.option("--bounds", default=None, metavar="NAME=LOW:HIGH,...", help="Search ranges (default: the model's).")
@click.option("--set", "fixed", default=None, metavar="NAME=VALUE,...", help="Values of parameters not fitted.")
@click.option("--preset", default=None, help="Izhikevich cell type for the parameters not fitted: "
                                             "RS, IB, CH, FS, LTS, TC or RZ.")
@click.option("--loss", default="spike", show_default=True, type=click.Choice(["spike", "gamma", "both"]),
              help="spike: SPIKE-distance + |spike-count difference|; gamma: 1 - coincidence factor + relative "
                   "count difference; both: their sum.")
@click.option("--window", default=4.0, show_default=True, type=float, help="Coincidence window of the Γ factor [ms].")
@click.option("--current", default="search", show_default=True, type=click.Choice(["search", "given"]),
              help="search: find each candidate's current that reproduces the reference sweep's spike count, and "
                   "scale the other sweeps alike; given: use the amplitudes as they are.")
@click.option("--amplitudes", default=None, metavar="PA,...",
              help="Current step of each sweep [pA] (when the data file does not say).")
@click.option("--delay", default=1000.0, show_default=True, type=float, help="Time before the step [ms].")
@click.option("--duration", default=2000.0, show_default=True, type=float, help="Length of the step [ms].")
@click.option("--total", default=3400.0, show_default=True, type=float, help="Length of each sweep [ms].")
@click.option("--dt", default=0.1, show_default=True, type=float, help="Time step of the simulations [ms].")
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
@click.option("--force", is_flag=True, help="Replace a fit already in DIRECTORY.")
@user_errors
def cell(data: Path, directory: Path, model: str, fitted: str | None, bounds: str | None, fixed: str | None,
         preset: str | None, loss: str, window: float, current: str, amplitudes: str | None, delay: float,
         duration: float, total: float, dt: float, unit: str | None, trace_dt: float | None, threshold: float,
         optimizer: str, population: int, generations: int, patience: int, restarts: int, seed: int | None,
         force: bool) -> None:
    """Fit a single-neuron MODEL to the spikes of a recorded cell in DATA (spike times or voltage traces of
    current-step sweeps); results in DIRECTORY (fit.h5, parameters.csv, fit.png).  Ctrl-C keeps the
    completed generations; the same command resumes."""
    from spikeforge.fit import runs
    from spikeforge.fit.simulate import StepProtocol

    values = {name: _number(value, f"--set {name}") for name, value in _assignments(fixed, "--set").items()}
    runs.cell(data, directory, model=model, fitted=_names(fitted), bounds=_bounds(bounds), fixed=values, preset=preset,
              loss=loss, window=window, current=current, optimizer=optimizer, population=population,
              generations=generations, patience=patience, restarts=restarts, seed=seed,
              protocol=StepProtocol(delay, duration, total, dt), amplitudes=_amplitudes(amplitudes), unit=unit,
              trace_dt=trace_dt, threshold=threshold, force=force)
