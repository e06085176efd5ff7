"""Named starting configurations for ``spikeforge new DIR --preset NAME``.

A preset is a set of parameter values applied before the user's own ``--set`` values (which
win).  The values are written to ``params.toml`` like any set value, so a directory does not
depend on the preset's later versions.

``recordings``: fitting recorded PSTHs (targets from ``init --spikes`` or ``--spikerate-file``).
It starts from TrainSpikingNet's figure-2 fit of Neuropixels PSTHs (no static recurrent synapses,
K = 0, the neurons driven by voltage noise ``sig = 0.65``; 64 excitatory and 64 inhibitory
plastic inputs; ``penlambda = 0.04``, ``penmu = 0``; an RLS update every 20 ms) with the changes
that the fidelity study of BENCHMARKS.md ("Reproducing recorded PSTHs") found to raise the PSTH
correlation; the table there gives the measurements behind each value.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from spikeforge.errors import ParameterError

PRESETS: MappingProxyType = MappingProxyType({
    "recordings": MappingProxyType({
        "k": 0, "sig": 0.65, "l": 64, "penlambda": 0.04, "penmu": 0.0, "learn_every": 20.0, "wid": 60.0,
    }),
})


def preset_values(name: str | None) -> dict[str, Any]:
    """The parameter values of preset ``name`` (None: none)."""
    if name is None:
        return {}
    if name not in PRESETS:
        raise ParameterError(f"preset {name!r} is not one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])
