"""Plugins: user connectivity, heterogeneous plastic in-degree, and the errors of bad plugins."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from spikeforge import rls
from spikeforge.cli import cli
from spikeforge.core.plugins import PluginError
from spikeforge.core.store import read_h5
from spikeforge.rls import p_matrix

from conftest import SMALL

TUTORIAL = Path(__file__).parents[1] / "docs" / "custom-connectivity.md"

PLUGINS = '''
import numpy as np
from spikeforge.rls.connectivity import plastic_weights


def one_input_fewer(p, init_spike_count, rng):
    """The default plastic inputs, with the last one of neuron 0 removed."""
    inputs = plastic_weights(p, init_spike_count, rng)
    index = [row for row in inputs.index]
    weight = [row for row in inputs.weight]
    index[0], weight[0] = index[0][:-1], weight[0][:-1]
    return index, weight


def short_targets(p, mean_current, rng, task):
    return np.zeros((p.steps.learn_nsteps - 1, p.n_cells))


def broken(p, rng):
    raise RuntimeError("no data here")
'''


def test_the_tutorial_runs_as_written(tmp_path, monkeypatch):
    text = TUTORIAL.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    commands = re.search(r"```bash\n(.*?)```", text, re.S).group(1).replace("\\\n", " ")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ring-net").mkdir()
    (tmp_path / "ring-net" / "ring.py").write_text(code)
    for line in filter(None, (line.strip() for line in commands.splitlines())):
        args = shlex.split(line)
        assert args[0] == "spikeforge"
        result = CliRunner().invoke(cli, args[1:])
        assert result.exit_code == 0, (line, result.output, result.stderr)
    init, _ = read_h5(tmp_path / "ring-net" / "init.h5", ["plastic/index", "plastic/count"])
    assert len(set(init["plastic/count"])) > 1  # in-degrees differ
    first = init["plastic/index"][0, : init["plastic/count"][0]]
    assert np.any(np.diff((first >= 512).astype(int)) < 0)  # an I input before an E input: not E-then-I ordered
    curve, _ = read_h5(tmp_path / "ring-net" / "learning-curve.h5", ["correlation"])
    measured = curve["correlation"][~np.isnan(curve["correlation"])]
    assert measured.size == 4 and measured[-1] > measured[0]
    assert (tmp_path / "ring-net" / "test-syninput-task0.png").exists()
    assert 'static_weights_args = { width = 0.5 }' in (tmp_path / "ring-net" / "params.toml").read_text()


def test_a_neuron_with_one_plastic_input_fewer_trains(tmp_path):
    directory = tmp_path / "net"
    directory.mkdir()
    (directory / "plugins.py").write_text(PLUGINS)
    rls.new(directory, {**SMALL, "plastic_weights": "plugins.py:one_input_fewer", "lx": 3})
    model = rls.init(directory, verbose=False)
    lmax = model.p.steps.n_plastic
    assert model.plastic.count[0] == lmax - 1 and np.all(model.plastic.count[1:] == lmax)
    result = rls.train(directory, nloops=3, verbose=False)
    assert all(np.isfinite(result.correlation)) and result.correlation[-1] > result.correlation[0]
    P = p_matrix.dense(result.model.P, result.model.p.p_storage, lmax, 1.0)
    assert np.all(P[0, -1, :] == 0) and np.all(P[0, :, -1] == 0)  # the missing input stays out of P
    assert result.model.plastic.weight[0, -1] == 0


@pytest.mark.parametrize("spec, message", [
    ("plugins.py:short_targets", "returned targets of task 0 of shape (19, 1024); expected (20, 1024)"),
    ("plugins.py:nothing", "'plugins.py' has no function 'nothing'"),
    ("missing.py:f", "missing.py' does not exist"),
    ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
    ("plugins.py", "is not of the form 'module:function'"),
])
def test_bad_plugins_are_named_in_one_line_errors(tmp_path, spec, message):
    directory = tmp_path / "net"
    directory.mkdir()
    (directory / "plugins.py").write_text(PLUGINS)
    rls.new(directory, {**SMALL, "targets": spec})
    result = CliRunner().invoke(cli, ["init", str(directory)])
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert not (directory / "init.h5").exists()


def test_a_failing_plugin_is_reported_with_its_error(tmp_path):
    directory = tmp_path / "net"
    directory.mkdir()
    (directory / "plugins.py").write_text(PLUGINS)
    rls.new(directory, {**SMALL, "static_weights": "plugins.py:broken"})
    with pytest.raises(PluginError, match="plugins.py:broken' failed: RuntimeError: no data here"):
        rls.init(directory, verbose=False)
