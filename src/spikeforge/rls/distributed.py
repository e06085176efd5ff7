"""RLS training of one network sharded across processes with ``torch.distributed`` (``spikeforge train
DIR --distributed`` under ``torchrun``).

What is sharded: always the neurons' RLS state.  Rank k of R owns a contiguous block of neurons
(:func:`shard_of`); it holds only their P matrices (the memory of training: N Lmax^2 numbers) and runs
only their RLS updates (the work of training: O(N Lmax^2) per learning step).  By default the network's
dynamics (O(N k) per step) run whole on every rank from the same random streams, so every rank sees the
same spikes without exchanging them, and after each learning step the ranks exchange the plastic weights
of their neurons (an all-gather of N x Lmax numbers).  With ``--shard-network`` (:class:`ShardedDynamics`)
a rank also keeps only the synapses onto its own neurons and updates only those neurons; the ranks
exchange every step's spikes instead, and the weights only for checkpoints.

Results do not depend on the number of ranks: each neuron's update is independent of the others', and
float64 runs equal a single process's to the last bit.  Each rank reads only its rows of P from the
checkpoint it starts from; checkpoints hold the whole network (rank 0 writes P block by block as the other
ranks send theirs, holding at most two blocks), so a run resumes on any number of ranks.  Only rank 0 prints, locks the directory and writes
files.  Every rank agrees after each loop whether a signal asked to stop, so all stop at the same loop.
A rank that dies breaks the others' next collective operation: they stop with an error naming the
last checkpoint, which stays valid; ``timeout_s`` bounds a hang.

Communication: gloo for CPU arrays (the numba backend and torch on the CPU), NCCL for CUDA tensors
(rank k on ``cuda:<local rank>``).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import time
from typing import NamedTuple

import numpy as np

from spikeforge.core.aligned import aligned_copy
from spikeforge.core.backends.layout import DELIVER, UPDATE, Connectivity, Recording, State
from spikeforge.core.store import Pieces
from spikeforge.errors import ParameterError, SpikeforgeError
from spikeforge.rls.learner import Learner

DEFAULT_TIMEOUT_S = 300.0


class DistributedError(SpikeforgeError):
    """Another rank failed or cannot be reached."""


class Shard(NamedTuple):
    """Rank ``rank`` of ``world`` owns neurons ``lo .. hi - 1``."""

    rank: int
    world: int
    lo: int  # first neuron owned
    hi: int  # one past the last

    @property
    def size(self) -> int:
        """The number of neurons the rank owns: ``hi - lo``."""
        return self.hi - self.lo


def shard_of(n_cells: int, rank: int, world: int) -> Shard:
    """Rank ``rank``'s block of neurons: contiguous, sizes differing by at most one."""
    if not 0 <= rank < world:
        raise ParameterError(f"rank {rank} of {world}")
    if world > n_cells:
        raise ParameterError(f"{world} ranks for {n_cells} neurons; expected at most one rank per neuron")
    base, extra = divmod(n_cells, world)
    lo = rank * base + min(rank, extra)
    return Shard(rank, world, lo, lo + base + (rank < extra))


def shard_sizes(n_cells: int, world: int) -> list[int]:
    """The number of neurons of every rank's shard."""
    return [shard_of(n_cells, k, world).size for k in range(world)]


def owned_synapses(net: Connectivity, in_to_out: np.ndarray, shard: Shard) -> tuple[Connectivity, np.ndarray]:
    """The synapses of ``net`` onto the neurons of ``shard`` (order kept, so every neuron receives its
    charges in the same order as in the whole network), and ``in_to_out`` of the shard's rows pointing
    into the kept plastic synapses (the other rows point at position 0 and are never used)."""

    def kept(ptr, post, weight):
        keep = (post >= shard.lo) & (post < shard.hi)
        before = np.concatenate([[0], np.cumsum(keep)])  # kept synapses before each position
        return before[ptr].astype(ptr.dtype), post[keep], weight[keep], before

    static_ptr, static_post, static_weight, _ = kept(net.static_ptr, net.static_post, net.static_weight)
    plastic_ptr, plastic_post, plastic_weight, before = kept(net.plastic_ptr, net.plastic_post, net.plastic_weight)
    owned_in_to_out = np.zeros_like(in_to_out)
    owned_in_to_out[shard.lo:shard.hi] = before[in_to_out[shard.lo:shard.hi]]
    return Connectivity(static_ptr, static_post, static_weight, plastic_ptr, plastic_post, plastic_weight), owned_in_to_out


