"""An initialised RLS network: its arrays, and how they are saved, loaded and checked.

``init.h5`` datasets (C order; N = n_cells, Lmax = plastic inputs per neuron, T = tasks)::

    static/ptr (N+1,) static/post (2kN,) static/weight (2kN,)   static synapses, presynaptic layout
    plastic/index (N, Lmax) plastic/count (N,) plastic/weight (N, Lmax)   initial plastic inputs
    P (N, Lmax, Lmax) or (N, Lmax (Lmax+1)/2)   initial P * p_scale in p_storage / p_precision
    targets (T, learn_nsteps, N)           target currents at the learning times
    stimulus (T, (stim_off - stim_on)/dt, N)
    init/spike_count (N,) init/u_mean (N,) init/u_std (N,)   init-run statistics
    ff/probability ((train_time - stim_off)/dt, lx)   per-step spike probability of feed-forward neurons
    target_rates (T, learn_nsteps, N)      [Hz], only when the targets were converted from rates
                                           (NaN for hidden neurons, which follow no recorded unit)
    units/id, units/neuron (n_units,)      the recording's name of each unit and the neuron that follows it
    cell/...                               GLIF models: per-neuron cell parameters (model, c, e_l, ...)

Plastic inputs of neuron i are ``plastic/index[i, :count[i]]``: first the ``lx`` feed-forward
neurons (indices N .. N+lx-1), then excitatory, then inhibitory neurons.

Attributes: ``seed``, ``rng_streams`` (JSON: each stream's path and initial state),
``rate_exc_hz``, ``rate_inh_hz``, ``ustd0``, ``spikeforge_version``, and the provenance:
``network_id`` (a random identity given by ``init``), ``params`` (JSON: every parameter's
value at init), ``params_fingerprint`` (of the parameters init.h5 depends on), ``targets_from``
and, for a target file, ``targets_sha256``.

A checkpoint ``ckpt-<label>.h5`` holds ``plastic/weight`` and ``P`` with attributes ``loop``,
``correlation``, ``network_id`` (that of its init.h5), ``restored_from`` (the checkpoint its
training segment started from) and ``segment``; with ``cell_state_persists`` the GLIF state
``cell/thresh_s``, ``cell/thresh_v``, ``cell/asc``; in small mode the ``history`` of filtered
spike trains (attributes ``history_filled``, ``history_next``) instead of P.

Everything read is checked before use (shapes, index ranges, finite values, the network
identity, the parameters), so a damaged, edited or foreign file is an error naming the file
and the problem, never a crash or a silent mix.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

import spikeforge
from spikeforge.core.backends.layout import Connectivity
from spikeforge.core.provenance import differences, fingerprint
from spikeforge.core.store import dataset_names, read_h5, read_rows, write_h5
from spikeforge.errors import DataFileError
from spikeforge.rls import p_matrix
from spikeforge.rls.connectivity import OutLayout, PlasticInputs, out_layout, sorted_by_target
from spikeforge.rls.files import RunDir, checkpoint_loop
from spikeforge.rls.params import CHANGEABLE_AFTER_INIT, SCHEMA, Params
from spikeforge.rls.network_parameters import float_dtype

_CELL_STATE = ("cell/thresh_s", "cell/thresh_v", "cell/asc")
_INIT_DATASETS = ["static/ptr", "static/post", "static/weight", "plastic/index", "plastic/count", "plastic/weight",
                  "P", "targets", "stimulus", "init/spike_count", "init/u_mean", "init/u_std", "ff/probability"]
_FINITE_CHUNK_BYTES = 1 << 26


def init_dependent_names() -> list[str]:
    """The parameters init.h5 depends on: all but :data:`CHANGEABLE_AFTER_INIT`."""
    return [name for name in SCHEMA.params if name not in CHANGEABLE_AFTER_INIT]


def params_fingerprint(p: Params) -> str:
    """Fingerprint of the values of the parameters init.h5 depends on."""
    return fingerprint({name: p[name] for name in init_dependent_names()})


def _first_nonfinite(array: np.ndarray) -> tuple | None:
    """Index of the first NaN or infinity in ``array`` (checked in slices, without a full-size
    temporary), or None; integer arrays are always finite."""
    if not np.issubdtype(array.dtype, np.floating) or array.size == 0:
        return None
    flat = array.reshape(array.shape[0], -1) if array.ndim > 1 else array.reshape(-1, 1)
    rows = max(1, _FINITE_CHUNK_BYTES // max(flat[0].nbytes, 1))
    for lo in range(0, flat.shape[0], rows):
        bad = np.flatnonzero(~np.isfinite(flat[lo:lo + rows]))
        if bad.size:
            return np.unravel_index(lo * flat.shape[1] + bad[0], array.shape)
    return None


class _Checker:
    """Checks of the arrays of one file; failures name the file and say what to do."""

    def __init__(self, path: Path, what: str, remedy: str):
        self.path, self.what, self.remedy = path, what, remedy

    def fail(self, problem: str) -> DataFileError:
        return DataFileError(f"{self.what} {str(self.path)!r} is damaged or does not belong here: {problem}; "
                             f"{self.remedy}")

    def shape(self, arrays: dict, name: str, shape: tuple) -> np.ndarray:
        array = arrays[name]
        if array.shape != shape:
            raise self.fail(f"{name} has shape {array.shape}, expected {shape}")
        return array

    def finite(self, arrays: dict, name: str) -> None:
        where = _first_nonfinite(arrays[name])
        if where is not None:
            raise self.fail(f"{name}{list(map(int, where))} is {arrays[name][where]}, expected a finite number")

    def within(self, arrays: dict, name: str, low: float, high: float) -> None:
        array = arrays[name]
        if array.size and not (array.min() >= low and array.max() <= high):
            bad = np.flatnonzero(~((array >= low) & (array <= high)))[0]
            raise self.fail(f"{name} holds {array.reshape(-1)[bad]} at flat position {bad}, expected values in "
                            f"[{low}, {high}]")

    def integers(self, arrays: dict, name: str) -> None:
        if not np.issubdtype(arrays[name].dtype, np.integer):
            raise self.fail(f"{name} holds {arrays[name].dtype}, expected integers")


def _p_shape(p: Params, n: int, lmax: int) -> tuple:
    if p.p_compute == "small":
        return (0,)
    return (n, lmax * (lmax + 1) // 2) if p.p_storage == "packed" else (n, lmax, lmax)


def _history_rows(p: Params) -> int:
    return max(1, round(p.p_history / p.learn_every))


def check_init_arrays(arrays: dict[str, np.ndarray], p: Params, path: Path, directory: Path) -> None:
    """Raise DataFileError unless the arrays of init.h5 fit ``p`` and each other."""
    check = _Checker(path, "init file", f"rebuild it with `spikeforge init --force {directory}`")
    n, s = p.n_cells, p.steps
    for name in ("static/ptr", "static/post", "plastic/index", "plastic/count"):
        check.integers(arrays, name)
    ptr = check.shape(arrays, "static/ptr", (n + 1,))
    n_static = arrays["static/post"].shape[0] if arrays["static/post"].ndim == 1 else -1
    if ptr[0] != 0 or np.any(np.diff(ptr) < 0) or ptr[-1] != n_static:
        raise check.fail(f"static/ptr is not a row index of the {n_static} static synapses")
    check.shape(arrays, "static/weight", (n_static,))
    check.within(arrays, "static/post", 0, n - 1)
    check.finite(arrays, "static/weight")
    index = arrays["plastic/index"]
    if index.ndim != 2 or index.shape[0] != n or index.shape[1] < p.lx:
        raise check.fail(f"plastic/index has shape {index.shape}, expected ({n}, Lmax >= lx = {p.lx})")
    lmax = index.shape[1]
    check.within(arrays, "plastic/index", 0, n + p.lx - 1)
    check.shape(arrays, "plastic/count", (n,))
    check.within(arrays, "plastic/count", 0, lmax)
    valid = np.arange(lmax)[None, :] < arrays["plastic/count"][:, None]
    ordered = np.sort(np.where(valid, index, -1 - np.arange(lmax)[None, :]), axis=1)  # padding never repeats
    repeated = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
    if repeated.size:
        raise check.fail(f"neuron {repeated[0]} has the same plastic input twice in plastic/index")
    check.shape(arrays, "plastic/weight", (n, lmax))
    check.finite(arrays, "plastic/weight")
    if "P" in arrays:  # left out when a caller does not need it
        check.shape(arrays, "P", _p_shape(p, n, lmax))
        check.finite(arrays, "P")
    targets = arrays["targets"]
    if targets.ndim != 3 or targets.shape[0] < 1 or targets.shape[1:] != (s.learn_nsteps, n):
        raise check.fail(f"targets has shape {targets.shape}, expected (tasks, {s.learn_nsteps}, {n})")
    n_tasks = targets.shape[0]
    check.finite(arrays, "targets")
    check.shape(arrays, "stimulus", (n_tasks, s.stim_off_step - s.stim_on_step, n))
    check.finite(arrays, "stimulus")
    for name in ("init/spike_count", "init/u_mean", "init/u_std"):
        check.shape(arrays, name, (n,))
    check.shape(arrays, "ff/probability", (s.n_steps - s.stim_off_step, p.lx))
    check.within(arrays, "ff/probability", 0.0, 1.0)
    if "target_rates" in arrays:
        check.shape(arrays, "target_rates", (n_tasks, s.learn_nsteps, n))
    if ("units/id" in arrays) != ("units/neuron" in arrays):
        raise check.fail("units/id and units/neuron must both be present or both absent")
    if "units/neuron" in arrays:
        check.integers(arrays, "units/neuron")
        check.shape(arrays, "units/id", arrays["units/neuron"].shape)
        check.within(arrays, "units/neuron", 0, n - 1)
    for name, values in arrays.items():
        if name.startswith("cell/") and (values.ndim == 0 or values.shape[0] != n):
            raise check.fail(f"{name} has shape {values.shape}, expected one row per neuron ({n})")


def check_params_unchanged(attrs: dict[str, Any], p: Params, path: Path, directory: Path) -> None:
    """Raise DataFileError if params.toml changed since init in a parameter init.h5 depends on."""
    recorded = attrs.get("params")
    if not isinstance(recorded, dict) or "network_id" not in attrs:
        raise DataFileError(f"init file {str(path)!r} does not record the parameters it was built from (written by "
                            f"spikeforge < 0.2 or another program); rebuild it with `spikeforge init --force {directory}`")
    changed = differences(recorded, dict(p), init_dependent_names())
    if not changed:
        return
    def origin(name: str) -> str:
        if name in p.user:
            return ""
        return " (derived)" if SCHEMA.params[name].derive is not None else " (default)"

    shown = [f"{name} {old!r} -> {new!r}{origin(name)}" for name, old, new in changed[:6]]
    more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
    # a parameter params.toml leaves out takes this version's default, which may differ from the one it was built with
    defaults = [f"{name} = {old!r}" for name, old, _ in changed if origin(name) == " (default)"]
    write = f" (a value params.toml leaves out takes this version's default: write {', '.join(defaults)} into it)" \
        if defaults else ""
    raise DataFileError(
        f"params.toml changed after init in parameters init.h5 depends on: {', '.join(shown)}{more}; undo the "
        f"change{write}, or rebuild the network with `spikeforge init --force {directory}` (which deletes its checkpoints "
        f"and results); only {', '.join(CHANGEABLE_AFTER_INIT)} may change after init")


def _p_in_memory(stored: np.ndarray, p: Params, path) -> np.ndarray:
    if p.p_compute == "small":
        return stored
    if stored.dtype != np.dtype(p.p_precision):
        raise DataFileError(f"{str(path)!r} holds P as {stored.dtype}, but params.toml says p_precision = "
                            f"{p.p_precision!r}; run `spikeforge init --force` after changing it")
    return p_matrix.to_memory_layout(stored, p.p_storage)


@dataclasses.dataclass
class Model:
    """Everything ``train`` and ``test`` need besides the parameters."""

    p: Params
    static: OutLayout
    plastic: PlasticInputs  # current plastic weights (in layout)
    P: np.ndarray  # times p_scale, in the kernels' layout of p_storage (spikeforge.rls.p_matrix; while numba trains
    #   it may be interleaved in place: spikeforge.rls.learner.Learner.interleave_p)
    targets: np.ndarray  # (T, learn_nsteps, N)
    stimulus: np.ndarray  # (T, n_stim_rows, N)
    init_stats: dict[str, Any]  # spike_count, u_mean, u_std and attributes of the init run
    ff_probability: np.ndarray  # ((n_steps - stim_off_step), lx) feed-forward spike probability per step
    target_rates: np.ndarray | None = None  # (T, learn_nsteps, N) [Hz] when the targets came from rates; NaN: hidden
    unit_ids: np.ndarray | None = None  # str (n_units,) the recorded units the targets came from
    unit_neurons: np.ndarray | None = None  # int64 (n_units,) the neuron that follows each unit
    loop: int = 0  # training loops behind the weights (0 = initial)
    label: str = "init"  # checkpoint the weights came from
    cell_state: tuple | None = None  # GLIF (thresh_s, thresh_v, asc) carried between trials if it persists
    history: tuple | None = None  # small mode: (ring (H, N + lx), snapshots filled, next row)
    cells: dict | None = None  # GLIF models: per-neuron cell table (spikeforge.rls.network_parameters.cell_table)
    network_id: str = ""  # identity of the network (init.h5's), recorded in every checkpoint

    def __post_init__(self):
        if self.p.p_compute == "small" and self.history is None:
            self.history = (np.zeros((_history_rows(self.p), self.p.n_cells + self.p.lx)), 0, 0)

    @property
    def n_tasks(self) -> int:
        """The number of tasks T: the first axis of ``targets`` and ``stimulus``."""
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

    def checkpoint_bytes(self) -> int:
        """Size of one checkpoint file (about)."""
        history = self.history[0].nbytes if self.history is not None else 0
        p_bytes = int(np.prod(_p_shape(self.p, self.p.n_cells, self.plastic.weight.shape[1]))) * np.dtype(
            self.p.p_precision).itemsize  # the whole P, whether this process holds it or one rank's block
        return p_bytes + self.plastic.weight.nbytes + history + (1 << 16)

    def save_init(self, run: RunDir, attrs: dict[str, Any], replaces: list[Path] = ()) -> None:
        """Write init.h5 (with the provenance attributes); ``replaces``: files of the previous
        network, deleted once the new init.h5 is complete and just before it replaces the old one
        (a crash in between leaves the old network without its results, never the new network
        with the old one's)."""
        arrays = {
            "static/ptr": self.static.ptr, "static/post": self.static.post, "static/weight": self.static.weight,
            "plastic/index": self.plastic.index, "plastic/count": self.plastic.count,
            "plastic/weight": self.plastic.weight, "P": self.stored_p(), "targets": self.targets, "stimulus": self.stimulus,
            "init/spike_count": self.init_stats["spike_count"], "init/u_mean": self.init_stats["u_mean"],
            "init/u_std": self.init_stats["u_std"], "ff/probability": self.ff_probability,
        }
        if self.target_rates is not None:
            arrays["target_rates"] = self.target_rates
        if self.unit_ids is not None:
            arrays["units/id"] = self.unit_ids.astype("S")
            arrays["units/neuron"] = self.unit_neurons
        for name, values in (self.cells or {}).items():
            arrays[f"cell/{name}"] = values.astype("S") if name == "model" else values
        scalars = {name: value for name, value in self.init_stats.items() if not isinstance(value, np.ndarray)}
        provenance = {"network_id": self.network_id, "params": dict(self.p),
                      "params_fingerprint": params_fingerprint(self.p), "spikeforge_version": spikeforge.__version__}
        def remove_replaced() -> None:
            for stale in replaces:
                stale.unlink(missing_ok=True)

        write_h5(run.init_file, arrays, {**scalars, **attrs, **provenance}, before_commit=remove_replaced)

    def save_checkpoint(self, run: RunDir, label: str, correlation: float = float("nan"),
                        attrs: dict[str, Any] | None = None, p_pieces=None) -> Path:
        """Write checkpoint ``label`` of the current weights and P (or the P that ``p_pieces``, a
        :class:`~spikeforge.core.store.Pieces`, writes block by block: a sharded run's, or an interleaved one
        converted back); return its path."""
        arrays = {"plastic/weight": self.plastic.weight, "P": self.stored_p() if p_pieces is None else p_pieces}
        attrs = {"loop": self.loop, "correlation": correlation, "network_id": self.network_id,
                 "spikeforge_version": spikeforge.__version__, **(attrs or {})}
        if self.cell_state is not None:
            arrays |= dict(zip(_CELL_STATE, self.cell_state))
        if self.history is not None:
            arrays["history"] = self.history[0]
            attrs |= {"history_filled": self.history[1], "history_next": self.history[2]}
        path = run.checkpoint_file(label)
        write_h5(path, arrays, attrs)
        return path

    @classmethod
    def load(cls, run: RunDir, checkpoint: str | int | None = None, p: Params | None = None,
             with_p: bool = True, p_rows: tuple[int, int] | None = None) -> "Model":
        """Load ``init.h5`` and, if given, the weights and P of checkpoint ``checkpoint``
        (``None`` or ``"init"``: the initial weights), checking both against the parameters.
        ``with_p=False`` leaves P out (an empty array): frozen-weight trials do not need it.
        ``p_rows=(lo, hi)``: only the P of neurons lo .. hi - 1 is read (a rank of a sharded run)."""
        if p_rows is not None:
            model = cls.load(run, checkpoint, p, with_p=False)
            model.P = model._p_rows(run, *p_rows)
            return model
        p = run.params() if p is None else p
        run.require_init()
        present = dataset_names(run.init_file, "init file")
        optional = [name for name in present if name in ("target_rates", "units/id", "units/neuron")
                    or name.startswith("cell/")]
        names = [name for name in _INIT_DATASETS if with_p or name != "P"]
        arrays, attrs = read_h5(run.init_file, names + optional, what="init file")
        check_params_unchanged(attrs, p, run.init_file, run.path)
        check_init_arrays(arrays, p, run.init_file, run.path)
        dtype = float_dtype(p)
        model = cls(
            p=p,
            static=sorted_by_target(OutLayout(arrays["static/ptr"], arrays["static/post"],
                                              arrays["static/weight"].astype(dtype))),
            plastic=PlasticInputs(arrays["plastic/index"], arrays["plastic/count"],
                                  arrays["plastic/weight"].astype(dtype)),
            P=_p_in_memory(arrays["P"], p, run.init_file) if with_p else np.zeros(0, dtype=p.p_precision),
            targets=arrays["targets"],
            stimulus=arrays["stimulus"].astype(dtype),
            init_stats={"spike_count": arrays["init/spike_count"], "u_mean": arrays["init/u_mean"],
                        "u_std": arrays["init/u_std"], **attrs},
            ff_probability=arrays["ff/probability"],
            target_rates=arrays.get("target_rates"),
            unit_ids=arrays["units/id"].astype(str) if "units/id" in arrays else None,
            unit_neurons=arrays.get("units/neuron"),
            network_id=str(attrs["network_id"]),
        )
        if any(name.startswith("cell/") for name in arrays):
            model.cells = {name[len("cell/"):]: values for name, values in arrays.items() if name.startswith("cell/")}
            model.cells["model"] = model.cells["model"].astype(str)
        if checkpoint is not None and str(checkpoint) != "init":
            model._restore(run, str(checkpoint), with_p)
        return model

    def _p_rows(self, run: RunDir, lo: int, hi: int) -> np.ndarray:
        """Rows lo:hi of the P of the loaded weights' file, checked, in the kernels' layout."""
        if self.p.p_compute == "small":
            return np.zeros(0, dtype=self.p.p_precision)
        path = run.init_file if self.label == "init" else run.checkpoint_file(self.label)
        what = "init file" if self.label == "init" else "checkpoint"
        block = {"P": read_rows(path, "P", lo, hi, what)}
        check = _Checker(path, what, "delete it, or rebuild the network with `spikeforge init --force`")
        check.shape(block, "P", (hi - lo,) + _p_shape(self.p, self.p.n_cells, self.plastic.weight.shape[1])[1:])
        check.finite(block, "P")
        return _p_in_memory(block["P"], self.p, path)

    def _restore(self, run: RunDir, label: str, with_p: bool = True) -> None:
        """Replace the initial weights (and P, if ``with_p``) by those of checkpoint ``label``, after checking it."""
        p, path = self.p, run.checkpoint_file(label)
        loop = checkpoint_loop(label)
        names = ["plastic/weight"] + (["P"] if with_p else []) + (["history"] if p.p_compute == "small" else [])
        present = dataset_names(path, "checkpoint")
        names += [name for name in _CELL_STATE if p.cell_state_persists and name in present]
        arrays, attrs = read_h5(path, names, what="checkpoint")
        check = _Checker(path, "checkpoint", "delete it, or restore from another checkpoint of this directory")
        if attrs.get("network_id") != self.network_id:
            raise DataFileError(
                f"checkpoint {str(path)!r} belongs to another network (network id {attrs.get('network_id')}, this "
                f"directory's init.h5 is {self.network_id}): it was copied from another run or made before the last "
                f"init; delete it, or start afresh with `spikeforge init --force {run.path}`")
        if attrs.get("loop") != loop:
            raise check.fail(f"it holds loop {attrs.get('loop')}, but its name says loop {loop}")
        n, lmax = self.plastic.weight.shape
        check.shape(arrays, "plastic/weight", (n, lmax))
        check.finite(arrays, "plastic/weight")
        if with_p:
            stored = check.shape(arrays, "P", self.stored_p().shape)
            check.finite(arrays, "P")
        if p.p_compute == "small":
            history = check.shape(arrays, "history", self.history[0].shape)
            filled, next_row = attrs.get("history_filled"), attrs.get("history_next")
            rows = history.shape[0]
            if not (isinstance(filled, int) and isinstance(next_row, int) and 0 <= filled <= rows
                    and 0 <= next_row < rows):
                raise check.fail(f"history_filled = {filled}, history_next = {next_row} do not fit {rows} rows")
            self.history = (history, filled, next_row)
        if all(name in arrays for name in _CELL_STATE):
            n_asc = (self.cells or {}).get("asc_decay", np.zeros((n, 0))).shape[-1]
            for name, shape in zip(_CELL_STATE, ((n,), (n,), (n, n_asc))):
                check.shape(arrays, name, shape)
            self.cell_state = tuple(arrays[name] for name in _CELL_STATE)
        self.plastic = self.plastic._replace(weight=arrays["plastic/weight"].astype(float_dtype(p)))
        if with_p:
            self.P = _p_in_memory(stored, p, path)
        self.loop, self.label = loop, label
