"""Figures of the sequence-learning capability, on small constructed grids, inputs and activity."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from spikeforge.sequence import connectivity, plotting
from spikeforge.sequence.inputs import Inputs, Phase

PNG = b"\x89PNG\r\n\x1a\n"


def make_inputs(phases, n_steps, n_inputs=6, seed=0):
    """Inputs labelled by ``phases`` (start, length, pattern), cut at ``n_steps``; random spikes, about a third
    of those inside patterns marked as pattern spikes."""
    rng = np.random.default_rng(seed)
    pattern = np.full(n_steps, -1, dtype=np.int64)
    for start, length, p in phases:
        pattern[start:start + length] = p
    spikes = rng.random((n_steps, n_inputs)) < 0.02
    from_pattern = spikes & (pattern >= 0)[:, None] & (rng.random((n_steps, n_inputs)) < 0.4)
    kept = tuple(Phase(start, length, p, p, 1.0) for start, length, p in phases if start < n_steps)
    return Inputs(spikes, pattern, pattern.copy(), from_pattern, kept)


def bumps(n_steps, windows):
    """Rates [Hz] (steps x neurons) with a Gaussian bump per neuron at ``start + centre`` in each window."""
    t = np.arange(n_steps)[:, None]
    rates = np.zeros((n_steps, len(windows[0][1])))
    for start, centres in windows:
        rates += 100.0 * np.exp(-0.5 * ((t - start - np.asarray(centres)[None, :]) / 10.0) ** 2)
    return rates


# The last pattern-0 phase starts at 1000 and would end at 1300: cut off by the end of the run (1100 steps).
PHASES = [(0, 200, -1), (200, 300, 0), (500, 200, -1), (700, 200, 1), (900, 100, -1), (1000, 300, 0)]
RUN = 1100
RATES = bumps(RUN, [(200, [50, 100, 150, 250]), (700, [120, 60, 180, 20]), (1000, [40, 90, 20, 70])])


def assert_single_png(path, returned):
    assert returned == path
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 1000
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left behind


@pytest.fixture
def captured(monkeypatch):
    """The figures passed to save_figure, still written by the real one."""
    figures = []
    real = plotting.save_figure

    def keep(fig, path):
        figures.append(fig)
        return real(fig, path)

    monkeypatch.setattr(plotting, "save_figure", keep)
    return figures


def test_grid_values_follow_the_row_by_row_numbering():
    grid = connectivity.build_grid((3, 4), 2, 5, np.random.default_rng(0))
    table = plotting.grid_values(grid)
    assert table.shape == (3, 4)
    assert np.array_equal(table, grid.sizes.reshape(3, 4))
    x, y = grid.positions.astype(int).T
    assert np.array_equal(table[x, y], grid.sizes)  # circuit c sits at its own position
    values = np.arange(12) * 0.5
    assert np.array_equal(plotting.grid_values(grid, values)[1], values[4:8])
    with pytest.raises(ValueError, match="11 values.*12 circuits"):
        plotting.grid_values(grid, np.ones(11))


def test_ordered_by_last_pattern_takes_the_last_complete_presentation():
    inputs = make_inputs(PHASES, RUN)
    assert inputs.phases[-1].start + inputs.phases[-1].length > RUN  # the last presentation is cut off
    assert plotting.ordered_by_last_pattern(RATES, inputs).tolist() == [3, 1, 0, 2]  # pattern 1 at 700
    assert plotting.ordered_by_last_pattern(RATES, inputs, pattern=0).tolist() == [0, 1, 2, 3]  # at 200
    assert plotting.ordered_by_last_pattern(RATES, inputs, pattern=2) is None
    noise_only = make_inputs([(0, RUN, -1)], RUN)
    assert plotting.ordered_by_last_pattern(RATES, noise_only) is None


def test_raster_rows():
    assert plotting.raster_rows(4).tolist() == [0, 1, 2, 3]
    assert plotting.raster_rows(4, [2, 0, 3, 1], neurons=2).tolist() == [2, 0]
    assert plotting.raster_rows(4, [2, 0, 3, 1], neurons=[1, 2]).tolist() == [2, 1]
    with pytest.raises(ValueError, match="more than once"):
        plotting.raster_rows(4, [0, 0, 1, 2])
    with pytest.raises(ValueError, match="neurons 0 to 3"):
        plotting.raster_rows(4, [0, 4])


def test_network_raster_places_the_ordered_neurons_in_rows():
    rng = np.random.default_rng(1)
    spikes = rng.random((500, 7)) < 0.03
    order = np.array([4, 6, 0, 2, 1, 5, 3])
    ax = Figure().subplots()
    rows = plotting.draw_network_raster(ax, spikes, make_inputs([(0, 200, -1), (200, 300, 0)], 500), order)
    assert rows.tolist() == order.tolist()
    offsets = np.asarray(ax.collections[0].get_offsets())
    assert len(offsets) == spikes.sum()
    for row in (0, 3):  # the spike times [s] drawn in a row are those of the neuron ordered there
        drawn = np.sort(offsets[offsets[:, 1] == row, 0])
        assert drawn == pytest.approx(np.flatnonzero(spikes[:, order[row]]) * 1e-3)
    low, high = sorted(ax.get_ylim())
    assert low <= -0.5 and high >= 6.5


def test_raster_writes_both_panels(tmp_path, captured):
    inputs = make_inputs(PHASES, RUN, n_inputs=8)
    rng = np.random.default_rng(2)
    spikes = rng.random((RUN, 4)) < RATES * 1e-3 + 0.002
    path = tmp_path / "raster.png"
    assert_single_png(path, plotting.raster(path, spikes, inputs, rates=RATES, title="test"))
    top, bottom = captured[0].axes[:2]
    low, high = sorted(top.get_ylim())
    assert low <= 0 and high >= 3  # every neuron has a row
    offsets = np.asarray(top.collections[0].get_offsets())
    first = 3  # the order of the last complete presentation starts with neuron 3
    assert np.sort(offsets[offsets[:, 1] == 0, 0]) == pytest.approx(np.flatnonzero(spikes[:, first]) * 1e-3)
    assert top.get_legend() is not None
    assert [t.get_text() for t in top.get_legend().get_texts()] == ["pattern 0", "pattern 1"]
    noise, pattern = bottom.collections[:2]
    assert len(pattern.get_offsets()) == inputs.from_pattern.sum()
    assert len(noise.get_offsets()) == (inputs.spikes & ~inputs.from_pattern).sum()
    assert bottom.get_xlabel() == "time [s]" and top.get_xlim()[1] == pytest.approx(RUN * 1e-3)
    with pytest.raises(ValueError, match="same steps"):
        plotting.raster(tmp_path / "bad.png", spikes[:-1], inputs)


def test_circuits_figure(tmp_path, captured):
    grid = connectivity.build_grid((3, 4), 2, 5, np.random.default_rng(0))
    path = tmp_path / "grid.png"
    assert_single_png(path, plotting.circuits(path, grid))
    flat = captured[0].axes[0]
    mesh = flat.collections[0]
    assert np.array_equal(np.asarray(mesh.get_array()).ravel(), grid.sizes)
    assert [t.get_text() for t in flat.texts] == [str(k) for k in grid.sizes]


def test_weight_bins_and_histograms(tmp_path, captured):
    edges = plotting.weight_bins([np.array([-7.0, -1.0]), np.array([-2.0, 0.0])])
    assert edges[0] == -5.0 and edges[-1] == pytest.approx(0.0) and len(edges) == 51
    edges = plotting.weight_bins([np.array([-1.0, 0.73])])
    assert edges[-1] >= 0.73 and edges[-2] < 0.73
    rng = np.random.default_rng(3)
    snapshots = [rng.normal(-3, 1, 500), rng.normal(-1, 0.5, 500), rng.normal(0.2, 0.3, 500)]
    path = tmp_path / "weights.png"
    assert_single_png(path, plotting.weights(path, snapshots, [0, 50, 200.5]))
    ax = captured[0].axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["t = 0 s", "t = 50 s", "t = 200.5 s"]
    assert ax.get_xlim()[1] >= snapshots[2].max()
    assert [float(patch.get_data().values.sum()) for patch in ax.patches] == [500.0] * 3  # below -5: lowest bin
    with pytest.raises(ValueError, match="3 weight snapshots but 2 times"):
        plotting.weights(tmp_path / "bad.png", snapshots, [0, 1])


def test_selectivity(tmp_path, captured):
    inputs = make_inputs([(0, 300, -1), (300, 300, 0), (600, 400, -1)], 1000)
    in_pattern = inputs.pattern >= 0
    rates = np.full((1000, 3), 10.0)
    rates[in_pattern, 0] = 30.0  # 30 > 2 x 10 + 5: selective
    rates[in_pattern, 1] = 24.0  # not
    during, outside, chosen = plotting.pattern_rates(rates, inputs)
    assert during.tolist() == [30.0, 24.0, 10.0] and outside.tolist() == [10.0, 10.0, 10.0]
    assert chosen.tolist() == [True, False, False]
    spikes = np.zeros((1000, 1), dtype=bool)
    spikes[300:600:10, 0] = True  # 100 Hz in the pattern, silent outside
    during, outside, chosen = plotting.pattern_rates(spikes, inputs)
    assert during == pytest.approx([100.0]) and outside.tolist() == [0.0] and chosen.tolist() == [True]
    path = tmp_path / "selectivity.png"
    assert_single_png(path, plotting.selectivity(path, rates, inputs))
    other, selective = captured[0].axes[0].collections[:2]
    assert np.asarray(selective.get_offsets()).tolist() == [[10.0, 30.0]]
    assert len(other.get_offsets()) == 2
