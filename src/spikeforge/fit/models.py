"""The neuron models a fit can use, described by what the fitting code needs of each: its parameters
in the order the population kernels take them, their defaults and search bounds, the presets, and the
parameters searched unless the user says otherwise.

The equations live in the cell modules (:mod:`spikeforge.core.cells.izhikevich`,
:mod:`~spikeforge.core.cells.adex`, and for ``lif`` the millivolt LIF
:mod:`~spikeforge.core.cells.lif_mv`, driven by ``E_L + R I``).  Currents: in pA for AdEx and LIF,
in the model's own units for Izhikevich (a fit's current search, or ``gain``, maps recorded pA onto
them).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spikeforge.core.cells import adex, izhikevich
from spikeforge.errors import ParameterError


class Model(NamedTuple):
    """One neuron model as the fitting code sees it (see the module docstring).

    ``units`` and ``defaults`` follow ``names``; ``presets`` maps a cell type's name (upper case) to a full
    parameter tuple in that order (Izhikevich only, empty otherwise); ``current_unit`` names the unit of the
    injected current."""

    name: str
    code: int  # the population kernels' switch
    names: tuple[str, ...]  # every parameter, in the kernels' order
    units: tuple[str, ...]
    defaults: tuple[float, ...]
    bounds: dict[str, tuple[float, float]]  # default search range of each parameter
    fitted: tuple[str, ...]  # searched unless the user says otherwise
    presets: dict[str, tuple[float, ...]]
    current_unit: str


IZHIKEVICH, ADEX, LIF = 0, 1, 2

LIF_NAMES = ("tau_m", "E_L", "R", "v_th", "v_reset", "tau_ref")
LIF_UNITS = ("ms", "mV", "MOhm", "mV", "mV", "ms")
LIF_DEFAULTS = (20.0, -70.0, 100.0, -50.0, -65.0, 2.0)
LIF_BOUNDS = {"tau_m": (2.0, 100.0), "E_L": (-85.0, -55.0), "R": (10.0, 1000.0), "v_th": (-60.0, -30.0),
              "v_reset": (-85.0, -50.0), "tau_ref": (0.0, 10.0)}

MODELS: dict[str, Model] = {
    "izhikevich": Model("izhikevich", IZHIKEVICH, izhikevich.Parameters._fields,
                        ("1/ms", "1/ms", "mV", "mV/ms", "mV", "mV"), tuple(izhikevich.Parameters()),
                        {**izhikevich.BOUNDS, "v_peak": (0.0, 40.0), "v_init": (-80.0, -50.0)},
                        izhikevich.FITTED, {name: tuple(p) for name, p in izhikevich.PRESETS.items()},
                        "model units (mV/ms)"),
    "adex": Model("adex", ADEX, adex.Parameters._fields,
                  ("pF", "nS", "mV", "mV", "mV", "ms", "nS", "pA", "mV", "mV"), tuple(adex.Parameters()),
                  adex.BOUNDS, adex.FITTED, {}, "pA"),
    "lif": Model("lif", LIF, LIF_NAMES, LIF_UNITS, LIF_DEFAULTS, LIF_BOUNDS, ("tau_m", "R", "v_th", "v_reset"),
                 {}, "pA"),
}


def model_named(name: str) -> Model:
    """The model called ``name`` (izhikevich, adex or lif; any case).

    Raises:
        ParameterError: ``name`` is not one of :data:`MODELS`.
    """
    try:
        return MODELS[str(name).lower()]
    except KeyError:
        raise ParameterError(f"model {name!r} is not one of {', '.join(MODELS)}") from None


def parameter_rows(model: Model, values: dict[str, np.ndarray] | None = None, n: int | None = None,
                   base: dict[str, float] | None = None) -> np.ndarray:
    """(n, len(model.names)) float64: every parameter of every candidate, from per-candidate
    ``values``, then ``base`` (fixed values), then the model's defaults."""
    values = values or {}
    base = base or {}
    for name in (*values, *base):
        if name not in model.names:
            raise ParameterError(f"{model.name} has no parameter {name!r}; its parameters are "
                                 f"{', '.join(model.names)}")
    if n is None:
        n = len(next(iter(values.values()))) if values else 1
    rows = np.empty((n, len(model.names)))
    for k, name in enumerate(model.names):
        rows[:, k] = values.get(name, base.get(name, model.defaults[k]))
    return rows
