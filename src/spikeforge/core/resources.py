"""What a long run uses, reported every few seconds from a background thread.

:class:`ResourceMonitor` is the counterpart of TrainSpikingNet's ``monitor_resources_used``:
every ``interval`` seconds it writes one line with

* the process's CPU use since the last line, in percent of one core (user + system time of all
  its threads over the wall time; 200 % = two cores busy) and of the cores it may run on;
* its resident memory now and at its peak [bytes, printed in MB/GB];
* on CUDA, the memory torch has allocated on the device now and at its peak, and the GPU's
  utilisation where torch can read it (through NVIDIA's management library).

The reference also reads the power drawn (``sudo ipmitool``), which needs root; spikeforge does
not.  Sampling costs one ``os.times`` call and one small file read per line, nothing in the
hot loops, and the thread never touches the run's arrays.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import NamedTuple


class Sample(NamedTuple):
    """One line of the monitor."""

    cpu_percent: float  # CPU time over wall time since the previous sample [% of one core]
    cores: int  # cores the process may run on
    rss_bytes: int  # resident memory now [bytes] (the peak where the current value is unknown)
    peak_rss_bytes: int  # peak resident memory [bytes]
    gpu: str  # "" or a description of the CUDA devices' memory and utilisation

    def line(self) -> str:
        """The sample as one line of text."""
        text = (f"resources: CPU {self.cpu_percent:.0f} % ({self.cpu_percent / self.cores:.0f} % of {self.cores} cores), "
                f"memory {human_bytes(self.rss_bytes)} (peak {human_bytes(self.peak_rss_bytes)})")
        return text + (f", {self.gpu}" if self.gpu else "")


def peak_rss_bytes() -> int:
    """Peak resident memory of this process [bytes] (``ru_maxrss`` is in kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def current_rss_bytes() -> int:
    """Resident memory of this process now [bytes]; the peak where the system does not say."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss_bytes()


def cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def gpu_summary() -> str:
    """Memory (and utilisation, where readable) of the CUDA devices torch has used, or ""."""
    torch = sys.modules.get("torch")  # never import torch just to look
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return ""
    parts = []
    for index in range(torch.cuda.device_count()):
        text = (f"cuda:{index} {human_bytes(torch.cuda.memory_allocated(index))} allocated "
                f"(peak {human_bytes(torch.cuda.max_memory_allocated(index))})")
        try:
            text += f", {torch.cuda.utilization(index)} % busy"
        except Exception:  # noqa: BLE001 - needs NVIDIA's management library; memory alone is still useful
            pass
        parts.append(text)
    return "; ".join(parts)


class ResourceMonitor:
    """A context manager that calls ``write`` with a :meth:`Sample.line` every ``interval``
    seconds while the ``with`` block runs (and once more at its end, if it ran for at least one
    interval).  ``interval``: seconds, > 0; None or 0: no monitor."""

    def __init__(self, interval: float | None, write: Callable[[str], None] = print):
        self.interval = interval
        self.write = write
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = (0.0, 0.0)

    def sample(self) -> Sample:
        """Measure now (CPU use since the previous sample)."""
        times = os.times()
        wall, cpu = time.monotonic(), times.user + times.system
        elapsed = max(wall - self._last[0], 1e-9)
        percent = 100.0 * (cpu - self._last[1]) / elapsed
        self._last = (wall, cpu)
        rss = current_rss_bytes()
        result = Sample(percent, cores(), rss, max(rss, peak_rss_bytes()), gpu_summary())
        self.samples.append(result)
        return result

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.write(self.sample().line())

    def __enter__(self) -> "ResourceMonitor":
        if self.interval:
            times = os.times()
            self._last = (time.monotonic(), times.user + times.system)
            self._thread = threading.Thread(target=self._run, name="spikeforge-resources", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        if time.monotonic() - self._last[0] >= self.interval:
            self.write(self.sample().line())


def human_bytes(n_bytes: float) -> str:
    """``n_bytes`` in B, kB, MB, GB or TB (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n_bytes < 1000 or unit == "TB":
            return f"{n_bytes:.1f} {unit}" if unit != "B" else f"{int(n_bytes)} B"
        n_bytes /= 1000
    return ""
