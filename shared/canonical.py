"""The canonical JSON encoding that every hash in the audit trail is computed over.

Specified in docs/audit-format.md: UTF-8, keys sorted by code point, no insignificant white
space, non-ASCII characters written as themselves, no floats (they do not round-trip through
PostgreSQL jsonb exactly, so events carry decimals as strings).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any


# Built once: json.dumps with options builds a new encoder on every call (this is on every append).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)


def canonical_json(value: Any) -> bytes:
    """Encode `value` canonically; refuse floats and NaN so a hash can always be recomputed."""
    _refuse_floats(value)
    return _ENCODER.encode(value).encode("utf-8")


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def canonical_hash(value: Any) -> bytes:
    return hashlib.sha256(canonical_json(value)).digest()


def _refuse_floats(value: Any) -> None:
    if isinstance(value, float):
        raise ValueError("floats are not allowed in canonical JSON; use a decimal string")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("canonical JSON object keys must be strings")
            _refuse_floats(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _refuse_floats(item)
