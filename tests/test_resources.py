"""The resource monitor of long runs (train --monitor-resources)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from spikeforge.cli import run
from spikeforge.core import resources
from spikeforge.core.interrupts import StopSignals


def test_peak_memory_is_in_bytes_on_linux_and_macos(monkeypatch):
    """ru_maxrss is in kilobytes on Linux and in bytes on macOS."""
    class Usage:
        ru_maxrss = 2048

    monkeypatch.setattr(resources.resource, "getrusage", lambda who: Usage())
    monkeypatch.setattr(resources.sys, "platform", "linux")
    assert resources.peak_rss_bytes() == 2048 * 1024
    monkeypatch.setattr(resources.sys, "platform", "darwin")
    assert resources.peak_rss_bytes() == 2048


def _overlay(module, **replaced):
    """``module`` with the functions ``replaced``, as an object of its own (the module itself is unchanged)."""
    members = {name: staticmethod(function) for name, function in replaced.items()}
    return type("Overlay", (), {"__getattr__": lambda self, name: getattr(module, name), **members})()


def test_a_sample_is_cpu_time_over_wall_time_since_the_previous_one(monkeypatch):
    """Hand-computed: 0.3 s of CPU (user + system) in 0.2 s of wall time is 150 % of one core."""
    clock = {"wall": 10.0, "user": 1.0, "system": 0.5}
    # fake clocks for the resources module only (its ``time`` and ``os`` names), not for the whole process
    monkeypatch.setattr(resources, "time", _overlay(time, monotonic=lambda: clock["wall"]))
    monkeypatch.setattr(resources, "os", _overlay(
        os, times=lambda: os.times_result((clock["user"], clock["system"], 0.0, 0.0, 0.0))))
    monitor = resources.ResourceMonitor(None)
    monitor._last = (clock["wall"], clock["user"] + clock["system"])
    clock.update(wall=10.2, user=1.25, system=0.55)
    assert monitor.sample().cpu_percent == pytest.approx(150.0)
    clock.update(wall=10.7)  # idle: no CPU time since the previous sample
    assert monitor.sample().cpu_percent == pytest.approx(0.0)


def test_the_monitor_reports_cpu_and_memory_while_the_block_runs():
    lines = []
    held = np.ones(40_000_000 // 8)  # 40 MB, held (and touched) before the first sample
    with resources.ResourceMonitor(0.05, write=lines.append) as monitor:
        started, cpu_started = time.monotonic(), time.process_time()
        while time.monotonic() - started < 0.4:  # busy on one core
            held[:1000] += 1.0
        cpu_seconds, wall_seconds = time.process_time() - cpu_started, time.monotonic() - started
    assert len(lines) >= 4 and all(line.startswith("resources: CPU ") for line in lines)
    busy = [sample.cpu_percent for sample in monitor.samples]
    # The samples agree with the CPU share the process measured itself, whatever other processes on a
    # loaded machine leave it (os.times counts in 10-ms ticks, so 0.05-s samples are 20 % coarse).
    assert cpu_seconds >= 0.02 and np.mean(busy) == pytest.approx(100.0 * cpu_seconds / wall_seconds, abs=25)
    assert all(40e6 < s.rss_bytes <= s.peak_rss_bytes for s in monitor.samples)
    count = len(lines)
    time.sleep(0.2)
    assert len(lines) == count  # the thread stopped with the block


def test_no_interval_no_thread_and_bad_intervals_are_refused(tmp_path, capsys):
    with resources.ResourceMonitor(None, write=pytest.fail) as monitor:
        time.sleep(0.05)
    assert monitor.samples == []
    for bad in ("0", "-1", "nan", "abc"):
        with StopSignals() as signals:
            assert run(["train", str(tmp_path), "--monitor-resources", bad], signals) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "monitor" in lines[0], lines
    assert list(tmp_path.iterdir()) == []
