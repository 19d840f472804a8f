"""One entry of the audit log, checked on its own: hashes, leaf, the event row against the ledger.

docs/audit-format.md §3 and §7.3.1–6. Everything that depends on other entries (dense positions,
the tree, signatures) is the fold's job (shared/audit_verify.py). Kept apart because sources run
it in worker processes (shared/audit_workers.py), and because it is the hot path: the canonical
line of an entry is rebuilt from the parts already encoded for hashing.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

ENTRY_KEYS = frozenset({"kind", "ledger", "event"})
LEDGER_KEYS = frozenset({"global_position", "stream_id", "stream_version", "event_id", "event_type",
                         "payload_hash", "metadata_hash", "leaf_hash"})
EVENT_KEYS = frozenset({"stream_id", "stream_version", "event_id", "event_type", "schema_version",
                        "payload", "metadata", "payload_hash", "metadata_hash"})
_SHARED_FIELDS = ("stream_id", "stream_version", "event_id", "event_type")
_METADATA_ECHOES = ("event_id", "event_type", "schema_version")


def _no_float(text: str) -> Any:
    raise ValueError(f"non-integer number {text} (canonical JSON has no floats)")


# Same output as shared.canonical.canonical_json for float-free values (a test checks it); built
# once, because json.dumps with options builds a new encoder on every call.
_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                           allow_nan=False).encode
_decode = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float).decode
_encode_string = json.encoder.encode_basestring
_sha256 = hashlib.sha256


def canonical_line(record: Mapping[str, Any]) -> bytes:
    """One export line: the record's canonical JSON and a line feed."""
    return _encode(record).encode("utf-8") + b"\n"


class AuditFormatError(ValueError):
    """Input that is not a well-formed record (raised by readers; a verification failure)."""

    def __init__(self, reason: str, where: str | None = None) -> None:
        super().__init__(f"{where}: {reason}" if where else reason)
        self.reason = reason
        self.where = where


