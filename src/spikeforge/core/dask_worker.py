"""Dask preload of the local cluster's worker processes (:class:`spikeforge.core.executor.Cluster`).

Ctrl-C in a terminal sends SIGINT to every process of the foreground group, the workers included.
A worker that took it would print a traceback and drop its job; the client process already stops
the batch in order (finished results kept), so the workers ignore SIGINT.  SIGTERM (a scheduler's
kill) still ends them.  Warnings of the jobs are printed as the command line prints its own: one
``warning:`` line each.
"""

from __future__ import annotations

import signal
import threading
import warnings


def dask_setup(worker) -> None:  # noqa: ARG001 - the preload hook's signature
    """Dask's preload hook, run once in each worker process: print spikeforge warnings as one ``warning:`` line
    and, when called in the main thread, ignore SIGINT.  ``worker`` (the Dask worker) is not used."""
    from spikeforge.cli_support import one_line_warning

    warnings.showwarning = one_line_warning
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
