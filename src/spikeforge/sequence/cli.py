"""``spikeforge sequence``: sequence learning in a grid of winner-take-all circuits (Klampfl & Maass 2013).

Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from spikeforge.cli_support import dask_options, PathArgument, user_errors


@click.group()
def sequence() -> None:
    """Assemblies that learn and replay input patterns through STDP (Klampfl & Maass 2013)."""


@sequence.command()
@click.argument("config", type=PathArgument(dir_okay=False, path_type=Path))
@click.option("--training-s", type=click.FloatRange(min=0), default=100.0, show_default=True,
              help="Simulated seconds of training written into the file.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None,
              help="Seed of every random stream (default: none in the file, so each run draws a fresh one).")
@click.option("--force", is_flag=True, help="Replace an existing file.")
@user_errors
def new(config: Path, training_s: float, seed: int | None, force: bool) -> None:
    """Write CONFIG, a configuration with every value of the full-scale experiment (edit it, then run it)."""
    from spikeforge.core.store import atomic_write_text
    from spikeforge.sequence import config as configs

    if config.exists() and not force:
        from spikeforge.errors import DataFileError

        raise DataFileError(f"{str(config)!r} already exists; use --force to replace it, or another name")
    atomic_write_text(config, configs.template(training_s=training_s, seed=seed))
    click.echo(f"wrote {config}; run it with `spikeforge sequence run {config}`")


@sequence.command()
@click.argument("config", type=PathArgument(dir_okay=False, path_type=Path))
@click.option("--out", "directory", type=PathArgument(file_okay=False, path_type=Path), default=None,
              help="Directory of the results (default: CONFIG without .toml).")
@click.option("--force", is_flag=True, help="Replace a finished or different run in the directory.")
@click.option("--seeds", default=None, metavar="S1,S2,...",
              help="Run once per seed, as parallel Dask jobs: DIR/seed-<k>/ each, and seeds.csv with their scores.")
@dask_options("the seeds (with --seeds)")
@user_errors
def run(config: Path, directory: Path | None, force: bool, seeds: str | None, scheduler: str | None,
        workers: int | None) -> None:
    """Test the untrained network, train it, test it again; save run.h5, scores.csv and figures.

    Ctrl-C (or SIGTERM) saves the training done so far; the same command resumes it."""
    from spikeforge.errors import ParameterError
    from spikeforge.sequence import runs

    if seeds is None:
        if scheduler is not None or workers is not None:
            raise ParameterError("--scheduler and --workers go with --seeds (one Dask job per seed)")
        runs.run(config, directory, force=force)
        return
    try:
        values = [int(part) for part in seeds.split(",")]
    except ValueError:
        raise ParameterError(f"--seeds {seeds!r} is not a comma-separated list of whole numbers") from None
    runs.run_seeds(config, values, directory, scheduler=scheduler, workers=workers, force=force)
