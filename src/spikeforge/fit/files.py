"""The files of a fit directory.

``fit.h5`` (HDF5, readable from any language):

* ``restart_<k>/candidates`` (generations, population, dim): every candidate, in parameter units;
  ``restart_<k>/losses`` (generations, population); ``restart_<k>/unit`` (the optimizer's [0, 1]
  coordinates, used to resume); ``restart_<k>/spread`` (generations, dim): the optimizer's own spread
  (CMA-ES: sigma sqrt(diag C)), parameter units; ``restart_<k>/seconds`` (generations,);
  ``restart_<k>/covariance`` (generations, dim, dim): the optimizer's covariance (CMA-ES: sigma^2 C),
  parameter units;
* ``best`` (dim,): the best parameters over all restarts; ``data/amplitudes`` [pA], ``data/times``
  [ms] and ``data/offsets`` (sweep k's spikes are ``times[offsets[k]:offsets[k+1]]``) for a cell
  fit, the data's trains likewise for a network fit;
* root attributes: ``kind`` ("cell" or "network"), ``settings`` (every input that shaped the fit, as
  JSON: model, fitted names, bounds, fixed values, loss, protocol, optimizer, seed, ...),
  ``data_fingerprint``, ``data_file``, ``status`` ("running", "interrupted", "finished"), ``stopped``
  (why each restart ended), ``names`` (the fitted parameters), ``loss`` (the best loss).

``parameters.csv``: one row per fitted parameter: best value, unit, bounds, the mean and standard
deviation over restarts (blank for one restart), and the last optimizer spread of the best restart.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from spikeforge.core.spikes import Trains
from spikeforge.core.store import atomic_write_text, read_h5, write_h5
from spikeforge.errors import DataFileError
from spikeforge.fit.search import History

FIT = "fit.h5"
PARAMETERS = "parameters.csv"
HISTORY_FIELDS = History._fields


def write_fit(path: Path, histories, data: Trains, amplitudes: np.ndarray | None, attrs: dict) -> None:
    """Write ``fit.h5`` at ``path`` atomically (layout in the module docstring).

    Args:
        path: the file to write; an existing one is replaced.
        histories: one :class:`~spikeforge.fit.search.History` per restart, stored as ``restart_<k>/...``; when
            there is at least one, ``best`` (the best restart's best parameters) and the ``loss`` attribute are
            added.
        data: the fitted spike trains [ms], stored as ``data/times`` and ``data/offsets``.
        amplitudes: the sweeps' amplitudes [pA] of a cell fit (``data/amplitudes``); None for a network fit.
        attrs: root attributes (dicts and lists stored as JSON); ``restarts_saved`` (the number of histories)
            is added.
    """
    arrays = {}
    for k, history in enumerate(histories):
        for field in HISTORY_FIELDS:
            arrays[f"restart_{k}/{field}"] = getattr(history, field)
    if histories:
        losses = [h.best()[1] for h in histories]
        arrays["best"] = histories[int(np.argmin(losses))].best()[0]
        attrs = {**attrs, "loss": float(min(losses))}
    arrays["data/times"], arrays["data/offsets"] = data.times, data.offsets
    if amplitudes is not None:
        arrays["data/amplitudes"] = amplitudes
    write_h5(path, arrays, {**attrs, "restarts_saved": len(histories)})


def read_fit(path: Path) -> tuple[list[History], Trains, np.ndarray | None, dict]:
    """Read a ``fit.h5`` written by :func:`write_fit`.

    Returns:
        (histories, data, amplitudes, attrs): one :class:`~spikeforge.fit.search.History` per saved restart,
        the data's spike trains [ms], the sweeps' amplitudes [pA] (None for a network fit) and the root
        attributes, JSON-decoded.

    Raises:
        DataFileError: the file is missing or not readable HDF5, has no ``settings`` or ``kind`` attribute
            (not a fit file), or lacks part of a saved restart's history.
    """
    arrays, attrs = read_h5(path, None, "fit file")
    if "settings" not in attrs or "kind" not in attrs:
        raise DataFileError(f"{str(path)!r} is not a spikeforge fit file (no settings); it was not written by "
                            "`spikeforge fit`")
    histories = []
    for k in range(int(attrs.get("restarts_saved", 0))):
        try:
            histories.append(History(*(arrays[f"restart_{k}/{field}"] for field in HISTORY_FIELDS)))
        except KeyError as missing:
            raise DataFileError(f"fit file {str(path)!r} lacks {missing}; it is incomplete") from None
    data = Trains(arrays["data/times"], arrays["data/offsets"].astype(np.int64))
    return histories, data, arrays.get("data/amplitudes"), attrs


def parameters_table(names, units, low, high, result) -> str:
    """The CSV of parameters.csv (see the module docstring)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["parameter", "best", "unit", "low", "high", "restart_mean", "restart_std", "optimizer_spread"])
    best_restart = int(np.argmin(result.restart_loss))
    several = result.restart_best.shape[0] > 1  # a spread over one restart would read as certainty
    for k, name in enumerate(names):
        writer.writerow([name, f"{result.best[k]:.6g}", units[k], f"{low[k]:g}", f"{high[k]:g}",
                         f"{result.restart_best[:, k].mean():.6g}" if several else "",
                         f"{result.restart_best[:, k].std():.6g}" if several else "",
                         f"{result.optimizer_spread[best_restart, k]:.6g}"])
    return out.getvalue()


def write_parameters(path: Path, text: str) -> None:
    """Write ``text`` (the CSV of :func:`parameters_table`) to ``path`` atomically."""
    atomic_write_text(path, text)
