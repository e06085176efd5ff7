"""Parameters: the reference's defaults, derived values, TOML round trip and bad input."""

from __future__ import annotations

import math

import pytest

from spikeforge.core.params import parse_assignment
from spikeforge.errors import DataFileError, ParameterError
from spikeforge.rls.params import SCHEMA, Params


def test_defaults_reproduce_trainspikingnet_derived_values():
    p = Params({})
    # tsn.md 2.1: K = 205, L = 29, 58 plastic inputs, je = ji = 1.39686, jx = 1.14543, ...
    assert (p.ne, p.ni, p.k, p.l, p.steps.n_plastic) == (2048, 2048, 205, 29, 58)
    assert p.je == pytest.approx(1.39686, abs=1e-5) and p.ji == pytest.approx(1.39686, abs=1e-5)
    assert p.jx == pytest.approx(1.14543, abs=1e-5)
    assert (p.jee, p.jie, p.jei, p.jii) == pytest.approx((0.20953, 1.39686, -1.04765, -1.39686), abs=1e-5)
    assert (p.x_bale, p.x_bali) == pytest.approx((1.71814, 1.14543), abs=1e-5)
    assert p.wpscale == pytest.approx(10.770, abs=1e-3)
    assert (p.wpee, p.wpei) == pytest.approx((1.85695, -1.85695), abs=1e-5)
    assert p.train_time == 2000.0
    s = p.steps
    assert (s.n_steps, s.learn_step, s.learn_nsteps, s.max_times, s.refrac_steps) == (20000, 100, 100, 1000, 1)


def test_derived_values_follow_what_the_user_sets_unless_set_too():
    p = Params({"n_cells": 1024})
    assert (p.ne, p.k, p.l) == (512, 51, 14)
    assert p.je == pytest.approx(2 / math.sqrt(51) * 10)
    pinned = Params({"n_cells": 1024, "k": 205, "l": 10})
    assert (pinned.k, pinned.l, pinned.lexc) == (205, 10, 10)
    assert pinned.je == pytest.approx(1.39686, abs=1e-5)


def test_toml_round_trip_keeps_user_values_and_comments_derived_ones(tmp_path):
    path = tmp_path / "params.toml"
    SCHEMA.write_toml(path, {"n_cells": 1024, "seed": 3, "jee": 0.5})
    text = path.read_text()
    assert "\n# k = 51" in text and "\njee = 0.5" in text
    user = SCHEMA.read_toml(path)
    assert Params(user) == Params({"n_cells": 1024, "seed": 3, "jee": 0.5})
    assert user["jee"] == 0.5 and "k" not in user
    # a user edit of n_cells in the file changes the derived values
    path.write_text(text.replace("n_cells = 1024", "n_cells = 2048"))
    assert Params(SCHEMA.read_toml(path)).k == 102


@pytest.mark.parametrize("user, message", [
    ({"n_cels": 10}, "unknown parameter 'n_cels'; did you mean 'n_cells'"),
    ({"dt": -0.1}, "dt = -0.1 must be > 0"),
    ({"ne": 5000}, "ne = 5000 must be between 1 and n_cells - 1"),
    ({"train_time": 900.0}, "stim_off = 1000.0 must be <= train_time = 900.0"),
    ({"stim_on": 1200.0}, "stim_on = 1200.0 must be <= stim_off = 1000.0"),
    ({"dt": 0.3}, "is not a whole multiple of dt = 0.3"),
    ({"learn_every": 30.0}, "train_duration = 1000.0 is not a whole multiple of learn_every = 30.0"),
    ({"n_cells": "many"}, "parameter 'n_cells' = 'many' is not an integer"),
    ({"p_storage": "diagonal"}, "parameter 'p_storage' = 'diagonal' is not one of"),
    ({"k": 3000}, "out-degree 2k = 6000"),
    ({"n_cells": 64, "l": 40}, "lexc = 40 exceeds the 31 excitatory candidates"),
])
def test_invalid_parameters_are_errors_naming_the_value(user, message):
    with pytest.raises(ParameterError, match=None) as info:
        Params(user)
    assert message in str(info.value)


def test_missing_and_invalid_toml_files_are_data_errors(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        SCHEMA.read_toml(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("n_cells = = 3\n")
    with pytest.raises(DataFileError, match="not valid TOML"):
        SCHEMA.read_toml(bad)


def test_command_line_assignments_are_typed():
    assert parse_assignment("n_cells=512") == ("n_cells", 512)
    assert parse_assignment("dt = 0.05") == ("dt", 0.05)
    assert parse_assignment('p_storage="full"') == ("p_storage", "full")
    assert parse_assignment("p_storage=full") == ("p_storage", "full")
    with pytest.raises(ParameterError, match="NAME=VALUE"):
        parse_assignment("n_cells")
