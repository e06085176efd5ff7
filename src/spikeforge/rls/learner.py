"""The RLS learner of a training run: P (or the small mode's history), the plastic weights (in the in-layout, and
their copy in the out-layout where the step kernel reads that), and the options of the update, applied by a backend
at every learning step."""

from __future__ import annotations

import dataclasses

import numpy as np

from spikeforge.core.backends import numba_rls
from spikeforge.core.store import Pieces


@dataclasses.dataclass
class Learner:
    """What an RLS update needs besides the trial state; arrays are updated in place."""

    P: np.ndarray  # scaled by p_scale, layout of spikeforge.rls.p_matrix
    weights_in: np.ndarray  # (N, Lmax)
    plastic_index: np.ndarray  # (N, Lmax)
    plastic_count: np.ndarray  # (N,)
    in_to_out: np.ndarray  # (N, Lmax)
    # out-layout plastic weights (shared with the Connectivity), which each update copies its weights to; None
    # where the step kernel reads weights_in in place (spikeforge.core.backends.layout.Connectivity.plastic_source)
    weights_out: np.ndarray | None
    p_scale: float
    gain_with_den: bool
    storage: str  # p_storage: full, symmetric or packed
    apply: bool
    # small mode (p_compute = "small"): a ring of recent filtered spike trains instead of P
    history: np.ndarray | None = None  # (H, N + lx)
    history_filled: int = 0  # snapshots in the ring
    history_next: int = 0  # row the next snapshot goes to
    penalties: tuple[float, float, float, int] = (0.0, 0.0, 0.0, 0)  # penlambda, penmu, penlam_ff, lx
    replay: object = None  # the backend's replay of learning intervals (CUDA graphs), kept across trials
    # spikeforge.rls.connectivity.out_to_in of the whole network (numba, one process), to write the copy in the
    # out-layout's order; None: through in_to_out (or no copy, where weights_out is None)
    write_plan: np.ndarray | None = None
    # numba: P is interleaved by groups of 16 neurons (spikeforge.core.backends.numba_rls.interleave), in place:
    # the model's P is the same array, packed again by restore_packed_p
    p_interleaved: bool = False

    def update(self, backend, r: np.ndarray, u_bal: np.ndarray, target: np.ndarray) -> None:
        """One RLS update of every neuron on ``backend`` with the filtered spike trains ``r`` (N + lx,)."""
        if self.history is None:
            backend.rls_update(self.P, self.weights_in, self.plastic_index, self.plastic_count, self.in_to_out,
                               self.weights_out, r, u_bal, target, self.p_scale, self.gain_with_den, self.storage,
                               self.apply, write_plan=self.write_plan, interleaved=self.p_interleaved)
            return
        backend.rls_small(self.history, self.history_filled, self.weights_in, self.plastic_index, self.plastic_count,
                          self.in_to_out, self.weights_out, r, u_bal, target, *self.penalties, self.gain_with_den,
                          self.apply, write_plan=self.write_plan)
        self.history[self.history_next] = r  # after the update: the present sample is not in its own solve
        self.history_next = (self.history_next + 1) % self.history.shape[0]
        self.history_filled = min(self.history_filled + 1, self.history.shape[0])

    def interleave_p(self, backend) -> None:
        """Interleave P in place where ``backend`` updates it faster that way (:meth:`Backend.interleaves`, and
        few groups of 16 neurons with unequal numbers of inputs: :func:`numba_rls.worth_interleaving`)."""
        if (self.history is None and not self.p_interleaved and backend.interleaves(self.storage, self.P.dtype)
                and numba_rls.worth_interleaving(backend.get(self.p_counts()))):
            numba_rls.interleave(self.P)
            self.p_interleaved = True

    def p_counts(self):
        """The numbers of plastic inputs of the neurons whose P this learner holds (all)."""
        return self.plastic_count

    def restore_packed_p(self) -> None:
        """Undo :meth:`interleave_p` (in place)."""
        if self.p_interleaved:
            numba_rls.deinterleave(self.P)
            self.p_interleaved = False

    def packed_p_pieces(self, block_bytes: int = 2**24) -> Pieces:
        """An interleaved P for a checkpoint, as the files hold it (packed), converted ``block_bytes`` at a time."""
        P = self.P
        rows = max(1, block_bytes // max(1, P[0].nbytes * numba_rls.GROUP)) * numba_rls.GROUP

        def fill(dataset) -> None:
            for lo in range(0, P.shape[0], rows):
                dataset[lo:lo + rows] = numba_rls.deinterleaved_rows(P, lo, min(lo + rows, P.shape[0]))

        return Pieces(P.shape, P.dtype, fill)
