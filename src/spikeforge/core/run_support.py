"""What the long commands of every capability share: the seed of a run, progress bars and lines
that suit both a terminal and a batch job's log, and the refusal to replace an earlier result."""

from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from spikeforge.core import rng as streams
from spikeforge.errors import DataFileError, ParameterError


def echo(verbose: bool, text: str) -> None:
    """Print ``text`` if ``verbose``.  When the reader of standard output has gone (``spikeforge ... |
    head``), the rest of the output is dropped and the work goes on."""
    if verbose:
        try:
            print(text, flush=True)
        except BrokenPipeError:
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def progress_bar(total: int, desc: str, unit: str, verbose: bool) -> tqdm:
    """A tqdm bar on a terminal (stderr), silent otherwise."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not (verbose and sys.stderr.isatty()), leave=False)


def progress_line(bar: tqdm, verbose: bool, text: str) -> None:
    """A progress line: above the bar on a terminal, else printed (logs of batch jobs)."""
    if bar.disable:
        echo(verbose, text)
    else:
        bar.write(text)


def run_seed(seed: int | None, verbose: bool) -> int:
    """The seed of a run: validated, or a fresh one (printed, so the run can be repeated)."""
    if seed is None:
        seed = streams.fresh_seed()
        echo(verbose, f"seed {seed} (chosen at random; saved with the results)")
        return seed
    if not 0 <= int(seed) < 2**63:
        raise ParameterError(f"seed {seed} must be in [0, 2**63)")
    return int(seed)


def refuse_existing(path: Path, force: bool | None, what: str) -> None:
    """Refuse to replace ``path`` unless ``force`` (None: the command has no --force)."""
    if path.exists() and not force:
        remedy = "choose another directory" if force is None else "use --force to replace it, or another directory"
        raise DataFileError(f"{str(path)!r} already holds {what}; {remedy}")


def torch_device(device: str):
    """``device`` as a torch.device, or a ParameterError naming what is wrong with it."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ParameterError(f"device {device!r} is not one of cpu, cuda, cuda:N") from None
    if parsed.type not in ("cpu", "cuda"):
        raise ParameterError(f"device {device!r} is not one of cpu, cuda, cuda:N")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device {device!r}: CUDA is not available here; use --device cpu")
    return parsed


def check_backend(backend: str, device: str) -> None:
    """ParameterError unless ``backend`` is numba on the CPU, or torch on a device that exists."""
    if backend == "numba":
        if device != "cpu":
            raise ParameterError(f"--device {device!r} needs --backend torch; the numba backend runs on the CPU")
        return
    torch_device(device)
