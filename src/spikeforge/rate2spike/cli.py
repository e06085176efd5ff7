"""``spikeforge rate``: train a rate RNN on a task, map it onto LIF, evaluate, and move models to and
from the original's ``.mat`` files.

The training options keep the original's names (``--N``, ``--P_inh``, ``--decay_taus``, ...) and
accept the dashed forms too.  Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from spikeforge.cli_support import PathArgument, backend_options, dask_options, user_errors
from spikeforge.errors import ParameterError

MAX_FACTORS = 1000  # as spikeforge.rate2spike.runs.MAX_FACTORS (not imported: it would load numba at start-up)


def _boolean(value: str) -> bool:
    """The original's str2bool."""
    text = str(value).strip().lower()
    if text in ("yes", "true", "t", "y", "1"):
        return True
    if text in ("no", "false", "f", "n", "0"):
        return False
    raise ParameterError(f"--apply_dale {value!r} is not a boolean; expected true or false")


def _grid(text: str) -> list[float]:
    """``20:5:75`` (MATLAB's start:step:stop, stop included) or ``20,30,40``."""
    try:
        if ":" in text:
            start, step, stop = (float(part) for part in text.split(":"))
            if not (np.isfinite([start, step, stop]).all() and step > 0 and stop >= start):
                raise ValueError
            if (stop - start) / step > 10 * MAX_FACTORS:
                raise ParameterError(f"--scaling-factors {text!r} makes more than {MAX_FACTORS} factors; use a "
                                     f"larger step")
            return list(np.arange(start, stop + step / 2, step))
        parts = text.split(",")
        if any(not part.strip() for part in parts):
            raise ValueError
        return [float(part) for part in parts]
    except ValueError:
        raise ParameterError(f"--scaling-factors {text!r} is not START:STEP:STOP (STOP included) or a "
                             f"comma-separated list of numbers") from None


SEED_HELP = "Seed of every random stream, in [0, 2**63) (default: a fresh one, printed and saved)."
TASK_CHOICE = click.Choice(["go-nogo", "mante", "xor"], case_sensitive=False)


@click.group()
def rate() -> None:
    """Rate-to-spike: train a rate RNN on a cognitive task and map it onto a LIF network
    (Kim, Li & Sejnowski 2019)."""


@rate.command()
@click.argument("directory", type=PathArgument(file_okay=False, path_type=Path))
@click.option("--task", required=True, type=TASK_CHOICE, help="The cognitive task.")
@click.option("--N", "--n", "n", required=True, type=int, help="Number of units.")
@click.option("--gain", default=1.5, show_default=True, type=float, help="g of the initial weights.")
@click.option("--P_inh", "--p-inh", "p_inh", default=0.2, show_default=True, type=float,
              help="Probability that a unit is inhibitory.")
@click.option("--P_rec", "--p-rec", "p_rec", default=0.2, show_default=True, type=float,
              help="Initial connection probability.")
@click.option("--som_N", "--som-n", "som_n", default=0, show_default=True, type=int, help="SOM inhibitory units.")
@click.option("--act", default="sigmoid", show_default=True, type=click.Choice(["sigmoid", "clipped_relu", "softplus"]),
              help="Activation function.")
@click.option("--loss_fn", "--loss-fn", "loss_fn", default="l2", show_default=True, type=click.Choice(["l1", "l2"]),
              help="l2: root of the summed squared error (the original's); l1: summed absolute error.")
@click.option("--apply_dale", "--apply-dale", "apply_dale", default="true", show_default=True,
              help="Dale's principle (true/false).")
@click.option("--decay_taus", "--decay-taus", "decay_taus", default="4,20", show_default=True,
              help="Synaptic decay in steps of 5 ms: one value (fixed) or MIN,MAX (trained).")
@click.option("--n_trials", "--n-trials", "n_trials", default=6000, show_default=True, type=int,
              help="Stop after this many trials if the criterion is not met (the paper's budget: 6000).")
@click.option("--batch", default=1, show_default=True, type=int, help="Trials per Adam step (1: the original).")
@click.option("--learning-rate", default=0.01, show_default=True, type=float, help="Adam's learning rate.")
@click.option("--min-trials", default=None, type=int,
              help="Never stop before this many trials (default: the task's; 1500 for Go-NoGo, as the original).")
