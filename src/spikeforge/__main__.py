"""The ``spikeforge`` command (and ``python -m spikeforge``).

SIGINT, SIGTERM and SIGHUP are handled from the first moment: the handlers are installed before
the command line, click and the numerical libraries are imported, so a signal at any time after
the interpreter has started ends with one line and exit status 130, 143 or 129.
"""

from __future__ import annotations

import sys

from spikeforge.core.interrupts import Interrupted, StopSignals


def main(args: list[str] | None = None) -> None:
    """Run the command line ``args`` (default: ``sys.argv[1:]``) and exit with its status."""
    with StopSignals() as signals:
        try:
            from spikeforge.cli import run

            status = run(args, signals)
        except Interrupted as interrupted:
            print(interrupted, file=sys.stderr)
            status = interrupted.exit_status
        except Exception:
            if signals.requested is None:
                raise
            # a library turned the signal's exception into one of its own (numpy's import makes it an
            # ImportError), or failed because of it: the signal is what happened
            interrupted = Interrupted(signals.requested)
            print(interrupted, file=sys.stderr)
            status = interrupted.exit_status
        sys.stdout.flush()
        sys.exit(status)


if __name__ == "__main__":
    main()
