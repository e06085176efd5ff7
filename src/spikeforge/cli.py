"""The ``spikeforge`` command.

User errors (a missing directory, an unknown parameter, a corrupt file, a full disk) print one
line, ``error: ...``, and exit with status 2; warnings print one line ``warning: ...`` each.
SIGINT (Ctrl-C) and SIGTERM stop a command in order and exit with status 130 and 143
(``train`` saves a checkpoint of the last completed loop first).  Neuron indices are 0-based.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from spikeforge.cli_support import backend_options, dask_options, PathArgument, user_errors
from spikeforge.core.interrupts import Interrupted, StopSignals
from spikeforge.core.selection import parse_neurons
from spikeforge.errors import DataFileError
from spikeforge.fit import cli as fit_commands
from spikeforge.rate2spike import cli as rate_commands
from spikeforge.sequence import cli as sequence_commands

# same in-degree as the default model (k = 205, 58 plastic inputs) with half the neurons
QUICKSTART_PARAMS = {"n_cells": 2048, "pree": 0.2, "seed": 2026}
QUICKSTART_LOOPS = 100


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for the numba kernels (default: all cores). Results do not depend on it.")
@click.version_option(package_name="spikeforge", prog_name="spikeforge")
def cli(threads: int | None) -> None:
    """Build and train functional spiking recurrent neural networks."""
    if threads is not None:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


@cli.command()
@click.argument("directory", type=PathArgument(file_okay=False, path_type=Path))
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="Set a parameter (repeatable), e.g. --set n_cells=1024 --set seed=1.")
@click.option("--preset", default=None, metavar="NAME",
              help="Start from a named configuration (spikeforge.rls.presets): recordings = fitting recorded PSTHs "
                   "(docs/recordings.md).")
@user_errors
def new(directory: Path, assignments: tuple[str, ...], preset: str | None) -> None:
    """Create DIRECTORY with a params.toml of the defaults plus --set values."""
    from spikeforge.core.params import parse_assignment
    from spikeforge.rls import new as rls_new

    overrides = dict(parse_assignment(text) for text in assignments)
    params = rls_new(directory, overrides, preset=preset)
    click.echo(f"wrote {directory / 'params.toml'} ({params.n_cells} neurons, seed {params.seed}); "
               f"next: spikeforge init {directory}")


@cli.command()
@click.argument("directory", type=PathArgument(path_type=Path))
@click.option("--tasks", "n_tasks", type=click.IntRange(min=1), default=None,
              help="Number of tasks [default: 1, or as many as the target file has].")
@click.option("--utarg-file", type=PathArgument(path_type=Path), default=None,
              help="Target currents: .npy or HDF5, time x neurons [x tasks].")
@click.option("--spikerate-file", type=PathArgument(path_type=Path), default=None,
              help="Target firing rates [Hz] (PSTHs), converted to currents: .npy or HDF5, time x units [x tasks]; "
                   "an HDF5 'time' dataset [ms] or --rate-dt gives them their own time axis.")
@click.option("--rate-dt", type=click.FloatRange(min=0, min_open=True), default=None, metavar="MS",
              help="Sampling interval of the rate file's rows [ms]; they are resampled onto the learning steps.")
@click.option("--spikes", "spikes_file", type=PathArgument(path_type=Path), default=None,
              help="Recorded spike trains (.nwb, .npz/.h5 arrays, or a neo format): their PSTHs become the targets.")
@click.option("--window", "window_ms", type=(float, float), default=None, metavar="START STOP",
              help="Trial window [ms] around the alignment event; its start is the model's stim_off.")
@click.option("--align-to", default="start_time", show_default=True, metavar="COLUMN",
              help="NWB: the trials-table column each trial is aligned at.")
@click.option("--smoothing", "smoothing_ms", type=click.FloatRange(min=0), default=None, metavar="MS",
              help="Gaussian smoothing of the target rates [ms]  [default: 25 for spikes, 0 for rate files]")
@click.option("--force", is_flag=True, help="Replace a previous network: delete its checkpoints and results.")
@backend_options
@user_errors
def init(directory: Path, n_tasks: int | None, utarg_file: Path | None, spikerate_file: Path | None,
         rate_dt: float | None, spikes_file: Path | None, window_ms: tuple[float, float] | None, align_to: str,
         smoothing_ms: float | None, force: bool, backend: str, device: str) -> None:
    """Build the network of DIRECTORY: connectivity, targets, stimulus, initial P."""
    from spikeforge.rls import init as rls_init

    rls_init(directory, n_tasks=n_tasks, force=force, utarg_file=utarg_file, spikerate_file=spikerate_file,
             backend=backend, device=device, spikes_file=spikes_file, window_ms=window_ms, align_to=align_to,
             smoothing_ms=smoothing_ms, rate_dt_ms=rate_dt)
    click.echo(f"wrote {directory / 'init.h5'}; next: spikeforge train {directory} --nloops 100")


@cli.command()
@click.argument("directory", type=PathArgument(path_type=Path))
@click.option("--nloops", type=click.IntRange(min=1), default=1, show_default=True, help="Training loops (trials).")
@click.option("--correlation-interval", type=click.IntRange(min=1), default=1, show_default=True,
              help="Measure the correlation with the targets every C loops.")
@click.option("--save-best-checkpoint", is_flag=True, help="Keep a checkpoint of the best correlation.")
@click.option("--restore-from-checkpoint", "restore", default=None, metavar="R",
              help="Start from checkpoint R (e.g. 100, 12i, 37-cor0.712, or init) instead of the latest one.")
@click.option("--discard-later", is_flag=True,
              help="With --restore-from-checkpoint: delete the checkpoints of later loops instead of refusing.")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Also save a checkpoint every N loops (the latest one is kept), so a crash loses at most N loops "
                   "(0: only at the end and on Ctrl-C).")
@click.option("--monitor-resources", type=click.FloatRange(min=0, min_open=True, max=1e9), default=None,
              metavar="SECONDS", help="Print CPU, memory and GPU use every SECONDS seconds.")
@backend_options
@click.option("--cuda-graphs/--no-cuda-graphs", default=True, show_default=True,
              help="On CUDA, replay each learning interval from a captured CUDA graph.")
@click.option("--distributed", is_flag=True,
              help="One rank of a run started by torchrun: the RLS state is sharded across the ranks "
                   "(docs/scaling.md).")
@click.option("--shard-network", is_flag=True,
              help="With --distributed: also shard the synapses and the neurons' dynamics, exchanging spikes every "
                   "step (for networks whose synapses do not fit one process; docs/scaling.md).")
@user_errors
def train(directory: Path, nloops: int, correlation_interval: int, save_best_checkpoint: bool,
          restore: str | None, discard_later: bool, checkpoint_every: int, monitor_resources: float | None,
          backend: str, device: str, cuda_graphs: bool, distributed: bool, shard_network: bool) -> None:
    """Train the plastic weights of DIRECTORY with RLS, continuing from its latest checkpoint.

    SIGINT (Ctrl-C) or SIGTERM finishes the loop in progress, saves checkpoint <loop>i and exits
    with status 130 or 143; a second signal stops at once.
    """
    from spikeforge.rls import train as rls_train
    from spikeforge.rls.training import TrainingInterrupted

    first_rank = not distributed or os.environ.get("RANK", "0") == "0"
    try:
        result = rls_train(directory, nloops=nloops, correlation_interval=correlation_interval,
                           save_best_checkpoint=save_best_checkpoint, restore_from_checkpoint=restore,
                           discard_later=discard_later, checkpoint_every=checkpoint_every,
                           monitor_resources=monitor_resources, backend=backend, device=device,
                           cuda_graphs=cuda_graphs, distributed=distributed, shard_network=shard_network)
    except Interrupted as interrupted:
        if not first_rank:  # rank 0 says what was saved
            sys.exit(interrupted.exit_status)
        if distributed and isinstance(interrupted, TrainingInterrupted):  # its continue command
            raise Interrupted(interrupted.signum, f"{interrupted} (under torchrun, with --distributed; any number "
                                                  "of ranks)") from None
        raise
    if first_rank:
        click.echo(f"saved {directory / f'ckpt-{result.checkpoint}.h5'} and {directory / 'learning-curve.h5'}")


@cli.command()
@click.argument("directory", type=PathArgument(path_type=Path))
@click.option("--ntrials", type=click.IntRange(min=1), default=1, show_default=True, help="Trials per task.")
@click.option("--neurons", default="0:16", show_default=True, help="Neurons to record: 0:16 or 0,4,8 (0-based).")
@click.option("--restore-from-checkpoint", "restore", default=None, metavar="R",
              help="Checkpoint to test (default: the highest loop).")
@click.option("--no-plot", is_flag=True, help="Do not write the figures.")
@backend_options
@dask_options("the trials")
@user_errors
def test(directory: Path, ntrials: int, neurons: str, restore: str | None, no_plot: bool, backend: str,
         device: str, scheduler: str | None, workers: int | None) -> None:
    """Run frozen-weight trials of DIRECTORY and save test.h5 (and figures).

    With --scheduler or --workers, every trial is a Dask job whose result is kept under
    DIRECTORY/test-trials until test.h5 is written, so the same command after a crash or Ctrl-C
    runs only the missing trials."""
    from spikeforge.rls import test as rls_test

    path = rls_test(directory, ntrials=ntrials, neurons=parse_neurons(neurons), restore_from_checkpoint=restore,
                    plot=not no_plot, backend=backend, device=device, scheduler=scheduler, workers=workers)
    click.echo(f"wrote {path}")


@cli.command()
@click.argument("test_file", type=PathArgument(dir_okay=False, path_type=Path))
@click.option("--neurons", default=None, help="Neurons to plot (default: all tested): 0:16 or 0,4,8.")
@user_errors
def plot(test_file: Path, neurons: str | None) -> None:
    """Plot synaptic input vs target and PSTHs from TEST_FILE."""
    from spikeforge.rls import plot as rls_plot

    for path in rls_plot(test_file, None if neurons is None else parse_neurons(neurons)):
        click.echo(f"wrote {path}")


@cli.command()
@click.argument("directory", type=PathArgument(path_type=Path))
@click.option("--ranks", type=click.IntRange(min=1), default=1, show_default=True,
              help="Also the memory of each rank of `train --distributed` over this many ranks.")
@user_errors
def estimate(directory: Path, ranks: int) -> None:
    """Print the memory the model of DIRECTORY needs, for every P storage and precision."""
    from spikeforge.rls.estimate import report

    click.echo(report(directory, ranks))


@cli.command()
@click.argument("directory", type=PathArgument(file_okay=False, path_type=Path))
@click.option("--nloops", type=click.IntRange(min=1), default=QUICKSTART_LOOPS, show_default=True,
              help="Training loops.")
@backend_options
@user_errors
def quickstart(directory: Path, nloops: int, backend: str, device: str) -> None:
    """Train a small network end to end (about 2 minutes on 2 cores) and plot it."""
    from spikeforge import rls
    from spikeforge.core.backends import get_backend

    get_backend(backend, device)  # a bad choice fails before anything is written
    if (directory / "params.toml").exists():
        raise DataFileError(f"{str(directory)!r} already holds a network (an earlier quickstart?); continue it with "
                            f"`spikeforge train {directory} --nloops N` and `spikeforge test {directory}`, or choose "
                            "a new directory")
    on = {"backend": backend, "device": device}
    rls.new(directory, QUICKSTART_PARAMS)
    rls.init(directory, **on)
    result = rls.train(directory, nloops=nloops, correlation_interval=10, **on)
    rls.test(directory, ntrials=10, neurons=range(9), plot=False, **on)
    figures = rls.plot(directory / "test.h5")
    measured = [(loop, c) for loop, c in zip(result.loops, result.correlation) if c == c]
    if measured:
        (first_loop, first), (last_loop, last) = measured[0], measured[-1]
        click.echo(f"\ncorrelation with the targets: {first:.2f} at loop {first_loop} -> {last:.2f} at loop {last_loop}")
    click.echo("figures:\n  " + "\n  ".join(str(f) for f in figures if f.suffix == ".png"))


@cli.command()
@click.argument("directory", type=PathArgument(file_okay=False, path_type=Path))
@click.option("--set", "swept", multiple=True, required=True, metavar="NAME=V1,V2,...",
              help="A swept parameter and its values (repeatable; the grid is every combination).")
@click.option("--fix", "fixed", multiple=True, metavar="NAME=VALUE",
              help="A parameter every point shares (repeatable), e.g. --fix seed=1.")
@click.option("--nloops", type=click.IntRange(min=1), default=1, show_default=True, help="Training loops per point.")
@click.option("--ntrials", type=click.IntRange(min=1), default=1, show_default=True, help="Test trials per point.")
@dask_options("the points")
@click.option("--force", is_flag=True, help="Recompute points whose results exist.")
@user_errors
def sweep(directory: Path, swept: tuple[str, ...], fixed: tuple[str, ...], nloops: int, ntrials: int,
          scheduler: str | None, workers: int | None, force: bool) -> None:
    """Train one RLS network per point of a parameter grid, as independent Dask jobs.

    Each point is a data directory under DIRECTORY/points; finished points are kept, so the same
    command after a crash or Ctrl-C runs only the rest. Writes summary.csv, summary.h5 and summary.png.
    """
    from spikeforge.core.params import parse_assignment
    from spikeforge.rls.sweep import parse_grid, sweep as run_sweep

    run_sweep(directory, parse_grid(swept), nloops, ntrials, dict(parse_assignment(text) for text in fixed),
              scheduler=scheduler, workers=workers, force=force)


@cli.group("rls")
def rls_commands() -> None:
    """RLS training under its capability's name, like rate, fit and sequence: `spikeforge rls train DIR` is
    `spikeforge train DIR` (the top-level verbs stay, as TrainSpikingNet's users know them)."""


for _verb in (new, init, train, test, plot, estimate, quickstart, sweep):
    rls_commands.add_command(_verb)
cli.add_command(rate_commands.rate)
cli.add_command(fit_commands.fit)
cli.add_command(sequence_commands.sequence)


def run(args: list[str] | None, signals: StopSignals) -> int:
    """Run the command line ``args`` under ``signals`` (installed by :func:`spikeforge.__main__.main`
    before anything heavy is imported); return the exit status."""
    try:
        cli.main(args=args, prog_name="spikeforge", standalone_mode=False)
    except SystemExit as done:  # a command's own exit status
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except click.exceptions.Abort as abort:  # click wraps a KeyboardInterrupt in Abort
        cause = abort.__cause__
        interrupted = cause if isinstance(cause, Interrupted) else Interrupted(signals.requested or signal.SIGINT)
        click.echo(str(interrupted), err=True)
        return interrupted.exit_status
    except click.exceptions.NoArgsIsHelpError as error:
        click.echo(error.ctx.get_help() if error.ctx is not None else str(error))
        return 2
    except click.exceptions.UsageError as error:  # one line, as every user error
        context = f" (see `{error.ctx.command_path} --help`)" if error.ctx is not None else ""
        click.echo(f"error: {' '.join(error.format_message().split())}{context}", err=True)
        return 2
    except click.exceptions.ClickException as error:
        click.echo(f"error: {' '.join(error.format_message().split())}", err=True)
        return 2
    return 0


if __name__ == "__main__":
    from spikeforge.__main__ import main

    main()
