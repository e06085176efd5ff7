"""Rate-network model files: spikeforge's HDF5 and the original's MATLAB ``.mat``.

Both hold the same variables under the original's names (spikernn.md 4), so that a model moves
between spikeforge and the original's MATLAB scripts in either direction:

=============== ==============================================================================
``w``           trained recurrent weights, relu'd under Dale (non-negative), (N, N), row post
``w0``          initial ``w``; ``w_in`` (N, n_in); ``w_out`` (1, N); ``b_out`` (1,)
``m``           the diagonal sign matrix D (+1 excitatory, -1 inhibitory), (N, N)
``som_m``       the SOM mask (0 where an inhibitory unit projects to a SOM unit), (N, N)
``taus``        ``decay_taus`` [steps of 5 ms]: one value or (min, max)
``taus_gaus``   trained ``g`` of ``tau = sigmoid(g)(max - min) + min``, (N, 1); ``taus_gaus0``
``exc``/``inh`` (N, 1) booleans; ``N``, ``som_N``
``losses``      the training loss of every step; ``tr`` the trials consumed
=============== ==============================================================================

The HDF5 file also stores, as attributes, the task, the activation, the other settings, the
seed and how training ended.  A ``.mat`` from the original has no task name: it is read from
the file name (``Task_<task>_N_...``) or must be given (spikeforge's exports add a ``task``
variable).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from spikeforge.core.store import atomic_output, read_h5, require_file, write_h5
from spikeforge.errors import DataFileError
from spikeforge.rate2spike.rate_model import ACTIVATIONS, RateConfig
from spikeforge.rate2spike.tasks import TASKS

KIND = "spikeforge rate model"
REQUIRED = ("w", "w_in", "w_out", "m", "som_m", "taus", "taus_gaus")


class Model(NamedTuple):
    """A rate network read from a file."""

    config: RateConfig
    task: str
    weights: dict[str, np.ndarray]  # the RateRNN's: inh, w, w_in, w_out, b_out, taus_gaus, som_mask
    variables: dict[str, Any]  # every variable of the file, under the original's names
    attrs: dict[str, Any]  # the HDF5 attributes ({} for .mat)


def model_variables(model, config: RateConfig, initial: dict[str, np.ndarray], log) -> dict[str, np.ndarray]:
    """The original's variables for a trained :class:`RateRNN` (``initial``: its initial weights)."""
    import torch

    with torch.no_grad():
        w = model.w.double().cpu().numpy()
        if config.apply_dale:
            w = np.maximum(w, 0.0)
        inh = np.asarray(model.inh, dtype=bool)
        w0 = np.maximum(initial["w"], 0.0) if config.apply_dale else initial["w"]
        return {
            "w": w, "w0": w0, "w_in": model.w_in.double().cpu().numpy(),
            "w_in0": np.asarray(initial["w_in"], dtype=np.float64),
            "w_out": model.w_out.double().cpu().numpy(), "b_out": model.b_out.double().cpu().numpy(),
            "m": np.diag(np.where(inh, -1.0, 1.0)), "som_m": model.som_mask.double().cpu().numpy(),
            "taus": np.asarray(config.decay_taus, dtype=np.float64),
            "taus_gaus": model.taus_gaus.double().cpu().numpy(),
            "taus_gaus0": np.asarray(initial["taus_gaus"], dtype=np.float64),
            "exc": (~inh)[:, None], "inh": inh[:, None], "N": np.int64(config.n), "som_N": np.int64(config.som_n),
            "losses": np.asarray(log.losses, dtype=np.float64), "tr": np.int64(log.trials),
            "eval_perf_mean": np.float64(log.eval_accuracy[-1] if log.eval_accuracy else np.nan),
            "eval_loss_mean": np.float64(log.eval_loss[-1] if log.eval_loss else np.nan),
        }


def write_model(path: str | os.PathLike, variables: dict[str, Any], attrs: dict[str, Any]) -> None:
    """Write a model file (HDF5) atomically."""
    write_h5(path, variables, {"kind": KIND, **attrs})


def read_model(path: str | os.PathLike, task: str | None = None) -> Model:
    """Read a model from spikeforge's HDF5 or the original's ``.mat`` (``task``: for a ``.mat``
    whose name does not say it)."""
    path = Path(path)
    require_file(path, "model file")
    if path.suffix.lower() == ".mat":
        variables, attrs = _read_mat(path), {}
        task = task or variables.get("task") or _task_from_name(path)
        if task is None:
            raise DataFileError(f"model file {str(path)!r} does not say its task (the original's names start "
                                "with Task_<task>_); give it with --task")
        activation = str(variables.get("activation", "sigmoid"))
    else:
        variables, attrs = read_h5(path, None, "model file")
        if attrs.get("kind") != KIND:
            raise DataFileError(f"model file {str(path)!r} is not a spikeforge rate model (kind "
                                f"{attrs.get('kind')!r}); expected one written by `spikeforge rate train`")
        if task is not None and task != attrs.get("task"):
            raise DataFileError(f"model file {str(path)!r} was trained on task {attrs.get('task')!r}, "
                                f"not {task!r}")
        task = attrs.get("task")
        activation = attrs.get("activation", "sigmoid")
    missing = [name for name in REQUIRED if name not in variables]
    if missing:
        raise DataFileError(f"model file {str(path)!r} lacks {', '.join(missing)}; expected the variables of "
                            "a trained spikeRNN model")
    if task not in TASKS:
        raise DataFileError(f"model file {str(path)!r}: task {task!r} is not one of {', '.join(TASKS)}")
    if activation not in ACTIVATIONS:
        raise DataFileError(f"model file {str(path)!r}: activation {activation!r} is not one of "
                            f"{', '.join(ACTIVATIONS)}")
    return _model(path, variables, attrs, task, activation)


