"""Export the log as JSON Lines, and verify it: every hash, every leaf, the tree, every signature.

The format is specified in docs/audit-format.md. Verification is one pure fold (`Verifier`, and
`verify_records` over any iterable of records), shared by the two sources: an export file
(`read_export`) and a live database (`verify_database`, which reads the same records in one
REPEATABLE READ snapshot). It stops at the first record that does not match and says why.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Iterator, Mapping

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.merkle import EMPTY_ROOT, Frontier
from shared.signing import CheckpointError, parse_note, verify_note

ENTRY_KEYS = frozenset({"kind", "ledger", "event"})
LEDGER_KEYS = frozenset({"global_position", "stream_id", "stream_version", "event_id", "event_type",
                         "payload_hash", "metadata_hash", "leaf_hash"})
EVENT_KEYS = frozenset({"stream_id", "stream_version", "event_id", "event_type", "schema_version",
                        "payload", "metadata", "payload_hash", "metadata_hash"})
CHECKPOINT_KEYS = frozenset({"kind", "tree_size", "root_hash", "key_id", "signature", "note"})
_SHARED_FIELDS = ("stream_id", "stream_version", "event_id", "event_type")
_METADATA_ECHOES = ("event_id", "event_type", "schema_version")


def _no_float(text: str) -> Any:
    raise ValueError(f"non-integer number {text} (canonical JSON has no floats)")


# Same output as shared.canonical.canonical_json for float-free values; built once (json.dumps with
# options builds an encoder per call) because verification encodes two objects per event.
_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                           allow_nan=False).encode
_decode = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float).decode
_sha256 = hashlib.sha256
_encode_string = json.encoder.encode_basestring  # type: ignore[attr-defined]


def canonical_line(record: Mapping[str, Any]) -> bytes:
    """One export line: the record's canonical JSON and a line feed."""
    return _encode(record).encode("utf-8") + b"\n"


class AuditFormatError(ValueError):
    """Input that is not a well-formed record (raised by readers; a verification failure)."""

    def __init__(self, reason: str, where: str | None = None) -> None:
        super().__init__(f"{where}: {reason}" if where else reason)
        self.reason = reason
        self.where = where


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    position: int | None = None
    where: str | None = None  # which input: "line 7", "checkpoint-000000000014.txt", …

    def __str__(self) -> str:
        if self.position is not None:
            place = f"position {self.position}" + (f" ({self.where})" if self.where else "")
        else:
            place = self.where or "log"
        return f"{place}: {self.reason}"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    entries: int
    root: bytes
    checkpoints: int
    latest_checkpoint: int
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def summary(self) -> str:
        if self.failure is not None:
            return f"FAIL {self.failure}"
        return f"OK {self.entries} events, root {self.root.hex()}"

    def details(self) -> str:
        unsigned = self.entries - self.latest_checkpoint
        return (f"{self.checkpoints} signed checkpoint(s) verified, latest at tree size "
                f"{self.latest_checkpoint}; {unsigned} entr{'y' if unsigned == 1 else 'ies'} after "
                "it not yet covered by a signature")


class _Stop(Exception):
    def __init__(self, failure: Failure) -> None:
        self.failure = failure