@click.option("--seed", default=None, type=int, help=SEED_HELP)
@click.option("--device", default="cpu", show_default=True, help="torch device: cpu, cuda or cuda:N.")
@user_errors
def train(directory: Path, task: str, n: int, gain: float, p_inh: float, p_rec: float, som_n: int, act: str,
          loss_fn: str, apply_dale: str, decay_taus: str, n_trials: int, batch: int, learning_rate: float,
          min_trials: int | None, seed: int | None, device: str) -> None:
    """Train a rate RNN on TASK into DIRECTORY (model.h5, training.png)."""
    try:
        taus = tuple(float(t) for t in decay_taus.replace(" ", ",").split(",") if t)
    except ValueError:
        raise ParameterError(f"--decay_taus {decay_taus!r} is not one number or MIN,MAX") from None
    _torch_or_error()
    from spikeforge.rate2spike import runs

    runs.train(directory, task.lower(),
               {"n": n, "gain": gain, "p_inh": p_inh, "p_rec": p_rec, "som_n": som_n, "activation": act,
                "apply_dale": _boolean(apply_dale), "decay_taus": taus},
               {"max_trials": n_trials, "batch": batch, "learning_rate": learning_rate, "loss": loss_fn,
                "min_trials": min_trials}, seed=seed, device=device)


@rate.command(name="map")
@click.argument("directory", type=PathArgument(file_okay=False, path_type=Path))
@click.option("--model", "model_file", type=PathArgument(dir_okay=False, path_type=Path), default=None,
              help="Map this model file (e.g. an original .mat) instead of DIRECTORY/model.h5.")
@click.option("--task", default=None, type=TASK_CHOICE, help="The task of a .mat whose file name does not say it.")
@click.option("--scaling-factors", default="20:5:75", show_default=True,
              help="The grid of 1/lambda: START:STEP:STOP (STOP included) or a comma-separated list.")
@click.option("--trials", default=100, show_default=True, type=int, help="Trials per scaling factor.")
@click.option("--held-out", default=100, show_default=True, type=int, help="Fresh trials at the chosen factor.")
@click.option("--seed", default=None, type=int, help=SEED_HELP)
@click.option("--force", is_flag=True,
              help="Replace an earlier search in DIRECTORY (its figure and evaluation are removed).")
@backend_options
@dask_options("the scaling factors")
@user_errors
def map_(directory: Path, model_file: Path | None, task: str | None, scaling_factors: str, trials: int,
         held_out: int, seed: int | None, force: bool, backend: str, device: str, scheduler: str | None,
         workers: int | None) -> None:
    """Search the scaling factor 1/lambda of the LIF network (search.h5, search.png)."""
    from spikeforge.rate2spike import runs

    runs.search(directory, _grid(scaling_factors), trials, held_out, seed, model_file, task, backend, device, force,
                scheduler=scheduler, workers=workers)


@rate.command(name="eval")
@click.argument("directory", type=PathArgument(file_okay=False, path_type=Path))
@click.option("--model", "model_file", type=PathArgument(dir_okay=False, path_type=Path), default=None,
              help="Evaluate this model file (e.g. an original .mat) instead of DIRECTORY/model.h5.")
@click.option("--task", default=None, type=TASK_CHOICE, help="The task of a .mat whose file name does not say it.")
@click.option("--trials", default=100, show_default=True, type=int, help="Fresh trials to score.")
@click.option("--scaling-factor", default=None, type=float, help="1/lambda (default: the one `map` chose).")
@click.option("--seed", default=None, type=int, help=SEED_HELP)
@click.option("--force", is_flag=True, help="Replace an earlier evaluation.")
@backend_options
@user_errors
def eval_(directory: Path, model_file: Path | None, task: str | None, trials: int, scaling_factor: float | None,
          seed: int | None, force: bool, backend: str, device: str) -> None:
    """Score the LIF network on fresh trials and draw rate vs LIF outputs and rasters (eval.h5, eval.png)."""
    from spikeforge.rate2spike import runs

    runs.evaluate(directory, trials, scaling_factor, seed, backend, device, force, model_file=model_file, task=task)


@rate.command(name="export")
@click.argument("directory", type=PathArgument(file_okay=False, path_type=Path))
@click.argument("mat_file", type=PathArgument(dir_okay=False, path_type=Path))
@user_errors
def export(directory: Path, mat_file: Path) -> None:
    """Write DIRECTORY's model as the original's .mat file."""
    from spikeforge.rate2spike import files, runs

    if mat_file.suffix.lower() != ".mat":
        raise ParameterError(f"{str(mat_file)!r} must end in .mat")
    if mat_file.exists():
        raise ParameterError(f"{str(mat_file)!r} exists; choose another name")
    files.write_mat(mat_file, runs.load(directory))
    click.echo(f"wrote {mat_file}")


def _torch_or_error() -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise ParameterError("rate training needs torch: pip install 'spikeforge[gpu]' (or torch alone)")

