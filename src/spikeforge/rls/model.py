"""An initialised RLS network: its arrays, and how they are saved and loaded.

``init.h5`` datasets (C order; N = n_cells, Lmax = plastic inputs per neuron, T = tasks)::

    static/ptr (N+1,) static/post (2kN,) static/weight (2kN,)   static synapses, presynaptic layout
    plastic/index (N, Lmax) plastic/count (N,) plastic/weight (N, Lmax)   initial plastic inputs
    P (N, Lmax, Lmax) or (N, Lmax (Lmax+1)/2)   initial P * p_scale in p_storage / p_precision
    targets (T, learn_nsteps, N)           target currents at the learning times
    stimulus (T, (stim_off - stim_on)/dt, N)
    init/spike_count (N,) init/u_mean (N,) init/u_std (N,)   init-run statistics
    ff/probability ((train_time - stim_off)/dt, lx)   per-step spike probability of feed-forward neurons
    target_rates (T, learn_nsteps, N)      [Hz], only when the targets were converted from rates
    cell/...                               GLIF models: per-neuron cell parameters (model, c, e_l, ...)

Plastic inputs of neuron i are ``plastic/index[i, :count[i]]``: first the ``lx`` feed-forward
neurons (indices N .. N+lx-1), then excitatory, then inhibitory neurons.

Attributes: ``seed``, ``rng_streams`` (JSON: each stream's path and initial state),
``rate_exc_hz``, ``rate_inh_hz``, ``ustd0``, ``spikeforge_version``.
A checkpoint ``ckpt-<label>.h5`` holds ``plastic/weight`` and ``P`` with attributes ``loop``
and ``correlation``, with ``cell_state_persists`` the GLIF state ``cell/thresh_s``,
``cell/thresh_v``, ``cell/asc``, and in small mode the ``history`` of filtered spike trains
(attributes ``history_filled``, ``history_next``) instead of P.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import h5py
import numpy as np

import spikeforge
from spikeforge.core.backends.layout import Connectivity
from spikeforge.core.store import read_h5, write_h5
from spikeforge.errors import DataFileError
from spikeforge.rls import p_matrix
from spikeforge.rls.connectivity import OutLayout, PlasticInputs, out_layout
from spikeforge.rls.files import RunDir, checkpoint_loop
from spikeforge.rls.params import Params
from spikeforge.rls.simulation import float_dtype

def _p_in_memory(stored: np.ndarray, p: Params, path) -> np.ndarray:
    if p.p_compute == "small":
        return stored
    if stored.dtype != np.dtype(p.p_precision):
        raise DataFileError(f"{str(path)!r} holds P as {stored.dtype}, but params.toml says p_precision = "
                            f"{p.p_precision!r}; run `spikeforge init --force` after changing it")
    return p_matrix.to_memory_layout(stored, p.p_storage)


_CELL_STATE = ("cell/thresh_s", "cell/thresh_v", "cell/asc")
_INIT_DATASETS = ["static/ptr", "static/post", "static/weight", "plastic/index", "plastic/count", "plastic/weight",
                  "P", "targets", "stimulus", "init/spike_count", "init/u_mean", "init/u_std", "ff/probability"]


@dataclasses.dataclass
class Model:
    """Everything ``train`` and ``test`` need besides the parameters."""

    p: Params
    static: OutLayout
    plastic: PlasticInputs  # current plastic weights (in layout)
    P: np.ndarray  # times p_scale, in the kernels' layout of p_storage (spikeforge.rls.p_matrix)
    targets: np.ndarray  # (T, learn_nsteps, N)
    stimulus: np.ndarray  # (T, n_stim_rows, N)
    init_stats: dict[str, Any]  # spike_count, u_mean, u_std and attributes of the init run
    ff_probability: np.ndarray  # ((n_steps - stim_off_step), lx) feed-forward spike probability per step
    target_rates: np.ndarray | None = None  # (T, learn_nsteps, N) [Hz] when the targets came from rates
    loop: int = 0  # training loops behind the weights (0 = initial)
    label: str = "init"  # checkpoint the weights came from
    cell_state: tuple | None = None  # GLIF (thresh_s, thresh_v, asc) carried between trials if it persists
    history: tuple | None = None  # small mode: (ring (H, N + lx), snapshots filled, next row)
    cells: dict | None = None  # GLIF models: per-neuron cell table (spikeforge.rls.simulation.cell_table)

    def __post_init__(self):
        if self.p.p_compute == "small" and self.history is None:
            n_rows = max(1, round(self.p.p_history / self.p.learn_every))
            self.history = (np.zeros((n_rows, self.p.n_cells + self.p.lx)), 0, 0)

    @property
    def n_tasks(self) -> int:
        return self.targets.shape[0]

    def connectivity(self) -> tuple[Connectivity, np.ndarray]:
        """Kernel connectivity with the current plastic weights, and the in-to-out position map."""
        plastic_out, in_to_out = out_layout(self.plastic, self.p.n_cells + self.p.lx)
        dtype = float_dtype(self.p)
        net = Connectivity(self.static.ptr, self.static.post, self.static.weight.astype(dtype),
                           plastic_out.ptr, plastic_out.post, plastic_out.weight.astype(dtype))
        return net, in_to_out

    def stored_p(self) -> np.ndarray:
        """P as saved in files (without the in-memory column padding; empty in small mode)."""
        return self.P if self.P.ndim == 1 else p_matrix.to_file_from_memory(self.P, self.p.p_storage)

    def save_init(self, run: RunDir, attrs: dict[str, Any]) -> None:
        arrays = {
            "static/ptr": self.static.ptr, "static/post": self.static.post, "static/weight": self.static.weight,
            "plastic/index": self.plastic.index, "plastic/count": self.plastic.count,
            "plastic/weight": self.plastic.weight, "P": self.stored_p(), "targets": self.targets, "stimulus": self.stimulus,
            "init/spike_count": self.init_stats["spike_count"], "init/u_mean": self.init_stats["u_mean"],
            "init/u_std": self.init_stats["u_std"], "ff/probability": self.ff_probability,
        }
        if self.target_rates is not None:
            arrays["target_rates"] = self.target_rates
        for name, values in (self.cells or {}).items():
            arrays[f"cell/{name}"] = values.astype("S") if name == "model" else values
        write_h5(run.init_file, arrays, {**attrs, "spikeforge_version": spikeforge.__version__})

    def save_checkpoint(self, run: RunDir, label: str, correlation: float = float("nan")) -> None:
        arrays = {"plastic/weight": self.plastic.weight, "P": self.stored_p()}
        attrs = {"loop": self.loop, "correlation": correlation, "spikeforge_version": spikeforge.__version__}
        if self.cell_state is not None:
            arrays |= dict(zip(_CELL_STATE, self.cell_state))
        if self.history is not None:
            arrays["history"] = self.history[0]
            attrs |= {"history_filled": self.history[1], "history_next": self.history[2]}
        write_h5(run.checkpoint_file(label), arrays, attrs)

    @classmethod
    def load(cls, run: RunDir, checkpoint: str | int | None = None, p: Params | None = None) -> "Model":
        """Load ``init.h5`` and, if given, the weights and P of checkpoint ``checkpoint``."""
        p = run.params() if p is None else p
        run.require_init()
        arrays, attrs = read_h5(run.init_file, _INIT_DATASETS, what="init file")
        n, lmax = p.n_cells, arrays["plastic/index"].shape[1]  # a plugin chooses the number of inputs
        p_shape = (n, lmax * (lmax + 1) // 2) if p.p_storage == "packed" else (n, lmax, lmax)
        if p.p_compute == "small":
            p_shape = (0,)
        expected = {"plastic/weight": (n, lmax), "P": p_shape, "static/ptr": (n + 1,)}
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise DataFileError(
                    f"init file {str(run.init_file)!r}: {name} has shape {arrays[name].shape}, but params.toml "
                    f"implies {shape}; params.toml changed after init, run `spikeforge init --force` again"
                )
        dtype = float_dtype(p)
        model = cls(
            p=p,
            static=OutLayout(arrays["static/ptr"], arrays["static/post"], arrays["static/weight"].astype(dtype)),
            plastic=PlasticInputs(arrays["plastic/index"], arrays["plastic/count"],
                                  arrays["plastic/weight"].astype(dtype)),
            P=_p_in_memory(arrays["P"], p, run.init_file),
            targets=arrays["targets"],
            stimulus=arrays["stimulus"].astype(dtype),
            init_stats={"spike_count": arrays["init/spike_count"], "u_mean": arrays["init/u_mean"],
                        "u_std": arrays["init/u_std"], **attrs},
            ff_probability=arrays["ff/probability"],
        )
        with h5py.File(run.init_file, "r") as handle:
            if "target_rates" in handle:
                model.target_rates = handle["target_rates"][()]
            if "cell" in handle:
                model.cells = {name: data[()] for name, data in handle["cell"].items()}
                model.cells["model"] = model.cells["model"].astype(str)
        if checkpoint is not None:
            label = str(checkpoint)
            loop = checkpoint_loop(label)
            ckpt, ckpt_attrs = read_h5(run.checkpoint_file(label), ["plastic/weight", "P"], what="checkpoint")
            if ckpt["plastic/weight"].shape != model.plastic.weight.shape or ckpt["P"].shape != model.stored_p().shape:
                raise DataFileError(f"checkpoint {str(run.checkpoint_file(label))!r} does not match init.h5 shapes")
            model.plastic = model.plastic._replace(weight=ckpt["plastic/weight"].astype(dtype))
            model.P = _p_in_memory(ckpt["P"], p, run.checkpoint_file(label))
            model.loop, model.label = int(ckpt_attrs.get("loop", loop)), label
            if p.p_compute == "small":
                saved, saved_attrs = read_h5(run.checkpoint_file(label), ["history"], what="checkpoint")
                model.history = (saved["history"], int(saved_attrs["history_filled"]), int(saved_attrs["history_next"]))
            if p.cell_state_persists:
                saved, _ = read_h5(run.checkpoint_file(label), what="checkpoint")
                if all(name in saved for name in _CELL_STATE):
                    model.cell_state = tuple(saved[name] for name in _CELL_STATE)
        return model
