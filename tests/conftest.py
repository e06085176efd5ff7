"""Shared fixtures: small networks that init and train in well under a second."""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import pytest

DOCS_FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"


def pytest_collection_modifyitems(config, items) -> None:
    """Files with the most slow tests first (each file's tests in their order): pytest-xdist hands out
    whole files (``--dist loadfile``) in this order, so the longest ones start at once instead of
    leaving one worker busy at the end while the other waits."""
    slow = collections.Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])

def publish_figures(directory, names, page: str) -> None:
    """Copy the figures ``names`` that a tutorial's test drew in ``directory`` to ``docs/figures/<page>/``,
    where the tutorial's page shows them: the site's figures are the tests' own output, never pasted
    (``docs/figures/`` is not under version control; ``.ci/run`` builds the site after the tests).  Each
    file is replaced atomically, so a site built while the tests run never shows half a figure."""
    from spikeforge.core.store import atomic_output

    target = DOCS_FIGURES / page
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        source = Path(directory) / name
        assert source.stat().st_size > 1000, source  # a drawn figure, not an empty file
        with atomic_output(target / name) as temporary:
            shutil.copyfile(source, temporary)


# A 300-ms trial of 1024 neurons (1000 steps before learning, 20 RLS updates) with a larger
# in-degree (k = 102) and learning rate (penlambda) than the defaults, so that it is active
# (about 3 Hz) and learns visibly within a few loops.
SMALL = {
    "n_cells": 1024, "pree": 0.2, "penlambda": 0.02, "seed": 11, "stim_on": 50.0, "stim_off": 100.0,
    "train_duration": 200.0, "u0_skip_time": 100.0, "target_period": 200.0,
}


@pytest.fixture
def small_params() -> dict:
    return dict(SMALL)


@pytest.fixture
def small_run(tmp_path):
    """An initialised small network; returns its directory."""
    from spikeforge import rls

    directory = tmp_path / "net"
    rls.new(directory, SMALL)
    rls.init(directory, verbose=False)
    return directory


def invoke(*args):
    """Run the ``spikeforge`` command line in this process with ``args`` (paths and numbers as text)."""
    from click.testing import CliRunner

    from spikeforge.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_user_error(result, *fragments, allow_warnings: bool = False) -> str:
    """The command failed as a user error: exit status 2 and one ``error:`` line (besides ``warning:``
    lines when ``allow_warnings``) holding every fragment.  Returns that line."""
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    if allow_warnings:
        lines = [line for line in lines if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def stop_once_written(args, written, signum, timeout: float = 120.0, group: bool = False) -> tuple[int, str]:
    """Run ``python -m spikeforge *args`` and send it ``signum`` as soon as file ``written`` exists (or it
    ended); with ``group``, to its whole process group, as Ctrl-C in a terminal does.  Returns (exit
    status, stderr)."""
    import os
    import subprocess
    import sys
    import time

    process = subprocess.Popen([sys.executable, "-m", "spikeforge", *map(str, args)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=group)
    deadline = time.monotonic() + timeout
    while not written.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    _, stderr = process.communicate(timeout=timeout)
    return process.returncode, stderr
