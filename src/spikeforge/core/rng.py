"""Named, reproducible random streams.

Every random draw in spikeforge comes from a stream named by a path such as
``("static_weights",)``, ``("targets", task)`` or ``("train", loop)``.  A stream is a
PCG64 generator seeded by ``SeedSequence(seed, spawn_key=path)``, so that:

* streams are statistically independent of each other;
* a stream does not depend on how many other streams were drawn before it, on the
  number of threads, or on the backend that consumes the numbers;
* training loop 37 draws the same numbers whether it runs in one call of ``train``
  or after restoring from checkpoint 36.

Names are mapped to integers with CRC-32, which is stable across Python versions
(unlike ``hash``).
"""

from __future__ import annotations

import zlib

import numpy as np


def _key(part: str | int) -> int:
    if isinstance(part, (int, np.integer)) and not isinstance(part, bool):
        if part < 0:
            raise ValueError(f"stream index {part} must be >= 0")
        return int(part)
    return zlib.crc32(str(part).encode())


def stream(seed: int, *path: str | int) -> np.random.Generator:
    """Return the generator for stream ``path`` under ``seed`` (same arguments, same numbers)."""
    sequence = np.random.SeedSequence(entropy=int(seed), spawn_key=tuple(_key(p) for p in path))
    return np.random.Generator(np.random.PCG64(sequence))


def describe(seed: int, *path: str | int) -> dict:
    """A JSON-able record of a stream's identity and initial bit-generator state, to store with data."""
    return {"seed": int(seed), "path": [p if isinstance(p, str) else int(p) for p in path],
            "bit_generator": stream(seed, *path).bit_generator.state}


def fresh_seed() -> int:
    """A new seed from the operating system's entropy (used when the user gives none)."""
    return int(np.random.SeedSequence().entropy % (2**63))
