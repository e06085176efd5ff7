"""Parameters written with physical units give exactly the results of plain numbers."""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge import rls
from spikeforge.core.store import read_h5
from spikeforge.errors import ParameterError

from conftest import SMALL

WITH_UNITS = {
    "dt": "100 us", "stim_on": "50 ms", "stim_off": "0.1 s", "train_duration": "200 ms", "u0_skip_time": "0.1 s",
    "tau_meme": "10 ms", "tau_plas": "0.15 s", "stim_b": "50 1/s", "target_period": "0.2 s", "max_rate": "0.5 kHz",
    "glif_asc_k": ["100 1/s", "0.2 / ms", "300 Hz"],
}


def test_unit_annotated_parameters_give_identical_results(tmp_path):
    pytest.importorskip("pint", reason="units need pint (pip install 'spikeforge[units]')")
    outcomes = []
    for name, extra in (("plain", {}), ("units", WITH_UNITS)):
        directory = tmp_path / name
        rls.new(directory, {**SMALL, **extra})
        rls.init(directory, verbose=False)
        rls.train(directory, nloops=1, verbose=False)
        outcomes.append((read_h5(directory / "init.h5")[0], read_h5(directory / "ckpt-1.h5")[0]))
    (plain_init, plain_ckpt), (unit_init, unit_ckpt) = outcomes
    for name in plain_init:
        np.testing.assert_array_equal(plain_init[name], unit_init[name], err_msg=name)
    for name in plain_ckpt:
        np.testing.assert_array_equal(plain_ckpt[name], unit_ckpt[name], err_msg=name)


def test_units_without_pint_are_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pint", None)  # as if pint were not installed
    with pytest.raises(ParameterError, match=r"'dt' = '100 us' has units; install pint"):
        rls.Params({"dt": "100 us"})


def test_units_are_converted_and_checked():
    pytest.importorskip("pint", reason="units need pint (pip install 'spikeforge[units]')")
    p = rls.Params(WITH_UNITS)
    assert (p.dt, p.stim_off, p.stim_b, p.max_rate) == (0.1, 100.0, 0.05, 500.0)
    assert p.glif_asc_k == [0.1, 0.2, 0.3]
    with pytest.raises(ParameterError, match="'dt' = '3 kg' is not a quantity in ms"):
        rls.Params({"dt": "3 kg"})
    with pytest.raises(ParameterError, match="'n_cells' = '5 ms' is not an integer"):
        rls.Params({"n_cells": "5 ms"})
    with pytest.raises(ParameterError, match="'vre' = '1 mV' is not a plain number"):
        rls.Params({"vre": "1 mV"})