class Verifier:
    """The pure fold: feed records in export order, then `result()`. Stops at the first failure."""

    def __init__(self, public_keys: Mapping[str, Ed25519PublicKey]) -> None:
        self.public_keys = dict(public_keys)
        self.frontier = Frontier()
        self.records = 0
        self._where: str | None = None
        self.checkpoints = 0
        self.latest_checkpoint = 0
        self.failure: Failure | None = None
        # tree size -> [(root, where)] of verified signatures still waiting for the tree to get there
        self._pending: dict[int, list[tuple[bytes, str | None]]] = {}

    # -- driving ------------------------------------------------------------------------------

    def feed(self, record: Any, where: str | None = None, raw: bytes | None = None) -> Failure | None:
        """Check one record; `where` names it in a failure (e.g. "line 7").

        `raw`, when given, is the line the record was read from: it must be exactly the record's
        canonical JSON plus a line feed, so no byte of an export goes unchecked.
        """
        if self.failure is not None:
            return self.failure
        self.records += 1
        self._where = where
        try:
            if type(record) is not dict:
                self._fail("a record is a JSON object")
            kind = record.get("kind")
            if kind == "entry":
                line = self._entry(record, raw is not None)
            elif kind == "checkpoint":
                self._checkpoint(record)
                line = canonical_line(record) if raw is not None else None
            else:
                self._fail(f"unknown record kind {kind!r}")
            if raw is not None and line != raw:
                self._fail("the line is not in canonical form (its bytes differ from the canonical "
                           "JSON of what it says)", self._position_of(record))
        except _Stop as stop:
            self.failure = stop.failure
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.failure = Failure(f"malformed record: {type(exc).__name__}: {exc}",
                                   self._position_of(record), where)
        return self.failure

    def fail_input(self, reason: str, where: str | None = None) -> Failure:
        """Record a failure a reader found (a line that is not canonical JSON, not UTF-8, …)."""
        if self.failure is None:
            self.failure = Failure(reason, None, where)
        return self.failure

    def result(self) -> VerifyResult:
        if self.failure is None and self._pending:
            size = min(self._pending)
            n = self.frontier.size
            missing = f"position {size} is" if size == n + 1 else f"positions {n + 1}..{size} are"
            self.failure = Failure(
                f"a checkpoint signs tree size {size}, but the log ends at {n} entries: {missing} "
                "missing (rows deleted, or the export was cut short)",
                n + 1, self._pending[size][0][1])  # where the checkpoint came from
        root = self.frontier.root() if self.frontier.size else EMPTY_ROOT
        return VerifyResult(self.frontier.size, root, self.checkpoints, self.latest_checkpoint,
                            self.failure)

    # -- checks -------------------------------------------------------------------------------

    def _fail(self, reason: str, position: int | None = None) -> None:
        raise _Stop(Failure(reason, position, self._where))

    @staticmethod
    def _position_of(record: Any) -> int | None:
        try:
            position = record["ledger"]["global_position"]
        except (KeyError, TypeError):
            return None
        return position if type(position) is int else None

    def _entry(self, record: dict, want_line: bool) -> bytes | None:
        """Check one entry and fold its leaf in; return its canonical line if wanted (built from
        the parts already encoded for hashing: much cheaper than encoding the record again)."""
        ledger = record["ledger"]
        event = record["event"]
        if record.keys() != ENTRY_KEYS or type(ledger) is not dict or ledger.keys() != LEDGER_KEYS:
            self._fail("an entry record has exactly the keys event, kind, ledger; its ledger "
                       f"object exactly {', '.join(sorted(LEDGER_KEYS))}")
        expected = self.frontier.size + 1
        position = ledger["global_position"]
        if position != expected or type(position) is not int:
            if type(position) is int and position > expected:
                self._fail(f"position {expected} is missing from the ledger (the next entry is at "
                           f"{position}): a ledger row was deleted", expected)
            self._fail(f"entry at position {position!r} where {expected} was expected (repeated or "
                       "out of order)", expected)
        stream_id = ledger["stream_id"]
        stream_version = ledger["stream_version"]
        event_id = ledger["event_id"]
        event_type = ledger["event_type"]
        payload_hash = ledger["payload_hash"]
        metadata_hash = ledger["metadata_hash"]
        if type(stream_version) is not int:
            self._fail(f"stream_version {stream_version!r} is not an integer", position)
        # The leaf input, then the ledger object (the same fields plus leaf_hash, sorted).
        head = ('{"event_id":' + _encode_string(event_id) + ',"event_type":'
                + _encode_string(event_type) + ',"global_position":' + str(position))
        tail = (',"metadata_hash":' + _encode_string(metadata_hash) + ',"payload_hash":'
                + _encode_string(payload_hash) + ',"stream_id":' + _encode_string(stream_id)
                + ',"stream_version":' + str(stream_version) + "}")
        leaf = _sha256(b"\x00" + (head + tail).encode("utf-8")).digest()
        leaf_hex = leaf.hex()
        if leaf_hex != ledger["leaf_hash"]:
            self._fail(f"the ledger row does not hash to its leaf hash (stored "
                       f"{ledger['leaf_hash']!r}, recomputed {leaf_hex}): the ledger row was edited",
                       position)
        if event is None:
            self._fail(f"event {event_id} is missing from the events table: the event row was "
                       "deleted (or its id edited)", position)
        if type(event) is not dict or event.keys() != EVENT_KEYS:
            self._fail(f"an entry's event object has exactly the keys {', '.join(sorted(EVENT_KEYS))}",
                       position)
        for name in _SHARED_FIELDS:
            if event[name] != ledger[name] or type(event[name]) is not type(ledger[name]):
                self._fail(f"the event row's {name} {event[name]!r} differs from the ledger's "
                           f"{ledger[name]!r}: the event row was edited", position)
        payload_text = self._content("payload", event, payload_hash, position)
        metadata_text = self._content("metadata", event, metadata_hash, position)
        schema_version = event["schema_version"]
        if type(schema_version) is not int or schema_version < 1:
            self._fail(f"schema_version {schema_version!r} is not a positive integer", position)
        metadata = event["metadata"]
        for name in _METADATA_ECHOES:
            if name not in metadata:
                self._fail(f"the metadata does not record the event's {name}, so the {name} column "
                           "is not covered by any hash", position)
            if metadata[name] != event[name] or type(metadata[name]) is not type(event[name]):
                self._fail(f"the event's {name} column {event[name]!r} differs from the {name} in "
                           f"its hashed metadata {metadata[name]!r}: the column was edited",
                           position)
        self.frontier.append(leaf)
        if self._pending:
            self._check_signed_root(position)
        if not want_line:
            return None
        return ('{"event":{"event_id":' + _encode_string(event_id) + ',"event_type":'
                + _encode_string(event_type) + ',"metadata":' + metadata_text + ',"metadata_hash":'
                + _encode_string(metadata_hash) + ',"payload":' + payload_text + ',"payload_hash":'
                + _encode_string(payload_hash) + ',"schema_version":' + str(schema_version)
                + ',"stream_id":' + _encode_string(stream_id) + ',"stream_version":'
                + str(stream_version) + '},"kind":"entry","ledger":' + head + ',"leaf_hash":"'
                + leaf_hex + '"' + tail + "}\n").encode("utf-8")

    def _check_signed_root(self, position: int) -> None:
        waiting = self._pending.pop(position, None)
        if not waiting:
            return
        root = self.frontier.root()
        for signed_root, signed_where in waiting:
            if signed_root != root:
                self._fail(f"the tree of the first {position} entries has root {root.hex()}, but "
                           f"the checkpoint ({signed_where or 'es.checkpoints'}) signed "
                           f"{signed_root.hex()}: an earlier entry was rewritten consistently "
                           "(event, ledger and leaf) after it was signed", position)

    def _content(self, name: str, event: dict, committed: str, position: int) -> str:
        """Recompute the payload or metadata hash; return its canonical text."""
        value = event[name]
        if type(value) is not dict:
            reason = value.reason if type(value) is _Undecodable else "it is not a JSON object"
            self._fail(f"the stored {name} is not canonical JSON ({reason}): it was edited",
                       position)
        try:
            text = _encode(value)
        except (TypeError, ValueError) as exc:
            self._fail(f"the {name} cannot be encoded canonically ({exc}): it was edited", position)
        recomputed = _sha256(text.encode("utf-8")).hexdigest()
        stored = event[name + "_hash"]
        if recomputed != committed:
            if recomputed == stored:
                self._fail(f"the {name} and the event's stored {name} hash were both changed after "
                           f"sequencing: the ledger committed to {committed}, the {name} now hashes "
                           f"to {recomputed}", position)
            self._fail(f"the {name} does not match its hash: it hashes to {recomputed}, the event "
                       f"row stores {stored} and the ledger committed to {committed}: the {name} "
                       "was edited", position)
        if stored != committed:
            self._fail(f"the event row's stored {name} hash {stored!r} differs from the ledger's "
                       f"{committed} (the {name} itself is intact): the hash column was edited",
                       position)
        return text

    def _checkpoint(self, record: dict) -> None:
        if record.keys() != CHECKPOINT_KEYS:
            self._fail(f"a checkpoint record has exactly the keys {', '.join(sorted(CHECKPOINT_KEYS))}")
        size = record["tree_size"]
        label = f"checkpoint at tree size {size!r}"
        if type(record["note"]) is not str:
            self._fail(f"{label}: the note is not a string")
        try:
            checkpoint = verify_note(record["note"], self.public_keys)
        except CheckpointError as exc:
            self._fail(f"{label}: {exc}")
        if (checkpoint.tree_size != size or type(size) is not int
                or checkpoint.root_hash.hex() != record["root_hash"]
                or checkpoint.key_id != record["key_id"]
                or base64.b64encode(checkpoint.signature).decode() != record["signature"]):
            self._fail(f"{label}: the record's tree_size, root_hash, key_id or signature differ "
                       "from its signed note")
        if size <= self.frontier.size:
            self._fail(f"{label}: checkpoint records must come before the entries they cover "
                       f"(already {self.frontier.size} entries)")
        self.checkpoints += 1
        self.latest_checkpoint = max(self.latest_checkpoint, size)
        if size == 0:
            if checkpoint.root_hash != EMPTY_ROOT:
                self._fail(f"{label}: the empty tree's root is SHA-256 of nothing")
            return
        self._pending.setdefault(size, []).append((checkpoint.root_hash, self._where))


