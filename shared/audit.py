"""Export the log as JSON Lines, and verify it: every hash, every leaf, the tree, every signature.

The format is specified in docs/audit-format.md. Verification is one pure fold, shared by both
sources (an export file, or the live database read in one REPEATABLE READ snapshot):

- `check_entry(record)` checks everything about one entry that does not depend on the others
  (hashes, leaf, the event row against the ledger row) and returns its position and leaf hash;
- `Verifier` folds records in export order: checkpoints (signatures), then entries (dense
  positions, the Merkle tree, each signed root when the tree reaches its size);
- `verify_records(records, keys)` is that fold over any iterable of records.

Because `check_entry` is independent per record, large inputs are checked by worker processes
(each reading its own slice of the file, or its own range of positions from the same database
snapshot) and only the leaf hashes come back to the fold. It stops at the first record that does
not match and says why.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import multiprocessing
import os
import re
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
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
PARALLEL_MIN_BYTES = 8 << 20  # below this a file is verified in-process
PARALLEL_MIN_ENTRIES = 20_000


def _no_float(text: str) -> Any:
    raise ValueError(f"non-integer number {text} (canonical JSON has no floats)")


# Same output as shared.canonical.canonical_json for float-free values (a test checks it); built
# once, because json.dumps with options builds a new encoder on every call.
_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                           allow_nan=False).encode
_decode = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float).decode
_encode_string = json.encoder.encode_basestring  # type: ignore[attr-defined]
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


# ---------------------------------------------------------------------------------------------
# One entry


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


def _content(name: str, event: dict, committed: str, position: int) -> str:
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


# ---------------------------------------------------------------------------------------------
# The fold


class Verifier:
    """Feed records in export order, then `result()`. Stops at the first failure."""

    def __init__(self, public_keys: Mapping[str, Ed25519PublicKey]) -> None:
        self.public_keys = dict(public_keys)
        self.frontier = Frontier()
        self.checkpoints = 0
        self.latest_checkpoint = 0
        self.failure: Failure | None = None
        # tree size -> [(root, where)] of verified signatures waiting for the tree to get there
        self._pending: dict[int, list[tuple[bytes, str | None]]] = {}
        self._where: str | None = None

    def feed(self, record: Any, where: str | None = None, raw: bytes | None = None) -> Failure | None:
        """Check one record; `where` names it in a failure (e.g. "line 7").

        `raw`, when given, is the line the record was read from: it must be exactly the record's
        canonical JSON plus a line feed, so no byte of an export goes unchecked.
        """
        if self.failure is not None:
            return self.failure
        self._where = where
        try:
            kind = record.get("kind") if type(record) is dict else None
            if kind == "entry":
                self._expect(position_of(record))
                position, leaf, line = check_entry(record, raw is not None)
                self._fold(position, leaf)
            elif kind == "checkpoint":
                self._checkpoint(record)
                line = canonical_line(record) if raw is not None else None
            else:
                raise Mismatch(f"a record is a JSON object whose kind is entry or checkpoint, not "
                               f"{kind!r}")
            if raw is not None and line != raw:
                raise Mismatch("the line is not in canonical form (its bytes differ from the "
                               "canonical JSON of what it says)", position_of(record))
        except Mismatch as exc:
            self.failure = Failure(exc.reason, exc.position, where)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.failure = Failure(f"malformed record: {type(exc).__name__}: {exc}",
                                   position_of(record), where)
        return self.failure

    def feed_checked(self, position: int, leaf: bytes, where: str | None = None) -> Failure | None:
        """Fold an entry that `check_entry` already passed (e.g. in a worker process)."""
        if self.failure is not None:
            return self.failure
        try:
            self._expect(position)
            self._fold(position, leaf)
        except Mismatch as exc:
            self.failure = Failure(exc.reason, exc.position, where)
        return self.failure

    def feed_mismatch(self, mismatch: Mismatch, where: str | None = None) -> Failure:
        """A record that `check_entry` refused: a gap before it is reported first."""
        if self.failure is None:
            try:
                self._expect(mismatch.position)
                self.failure = Failure(mismatch.reason, mismatch.position, where)
            except Mismatch as exc:
                self.failure = Failure(exc.reason, exc.position, where)
        return self.failure

    def fail_input(self, reason: str, where: str | None = None) -> Failure:
        """A failure a reader found (a line that is not JSON, not UTF-8, …)."""
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
                "missing (rows deleted, or the export was cut short)", n + 1,
                self._pending[size][0][1])
        return VerifyResult(self.frontier.size, self.frontier.root(), self.checkpoints,
                            self.latest_checkpoint, self.failure)

    def _expect(self, position: int | None) -> None:
        """Positions are dense: 1, 2, 3, … with nothing missing, repeated or out of order."""
        expected = self.frontier.size + 1
        if position is None or position == expected:
            return
        if position > expected:
            raise Mismatch(f"position {expected} is missing from the ledger (the next entry is at "
                           f"{position}): a ledger row was deleted", expected)
        raise Mismatch(f"an entry at position {position} where {expected} was expected (repeated "
                       "or out of order)", expected)

    def _fold(self, position: int, leaf: bytes) -> None:
        self.frontier.append(leaf)
        if self._pending:
            waiting = self._pending.pop(position, None)
            if waiting:
                root = self.frontier.root()
                for signed_root, signed_where in waiting:
                    if signed_root != root:
                        raise Mismatch(
                            f"the tree of the first {position} entries has root {root.hex()}, but "
                            f"the checkpoint ({signed_where or 'es.checkpoints'}) signed "
                            f"{signed_root.hex()}: an earlier entry was rewritten consistently "
                            "(event, ledger and leaf) after it was signed", position)

    def _checkpoint(self, record: dict) -> None:
        if record.keys() != CHECKPOINT_KEYS:
            raise Mismatch(f"a checkpoint record has exactly the keys "
                           f"{', '.join(sorted(CHECKPOINT_KEYS))}")
        size = record["tree_size"]
        label = f"checkpoint at tree size {size!r}"
        if type(record["note"]) is not str:
            raise Mismatch(f"{label}: the note is not a string")
        try:
            checkpoint = verify_note(record["note"], self.public_keys)
        except CheckpointError as exc:
            raise Mismatch(f"{label}: {exc}") from None
        if (checkpoint.tree_size != size or type(size) is not int
                or checkpoint.root_hash.hex() != record["root_hash"]
                or checkpoint.key_id != record["key_id"]
                or base64.b64encode(checkpoint.signature).decode() != record["signature"]):
            raise Mismatch(f"{label}: the record's tree_size, root_hash, key_id or signature differ "
                           "from its signed note")
        if size <= self.frontier.size and size != 0:
            raise Mismatch(f"{label}: checkpoint records must come before the entries they cover "
                           f"(already {self.frontier.size} entries)")
        if size == 0 and checkpoint.root_hash != EMPTY_ROOT:
            raise Mismatch(f"{label}: the empty tree's root is SHA-256 of nothing")
        self.checkpoints += 1
        self.latest_checkpoint = max(self.latest_checkpoint, size)
        if size > 0:
            self._pending.setdefault(size, []).append((checkpoint.root_hash, self._where))


def verify_records(records: Iterable[Any], public_keys: Mapping[str, Ed25519PublicKey]) -> VerifyResult:
    """Verify a whole log given as records in export order (checkpoints first, then entries).

    The iterable may raise AuditFormatError, which is a failure like any other.
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


