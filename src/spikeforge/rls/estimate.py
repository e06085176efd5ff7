"""How much memory a model needs: P for each storage and precision, connectivity, recordings.

Sizes are computed from the parameters alone (and from ``init.h5``'s plastic in-degrees
when it exists, since a plugin may choose them), in bytes.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np

from spikeforge.core.backends import KernelOptions
from spikeforge.core.backends.numba_rls import padded_width
from spikeforge.core.resources import human_bytes
from spikeforge.core.store import dataset_shapes, read_h5
from spikeforge.rls import p_matrix
from spikeforge.rls.files import RunDir
from spikeforge.rls.params import Params

STORAGES = ("full", "symmetric", "packed")
PRECISIONS = ("float64", "float32", "float16", "int16")


@dataclasses.dataclass
class Estimate:
    """Bytes of each part of a model."""

    p_file: dict[tuple[str, str], int]  # (storage, precision) -> P in files
    p_memory: dict[tuple[str, str], int]  # (storage, precision) -> P in memory (padded rows)
    connectivity: int  # static and plastic synapses, both layouts
    targets_and_stimulus: int
    simulation_state: int
    test_recording_per_trial: int  # spike times and rolling currents of all neurons, one trial
    chosen: tuple[str, str]

    def total(self, storage: str, precision: str) -> int:
        """Memory of training with P in (storage, precision)."""
        return (self.p_memory[storage, precision] + self.connectivity + self.targets_and_stimulus
                + self.simulation_state + self.test_recording_per_trial)


def estimate(p: Params, plastic_count: np.ndarray | None = None, n_tasks: int = 1) -> Estimate:
    """Memory of model ``p``; ``plastic_count`` (per neuron) if known, else lexc + linh + lx each."""
    n, s = p.n_cells, p.steps
    if plastic_count is None:
        lmax, n_plastic = s.n_plastic, n * s.n_plastic
    else:
        lmax, n_plastic = int(plastic_count.max()), int(plastic_count.sum())
    float_size = 8 if p.float_precision == "float64" else 4
    p_file, p_memory = {}, {}
    for storage in STORAGES:
        for precision in PRECISIONS:
            p_file[storage, precision] = p_matrix.nbytes(n, lmax, storage, precision)
            itemsize = p_matrix.ITEMSIZE[precision]
            row = lmax * (lmax + 1) // 2 if storage == "packed" else lmax * padded_width(lmax, itemsize)
            p_memory[storage, precision] = n * row * p_matrix.ITEMSIZE[precision]
    static = 2 * p.k * n * (4 + float_size) + (n + 1) * 8
    plastic = n * lmax * (4 + float_size + 8) + n_plastic * (4 + float_size) + (n + p.lx + 1) * 8
    return Estimate(
        p_file=p_file, p_memory=p_memory, connectivity=static + plastic,
        targets_and_stimulus=n_tasks * n * (s.learn_nsteps * 8 + (s.stim_off_step - s.stim_on_step) * float_size),
        simulation_state=n * float_size * 20,
        test_recording_per_trial=n * (s.max_times * 4 + 2 * s.learn_nsteps * 8),
        chosen=(p.p_storage, p.p_precision),
    )


def init_file_bytes(p: Params, n_tasks: int = 1) -> int:
    """Size of the init.h5 of model ``p`` (from the parameters; a plugin may change it a little)."""
    n, s = p.n_cells, p.steps
    float_size = 8 if p.float_precision == "float64" else 4
    p_bytes = 0 if p.p_compute == "small" else p_matrix.nbytes(n, s.n_plastic, p.p_storage, p.p_precision)
    static = 2 * p.k * n * (4 + float_size) + (n + 1) * 8
    plastic = n * s.n_plastic * (4 + float_size) + n * 4
    tasks = n_tasks * n * (s.learn_nsteps * 8 * 2 + (s.stim_off_step - s.stim_on_step) * float_size)
    return p_bytes + static + plastic + tasks + 3 * n * 8 + (s.n_steps - s.stim_off_step) * p.lx * 8


def check_disk(directory: Path, need: int, what: str) -> None:
    """Refuse to start work that will write ``need`` bytes (``what``) where fewer are free."""
    from spikeforge.errors import DataFileError

    free = shutil.disk_usage(directory).free
    if free < need:
        shown = (human_bytes(free), human_bytes(need))
        if shown[0] == shown[1]:
            shown = (f"{free:,} bytes", f"{need:,} bytes")
        raise DataFileError(f"the file system of {str(directory)!r} has {shown[0]} free, but {what} will take {shown[1]}; "
                            "free some space or use another directory")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation on this machine (Linux: MemAvailable;
    elsewhere the physical memory), or None where it cannot be told."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_host_memory(p: Params, plastic_count: np.ndarray | None = None, n_tasks: int = 1,
                      with_p: bool = True, ranks: int = 1, ranks_here: int = 1) -> None:
    """Raise ParameterError, with the estimate, if the model needs more memory than this machine
    has available (checked before anything large is allocated); ``with_p=False``: for frozen-weight
    trials, which do not load P; ``ranks``: for one of the ranks of ``train --distributed``, of which
    ``ranks_here`` share this machine."""
    from spikeforge.errors import ParameterError

    e = estimate(p, plastic_count, n_tasks)
    need = e.total(*e.chosen)
    if ranks > 1:
        need = max(per_rank(e, ranks)) * ranks_here
    elif not with_p:
        need -= e.p_memory[e.chosen]
    elif p.p_compute == "small":  # no P, a short history of filtered spike trains instead
        need += max(1, round(p.p_history / p.learn_every)) * (p.n_cells + p.lx) * 8 - e.p_memory[e.chosen]
    free = available_memory()
    if free is not None and need > free:
        raise ParameterError(f"the model needs about {human_bytes(need)} of memory (p_storage = {e.chosen[0]!r}, "
                             f"p_precision = {e.chosen[1]!r}, {p.n_cells} neurons), but this machine has "
                             f"{human_bytes(free)} available; see `spikeforge estimate` for smaller choices")


def per_rank(e: Estimate, ranks: int, shard_network: bool = False) -> tuple[int, int]:
    """Memory of one rank of ``train --distributed`` over ``ranks`` ranks, P as chosen: (while it trains,
    on rank 0 while it writes a checkpoint) [bytes].  Each rank reads and keeps the P of its block of
    neurons only, and a whole copy of everything else (connectivity, weights, state); rank 0 writes a
    checkpoint's P block by block, holding its own block and one received block at a time.  With
    ``shard_network`` a rank keeps only the synapses onto its neurons while it trains (it reads them all
    at start-up)."""
    p_all = e.p_memory[e.chosen]
    rest = e.total(*e.chosen) - p_all
    if shard_network:
        rest -= e.connectivity - -(-e.connectivity // ranks)
    block = -(-p_all // ranks)
    return rest + block, rest + 2 * block


def report(directory: str | Path, ranks: int = 1) -> str:
    """A printable table of the memory the model in ``directory`` needs (and, for ``ranks`` > 1, what
    each rank of ``train --distributed`` needs)."""
    run = RunDir(directory)
    p = run.params()
    if ranks > p.n_cells:
        from spikeforge.errors import ParameterError

        raise ParameterError(f"--ranks {ranks} for {p.n_cells} neurons; expected at most one rank per neuron")
    count, n_tasks = None, 1
    if run.init_file.is_file():
        arrays, _ = read_h5(run.init_file, ["plastic/count"], what="init file")
        count = arrays["plastic/count"]
        n_tasks = dataset_shapes(run.init_file, "init file").get("targets", (1,))[0]
        if count.shape != (p.n_cells,) or count.size == 0:
            count = None  # init.h5 of other parameters: estimate from the parameters
    e = estimate(p, count, n_tasks)
    lines = [f"{p.n_cells} neurons, {p.steps.n_plastic if count is None else int(count.max())} plastic inputs "
             f"per neuron (max), {2 * p.k} static outputs per neuron",
             "", f"{'P storage':<10} {'precision':<9} {'P (file)':>10} {'P (memory)':>11} {'training total':>15}"]
    for storage in STORAGES:
        for precision in PRECISIONS:
            mark = "  <- params.toml" if (storage, precision) == e.chosen else ""
            lines.append(f"{storage:<10} {precision:<9} {human_bytes(e.p_file[storage, precision]):>10} "
                         f"{human_bytes(e.p_memory[storage, precision]):>11} {human_bytes(e.total(storage, precision)):>15}"
                         f"{mark}")
    lines += ["", f"connectivity (static + plastic, both layouts): {human_bytes(e.connectivity)}",
              f"targets and stimulus ({n_tasks} task{'s' if n_tasks > 1 else ''}): {human_bytes(e.targets_and_stimulus)}",
              f"simulation state: {human_bytes(e.simulation_state)}",
              f"test recording, per trial and task (all neurons): {human_bytes(e.test_recording_per_trial)}"]
    if ranks > 1 and p.p_compute == "small":
        lines += ["", "train --distributed shards P, which p_compute = 'small' does not keep: set p_compute = 'fast' "
                      "to train over several ranks"]
    elif ranks > 1:
        steady, writing = per_rank(e, ranks)
        lines += ["", f"train --distributed over {ranks} ranks (P as in params.toml): {human_bytes(steady)} per rank "
                      f"while training, and {human_bytes(writing)} on rank 0 while it writes a checkpoint (it "
                      "receives the other ranks' blocks of P one at a time); with --shard-network, "
                      f"{human_bytes(per_rank(e, ranks, shard_network=True)[0])} per rank while training (each keeps "
                      "the synapses onto its own neurons)"]
    free = available_memory()
    if free is not None:
        lines.append(f"available on this machine: {human_bytes(free)}")
    return "\n".join(lines)


def check_fits(p: Params, free_bytes: int, device: str, plastic_count: np.ndarray | None = None,
               n_tasks: int = 1) -> None:
    """Raise ParameterError if training ``p`` needs more than ``free_bytes`` on ``device``,
    naming what it needs and the P storage/precision choices that would fit."""
    from spikeforge.errors import ParameterError

    e = estimate(p, plastic_count, n_tasks)
    # the torch backend updates P block by block: a float32 working copy of a 16-bit block, the
    # outer product k k' and smaller temporaries, each at most rls_block_bytes
    working = 4 * KernelOptions.rls_block_bytes
    need = e.total(*e.chosen) + working
    if need <= free_bytes:
        return
    fitting = [f"{s}/{q}" for s in STORAGES for q in PRECISIONS if e.total(s, q) + working <= free_bytes]
    hint = f"; these P storage/precision choices fit: {', '.join(fitting)}" if fitting else (
        "; no P storage/precision fits: use p_compute = 'small' or a device with more memory")
    raise ParameterError(f"the model needs about {human_bytes(need)} on {device}, which has {human_bytes(free_bytes)} free "
                         f"(p_storage = {e.chosen[0]!r}, p_precision = {e.chosen[1]!r}){hint}")
