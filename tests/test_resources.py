"""The resource monitor of long runs (train --monitor-resources)."""

from __future__ import annotations

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


def test_the_monitor_reports_cpu_and_memory_while_the_block_runs():
    lines = []
    with resources.ResourceMonitor(0.05, write=lines.append) as monitor:
        started = time.monotonic()
        held = np.ones(40_000_000 // 8)  # 40 MB held while the monitor samples
        while time.monotonic() - started < 0.4:  # busy on one core
            held[:1000] += 1.0
    assert len(lines) >= 4 and all(line.startswith("resources: CPU ") for line in lines)
    busy = [sample.cpu_percent for sample in monitor.samples]
    assert np.median(busy) > 50 and max(busy) < 100 * resources.cores() * 1.5  # one busy thread, of all cores
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
