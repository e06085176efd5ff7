"""What every ``spikeforge`` subcommand shares: user errors as one ``error:`` line and exit status 2,
warnings as one line, signals as exit status 128 + the signal, paths that refuse empty text, and
the backend options.  Capability command groups (``spikeforge rate ...``) import these."""

from __future__ import annotations

import functools
import sys
import warnings

import click

from spikeforge.core.interrupts import Interrupted
from spikeforge.errors import SpikeforgeError, SpikeforgeWarning


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a spikeforge warning as ``warning: ...``; other warnings as Python does."""
    if issubclass(category, SpikeforgeWarning):
        click.echo(f"warning: {message}", err=True)
    else:
        click.echo(warnings.formatwarning(message, category, filename, lineno, line).rstrip(), err=True)


def user_errors(command):
    """Run a command: SpikeforgeError becomes one line on stderr and exit status 2, a signal exit
    status 128 + its number, warnings one line each."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("always", SpikeforgeWarning)
            warnings.showwarning = one_line_warning  # restored when the block ends
            try:
                return command(*args, **kwargs)
            except Interrupted as interrupted:
                click.echo(str(interrupted), err=True)
                sys.exit(interrupted.exit_status)
            except SpikeforgeError as error:
                click.echo(f"error: {error}", err=True)
                sys.exit(2)
            except MemoryError:
                click.echo("error: out of memory; use a smaller problem (fewer neurons, trials or candidates; for an "
                           "RLS network `spikeforge estimate DIR` tells what it needs)", err=True)
                sys.exit(2)
            except OSError as error:  # the file system refused: a path too long, a device gone, ...
                where = f": {error.filename!r}" if error.filename else ""
                click.echo(f"error: {error.strerror or error}{where}", err=True)
                sys.exit(2)

    return wrapper


class PathArgument(click.Path):
    """click.Path that refuses an empty text ("" would become the current directory)."""

    def convert(self, value, param, ctx):
        """Convert ``value`` as click.Path does, after failing (a usage error) when it is a blank string."""
        if isinstance(value, str) and not value.strip():
            self.fail("is empty; expected a path", param, ctx)
        return super().convert(value, param, ctx)


def backend_options(command):
    """--backend and --device."""
    command = click.option("--device", default="cpu", show_default=True,
                           help="Device of the torch backend: cpu, cuda or cuda:N.")(command)
    return click.option("--backend", type=click.Choice(["numba", "torch"]), default="numba", show_default=True,
                        help="Kernels: numba (CPU) or torch (CPU or CUDA).")(command)


def dask_options(what: str):
    """--scheduler and --workers of a command whose ``what`` (e.g. "the trials") can run as Dask jobs."""
    def decorate(command):
        command = click.option("--workers", type=click.IntRange(min=1), default=None,
                               help=f"Run {what} as Dask jobs on a local cluster of this many single-threaded "
                                    "worker processes (default: one per core).")(command)
        return click.option("--scheduler", default=None, metavar="ADDRESS",
                            help=f"Run {what} as Dask jobs on a running scheduler (tcp://host:8786; default "
                                 "$SPIKEFORGE_SCHEDULER, else a local cluster).")(command)
    return decorate
