"""What a result was made from: parameter fingerprints, file digests, identities.

A run's outputs record the fingerprint of their inputs, so that a later command can refuse
inputs that changed since (a ``params.toml`` edited after ``init``, a checkpoint copied from
another network) instead of mixing them silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from typing import Any


def canonical_json(values: Mapping[str, Any]) -> str:
    """``values`` as JSON with sorted keys (floats written exactly, by repr)."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"), allow_nan=True)


def fingerprint(values: Mapping[str, Any]) -> str:
    """A short hexadecimal digest of ``values`` (equal values give equal fingerprints)."""
    return hashlib.sha256(canonical_json(values).encode()).hexdigest()[:32]


def file_digest(path: str | os.PathLike, chunk_bytes: int = 1 << 22) -> str:
    """SHA-256 of a file's content, hexadecimal."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def new_identity() -> str:
    """A new random identity (for a network built by ``init``), hexadecimal."""
    return uuid.uuid4().hex


def differences(recorded: Mapping[str, Any], current: Mapping[str, Any],
                names: Iterable[str]) -> list[tuple[str, Any, Any]]:
    """(name, recorded value, current value) for each of ``names`` whose values differ.

    Values are compared through JSON, as they are stored, so 1 and 1.0 are equal and a tuple
    equals the list it was saved as.
    """
    def as_stored(value: Any) -> Any:
        return json.loads(json.dumps(value))

    missing = object()
    changed = []
    for name in names:
        old, new = recorded.get(name, missing), current.get(name, missing)
        if old is missing or new is missing or as_stored(old) != as_stored(new):
            changed.append((name, None if old is missing else old, None if new is missing else new))
    return changed