def _parse_line(line: bytes, where: str) -> Any:
    if not line.endswith(b"\n"):
        raise AuditFormatError("the line does not end with a line feed", where)
    try:
        return _decode(line[:-1].decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise AuditFormatError(f"the line is not UTF-8 ({exc})", where) from None
    except ValueError as exc:
        raise AuditFormatError(f"the line is not JSON ({exc})", where) from None


def read_export(path: str | Path) -> Iterator[tuple[str, Any, bytes]]:
    """("line N", record, the line's bytes) for each line of an export file.

    The verifier checks that every line is exactly the canonical JSON of its record plus a line
    feed, so no byte of the file goes unchecked: a reordered key or an added space fails like a
    changed digit.
    """
    with open(path, "rb") as handle:
        yield from read_export_lines(handle)


def read_export_lines(lines: Iterable[bytes]) -> Iterator[tuple[str, Any, bytes]]:
    """As `read_export`, over lines (each with its line feed) from anywhere."""
    for number, line in enumerate(lines, start=1):
        where = f"line {number}"
        yield where, _parse_line(line, where), line


def verify_file(path: str | Path, public_keys: Mapping[str, Ed25519PublicKey],
                extra_checkpoints: Iterable[tuple[str, dict]] = (), *,
                workers: int | None = None,
                on_progress: Callable[[int], None] | None = None) -> VerifyResult:
    """Verify an export; `extra_checkpoints` (from an off-box folder) are checked first.

    Large files are checked by `workers` processes (default: one per CPU), each over its own
    slice of lines; the result, including which failure is reported first, is the same.
    """
    extras = [(where, record, None) for where, record in extra_checkpoints]
    size = os.path.getsize(path)
    workers = _worker_count(workers)
    if workers <= 1 or size < PARALLEL_MIN_BYTES:
        return verify_labelled(chain(extras, read_export(path)), public_keys)
    verifier = Verifier(public_keys)
    for where, record, raw in extras:
        if verifier.feed(record, where, raw) is not None:
            return verifier.result()
    slices = _file_slices(path, size, max(workers * 4, size // (4 << 20)))
    with _process_pool(workers) as pool:
        results = _ordered(pool, _check_file_slice, [(str(path), a, b) for a, b in slices],
                           window=workers * 2)
        line_base = 0
        for lines, items in results:
            if _fold_items(verifier, items, lambda i, base=line_base: f"line {base + i + 1}"):
                break
            line_base += lines
            if on_progress is not None:
                on_progress(lines)
    return verifier.result()


def _fold_items(verifier: Verifier, items: list[tuple], where_of: Callable[[int], str | None]) -> bool:
    """Fold a worker's results in order; True once a failure is recorded."""
    for index, item in enumerate(items):
        tag = item[0]
        if tag == 0:  # (0, position, leaf)
            if verifier.feed_checked(item[1], item[2]) is not None:
                # name the input only now: formatting it for every entry would cost more
                verifier.failure = replace(verifier.failure, where=where_of(index))
                return True
        elif tag == 1:  # (1, record, raw): a checkpoint, fed whole
            if verifier.feed(item[1], where_of(index), item[2]) is not None:
                return True
        elif tag == 2:  # (2, reason, position): check_entry refused it
            verifier.feed_mismatch(Mismatch(item[1], item[2]), where_of(index))
            return True
        else:  # (3, reason): not a record at all
            verifier.fail_input(item[1], where_of(index))
            return True
    return False


def _check_file_slice(path: str, start: int, end: int) -> tuple[int, list[tuple]]:
    """Worker: check the lines starting in [start, end) of an export file."""
    items: list[tuple] = []
    lines = 0
    with open(path, "rb") as handle:
        handle.seek(start)
        offset = start
        while offset < end:
            line = handle.readline()
            if not line:
                break
            offset += len(line)
            lines += 1
            try:
                record = _parse_line(line, "")
            except AuditFormatError as exc:
                items.append((3, f"the line {exc.reason.removeprefix('the line ')}"))
                break
            items.append(_check_item(record, line))
            if items[-1][0] >= 2:
                break
    return lines, items


def _check_item(record: Any, raw: bytes | None) -> tuple:
    if type(record) is dict and record.get("kind") == "entry":
        try:
            position, leaf, line = check_entry(record, raw is not None)
        except Mismatch as exc:
            return (2, exc.reason, exc.position)
        if raw is not None and line != raw:
            return (2, "the line is not in canonical form (its bytes differ from the canonical "
                    "JSON of what it says)", position)
        return (0, position, leaf)
    return (1, record, raw)


def _file_slices(path: str | Path, size: int, count: int) -> list[tuple[int, int]]:
    """Byte ranges, each starting at a line start, that together cover the file."""
    starts = [0]
    with open(path, "rb") as handle:
        for k in range(1, count):
            handle.seek(size * k // count)
            handle.readline()  # to the start of the next line
            position = handle.tell()
            if starts[-1] < position < size:
                starts.append(position)
    return list(zip(starts, starts[1:] + [size]))


def _worker_count(workers: int | None) -> int:
    if workers is not None:
        return workers
    return min(os.cpu_count() or 1, 8)


@contextmanager
def _process_pool(workers: int) -> Iterator[Executor]:
    """Worker processes for `check_entry`; on the way out, queued work is dropped, not waited for."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _ordered(pool: Executor, fn: Callable, jobs: list[tuple], window: int) -> Iterator[Any]:
    """Results of fn(*job) in job order, with at most `window` jobs in flight."""
    pending = []
    jobs_iter = iter(jobs)
    for job in jobs_iter:
        pending.append(pool.submit(fn, *job))
        if len(pending) >= window:
            break
    while pending:
        future = pending.pop(0)
        result = future.result()
        job = next(jobs_iter, None)
        if job is not None:
            pending.append(pool.submit(fn, *job))
        yield result
    # (a consumer that stops early leaves the rest to the pool's shutdown)


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
_ENTRY_COLUMNS = """
    SELECT l.global_position, l.stream_id, l.stream_version, l.event_id::text, l.event_type,
           l.payload_hash, l.metadata_hash, l.leaf_hash,
           e.event_id IS NOT NULL AS has_event, e.stream_id AS e_stream_id,
           e.stream_version AS e_stream_version, e.event_id::text AS e_event_id,
           e.event_type AS e_event_type, e.schema_version, e.payload::text, e.metadata::text,
           e.payload_hash AS e_payload_hash, e.metadata_hash AS e_metadata_hash
      FROM es.ledger l LEFT JOIN es.events e ON e.event_id = l.event_id"""
_ENTRIES_AFTER = _ENTRY_COLUMNS + """
     WHERE l.global_position > $1 ORDER BY l.global_position LIMIT $2"""
_ENTRIES_BETWEEN = _ENTRY_COLUMNS + """
     WHERE l.global_position BETWEEN $1 AND $2 ORDER BY l.global_position"""


def _checkpoint_record(row: Mapping[str, Any]) -> dict:
    return {"kind": "checkpoint", "tree_size": row["tree_size"], "root_hash": row["root_hash"].hex(),
            "key_id": row["key_id"], "signature": base64.b64encode(row["signature"]).decode(),
            "note": row["note"]}


def _entry_record(row: Any, decode: Callable[[str], Any]) -> dict:
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
        rows = await conn.fetch(_ENTRIES_AFTER, after, page_size)
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
    min_position: int | None
    max_position: int | None
    events: int
    state_tree_size: int
    state_root: bytes


async def database_facts(conn: asyncpg.Connection) -> DatabaseFacts:
    row = await conn.fetchrow(
        "SELECT l.n, l.lo, l.hi, (SELECT count(*) FROM es.events) AS events, s.tree_size, s.frontier"
        "  FROM es.sequencer_state s,"
        "       (SELECT count(*) AS n, min(global_position) AS lo, max(global_position) AS hi"
        "          FROM es.ledger) l")
    frontier = Frontier(row["tree_size"], list(row["frontier"]))
    return DatabaseFacts(row["n"], row["lo"], row["hi"], row["events"], row["tree_size"],
                         frontier.root())


def _db_where(record: dict) -> str | None:
    return f"es.checkpoints at size {record['tree_size']}" if record["kind"] == "checkpoint" else None


async def verify_database(conn: asyncpg.Connection, public_keys: Mapping[str, Ed25519PublicKey], *,
                          extra_checkpoints: Iterable[tuple[str, dict]] = (), page_size: int = 5000,
                          on_page: Callable[[int], None] | None = None,
                          workers: int | None = None, dsn: str | None = None,
                          server_settings: Mapping[str, str] | None = None,
                          ) -> tuple[VerifyResult, DatabaseFacts]:
    """Verify the live log in one snapshot; also check the sequencer's own tree head against it.

    With a `dsn` and a large ledger, `workers` processes each read a range of positions from the
    same exported snapshot and check it; the fold stays here.
    """
    verifier = Verifier(public_keys)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        facts = await database_facts(conn)
        for where, record in extra_checkpoints:
            if verifier.feed(record, where) is not None:
                break
        workers = _worker_count(workers)
        parallel = (dsn is not None and workers > 1 and facts.ledger_rows >= PARALLEL_MIN_ENTRIES)
        if verifier.failure is None and parallel:
            for row in await conn.fetch(_CHECKPOINTS):
                record = _checkpoint_record(row)
                if verifier.feed(record, _db_where(record)) is not None:
                    break
            if verifier.failure is None:
                snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
                await _verify_ranges(verifier, dsn, dict(server_settings or {}), snapshot, facts,
                                     workers, on_page)
        elif verifier.failure is None:
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


async def _verify_ranges(verifier: Verifier, dsn: str, settings: dict[str, str], snapshot: str,
                         facts: DatabaseFacts, workers: int,
                         on_page: Callable[[int], None] | None) -> None:
    if facts.min_position is None:
        return
    lo, hi = facts.min_position, facts.max_position
    step = max(5000, (hi - lo + 1) // (workers * 8) + 1)
    jobs = [(dsn, settings, snapshot, a, min(a + step - 1, hi)) for a in range(lo, hi + 1, step)]
    loop = asyncio.get_running_loop()
    with _process_pool(workers) as pool:
        futures = [loop.run_in_executor(pool, _check_range_job, *job) for job in jobs]
        try:
            for future in futures:
                items = await future
                if _fold_items(verifier, items, lambda i: None):
                    break
                if on_page is not None:
                    on_page(len(items))
        finally:
            for future in futures:
                future.cancel()


def _check_range_job(dsn: str, settings: dict[str, str], snapshot: str, lo: int, hi: int
                     ) -> list[tuple]:
    """Worker: check ledger positions lo..hi as the exported snapshot saw them."""
    return asyncio.run(_check_range(dsn, settings, snapshot, lo, hi))


async def _check_range(dsn: str, settings: dict[str, str], snapshot: str, lo: int, hi: int
                       ) -> list[tuple]:
    conn = await asyncpg.connect(dsn, server_settings=settings or None)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            rows = await conn.fetch(_ENTRIES_BETWEEN, lo, hi)
    finally:
        await conn.close()
    items = []
    for row in rows:
        items.append(_check_item(_entry_record(row, _lenient_decode), None))
        if items[-1][0] >= 2:
            break
    return items


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
