"""Small signed logs built in memory, exactly as `lookback audit export` writes them."""
from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from shared.audit_entry import canonical_line
from shared.canonical import canonical_json
from shared.merkle import Frontier, leaf_hash, ledger_entry
from shared.messages import NewEvent
from shared.sequencer import checkpoint_file_name
from shared.signing import Checkpoint, CheckpointSigner, load_private_key, public_keys_by_id

SIGNER = CheckpointSigner(load_private_key(base64.b64encode(bytes(range(1, 33))).decode()),
                          "lookback.test/ledger")
KEYS = public_keys_by_id([SIGNER.public_key])


def entry_record(position: int, payload: dict) -> dict:
    event_id = str(uuid.UUID(int=position))
    stream_id, version = f"example-{position % 3}", position // 3 + 1
    metadata = {"event_id": event_id, "event_type": "example.Happened", "schema_version": 1}
    phash = hashlib.sha256(canonical_json(payload)).hexdigest()
    mhash = hashlib.sha256(canonical_json(metadata)).hexdigest()
    ledger = {"global_position": position, "stream_id": stream_id, "stream_version": version,
              "event_id": event_id, "event_type": "example.Happened", "payload_hash": phash,
              "metadata_hash": mhash}
    ledger["leaf_hash"] = leaf_hash(ledger_entry(**ledger)).hex()
    return {"kind": "entry", "ledger": ledger, "event": {
        "stream_id": stream_id, "stream_version": version, "event_id": event_id,
        "event_type": "example.Happened", "schema_version": 1, "payload": payload,
        "metadata": metadata, "payload_hash": phash, "metadata_hash": mhash}}


def checkpoint_record(checkpoint: Checkpoint) -> dict:
    return {"kind": "checkpoint", "tree_size": checkpoint.tree_size,
            "root_hash": checkpoint.root_hash.hex(), "key_id": checkpoint.key_id,
            "signature": base64.b64encode(checkpoint.signature).decode(), "note": checkpoint.note}


@dataclass
class MemoryLog:
    """`size` entries; `checkpoints` signed at the given sizes (a size may exceed what is exported)."""

    entries: list[dict] = field(default_factory=list)
    checkpoints: dict[int, Checkpoint] = field(default_factory=dict)

    @classmethod
    def build(cls, size: int, signed_at: list[int], payload: dict | None = None) -> MemoryLog:
        log = cls()
        frontier = Frontier()
        for position in range(1, max([size, *signed_at]) + 1):
            record = entry_record(position, payload or {"n": position})
            log.entries.append(record)
            frontier.append(bytes.fromhex(record["ledger"]["leaf_hash"]))
            if position in signed_at:
                log.checkpoints[position] = SIGNER.sign(position, frontier.root())
        return log

    @property
    def leaves(self) -> list[bytes]:
        return [bytes.fromhex(r["ledger"]["leaf_hash"]) for r in self.entries]

    def export(self, size: int, checkpoint_sizes: list[int] | None = None) -> bytes:
        """The export of the first `size` entries with the checkpoints at most that size."""
        sizes = checkpoint_sizes if checkpoint_sizes is not None else sorted(
            s for s in self.checkpoints if s <= size)
        lines = [canonical_line(checkpoint_record(self.checkpoints[s])) for s in sizes]
        lines += [canonical_line(r) for r in self.entries[:size]]
        return b"".join(lines)

    def write_checkpoint_dir(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for size, checkpoint in self.checkpoints.items():
            (folder / checkpoint_file_name(size)).write_text(checkpoint.note, encoding="utf-8")
        return folder


def export_of(events: list[NewEvent], signer: CheckpointSigner = SIGNER) -> bytes:
    """The audit export of these events as the first entries of a log, signed at its end."""
    frontier = Frontier()
    lines = []
    versions: dict[str, int] = {}
    for position, event in enumerate(events, start=1):
        payload = json.loads(canonical_json(event.payload))
        metadata = json.loads(canonical_json(event.metadata))
        phash = hashlib.sha256(canonical_json(payload)).hexdigest()
        mhash = hashlib.sha256(canonical_json(metadata)).hexdigest()
        version = versions[event.stream_id] = versions.get(event.stream_id, 0) + 1
        ledger = {"global_position": position, "stream_id": event.stream_id,
                  "stream_version": version, "event_id": str(event.event_id),
                  "event_type": event.event_type, "payload_hash": phash, "metadata_hash": mhash}
        ledger["leaf_hash"] = leaf_hash(ledger_entry(**ledger)).hex()
        frontier.append(bytes.fromhex(ledger["leaf_hash"]))
        lines.append(canonical_line({"kind": "entry", "ledger": ledger, "event": {
            "stream_id": event.stream_id, "stream_version": version,
            "event_id": str(event.event_id), "event_type": event.event_type,
            "schema_version": event.schema_version, "payload": payload, "metadata": metadata,
            "payload_hash": phash, "metadata_hash": mhash}}))
    head = canonical_line(checkpoint_record(signer.sign(frontier.size, frontier.root())))
    return head + b"".join(lines)
