"""Recorded spike trains in (NWB, neo, arrays) and their PSTHs."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import publish_figures
from spikeforge.core import recordings
from spikeforge.errors import DataFileError

WINDOW = (-200.0, 1800.0)  # ms around each trial's stimulus onset


def _poisson_recording(seed=0, n_trials=12, n_units=4):
    """Inhomogeneous Poisson spikes (trial, unit, time [ms]) of distinct rate profiles."""
    rng = np.random.default_rng(seed)
    t = np.arange(WINDOW[0], WINDOW[1], 1.0) + 0.5
    profiles = [5 + 0 * t, 5 + 20 * np.exp(-((t - 300) / 80) ** 2), 5 + 10 * np.clip(t / 1600, 0, 1),
                8 + 6 * np.sin(2 * np.pi * t / 400)][:n_units]
    trial, unit, time = [], [], []
    for k in range(n_trials):
        for u, rate in enumerate(profiles):
            spikes = t[rng.random(t.size) < rate / 1000] + rng.uniform(-0.5, 0.5)
            spikes = np.sort(np.clip(spikes, WINDOW[0], WINDOW[1] - 1e-6))
            trial += [k] * spikes.size
            unit += [u] * spikes.size
            time += list(spikes)
    return np.array(trial), np.array(unit), np.array(time), n_trials, n_units


def _write_nwb(path, trial, unit, time, n_trials, n_units, onset_s, trial_start_s):
    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description="test", identifier="spikeforge-test",
                  session_start_time=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
    nwb.add_trial_column(name="stimulus_onset", description="stimulus onset [s]")
    for k in range(n_trials):
        nwb.add_trial(start_time=trial_start_s[k], stop_time=trial_start_s[k] + 3.0, stimulus_onset=onset_s[k])
    for u in range(n_units):
        mine = unit == u
        nwb.add_unit(spike_times=np.sort(onset_s[trial[mine]] + time[mine] / 1000), id=100 + u)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def _write_neo(path, trial, unit, time, n_trials, n_units):
    import neo
    import quantities as pq

    block = neo.Block()
    for k in range(n_trials):
        segment = neo.Segment()
        for u in range(n_units):
            mine = (trial == k) & (unit == u)
            segment.spiketrains.append(neo.SpikeTrain(time[mine] * pq.ms, t_start=WINDOW[0] * pq.ms,
                                                      t_stop=WINDOW[1] * pq.ms, name=str(100 + u)))
        block.segments.append(segment)
    neo.io.PickleIO(str(path)).write_block(block)


def test_nwb_neo_and_arrays_give_the_same_psths(tmp_path):
    trial, unit, time, n_trials, n_units = _poisson_recording()
    onset = 10.0 + 5.0 * np.arange(n_trials)  # s
    _write_nwb(tmp_path / "rec.nwb", trial, unit, time, n_trials, n_units, onset, onset - 0.5)
    _write_neo(tmp_path / "rec.pkl", trial, unit, time, n_trials, n_units)
    np.savez(tmp_path / "rec.npz", trial=trial, unit=unit, time=time, window=WINDOW,
             unit_ids=np.array([str(100 + u) for u in range(n_units)]))
    from_nwb = recordings.load(tmp_path / "rec.nwb", WINDOW, align_to="stimulus_onset")
    from_neo = recordings.load(tmp_path / "rec.pkl")
    from_arrays = recordings.load(tmp_path / "rec.npz")
    samples = np.arange(0.0, 1600.0, 20.0) + 10
    expected = recordings.psth(from_arrays, samples, smoothing_ms=25.0)
    assert expected.shape == (samples.size, n_units) and list(from_arrays.unit_ids) == ["100", "101", "102", "103"]
    for loaded in (from_nwb, from_neo):
        assert loaded.n_trials == n_trials and list(loaded.unit_ids) == list(from_arrays.unit_ids)
        # neo shifts times by the window start and back, NWB through seconds: equal to rounding
        np.testing.assert_allclose(recordings.psth(loaded, samples, 25.0), expected, rtol=1e-9, atol=1e-9)
    # the transient unit peaks near 300 ms, the flat one does not move much
    assert abs(samples[np.argmax(expected[:, 1])] - 300) < 60 and expected[:, 1].max() > 15


def test_a_regular_train_has_the_psth_of_its_rate_everywhere_and_smoothing_keeps_a_profile():
    # one spike every 10 ms in each of 3 trials: 100 Hz once the 30-ms kernel spans many spikes
    times = np.tile(np.arange(0.0, 1000.0, 10.0) + 0.3, 3)
    trials = np.repeat(np.arange(3), 100)
    regular = recordings.from_arrays(trials, np.zeros(300, dtype=int), times, (0.0, 1000.0))
    samples = np.linspace(100.5, 899.5, 50)
    np.testing.assert_allclose(recordings.psth(regular, samples, smoothing_ms=30.0)[:, 0], 100.0, rtol=1e-3)
    # a constant Poisson rate stays constant up to the window's edges (reflected there)
    rng = np.random.default_rng(0)
    n_trials, rate_hz = 2000, 20.0
    counts = rng.poisson(rate_hz / 1000, size=(n_trials, 1000))
    trial, bin_ = np.nonzero(counts)
    flat = recordings.from_arrays(np.repeat(trial, counts[trial, bin_]), np.zeros(counts.sum(), dtype=int),
                                  np.repeat(bin_ + 0.5, counts[trial, bin_]), (0.0, 1000.0), n_trials=n_trials)
    edges = recordings.psth(flat, np.array([0.5, 5.5, 994.5, 999.5]), smoothing_ms=30.0)[:, 0]
    np.testing.assert_allclose(edges, rate_hz, rtol=0.05)
    # raw 1-ms bins: 1 spike per trial in every tenth bin -> 1000 Hz there, 0 elsewhere
    raw = recordings.psth(regular, np.array([0.5, 1.5, 10.5]), smoothing_ms=0.0)[:, 0]
    np.testing.assert_allclose(raw, [1000.0, 0.0, 1000.0])
    # a slow profile survives 20-ms smoothing: the Gaussian kernel only damps the sinusoid by
    # exp(-(2 pi sigma / period)^2 / 2); 3000 trials leave a standard error of at most 0.4 Hz
    rng = np.random.default_rng(1)
    t = np.arange(0.0, 2000.0, 1.0) + 0.5
    rate = 20 + 15 * np.sin(2 * np.pi * t / 1000)
    n_trials = 3000
    counts = rng.poisson(rate / 1000, size=(n_trials, t.size))
    trial, bin_ = np.nonzero(counts)
    times = np.repeat(t[bin_], counts[trial, bin_])
    spikes = recordings.from_arrays(np.repeat(trial, counts[trial, bin_]), np.zeros(times.size, dtype=int),
                                    times, (0.0, 2000.0), n_trials=n_trials)
    samples = np.arange(100.0, 1900.0, 50.0)
    expected = 20 + 15 * np.sin(2 * np.pi * samples / 1000) * np.exp(-0.5 * (2 * np.pi * 20 / 1000) ** 2)
    np.testing.assert_allclose(recordings.psth(spikes, samples, smoothing_ms=20.0)[:, 0], expected, atol=1.2)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(time=np.where(np.arange(s["time"].size) == 5, np.nan, s["time"])), "is not a finite time"),
    (lambda s: s.update(trial=np.where(np.arange(s["trial"].size) == 3, -1, s["trial"])), "trial index -1 of spike 3"),
    (lambda s: s.update(time=np.where(np.arange(s["time"].size) == 2, 5000.0, s["time"])),
     "outside the window [-200, 1800) ms"),
    (lambda s: s.update(time=s["time"][[1, 0, *range(2, s["time"].size)]]), "spike times must be sorted"),
    (lambda s: s.update(unit_ids=np.array(["a", "b"])), "unit index 3 but 2 unit ids"),
    (lambda s: s.update(n_trials=5), "n_trials = 5 but trial index 11 occurs"),
    (lambda s: s.update(window=np.array([10.0, 0.0])), "expected [start, stop] with start < stop"),
])
def test_bad_spike_data_is_refused_with_the_first_bad_entry_named(tmp_path, change, message):
    trial, unit, time, n_trials, _ = _poisson_recording(n_trials=12)
    order = np.lexsort((time, unit, trial))
    arrays = {"trial": trial[order], "unit": unit[order], "time": time[order], "window": np.array(WINDOW)}
    change(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataFileError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        recordings.load(tmp_path / "bad.npz")


def test_nwb_files_without_what_is_needed_are_refused(tmp_path):
    trial, unit, time, n_trials, n_units = _poisson_recording(n_trials=3)
    onset = 10.0 + 5.0 * np.arange(n_trials)
    _write_nwb(tmp_path / "rec.nwb", trial, unit, time, n_trials, n_units, onset, onset - 0.1)
    with pytest.raises(DataFileError, match="window \\[-200, 1800\\) ms around stimulus_onset = 10 s reaches outside"):
        recordings.load(tmp_path / "rec.nwb", WINDOW, align_to="stimulus_onset")  # trials start 0.1 s before onset
    with pytest.raises(DataFileError, match="no column 'go_cue'; expected one of start_time, stop_time, stimulus_onset"):
        recordings.load(tmp_path / "rec.nwb", (0.0, 100.0), align_to="go_cue")
    with pytest.raises(DataFileError, match="give the window"):
        recordings.load(tmp_path / "rec.nwb")
    (tmp_path / "junk.nwb").write_bytes(b"not hdf5")
    with pytest.raises(DataFileError, match="junk.nwb' cannot be read"):
        recordings.load(tmp_path / "junk.nwb", WINDOW)


def test_init_from_a_spike_file_follows_its_psths_and_leaves_extra_neurons_hidden(tmp_path):
    from spikeforge import rls
    from spikeforge.core.store import read_h5
    from spikeforge.rls import data_targets

    from conftest import SMALL

    trial, unit, time, n_trials, n_units = _poisson_recording(n_trials=30)
    np.savez(tmp_path / "rec.npz", trial=trial, unit=unit, time=time, window=WINDOW,
             unit_ids=np.array(["a", "b", "c", "d"]))
    directory = tmp_path / "net"
    rls.new(directory, {**SMALL, "learn_every": 20.0, "wid": 40.0, "train_duration": 1600.0})
    model = rls.init(directory, spikes_file=tmp_path / "rec.npz", smoothing_ms=20.0, verbose=False)
    arrays, attrs = read_h5(directory / "init.h5", ["target_rates", "units/id", "units/neuron", "targets",
                                                    "init/u_mean"])
    spikes = recordings.load(tmp_path / "rec.npz")
    # learning time stim_off + j learn_every is data time window start + j learn_every
    expected = recordings.psth(spikes, WINDOW[0] + 20.0 * np.arange(1, 81), 20.0)
    np.testing.assert_allclose(arrays["target_rates"][0, :, :4], expected, rtol=1e-12)
    assert np.isnan(arrays["target_rates"][0, :, 4:]).all()  # hidden neurons have no target rate
    assert list(arrays["units/id"].astype(str)) == ["a", "b", "c", "d"] and list(arrays["units/neuron"]) == [0, 1, 2, 3]
    # hidden neurons are held at their init mean current; recorded ones get the Siegert currents
    np.testing.assert_array_equal(arrays["targets"][0, :, 4:], np.broadcast_to(arrays["init/u_mean"][4:], (80, 1020)))
    currents = data_targets.currents_from_rates(model.p, expected[None], attrs["ustd0"], np.arange(4))
    np.testing.assert_allclose(arrays["targets"][0, :, :4], currents[0], rtol=1e-12)
    assert attrs["targets_from"].endswith("rec.npz") and len(attrs["targets_sha256"]) == 64


def test_rates_with_their_own_time_axis_are_resampled_onto_the_learning_steps(tmp_path):
    import h5py

    from spikeforge import rls
    from spikeforge.core.store import read_h5

    from conftest import SMALL

    t = np.arange(0.0, 1200.0, 2.0)  # 2-ms samples, 2 units
    profile = np.stack([10 + 8 * np.sin(2 * np.pi * t / 800), 5 + 0.01 * t], axis=1)
    with h5py.File(tmp_path / "rates.h5", "w") as f:
        f["rates"], f["time"] = profile, t
    directory = tmp_path / "net"
    rls.new(directory, SMALL)  # train_duration 200 ms, learn_every 10 ms
    rls.init(directory, spikerate_file=tmp_path / "rates.h5", verbose=False)
    rates = read_h5(directory / "init.h5", ["target_rates"])[0]["target_rates"][0]
    sample = 10.0 * np.arange(1, 21)
    np.testing.assert_allclose(rates[:, 0], 10 + 8 * np.sin(2 * np.pi * sample / 800), atol=2e-3)  # linear interp.
    np.testing.assert_allclose(rates[:, 1], 5 + 0.01 * sample, rtol=1e-12)
    # the same with --rate-dt on a plain array, and the learning window must fit in the file
    np.save(tmp_path / "rates.npy", profile[:50])
    with pytest.raises(DataFileError, match=r"the window \[0, 98\) ms is 98 ms long; training needs train_duration"):
        rls.init(directory, spikerate_file=tmp_path / "rates.npy", rate_dt_ms=2.0, force=True, verbose=False)
    with pytest.raises(DataFileError, match="has a time axis; --rate-dt would contradict it"):
        rls.init(directory, spikerate_file=tmp_path / "rates.h5", rate_dt_ms=2.0, force=True, verbose=False)


@pytest.mark.filterwarnings("ignore:the network will be silent")
def test_spike_file_errors_from_the_command_line_are_one_line_and_write_nothing(tmp_path, capsys):
    from spikeforge import rls
    from spikeforge.cli import run
    from spikeforge.core.interrupts import StopSignals

    from conftest import SMALL

    trial, unit, time, n_trials, n_units = _poisson_recording(n_trials=3)
    np.savez(tmp_path / "nan.npz", trial=trial, unit=unit, time=np.where(np.arange(time.size) == 7, np.nan, time),
             window=WINDOW)
    np.savez(tmp_path / "ok.npz", trial=trial, unit=unit, time=time, window=WINDOW)
    directory = tmp_path / "net"
    rls.new(directory, {**SMALL, "n_cells": 3, "ne": 2, "lexc": 1, "linh": 0})
    cases = [(["--spikes", tmp_path / "nan.npz"], "spike 7"),
             (["--spikes", tmp_path / "ok.npz"], "4 recorded units but the network has n_cells = 3"),
             (["--spikes", tmp_path / "ok.npz", "--rate-dt", "2"], "--rate-dt = 2.0 applies only to a spike-rate file"),
             (["--utarg-file", tmp_path / "ok.npz", "--window", "0", "100"], "--window = (0.0, 100.0) applies only")]
    for arguments, message in cases:
        with StopSignals() as signals:
            assert run(["init", str(directory), *map(str, arguments)], signals) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert sorted(p.name for p in directory.iterdir() if not p.name.startswith(".")) == ["params.toml"]


@pytest.mark.tutorial
def test_the_recordings_tutorial_runs_as_written(tmp_path, monkeypatch):
    import re
    import runpy
    import shlex

    from click.testing import CliRunner

    from spikeforge.cli import cli
    from spikeforge.core.store import read_h5

    text = (Path(__file__).parents[1] / "docs" / "recordings.md").read_text()
    code = re.search(r"```python\n(# make_recording.py.*?)```", text, re.S).group(1)
    commands = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "make_recording.py").write_text(code)
    runpy.run_path(str(tmp_path / "make_recording.py"))
    outputs = []
    for line in filter(None, (line.strip() for line in commands.splitlines())):
        result = CliRunner().invoke(cli, shlex.split(line)[1:])
        assert result.exit_code == 0, (line, result.output)
        outputs.append(result.output)
    assert "rate space (16 recorded neurons, 10 trials): median PSTH correlation" in outputs[-1]
    assert "are NaN" not in outputs[2]  # hidden neurons have no target to correlate with: not counted
    arrays, attrs = read_h5(tmp_path / "fit" / "test.h5")
    assert arrays["rate/correlation"].shape == (16,) and np.isfinite(arrays["rate/correlation"]).sum() >= 12
    init, _ = read_h5(tmp_path / "fit" / "init.h5", ["units/id", "units/neuron", "target_rates"])
    assert init["units/id"][0].decode() == "transient-0" and list(init["units/neuron"]) == list(range(96))
    assert np.isnan(init["target_rates"][0, :, 96:]).all()
    assert (tmp_path / "fit" / "test-psth-task0.png").stat().st_size > 1000
    assert (tmp_path / "fit" / "test-rates-summary.png").stat().st_size > 1000
    publish_figures(tmp_path / "fit", ["test-psth-task0.png", "test-rates-summary.png"], "recordings")


def _arrays_file(tmp_path, **changes):
    trial, unit, time, _, _ = _poisson_recording(n_trials=4)
    arrays = {"trial": trial, "unit": unit, "time": time, "window": np.array(WINDOW), **changes}
    np.savez(tmp_path / "rec.npz", **{k: v for k, v in arrays.items() if v is not None})
    return tmp_path / "rec.npz"


@pytest.mark.parametrize("changes, options, message", [
    ({"n_trials": np.array([2, 3])}, {}, "n_trials = [2, 3]; expected one whole number >= 1"),
    ({"n_trials": np.array("x")}, {}, "n_trials holds text; expected real numbers"),
    ({"n_trials": np.array(4.5)}, {}, "n_trials = 4.5; expected one whole number"),
    ({"time": np.array(["1.0"] * 3), "trial": np.zeros(3, int), "unit": np.zeros(3, int)}, {}, "time holds text"),
    ({"time": np.ones(3) + 1j, "trial": np.zeros(3, int), "unit": np.zeros(3, int)}, {}, "time holds complex numbers"),
    ({"window": np.array(["a", "b"])}, {}, "window holds text"),
    ({"unit": np.full(3, 10**12), "trial": np.zeros(3, int), "time": np.ones(3)}, {}, "unit index 1000000000000"),
    ({"unit_ids": np.array(["a", "b", "a", "c"])}, {}, "unit id 'a' is given 2 times"),
    ({"unit_ids": np.array([["a", "b"], ["c", "d"]])}, {}, "unit_ids has shape (2, 2); expected one name per unit"),
    ({"trial": np.zeros(0, int), "unit": np.zeros(0, int), "time": np.zeros(0)}, {}, "holds no spikes"),
    ({}, {"window_ms": (-500.0, 1500.0)}, "the window [-500, 1500) ms reaches outside the recorded window [-200, 1800)"),
    ({}, {"align_to": "stimulus_onset"}, "--align-to applies to NWB files only"),
])
def test_bad_array_files_and_options_are_refused(tmp_path, changes, options, message):
    path = _arrays_file(tmp_path, **changes)
    with pytest.raises(DataFileError, match=re.escape(message)):
        recordings.load(path, **options)


def test_a_truncated_file_and_too_much_smoothing_are_refused(tmp_path):
    path = _arrays_file(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataFileError, match="is not a valid .npz archive"):
        recordings.load(path)
    spikes = recordings.load(_arrays_file(tmp_path))
    with pytest.raises(DataFileError, match="PSTH smoothing = 1000000000.0 ms; expected a standard deviation from 0 to"):
        recordings.psth(spikes, np.array([0.0]), 1e9)


def test_files_that_are_not_npz_archives_or_hold_objects_are_refused_without_numpy_advice(tmp_path):
    (tmp_path / "text.npz").write_text("trial,unit,time")
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "array.npz").write_bytes((tmp_path / "array.npy").read_bytes())  # a .npy file named .npz
    for name in ("text.npz", "array.npz"):
        with pytest.raises(DataFileError, match=re.escape(f"{name}' is not a valid .npz archive (not a zip file)")):
            recordings.load(tmp_path / name)
    path = _arrays_file(tmp_path, unit_ids=np.array(["a", "b", "c", "d"], dtype=object))
    with pytest.raises(DataFileError, match="holds an array of Python objects") as info:
        recordings.load(path)
    assert "pickle" not in str(info.value)


@pytest.mark.parametrize("name, options", [("missing.nwb", {}), ("missing.nwb", {"window_ms": WINDOW}),
                                           ("missing.pkl", {}), ("missing.npz", {}), ("missing.h5", {}),
                                           ("missing.txt", {}), ("missing.nwb", {"align_to": "go_cue"})])
def test_a_missing_spike_file_is_reported_first_whatever_its_format(tmp_path, name, options):
    with pytest.raises(DataFileError, match=re.escape(f"spike file '{tmp_path / name}' does not exist")):
        recordings.load(tmp_path / name, **options)
    (tmp_path / "folder.npz").mkdir()
    with pytest.raises(DataFileError, match="folder.npz' is a directory; expected a file"):
        recordings.load(tmp_path / "folder.npz")


def test_a_missing_nwb_file_without_a_window_is_one_line_from_the_command_line(tmp_path):
    from click.testing import CliRunner

    from spikeforge import rls
    from spikeforge.cli import cli

    from conftest import SMALL

    rls.new(tmp_path / "net", SMALL)
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "net"), "--spikes", str(tmp_path / "missing.nwb")])
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        f"error: spike file '{tmp_path / 'missing.nwb'}' does not exist"]
    assert not (tmp_path / "net" / "init.h5").exists()


def _neo_block(windows, names=("a", "b")):
    """A neo Block of one segment per (t_start, t_stop) [ms] in ``windows``, with a train named
    ``names[u]`` (a list per segment, or one for all) and 3 spikes per unit."""
    import neo
    import quantities as pq

    block = neo.Block()
    for k, (start, stop) in enumerate(windows):
        segment = neo.Segment()
        for name in (names[k] if isinstance(names[0], (list, tuple)) else names):
            times = np.linspace(start, stop, 5)[1:-1]
            segment.spiketrains.append(neo.SpikeTrain(times * pq.ms, t_start=start * pq.ms, t_stop=stop * pq.ms,
                                                      name=name))
        block.segments.append(segment)
    return block


def test_neo_trials_must_record_the_same_window_unless_a_window_inside_all_of_them_is_given(tmp_path):
    import neo

    windows = [(-500.0, 1000.0), (-500.0, 1000.0), (-300.0, 1000.0)]
    neo.io.PickleIO(str(tmp_path / "rec.pkl")).write_block(_neo_block(windows))
    with pytest.raises(DataFileError, match=re.escape(
            "segment 2 (unit a) records the window [-300, 1000) ms but segment 0 (unit a) records [-500, 1000) ms; "
            "expected the same t_start and t_stop in every trial")):
        recordings.load(tmp_path / "rec.pkl")
    # only [0, 1000) ms of every trial is counted: each segment covers it, so no trial is missing from a bin
    spikes = recordings.load(tmp_path / "rec.pkl", (0.0, 1000.0))
    assert spikes.window_ms == (0.0, 1000.0) and spikes.n_trials == 3 and spikes.time_ms.min() >= 0
    with pytest.raises(DataFileError, match=re.escape(
            "the window [-400, 1000) ms reaches outside the window [-300, 1000) ms that segment 2 (unit a) records")):
        recordings.load(tmp_path / "rec.pkl", (-400.0, 1000.0))
    # within a segment too: the second train of segment 1 stops early
    block = _neo_block(windows[:2])
    block.segments[1].spiketrains[1] = _neo_block([(-500.0, 900.0)]).segments[0].spiketrains[1]
    with pytest.raises(DataFileError, match=re.escape("segment 1 (unit b) records the window [-500, 900) ms")):
        recordings.from_neo(block)


@pytest.mark.parametrize("names, message", [
    (("a", "b", "a"), "segment 0 has two spike trains named 'a'; expected distinct names"),
    ([("a", "b"), ("b", "b")], "segment 1 has two spike trains named 'b'; expected distinct names"),
    ([("a", "b"), ("a", None)], "spike train 1 of segment 1 has no name; expected every train named"),
])
def test_neo_units_matched_by_name_need_distinct_names(names, message):
    with pytest.raises(DataFileError, match=re.escape(message)):
        recordings.from_neo(_neo_block([(0.0, 100.0), (0.0, 100.0)], names))
    # trains without names are matched by position
    assert list(recordings.from_neo(_neo_block([(0.0, 100.0)] * 2, (None, None))).unit_ids) == ["0", "1"]


def test_a_window_cuts_every_trial_of_arrays_and_neo_recordings_as_of_nwb(tmp_path):
    trial, unit, time, n_trials, n_units = _poisson_recording()
    onset = 10.0 + 5.0 * np.arange(n_trials)
    _write_nwb(tmp_path / "rec.nwb", trial, unit, time, n_trials, n_units, onset, onset - 0.5)
    _write_neo(tmp_path / "rec.pkl", trial, unit, time, n_trials, n_units)
    np.savez(tmp_path / "rec.npz", trial=trial, unit=unit, time=time, window=WINDOW)
    cut = (0.0, 1000.0)
    samples = np.arange(20.0, 1000.0, 20.0)
    expected = recordings.psth(recordings.load(tmp_path / "rec.nwb", cut, align_to="stimulus_onset"), samples, 25.0)
    for name in ("rec.pkl", "rec.npz"):
        spikes = recordings.load(tmp_path / name, cut)
        assert spikes.window_ms == cut and spikes.time_ms.min() >= 0 and spikes.time_ms.max() < 1000
        np.testing.assert_allclose(recordings.psth(spikes, samples, 25.0), expected, rtol=1e-9, atol=1e-9)


def test_nwb_alignment_times_must_be_numbers(tmp_path):
    trial, unit, time, n_trials, n_units = _poisson_recording(n_trials=3)
    onset = 10.0 + 5.0 * np.arange(n_trials)
    onset[1] = np.nan
    _write_nwb(tmp_path / "rec.nwb", trial[trial != 1], unit[trial != 1], time[trial != 1], n_trials, n_units,
               onset, np.array([9.5, 14.5, 19.5]))
    with pytest.raises(DataFileError, match="trial 1's stimulus_onset is nan; expected a time in s"):
        recordings.load(tmp_path / "rec.nwb", WINDOW, align_to="stimulus_onset")


def test_every_row_of_a_rate_file_is_checked_and_a_long_window_is_reported(tmp_path):
    import h5py

    from spikeforge import rls
    from spikeforge.errors import SpikeforgeWarning

    from conftest import SMALL

    t = np.arange(0.0, 1200.0, 1.0)
    rates = np.full((t.size, 3), 5.0)
    rates[505, 1] = -40.0  # between two learning times
    with h5py.File(tmp_path / "rates.h5", "w") as f:
        f["rates"], f["time"] = rates, t
    directory = tmp_path / "net"
    rls.new(directory, SMALL)
    with pytest.raises(DataFileError, match=r"the rate at row 505 \(time 505 ms\), unit 1, task 0 is -40.0 Hz"):
        rls.init(directory, spikerate_file=tmp_path / "rates.h5", verbose=False)
    rates[505, 1] = 5.0
    with h5py.File(tmp_path / "rates.h5", "w") as f:
        f["rates"], f["time"] = rates, t
    with pytest.warns(SpikeforgeWarning, match=r"training follows only \[0, 200\) ms"):
        rls.init(directory, spikerate_file=tmp_path / "rates.h5", verbose=False)


def test_commands_on_a_folder_without_params_leave_no_lock(tmp_path):
    from spikeforge import rls
    from spikeforge.errors import SpikeforgeError

    with pytest.raises(SpikeforgeError, match="params.toml"):
        rls.init(tmp_path, verbose=False)
    assert list(tmp_path.iterdir()) == []