def verify_records(records: Iterable[Any], public_keys: Mapping[str, Ed25519PublicKey]) -> VerifyResult:
    """Verify a whole log given as records in export order (checkpoints first, then entries).

    An iterator may raise AuditFormatError, which is a failure like any other.
    """
    return verify_labelled(((None, record, None) for record in records), public_keys)


def verify_labelled(records: Iterable[tuple[str | None, Any, bytes | None]],
                    public_keys: Mapping[str, Ed25519PublicKey]) -> VerifyResult:
    """Verify (where, record, raw line or None) triples; see `Verifier.feed`."""
    verifier = Verifier(public_keys)
    try:
        for where, record, raw in records:
            if verifier.feed(record, where, raw) is not None:
                break
    except AuditFormatError as exc:
        verifier.fail_input(exc.reason, exc.where)
    return verifier.result()


# ---------------------------------------------------------------------------------------------
# Export files


def read_export(path: str | Path) -> Iterator[tuple[str, Any, bytes]]:
    """("line N", record, the line's bytes) for each line of an export file.

    The verifier checks that every line is exactly the canonical JSON of its record plus a line
    feed, so no byte of the file goes unchecked: a reordered key or an added space fails like a
    changed digit.
    """
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            where = f"line {number}"
            if not line.endswith(b"\n"):
                raise AuditFormatError("the line does not end with a line feed", where)
            try:
                record = _decode(line[:-1].decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise AuditFormatError(f"the line is not UTF-8 ({exc})", where) from None
            except ValueError as exc:
                raise AuditFormatError(f"the line is not JSON ({exc})", where) from None
            yield where, record, line


def verify_file(path: str | Path, public_keys: Mapping[str, Ed25519PublicKey],
                extra_checkpoints: Iterable[tuple[str, dict]] = ()) -> VerifyResult:
    """Verify an export; `extra_checkpoints` (from an off-box folder) are checked first."""
    extras = ((where, record, None) for where, record in extra_checkpoints)
    return verify_labelled(chain(extras, read_export(path)), public_keys)


# ---------------------------------------------------------------------------------------------
# Checkpoint files (the copies the sequencer writes outside the database)


def checkpoint_record_from_note(note: str) -> dict:
    """A checkpoint record built from a note alone (the file copies carry nothing else)."""
    try:
        checkpoint = parse_note(note)
    except CheckpointError:
        # Let the verifier report it, with the note as evidence.
        return {"kind": "checkpoint", "tree_size": None, "root_hash": "", "key_id": "",
                "signature": "", "note": note}
    return {"kind": "checkpoint", "tree_size": checkpoint.tree_size,
            "root_hash": checkpoint.root_hash.hex(), "key_id": checkpoint.key_id,
            "signature": base64.b64encode(checkpoint.signature).decode(), "note": note}


_CHECKPOINT_FILE = re.compile(r"checkpoint-\d+\.txt")


def read_checkpoint_dir(folder: str | Path) -> list[tuple[str, dict]]:
    """(file name, checkpoint record) for every checkpoint file, smallest tree first."""
    paths = sorted(p for p in Path(folder).iterdir() if _CHECKPOINT_FILE.fullmatch(p.name))
    return [(p.name, checkpoint_record_from_note(p.read_bytes().decode("utf-8", "replace")))
            for p in paths]


# ---------------------------------------------------------------------------------------------
# The database as a source


_CHECKPOINTS = """
    SELECT tree_size, root_hash, key_id, signature, note FROM es.checkpoints ORDER BY tree_size"""
_ENTRIES = """
    SELECT l.global_position, l.stream_id, l.stream_version, l.event_id::text, l.event_type,
           l.payload_hash, l.metadata_hash, l.leaf_hash,
           e.event_id IS NOT NULL AS has_event, e.stream_id AS e_stream_id,
           e.stream_version AS e_stream_version, e.event_id::text AS e_event_id,
           e.event_type AS e_event_type, e.schema_version, e.payload::text, e.metadata::text,
           e.payload_hash AS e_payload_hash, e.metadata_hash AS e_metadata_hash
      FROM es.ledger l LEFT JOIN es.events e ON e.event_id = l.event_id
     WHERE l.global_position > $1
     ORDER BY l.global_position
     LIMIT $2"""


def _checkpoint_record(row: Mapping[str, Any]) -> dict:
    return {"kind": "checkpoint", "tree_size": row["tree_size"], "root_hash": row["root_hash"].hex(),
            "key_id": row["key_id"], "signature": base64.b64encode(row["signature"]).decode(),
            "note": row["note"]}


def _entry_record(row: asyncpg.Record, decode: Callable[[str], Any]) -> dict:
    (position, stream_id, version, event_id, event_type, phash, mhash, leaf, has_event, e_stream_id,
     e_version, e_event_id, e_event_type, schema_version, payload, metadata, e_phash, e_mhash) = row
    ledger = {"global_position": position, "stream_id": stream_id, "stream_version": version,
              "event_id": event_id, "event_type": event_type, "payload_hash": phash.hex(),
              "metadata_hash": mhash.hex(), "leaf_hash": leaf.hex()}
    event = None
    if has_event:
        event = {"stream_id": e_stream_id, "stream_version": e_version, "event_id": e_event_id,
                 "event_type": e_event_type, "schema_version": schema_version,
                 "payload": decode(payload), "metadata": decode(metadata),
                 "payload_hash": e_phash.hex(), "metadata_hash": e_mhash.hex()}
    return {"kind": "entry", "ledger": ledger, "event": event}


class _Undecodable:
    """Stands in for a stored JSON text this verifier refuses (a float): fails as 'edited'."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _lenient_decode(text: str) -> Any:
    try:
        return _decode(text)
    except ValueError as exc:
        return _Undecodable(str(exc))


async def database_records(conn: asyncpg.Connection, *, page_size: int = 5000,
                           on_page: Callable[[int], None] | None = None,
                           decode: Callable[[str], Any] = _lenient_decode) -> AsyncIterator[dict]:
    """Checkpoints, then ledger entries joined to their events, in export order.

    Call inside one REPEATABLE READ transaction so every page comes from the same snapshot. The
    export passes plain `json.loads`: a stored float is then written out as it is, and the file's
    verification reports it.
    """
    for row in await conn.fetch(_CHECKPOINTS):
        yield _checkpoint_record(row)
    after = 0
    while True:
        rows = await conn.fetch(_ENTRIES, after, page_size)
        for row in rows:
            yield _entry_record(row, decode)
        if on_page is not None:
            on_page(len(rows))
        if len(rows) < page_size:
            return
        after = rows[-1][0]


@dataclass(frozen=True, slots=True)
class DatabaseFacts:
    """What the database says about itself besides the log (not evidence; cross-checks)."""

    ledger_rows: int
    events: int
    state_tree_size: int
    state_root: bytes


async def database_facts(conn: asyncpg.Connection) -> DatabaseFacts:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM es.ledger) AS ledger_rows,"
        " (SELECT count(*) FROM es.events) AS events, s.tree_size, s.frontier"
        " FROM es.sequencer_state s")
    frontier = Frontier(row["tree_size"], list(row["frontier"]))
    return DatabaseFacts(row["ledger_rows"], row["events"], row["tree_size"], frontier.root())


def _db_where(record: dict) -> str | None:
    return f"es.checkpoints at size {record['tree_size']}" if record["kind"] == "checkpoint" else None


async def verify_database(conn: asyncpg.Connection, public_keys: Mapping[str, Ed25519PublicKey], *,
                          extra_checkpoints: Iterable[tuple[str, dict]] = (), page_size: int = 5000,
                          on_page: Callable[[int], None] | None = None,
                          ) -> tuple[VerifyResult, DatabaseFacts]:
    """Verify the live log in one snapshot; also check the sequencer's own tree head against it."""
    verifier = Verifier(public_keys)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        facts = await database_facts(conn)
        for where, record in extra_checkpoints:
            if verifier.feed(record, where) is not None:
                break
        if verifier.failure is None:
            async for record in database_records(conn, page_size=page_size, on_page=on_page):
                if verifier.feed(record, _db_where(record)) is not None:
                    break
    result = verifier.result()
    if result.ok and (facts.state_tree_size, facts.state_root) != (result.entries, result.root):
        result = VerifyResult(
            result.entries, result.root, result.checkpoints, result.latest_checkpoint,
            Failure(f"the sequencer's tree head is size {facts.state_tree_size}, root "
                    f"{facts.state_root.hex()}, but the ledger gives {result.entries} entries, root "
                    f"{result.root.hex()}: ledger rows after position {result.entries} were deleted "
                    "(or the state was edited)", result.entries + 1))
    return result, facts


async def export_database(conn: asyncpg.Connection, out: Any, *, page_size: int = 5000,
                          on_page: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Write the log to the binary file object `out`; return (entries, checkpoints)."""
    entries = checkpoints = 0
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for record in database_records(conn, page_size=page_size, on_page=on_page,
                                             decode=json.loads):
            if record["kind"] == "entry":
                entries += 1
            else:
                checkpoints += 1
            out.write(canonical_line(record))
    return entries, checkpoints


async def count_ledger(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM es.ledger")
