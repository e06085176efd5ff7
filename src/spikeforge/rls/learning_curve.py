"""``learning-curve.h5``: every training loop ever run in a data directory.

Each call of ``train`` is one *segment*: it starts from a checkpoint (or from init) and runs
loops ``first_loop, first_loop + 1, ...``.  The file keeps the rows of every segment, so
nothing earlier is lost when training is continued, restarted from an earlier checkpoint or
stopped before its checkpoint was written; a loop trained twice (say after a stop that saved
nothing) appears once per segment.  Datasets, one entry per loop trained::

    loop (int64)           loop number
    segment (int64)        segment (train call) the row belongs to, from 1
    task (int64)           task trained
    correlation            mean correlation of currents and targets (NaN where not measured; only the
                           neurons that follow recorded units when the targets came from a recording)
    psth_correlation       targets from rates: median correlation of the loop's single-trial PSTHs
                           with the target rates (NaN where not measured or without target rates)
    n_nan (int64)          neurons whose correlation was NaN
    elapsed_time [s]       wall time of the loop
    firing_rate [Hz]       mean rate over neurons
    max_memory [bytes]     peak resident memory of the process so far
    p_saturated (int64)    int16 P: entries at the int16 limits after the loop (they were clipped)
    p_nonfinite (int64)    16-bit P: entries that are NaN or infinite after the loop

Attributes: ``units``, ``network_id`` (that of init.h5) and ``segments`` (JSON, one entry per
segment: ``segment``, ``restored_from`` (a checkpoint label or "init"), ``first_loop``,
``started`` (local time), ``saved`` (the checkpoints it wrote), ``ended`` (how it ended:
"completed", "interrupted", "stopped at once", "failed: ...", or "running" when the process
died without ending it)).  The file is rewritten with every checkpoint, so it holds at least
the rows of every loop a checkpoint holds; rows of loops trained after the last checkpoint of
a killed process are lost with their weights.

The history behind a checkpoint is its segment's rows, preceded by those of the segment that
saved the checkpoint it was restored from, and so on back to "init".
"""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np

from spikeforge.core.store import dataset_names, read_h5, write_h5
from spikeforge.errors import DataFileError
from spikeforge.rls.files import RunDir

COLUMNS = ("loop", "segment", "task", "correlation", "psth_correlation", "n_nan", "elapsed_time", "firing_rate",
           "max_memory", "p_saturated", "p_nonfinite")
ADDED_LATER = ("psth_correlation",)  # columns a file of an earlier version may lack (read as NaN)
INTEGER_COLUMNS = ("loop", "segment", "task", "n_nan", "max_memory", "p_saturated", "p_nonfinite")
UNITS = {"correlation": "1", "psth_correlation": "1", "elapsed_time": "s", "firing_rate": "Hz",
         "max_memory": "bytes"}


class LearningCurve:
    """The learning curve of ``run``, with a new segment for this ``train`` call.

    Args:
        run: the data directory.
        network_id: identity of the directory's network; a file of another network is an error.
        restored_from: checkpoint label the segment starts from ("init" for the initial weights).
        first_loop: first loop number the segment trains.
    """

    def __init__(self, run: RunDir, network_id: str, restored_from: str, first_loop: int):
        self.run, self.network_id = run, network_id
        self.old: dict[str, np.ndarray] = {name: np.zeros(0) for name in COLUMNS}
        self.segments: list[dict[str, Any]] = []
        if run.learning_curve_file.exists():
            present = set(dataset_names(run.learning_curve_file, "learning curve"))
            names = [name for name in COLUMNS if name in present or name not in ADDED_LATER]
            self.old, attrs = read_h5(run.learning_curve_file, names, what="learning curve")
            for name in set(COLUMNS) - set(names):
                self.old[name] = np.full(self.old["loop"].shape, np.nan)
            if attrs.get("network_id") != network_id:
                raise DataFileError(f"learning curve {str(run.learning_curve_file)!r} belongs to another network "
                                    f"(network id {attrs.get('network_id')}, init.h5's is {network_id}); move it away, or start "
                                    f"afresh with `spikeforge init --force {run.path}`")
            self.segments = list(attrs.get("segments") or [])
        segment = 1 + max((int(s["segment"]) for s in self.segments), default=0)
        self.segment = {"segment": segment, "restored_from": restored_from, "first_loop": first_loop,
                        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                        "saved": [], "ended": "running"}
        self.rows: dict[str, list] = {name: [] for name in COLUMNS}

    def add(self, **row: Any) -> None:
        """Append one loop's row (every column but ``segment``)."""
        for name in COLUMNS:
            self.rows[name].append(self.segment["segment"] if name == "segment" else row[name])

    def saved(self, label: str) -> None:
        """Note that this segment wrote checkpoint ``label``."""
        self.segment["saved"].append(label)

    def write(self, ended: str | None = None) -> None:
        """Write the file: every earlier segment's rows, then this segment's (atomically)."""
        if ended is not None:
            self.segment["ended"] = ended
        arrays = {}
        for name in COLUMNS:
            values = np.concatenate([self.old[name].astype(np.float64), np.asarray(self.rows[name], dtype=np.float64)])
            arrays[name] = values.astype(np.int64) if name in INTEGER_COLUMNS else values
        write_h5(self.run.learning_curve_file, arrays,
                 {"units": UNITS, "network_id": self.network_id, "segments": self.segments + [self.segment]})