def _real_array(path: Path, variables, name: str) -> np.ndarray:
    """Variable ``name`` as a real float64 array, or a DataFileError naming it."""
    value = np.asarray(variables[name])
    if value.dtype.kind not in "biuf":
        raise DataFileError(f"model file {str(path)!r}: {name} holds {value.dtype} values; expected real numbers")
    return value.astype(np.float64)


def _model(path: Path, variables, attrs, task: str, activation: str) -> Model:
    arrays = {name: _real_array(path, variables, name) for name in REQUIRED}
    w = arrays["w"]
    n = w.shape[0] if w.ndim == 2 else 0
    m = arrays["m"]
    shapes_ok = (w.shape == (n, n) and n >= 2 and m.shape == (n, n)
                 and arrays["som_m"].shape == (n, n) and arrays["w_out"].shape in ((1, n), (n,))
                 and arrays["w_in"].ndim == 2 and arrays["w_in"].shape[0] == n and arrays["taus_gaus"].size == n)
    if not shapes_ok:
        raise DataFileError(f"model file {str(path)!r} has inconsistent shapes (w {w.shape}, m {m.shape}, w_in "
                            f"{arrays['w_in'].shape}, w_out {arrays['w_out'].shape}); expected N x N, N x N, "
                            f"N x inputs, 1 x N")
    if not all(np.all(np.isfinite(value)) for value in arrays.values()):
        raise DataFileError(f"model file {str(path)!r} holds NaN or infinite weights")
    signs = np.diag(m)
    if np.any(m[~np.eye(n, dtype=bool)] != 0) or not np.all(np.isin(signs, (-1.0, 1.0))):
        raise DataFileError(f"model file {str(path)!r}: m must be diagonal with entries +1 (excitatory) and -1 "
                            f"(inhibitory), as the original saves it")
    if "N" in variables and np.ravel(variables["N"]).size and float(np.ravel(variables["N"])[0]) != n:
        raise DataFileError(f"model file {str(path)!r}: N = {np.ravel(variables['N'])[0]} but w is {n} x {n}")
    inh = signs < 0
    if "inh" in variables:
        recorded = np.ravel(variables["inh"])
        if recorded.size != n or not np.array_equal(recorded.astype(np.float64) != 0, inh):
            raise DataFileError(f"model file {str(path)!r}: inh does not mark the units that m makes inhibitory")
    if inh.any() and np.any(w < 0):
        raise DataFileError(f"model file {str(path)!r}: w has negative entries, but under Dale's principle the "
                            f"original saves relu(W) (signs come from m)")
    taus = tuple(float(t) for t in np.ravel(arrays["taus"]))
    try:
        config = RateConfig(n=n, n_inputs=int(arrays["w_in"].shape[1]), decay_taus=taus,
                            som_n=int(np.ravel(variables.get("som_N", [0]))[0]), apply_dale=bool(inh.any()),
                            activation=activation, **_settings(attrs))
    except ValueError as error:
        raise DataFileError(f"model file {str(path)!r}: {error}") from None
    if config.n_inputs != TASKS[task].n_inputs:
        raise DataFileError(f"model file {str(path)!r} has {config.n_inputs} inputs; task {task!r} has "
                            f"{TASKS[task].n_inputs}")
    weights = {"inh": inh, "w": w, "w_in": arrays["w_in"], "w_out": np.reshape(arrays["w_out"], (1, n)),
               "b_out": float(np.ravel(variables.get("b_out", [0.0]))[0]),
               "taus_gaus": np.reshape(arrays["taus_gaus"], (n, 1)), "som_mask": arrays["som_m"]}
    return Model(config, task, weights, dict(variables), dict(attrs))


def _settings(attrs: dict) -> dict:
    keys = {"p_inh": "P_inh", "p_rec": "P_rec", "gain": "gain"}
    return {ours: float(attrs[theirs]) for ours, theirs in keys.items() if theirs in attrs}


def _task_from_name(path: Path) -> str | None:
    match = re.match(r"Task_(go-nogo|mante|xor)_", path.name, flags=re.IGNORECASE)
    return match.group(1).lower() if match else None


def _read_mat(path: Path) -> dict[str, Any]:
    import scipy.io

    try:
        raw = scipy.io.loadmat(path)
    except (ValueError, TypeError, OSError, NotImplementedError, scipy.io.matlab.MatReadError) as error:
        reason = " ".join(str(error).split())[:200]
        raise DataFileError(f"model file {str(path)!r} is not a readable MATLAB file ({reason})") from None
    variables = {}
    for name, value in raw.items():
        if name.startswith("__"):
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind in "US":
            value = str(np.ravel(value)[0]) if value.size else ""
        variables[name] = value
    return variables


def write_mat(path: str | os.PathLike, model: Model) -> None:
    """Export to the original's ``.mat`` (atomically), with ``activation`` and the task's name in
    ``task``; MATLAB's ``lambda_grid_search.m`` and ``LIF_network_fnc.m`` read it as their own."""
    import scipy.io

    variables = {name: value for name, value in model.variables.items() if value is not None}
    variables["activation"] = model.config.activation
    variables["task"] = model.task
    with atomic_output(path) as temporary:
        with open(temporary, "wb") as handle:
            scipy.io.savemat(handle, variables, do_compression=True)