class Mismatch(Exception):
    """One record does not verify. `position` is the ledger position concerned, if known."""

    def __init__(self, reason: str, position: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.position = position


class _Undecodable:
    """Stands in for stored JSON text this verifier refuses (a float, NaN): reported as edited."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def position_of(record: Any) -> int | None:
    """The ledger position an entry record claims, if it has a well-typed one."""
    try:
        position = record["ledger"]["global_position"]
    except (KeyError, TypeError):
        return None
    return position if type(position) is int else None


def check_entry(record: Any, want_line: bool = False) -> tuple[int, bytes, bytes | None]:
    """Check one entry record on its own; return (position, leaf hash, canonical line or None).

    Raises Mismatch. Everything that depends on other records (density, the tree, signatures)
    is the fold's job. The canonical line, when wanted, is built from the parts already encoded
    for hashing, which is much cheaper than encoding the record again.
    """
    try:
        return _check_entry(record, want_line)
    except Mismatch:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise Mismatch(f"malformed entry: {type(exc).__name__}: {exc}", position_of(record)
                       ) from None


def _check_entry(record: Any, want_line: bool) -> tuple[int, bytes, bytes | None]:
    if type(record) is not dict or record.keys() != ENTRY_KEYS:
        raise Mismatch("an entry record has exactly the keys event, kind, ledger")
    ledger = record["ledger"]
    event = record["event"]
    if type(ledger) is not dict or ledger.keys() != LEDGER_KEYS:
        raise Mismatch(f"an entry's ledger object has exactly the keys {', '.join(sorted(LEDGER_KEYS))}")
    position = ledger["global_position"]
    stream_id = ledger["stream_id"]
    stream_version = ledger["stream_version"]
    event_id = ledger["event_id"]
    event_type = ledger["event_type"]
    payload_hash = ledger["payload_hash"]
    metadata_hash = ledger["metadata_hash"]
    if type(position) is not int or type(stream_version) is not int:
        raise Mismatch("global_position and stream_version are integers", position_of(record))
    # The leaf input; the ledger object is the same fields plus leaf_hash, in sorted key order.
    head = ('{"event_id":' + _encode_string(event_id) + ',"event_type":' + _encode_string(event_type)
            + ',"global_position":' + str(position))
    tail = (',"metadata_hash":' + _encode_string(metadata_hash) + ',"payload_hash":'
            + _encode_string(payload_hash) + ',"stream_id":' + _encode_string(stream_id)
            + ',"stream_version":' + str(stream_version) + "}")
    leaf = _sha256(b"\x00" + (head + tail).encode("utf-8")).digest()
    leaf_hex = leaf.hex()
    if leaf_hex != ledger["leaf_hash"]:
        raise Mismatch(f"the ledger row does not hash to its leaf hash (stored "
                       f"{ledger['leaf_hash']!r}, recomputed {leaf_hex}): the ledger row was edited",
                       position)
    if event is None:
        raise Mismatch(f"event {event_id} is missing from the events table: the event row was "
                       "deleted (or its id edited)", position)
    if type(event) is not dict or event.keys() != EVENT_KEYS:
        raise Mismatch(f"an entry's event object has exactly the keys "
                       f"{', '.join(sorted(EVENT_KEYS))}", position)
    # One tuple comparison on the way that passes; the loops below only name what differs.
    if ((event["stream_id"], event["stream_version"], event["event_id"], event["event_type"])
            != (stream_id, stream_version, event_id, event_type)
            or type(event["stream_version"]) is not int):
        for name in _SHARED_FIELDS:
            if event[name] != ledger[name] or type(event[name]) is not type(ledger[name]):
                raise Mismatch(f"the event row's {name} {event[name]!r} differs from the "
                               f"ledger's {ledger[name]!r}: the event row was edited", position)
    payload_text = _content("payload", event, payload_hash, position)
    metadata_text = _content("metadata", event, metadata_hash, position)
    schema_version = event["schema_version"]
    if type(schema_version) is not int or schema_version < 1:
        raise Mismatch(f"schema_version {schema_version!r} is not a positive integer", position)
    metadata = event["metadata"]
    echoes = (metadata.get("event_id"), metadata.get("event_type"), metadata.get("schema_version"))
    if echoes != (event_id, event_type, schema_version) or type(echoes[2]) is not int:
        for name in _METADATA_ECHOES:
            if name not in metadata:
                raise Mismatch(f"the metadata does not record the event's {name}, so the {name} "
                               "column is not covered by any hash", position)
            if metadata[name] != event[name] or type(metadata[name]) is not type(event[name]):
                raise Mismatch(f"the event's {name} column {event[name]!r} differs from the "
                               f"{name} in its hashed metadata {metadata[name]!r}: the column was "
                               "edited", position)
    if not want_line:
        return position, leaf, None
    line = ('{"event":{"event_id":' + _encode_string(event_id) + ',"event_type":'
            + _encode_string(event_type) + ',"metadata":' + metadata_text + ',"metadata_hash":'
            + _encode_string(metadata_hash) + ',"payload":' + payload_text + ',"payload_hash":'
            + _encode_string(payload_hash) + ',"schema_version":' + str(schema_version)
            + ',"stream_id":' + _encode_string(stream_id) + ',"stream_version":'
            + str(stream_version) + '},"kind":"entry","ledger":' + head + ',"leaf_hash":"'
            + leaf_hex + '"' + tail + "}\n")
    return position, leaf, line.encode("utf-8")


def _content(name: str, event: dict[str, Any], committed: str, position: int) -> str:
    """Recompute the payload or metadata hash against the ledger's; return the canonical text."""
    value = event[name]
    if type(value) is not dict:
        reason = value.reason if type(value) is _Undecodable else "it is not a JSON object"
        raise Mismatch(f"the stored {name} is not canonical JSON ({reason}): it was edited", position)
    try:
        text = _encode(value)
    except (TypeError, ValueError) as exc:
        raise Mismatch(f"the {name} cannot be encoded canonically ({exc}): it was edited",
                       position) from None
    recomputed = _sha256(text.encode("utf-8")).hexdigest()
    stored = event[name + "_hash"]
    if recomputed != committed:
        if recomputed == stored:
            raise Mismatch(f"the {name} and the event's stored {name} hash were both changed after "
                           f"sequencing: the ledger committed to {committed}, the {name} now hashes "
                           f"to {recomputed}", position)
        raise Mismatch(f"the {name} does not match its hash: it hashes to {recomputed}, the event "
                       f"row stores {stored} and the ledger committed to {committed}: the {name} "
                       "was edited", position)
    if stored != committed:
        raise Mismatch(f"the event row's stored {name} hash {stored!r} differs from the ledger's "
                       f"{committed} (the {name} itself is intact): the hash column was edited",
                       position)
    return text
