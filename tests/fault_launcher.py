"""Run the ``spikeforge`` command with a fault hook, for tests/test_faults.py.

    python fault_launcher.py [--pause-writing NAME | --pause-reading NAME] [--marker PATH --seconds S] -- ARGS...

With ``--pause-writing NAME`` the write of the file named NAME stops after its content is
complete and before it is flushed and renamed (inside spikeforge.core.store._commit); with
``--pause-reading NAME`` the first reading of the HDF5 file NAME stops before it opens the
file: the launcher creates the file MARKER, then sleeps S seconds, during which the test sends
its signal.  With ``--started PATH`` it creates PATH as soon as its signal handlers are
installed, so a test can time a signal from that moment rather than from the process start
(before it no program can handle a signal; a loaded machine may take a second to get there).
Then it runs ``spikeforge ARGS...`` exactly as the installed command does.
"""

import argparse
import sys
import time
from pathlib import Path

from spikeforge.core.interrupts import Interrupted, StopSignals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pause-writing", default=None)
    parser.add_argument("--pause-reading", default=None)
    parser.add_argument("--marker", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--started", type=Path, default=None)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    with StopSignals() as signals:  # the hooks import h5py; spikeforge's own entry point imports nothing heavy before main
        if options.started is not None:
            options.started.write_text("handlers installed")
        try:
            install_hooks(options)
            from spikeforge.__main__ import main as spikeforge
        except Interrupted as interrupted:
            print(interrupted, file=sys.stderr)
            sys.exit(interrupted.exit_status)
        except Exception:
            if signals.requested is None:
                raise
            # as spikeforge.__main__ does: numpy's import turns a signal's exception into an ImportError
            interrupted = Interrupted(signals.requested)
            print(interrupted, file=sys.stderr)
            sys.exit(interrupted.exit_status)
        spikeforge([arg for arg in options.args if arg != "--"])


def install_hooks(options) -> None:
    from spikeforge.core import store

    if options.pause_writing is not None:
        commit = store._commit

        def paused_commit(temporary, path):
            if path.name == options.pause_writing:
                options.marker.write_text(str(temporary))
                time.sleep(options.seconds)
            commit(temporary, path)

        store._commit = paused_commit
    if options.pause_reading is not None:
        open_file = store._open

        def paused_open(path, what, work):
            if path.name == options.pause_reading and not options.marker.exists():
                options.marker.write_text(str(path))
                time.sleep(options.seconds)
            return open_file(path, what, work)

        store._open = paused_open


if __name__ == "__main__":
    sys.exit(main())