class Group:
    """The process group of this run (from torchrun's environment), and the collective operations
    training needs, on NumPy arrays."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S, device: str = "cpu"):
        missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
        if missing:
            raise ParameterError(f"--distributed needs torchrun's environment ({', '.join(missing)} missing); start "
                                 "it as: torchrun --nproc-per-node R -m spikeforge train DIR --distributed")
        import torch
        import torch.distributed as dist

        self.torch, self.dist = torch, dist
        self.rank, self.world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        self.seconds = 0.0  # spent in collective operations (waiting for the slowest rank included)
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.cuda = device.startswith("cuda")
        self.device = f"cuda:{self.local_rank}" if self.cuda else "cpu"
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        import numba

        if local_world > 1 and numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS:  # not set by --threads
            numba.set_num_threads(max(1, numba.config.NUMBA_NUM_THREADS // local_world))  # the ranks share the cores
        if not dist.is_initialized():
            dist.init_process_group("nccl" if self.cuda else "gloo",
                                    timeout=datetime.timedelta(seconds=timeout_s))

    def close(self) -> None:
        """Destroy the torch.distributed process group, if it is still initialised."""
        if self.dist.is_initialized():
            self.dist.destroy_process_group()

    def _tensor(self, array: np.ndarray):
        tensor = self.torch.from_numpy(np.ascontiguousarray(array))
        return tensor.to(self.device) if self.cuda else tensor

    def _run(self, what: str, operation):
        started = time.perf_counter()
        try:
            return operation()
        except RuntimeError as error:  # a peer died or timed out: gloo/NCCL raise RuntimeError
            reason = " ".join(str(error).split())[:200]
            raise DistributedError(f"rank {self.rank}: {what} with the other ranks failed ({reason})") from None
        finally:
            self.seconds += time.perf_counter() - started

    def gather_blocks(self, local: np.ndarray, sizes: list[int], what: str = "exchanging the plastic weights"
                      ) -> list[np.ndarray]:
        """Every rank's ``local`` block (first axis ``sizes[k]`` on rank k), on every rank."""
        width = max(sizes)
        padded = np.zeros((width,) + local.shape[1:], dtype=local.dtype)
        padded[:local.shape[0]] = local
        tensor = self._tensor(padded)
        out = [self.torch.empty_like(tensor) for _ in range(self.world)]
        self._run(what, lambda: self.dist.all_gather(out, tensor))
        return [block.cpu().numpy()[:size] for block, size in zip(out, sizes)]

    def largest(self, value: int, what: str = "agreeing whether to stop") -> int:
        """The largest of every rank's ``value``, on every rank."""
        tensor = self._tensor(np.array([int(value)], dtype=np.int64))
        self._run(what, lambda: self.dist.all_reduce(tensor, op=self.dist.ReduceOp.MAX))
        return int(tensor.cpu().item())

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any."""
        return bool(self.largest(1 if flag else 0, "comparing a check"))

    def send(self, block: np.ndarray, to: int) -> None:
        """Send ``block`` to rank ``to`` (which receives it with :meth:`receive`)."""
        tensor = self._tensor(block)
        self._run(f"sending a block to rank {to}", lambda: self.dist.send(tensor, dst=to))

    def receive(self, shape: tuple, dtype, source: int) -> np.ndarray:
        """The block of ``shape`` and ``dtype`` that rank ``source`` sends."""
        tensor = self._tensor(np.empty(shape, dtype=dtype))
        self._run(f"receiving a block from rank {source}", lambda: self.dist.recv(tensor, src=source))
        return tensor.cpu().numpy()

    def barrier(self) -> None:
        """Wait until every rank has reached this call.

        Raises:
            DistributedError: another rank died or did not arrive within the group's timeout.
        """
        self._run("waiting for the other ranks", lambda: self.dist.barrier())


class SpikeExchange:
    """Every step's spikes of every rank's neurons, on every rank: one all-gather of each rank's block of
    ``spiked`` packed as a bitmask (bench/spike_exchange.py: one collective per step costs about a
    millisecond on gloo whatever it carries, so one collective of a fixed size is the cheapest form, and
    its N/8 bytes only matter from about 10^7 neurons).  Packing is done with torch on the array's own
    device (NumPy arrays are used in place); the buffers are made once and reused every step."""

    def __init__(self, group: Group, shard: Shard, sizes: list[int]):
        torch = group.torch
        self.group, self.shard, self.sizes = group, shard, sizes
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        self.width = -(-max(sizes) // 8)  # bytes per rank
        self.shifts = torch.arange(7, -1, -1, dtype=torch.int32, device=group.device)
        self.bits = torch.zeros(8 * self.width, dtype=torch.int32, device=group.device)
        self.send = torch.zeros(self.width, dtype=torch.uint8, device=group.device)
        self.received = [torch.zeros(self.width, dtype=torch.uint8, device=group.device) for _ in sizes]

    def __call__(self, spiked) -> None:
        """Replace the other ranks' neurons' entries of ``spiked`` ((N + lx,) uint8, NumPy or a tensor on the
        group's device) by the spikes they had this step."""
        torch = self.group.torch
        spiked = torch.from_numpy(spiked) if isinstance(spiked, np.ndarray) else spiked
        lo, hi = self.shard.lo, self.shard.hi
        self.bits[:hi - lo].copy_(spiked[lo:hi])
        self.send.copy_((self.bits.view(-1, 8) << self.shifts).sum(dim=1))
        self.group._run("exchanging spikes", lambda: self.group.dist.all_gather(self.received, self.send))
        for k, packed in enumerate(self.received):
            if k != self.shard.rank:
                bits = (packed.to(torch.int32)[:, None] >> self.shifts) & 1
                spiked[self.starts[k]:self.starts[k + 1]] = bits.view(-1)[:self.sizes[k]]


class ShardedDynamics:
    """Runs the steps of a network whose neurons and synapses are sharded across the ranks
    (``train --distributed --shard-network``).

    Each rank holds the synapses onto its own neurons (:func:`owned_synapses`) and updates only its own
    neurons; per step it runs the update phase of the backend's kernel (numba or torch; see
    :func:`spikeforge.core.backends.numba_network.run_steps`), exchanges the spikes (:class:`SpikeExchange`),
    and runs the delivery phase, in which every rank counts every neuron's spikes and delivers them onto its
    own neurons.  The filtered spike trains ``r`` of every neuron are therefore known on every rank, as each
    neuron's RLS update needs them; the rolling sums of the currents and the GLIF state are gathered once at
    the end of a trial.  Every neuron receives the same charges in the same order as in one process, so
    results are identical to one process's (on the CPU; on CUDA as reproducible as one process's).
    """

    @classmethod
    def of(cls, backend, group: Group, n_cells: int) -> "ShardedDynamics":
        """The sharded dynamics of this rank's block of ``n_cells`` neurons."""
        return cls(backend, group, shard_of(n_cells, group.rank, group.world), shard_sizes(n_cells, group.world))

    def __init__(self, backend, group: Group, shard: Shard, sizes: list[int]):
        if backend.options.fused_neurons:  # the fused Triton update runs every neuron
            backend = dataclasses.replace(backend, options=dataclasses.replace(backend.options, fused_neurons=False))
        self.backend, self.group, self.shard, self.sizes = backend, group, shard, sizes
        self.exchange = SpikeExchange(group, shard, sizes)

    def run_steps(self, state: State, net: Connectivity, const, rec: Recording, x_stim, noise, ff_spikes,
                  first_step: int, last_step: int, kind: int) -> None:
        """Steps ``first_step .. last_step`` (the arguments of :meth:`Backend.run_steps`), one exchange per step."""
        owned = (self.shard.lo, self.shard.hi)
        for ti in range(first_step, last_step + 1):
            row = ti - first_step
            noise_now = noise[row:row + 1] if noise.shape[0] else noise
            ff_now = ff_spikes[row:row + 1] if ff_spikes.shape[0] else ff_spikes
            for phase in (UPDATE, DELIVER):
                self.backend.run_steps(state, net, const, rec, x_stim, noise_now, ff_now, ti, ti, kind, owned=owned,
                                       phase=phase)
                if phase == UPDATE:
                    self.exchange(state.spiked)

    def complete(self, state: State, rec: Recording) -> tuple[State, Recording]:
        """``state`` and ``rec`` (NumPy) at the end of a trial with every rank's neurons' GLIF adaptation state
        and rolling sums of the currents (each rank updated its own; spike counts and times are whole already)."""
        lo, hi = self.shard.lo, self.shard.hi
        own = [state.thresh_s[lo:hi, None], state.thresh_v[lo:hi, None], state.asc[lo:hi]]
        if rec.roll_sum.shape[1]:
            own.append(rec.roll_sum[:, :, lo:hi].transpose(2, 0, 1).reshape(hi - lo, -1))
        whole = np.concatenate(self.group.gather_blocks(np.concatenate(own, axis=1), self.sizes,
                                                        "exchanging the neurons' final state"))
        n_asc = state.asc.shape[1]
        state.thresh_s[:], state.thresh_v[:], state.asc[:] = whole[:, 0], whole[:, 1], whole[:, 2:2 + n_asc]
        if rec.roll_sum.shape[1]:
            rec.roll_sum[...] = whole[:, 2 + n_asc:].reshape(-1, *rec.roll_sum.shape[:2]).transpose(1, 2, 0)
        return state, rec


@dataclasses.dataclass
class ShardedLearner(Learner):
    """A :class:`Learner` holding the P of its shard's neurons only; its update runs their RLS.  With
    ``shares_weights`` (the dynamics run whole on every rank) it then shares the new weights with the other
    ranks; otherwise (``--shard-network``) each rank's dynamics need only its own neurons' weights, and
    the others' are gathered for checkpoints only (:meth:`whole_weights`).  The per-neuron arrays other
    than P stay whole."""

    shard: Shard | None = None
    group: Group | None = None
    sizes: list = dataclasses.field(default_factory=list)
    shares_weights: bool = True

    def update(self, backend, r, u_bal, target) -> None:
        """One RLS update of the shard's neurons on ``backend``.

        ``r`` is the (N + lx,) filtered spike trains; ``u_bal`` and ``target`` are whole (N,) arrays, of which only
        the shard's rows are used.  When ``apply`` and ``shares_weights`` are set, every rank then receives the
        other ranks' new plastic weights into ``weights_in`` and ``weights_out`` (a collective operation: every
        rank must call it).
        """
        lo, hi = self.shard.lo, self.shard.hi
        backend.rls_update(self.P, self.weights_in[lo:hi], self.plastic_index[lo:hi], self.plastic_count[lo:hi],
                           self.in_to_out[lo:hi], self.weights_out, r, u_bal[lo:hi], target[lo:hi], self.p_scale,
                           self.gain_with_den, self.storage, self.apply, interleaved=self.p_interleaved)
        if not self.apply or not self.shares_weights:
            return
        blocks = self.group.gather_blocks(backend.get(self.weights_in[lo:hi]), self.sizes)
        starts = np.concatenate([[0], np.cumsum(self.sizes)])
        for k, block in enumerate(blocks):
            if k == self.shard.rank:
                continue
            rows = slice(starts[k], starts[k + 1])
            self.weights_in[rows] = backend.put(block)
            counts = backend.get(self.plastic_count[rows])
            used = np.arange(block.shape[1])[None, :] < counts[:, None]
            where = backend.get(self.in_to_out[rows])[used]
            self.weights_out[backend.put(where) if backend.name != "numba" else where] = (
                backend.put(block[used]) if backend.name != "numba" else block[used])

    def p_counts(self):
        """The numbers of plastic inputs of this rank's neurons (whose P it holds)."""
        return self.plastic_count[self.shard.lo:self.shard.hi]

    def whole_weights(self, backend) -> np.ndarray:
        """The (N, Lmax) plastic weights of every neuron, on every rank (every rank must come here)."""
        if self.shares_weights:
            return backend.get(self.weights_in)
        lo, hi = self.shard.lo, self.shard.hi
        return np.concatenate(self.group.gather_blocks(backend.get(self.weights_in[lo:hi]), self.sizes))

    def p_pieces(self, backend, file_layout) -> Pieces | None:
        """The whole P for a checkpoint, block by block: on rank 0, a :class:`~spikeforge.core.store.Pieces`
        that writes its own block and then receives and writes every other rank's, one at a time (rank 0 never
        holds more than two blocks); on the other ranks, their block is sent to rank 0 (and None returned).
        ``file_layout(block)``: a block of P in the files' layout.  Every rank must come here."""
        own = file_layout(backend.get(self.P))
        if self.shard.rank != 0:
            self.group.send(own, 0)
            return None
        starts = np.concatenate([[0], np.cumsum(self.sizes)]).tolist()

        def fill(dataset) -> None:
            dataset[starts[0]:starts[1]] = own
            for k in range(1, self.shard.world):
                dataset[starts[k]:starts[k + 1]] = self.group.receive((self.sizes[k],) + own.shape[1:], own.dtype, k)

        return Pieces((starts[-1],) + own.shape[1:], own.dtype, fill)


def sharded(learner: Learner, group: Group, n_cells: int, shares_weights: bool = True) -> ShardedLearner:
    """``learner`` with only this rank's block of P (given as that block, or whole: the rest is dropped);
    ``shares_weights``: see :class:`ShardedLearner`."""
    if learner.history is not None:
        raise ParameterError("p_compute = 'small' keeps a history of filtered spike trains, not P; --distributed "
                             "shards P, so it needs p_compute = 'fast'")
    shard = shard_of(n_cells, group.rank, group.world)
    sizes = shard_sizes(n_cells, group.world)
    fields = {f.name: getattr(learner, f.name) for f in dataclasses.fields(Learner)}
    fields["write_plan"] = None  # a plan is of the whole network; a shard writes its rows back through in_to_out
    size = shard.size
    if learner.P.shape[0] == size:  # already this rank's block (read with Model.load(p_rows=...))
        fields["P"] = learner.P
    elif learner.P.shape[0] == n_cells:
        fields["P"] = aligned_copy(learner.P[shard.lo:shard.hi])
    else:
        raise ParameterError(f"P has {learner.P.shape[0]} rows: neither the {n_cells} neurons nor rank "
                             f"{group.rank}'s block of {size}")
    return ShardedLearner(**fields, shard=shard, group=group, sizes=sizes, shares_weights=shares_weights)
