"""Shared fixtures: small networks that init and train in well under a second."""

from __future__ import annotations

import pytest

# A 300-ms trial of 256 neurons: 1000 steps before learning, 20 RLS updates.
SMALL = {
    "n_cells": 256, "seed": 11, "stim_on": 50.0, "stim_off": 100.0, "train_duration": 200.0,
    "u0_skip_time": 100.0,
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
