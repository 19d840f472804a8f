"""The canonical JSON encoding that every hash in the audit trail is computed over.

Specified in docs/audit-format.md §2: UTF-8, keys sorted by code point, no insignificant white
space, non-ASCII characters written as themselves, no floats (they do not round-trip through
PostgreSQL jsonb exactly, so events carry decimals as strings).

It is RFC 8785 (JCS) byte for byte on every value it accepts, so an auditor can recompute any
hash with any JCS library. The two places where our encoder and JCS would differ are refused at
append time instead (ADR 0007): integers beyond ±(2^53 − 1), which JCS writes as IEEE doubles
(rounded), and object keys with characters beyond U+FFFF, which JCS sorts by UTF-16 code units
where we sort by code points. Changing the encoder instead would change the hash of every event
already stored.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

# Built once: json.dumps with options builds a new encoder on every call (this is on every append).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)

MAX_SAFE_INTEGER = 2**53 - 1  # the largest integer every JSON number parser holds exactly (I-JSON)


class CanonicalJsonError(ValueError):
    """A value that has no canonical form here (a float, a huge integer, a non-BMP key, …)."""


def canonical_json(value: Any) -> bytes:
    """Encode `value` canonically; refuse what a JCS library would encode differently."""
    _check(value, "$")
    return _ENCODER.encode(value).encode("utf-8")


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def canonical_hash(value: Any) -> bytes:
    return hashlib.sha256(canonical_json(value)).digest()


def _check(value: Any, path: str) -> None:
    if isinstance(value, float):
        raise CanonicalJsonError(f"{path}: floats are not allowed in canonical JSON; use a decimal "
                                 "string")
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_SAFE_INTEGER:
            raise CanonicalJsonError(f"{path}: integers beyond ±(2^53 − 1) are not allowed in "
                                     "canonical JSON (JCS would round them); use a decimal string")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJsonError(f"{path}: canonical JSON object keys must be strings")
            if any(ord(ch) > 0xFFFF for ch in key):
                raise CanonicalJsonError(f"{path}: object keys may not contain characters beyond "
                                         "U+FFFF (JCS would order them differently)")
            _check(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]")
