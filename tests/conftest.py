"""Shared fixtures: small networks that init and train in well under a second."""

from __future__ import annotations

import pytest

# A 300-ms trial of 1024 neurons (1000 steps before learning, 20 RLS updates) with a larger
# in-degree (k = 102) and learning rate (penlambda) than the defaults, so that it is active
# (about 3 Hz) and learns visibly within a few loops.
SMALL = {
    "n_cells": 1024, "pree": 0.2, "penlambda": 0.02, "seed": 11, "stim_on": 50.0, "stim_off": 100.0,
    "train_duration": 200.0, "u0_skip_time": 100.0, "target_period": 200.0,
}


@pytest.fixture
def small_params() -> dict:
    return dict(SMALL)


@pytest.fixture
def small_run(tmp_path):
    """An initialised small network; returns its directory."""
    from spikeforge import rls

    directory = tmp_path / "net"
    rls.new(directory, SMALL)
    rls.init(directory, verbose=False)
    return directory
