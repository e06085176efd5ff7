"""Where an RLS run keeps its files, and how they are named.

A data directory holds::

    params.toml            parameters (edit, then run init again)
    init.h5                connectivity, targets, stimuli, initial P, init-run statistics, RNG streams
    ckpt-<label>.h5        trained plastic weights and P after a loop; labels: "100" (last loop of a
                           train call), "37-cor0.712" (best correlation so far), "12i" (interrupted
                           after loop 12)
    learning-curve.h5      every loop trained in the directory, with the training segment (train
                           call) it came from: correlation (NaN where not measured), elapsed_time [s],
                           firing_rate [Hz], max_memory [bytes], P faults (spikeforge.rls.learning_curve)
    test.h5                spike times and boxcar-averaged currents of test trials
    test-*.png, test-*.pdf figures
    .spikeforge.lock       the lock every writing command holds (spikeforge.core.lock), and
    .spikeforge.owner      who holds it
"""

from __future__ import annotations

import re
from pathlib import Path

from spikeforge.core.lock import DirectoryLock
from spikeforge.errors import DataFileError, ParameterError, SpikeforgeError
from spikeforge.rls.params import SCHEMA, Params

_LABEL = re.compile(r"^(\d+)(i|-cor-?\d+(\.\d+)?)?$")


class RunDir:
    """Paths of one data directory.  ``RunDir(path)`` requires the directory to exist."""

    def __init__(self, path: str | Path, must_exist: bool = True):
        if not str(path).strip():
            raise DataFileError("the data directory's name is empty")
        self.path = Path(path)
        if must_exist and not self.path.is_dir():
            if self.path.exists():
                raise DataFileError(f"data directory {str(self.path)!r} is a file, not a directory")
            raise DataFileError(f"data directory {str(self.path)!r} does not exist; create it with `spikeforge new`")

    @property
    def params_file(self) -> Path:
        """``<dir>/params.toml``: the run's parameters."""
        return self.path / "params.toml"

    @property
    def init_file(self) -> Path:
        """``<dir>/init.h5``: the network, targets, stimuli and initial P that ``spikeforge init`` builds."""
        return self.path / "init.h5"

    @property
    def learning_curve_file(self) -> Path:
        """``<dir>/learning-curve.h5``: the statistics of every training loop run in the directory."""
        return self.path / "learning-curve.h5"

    @property
    def test_file(self) -> Path:
        """``<dir>/test.h5``: the spike times and boxcar-averaged currents of the test trials."""
        return self.path / "test.h5"

    @property
    def test_trials_dir(self) -> Path:
        """Results of test trials run as Dask jobs, kept until test.h5 holds them all."""
        return self.path / "test-trials"

    def checkpoint_file(self, label: str) -> Path:
        """``<dir>/ckpt-<label>.h5``: the checkpoint of ``label`` (e.g. "100", "37-cor0.712", "12i")."""
        return self.path / f"ckpt-{label}.h5"

    def lock(self, command: str) -> DirectoryLock:
        """The directory's lock, for ``command`` (e.g. "spikeforge train"); use it in a ``with``.  Only
        ``spikeforge new`` locks a directory without params.toml; for the others that is an error
        (raised before the lock file is made)."""
        if command != "spikeforge new" and not self.params_file.exists():
            self.params()  # raises the error that says what is missing
        return DirectoryLock(self.path, command)

    def params(self) -> Params:
        """The parameters in params.toml (which must set the seed)."""
        if not self.params_file.exists() and self.init_file.is_file():
            raise DataFileError(f"{str(self.params_file)!r} is missing; init.h5 records every parameter it was built "
                                "from (its attribute 'params'): write them back to params.toml, or start a new "
                                "directory")
        user = SCHEMA.read_toml(self.params_file)
        if user.get("seed") is None:
            raise ParameterError(f"{str(self.params_file)!r} sets no seed; add a line `seed = <integer in [0, 2**63)>` "
                                 "(every random stream derives from it)")
        return Params(user)

    def checkpoint_labels(self) -> list[str]:
        """Labels of the checkpoints present, by loop number (then name)."""
        labels = [f.name[len("ckpt-"):-len(".h5")] for f in self.path.glob("ckpt-*.h5") if f.is_file()]
        return sorted((label for label in labels if _LABEL.match(label)), key=lambda s: (checkpoint_loop(s), s))

    def latest_checkpoint(self) -> str | None:
        """Label of the checkpoint of the highest loop (a plain label before "<loop>i" and
        "<loop>-cor<c>" of the same loop), or None when there is none."""
        labels = self.checkpoint_labels()
        if not labels:
            return None
        return max(labels, key=lambda label: (checkpoint_loop(label), label.isdigit(), label.endswith("i")))

    def checkpoints_after(self, loop: int) -> list[str]:
        """Labels of the checkpoints of loops after ``loop``."""
        return [label for label in self.checkpoint_labels() if checkpoint_loop(label) > loop]

    def test_figures(self) -> list[Path]:
        """The figures of test.h5 (spikeforge.rls.plotting names them test-<kind>-task<t>.png/.pdf and
        test-rates-summary.png/.pdf)."""
        return [f for suffix in ("png", "pdf") for pattern in ("test-*-task*", "test-rates-summary")
                for f in self.path.glob(f"{pattern}.{suffix}")]

    def require_init(self) -> None:
        """Check that init.h5 exists (as a file).

        Raises:
            DataFileError: init.h5 is missing; the message says to run ``spikeforge init`` first.
        """
        if not self.init_file.is_file():
            raise DataFileError(f"{str(self.init_file)!r} does not exist; run `spikeforge init {self.path}` first")


def checkpoint_loop(label: str) -> int:
    """Loop number of a checkpoint label ("100", "37-cor0.712", "12i" -> 100, 37, 12; "init" -> 0)."""
    if str(label) == "init":
        return 0
    match = _LABEL.match(str(label))
    if not match:
        raise SpikeforgeError(
            f"checkpoint {label!r} is not a checkpoint label; expected init or a loop number such as 100, 12i or "
            "37-cor0.712"
        )
    return int(match.group(1))
