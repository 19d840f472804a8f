"""Ed25519 signed checkpoints: the tree head, written as a C2SP-style checkpoint note.

A checkpoint note (docs/audit-format.md §5) is UTF-8 text:

    <origin>\\n
    <tree size, decimal>\\n
    <root hash, standard base64 with padding>\\n
    \\n
    — <origin> <base64(key id (8 bytes) || Ed25519 signature (64 bytes))>\\n

The signature is over the *body*: the first three lines including their newlines. The key id is the
first 8 bytes of SHA-256 of the raw 32-byte public key (C2SP uses 4 bytes of another hash; ours is
not meant to interoperate with C2SP tooling, only to read like it).

The private key comes from configuration (shared/settings.py): `LOOKBACK_SIGNING_KEY` (base64 of the
32-byte seed, or PEM text) or `LOOKBACK_SIGNING_KEY_FILE` (a file holding either); the origin from
`LOOKBACK_CHECKPOINT_ORIGIN`. `generate_private_key()` makes a key (`lookback audit keygen`).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DEFAULT_ORIGIN = "lookback/ledger"
KEY_ENV = "LOOKBACK_SIGNING_KEY"
KEY_FILE_ENV = "LOOKBACK_SIGNING_KEY_FILE"
ORIGIN_ENV = "LOOKBACK_CHECKPOINT_ORIGIN"
PUBLIC_KEY_ENV = "LOOKBACK_CHECKPOINT_PUBLIC_KEY"
SIGNATURE_PREFIX = "\u2014 "  # EM DASH and a space, as in C2SP signed notes
KEY_ID_BYTES = 8
_ORIGIN_RE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces: it also names the key


class CheckpointError(ValueError):
    """A checkpoint note that does not parse, or whose signature does not verify."""


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey | bytes) -> str:
    """First 8 bytes of SHA-256 of the raw 32-byte public key, as 16 lowercase hex digits."""
    raw = public_key if isinstance(public_key, bytes) else raw_public_key(public_key)
    return hashlib.sha256(raw).digest()[:KEY_ID_BYTES].hex()


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_to_text(key: Ed25519PrivateKey) -> str:
    """Base64 of the 32-byte seed: what `LOOKBACK_SIGNING_KEY` (or its file) holds."""
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return base64.b64encode(raw).decode()


def public_key_to_text(key: Ed25519PublicKey) -> str:
    """Base64 of the 32-byte public key: what an auditor passes to `verify --public-key`."""
    return base64.b64encode(raw_public_key(key)).decode()


def _decode_base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def load_private_key(text: str | bytes) -> Ed25519PrivateKey:
    """A private key from PEM (PKCS#8) or base64 of the 32-byte seed."""
    data = text.encode() if isinstance(text, str) else text
    if b"-----BEGIN" in data:
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the PEM key is not an Ed25519 private key")
        return key
    raw = _decode_base64(data.decode("ascii", "replace"))
    if raw is None or len(raw) != 32:
        raise ValueError("a ledger key is PEM or base64 of a 32-byte Ed25519 seed")
    return Ed25519PrivateKey.from_private_bytes(raw)


def load_public_key(text: str | bytes) -> Ed25519PublicKey:
    """A public key from PEM (SubjectPublicKeyInfo), base64 of the raw 32 bytes, or a file of either."""
    data = text.encode() if isinstance(text, str) else text
    if b"-----BEGIN" not in data and _decode_base64(data.decode("ascii", "replace")) is None:
        path = Path(os.fsdecode(data))
        if path.is_file():
            data = path.read_bytes()
    if b"-----BEGIN" in data:
        if b"PRIVATE KEY" in data:
            return load_private_key(data).public_key()
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the PEM key is not an Ed25519 public key")
        return key
    raw = _decode_base64(data.decode("ascii", "replace"))
    if raw is None or len(raw) != 32:
        raise ValueError("a public key is PEM, base64 of 32 raw bytes, or a file holding either")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_keys_by_id(keys: Iterable[Ed25519PublicKey]) -> dict[str, Ed25519PublicKey]:
    return {key_id(k): k for k in keys}


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head. `note` is the exact text that was signed plus its signature line."""

    origin: str
    tree_size: int
    root_hash: bytes
    key_id: str
    signature: bytes
    note: str

    @property
    def body(self) -> bytes:
        return note_body(self.origin, self.tree_size, self.root_hash)


def note_body(origin: str, tree_size: int, root_hash: bytes) -> bytes:
    """The signed bytes: origin, decimal size and base64 root, each line ending in one LF."""
    return f"{origin}\n{tree_size}\n{base64.b64encode(root_hash).decode()}\n".encode()


class CheckpointSigner:
    """Signs tree heads with one Ed25519 key under one origin (the log's name)."""

    def __init__(self, private_key: Ed25519PrivateKey, origin: str = DEFAULT_ORIGIN) -> None:
        if not _ORIGIN_RE.match(origin):
            raise ValueError("a checkpoint origin is printable ASCII without spaces")
        self.private_key = private_key
        self.public_key = private_key.public_key()
        self.origin = origin
        self.key_id = key_id(self.public_key)

    def sign(self, tree_size: int, root_hash: bytes) -> Checkpoint:
        if tree_size < 0 or len(root_hash) != 32:
            raise ValueError("a checkpoint needs a size >= 0 and a 32-byte root")
        body = note_body(self.origin, tree_size, root_hash)
        signature = self.private_key.sign(body)
        stamp = base64.b64encode(bytes.fromhex(self.key_id) + signature).decode()
        note = body.decode() + "\n" + f"{SIGNATURE_PREFIX}{self.origin} {stamp}\n"
        return Checkpoint(self.origin, tree_size, root_hash, self.key_id, signature, note)


def signer_from_env(env: Mapping[str, str] | None = None) -> CheckpointSigner | None:
    """The configured signer, or None when no key is configured."""
    env = os.environ if env is None else env
    origin = env.get(ORIGIN_ENV) or DEFAULT_ORIGIN
    if env.get(KEY_ENV):
        return CheckpointSigner(load_private_key(env[KEY_ENV]), origin)
    if env.get(KEY_FILE_ENV):
        return CheckpointSigner(load_private_key(Path(env[KEY_FILE_ENV]).read_bytes()), origin)
    return None


def parse_note(note: str) -> Checkpoint:
    """Split a checkpoint note into its parts; no signature check (see `verify_note`)."""
    body_text, sep, signature_block = note.partition("\n\n")
    lines = body_text.split("\n")
    if not sep or len(lines) != 3:
        raise CheckpointError("a checkpoint note is three lines, a blank line, then a signature line")
    origin, size_text, root_text = lines
    if not _ORIGIN_RE.match(origin):
        raise CheckpointError(f"bad origin line {origin!r}")
    if not re.fullmatch(r"0|[1-9][0-9]{0,18}", size_text):
        raise CheckpointError(f"bad tree size line {size_text!r}")
    root = _decode_base64(root_text)
    if root is None or len(root) != 32 or base64.b64encode(root).decode() != root_text:
        raise CheckpointError(f"bad root hash line {root_text!r}")
    match = re.fullmatch(SIGNATURE_PREFIX + r"(\S+) ([A-Za-z0-9+/]{96})\n", signature_block)
    if match is None:
        raise CheckpointError("the signature line is not '— <origin> <base64 of 72 bytes>' + LF")
    if match.group(1) != origin:
        raise CheckpointError(f"signature names {match.group(1)!r}, the note's origin is {origin!r}")
    stamp = base64.b64decode(match.group(2))
    return Checkpoint(origin, int(size_text), root, stamp[:KEY_ID_BYTES].hex(), stamp[KEY_ID_BYTES:],
                      note)


def verify_note(note: str, public_keys: Mapping[str, Ed25519PublicKey]) -> Checkpoint:
    """Parse and check a note's signature with the key its key id names; raise CheckpointError."""
    checkpoint = parse_note(note)
    key = public_keys.get(checkpoint.key_id)
    if key is None:
        raise CheckpointError(f"signed by key {checkpoint.key_id}, which is not among the given "
                              f"public keys ({', '.join(sorted(public_keys)) or 'none'})")
    try:
        key.verify(checkpoint.signature, checkpoint.body)
    except InvalidSignature:
        raise CheckpointError(f"the Ed25519 signature of key {checkpoint.key_id} does not verify"
                              ) from None
    return checkpoint
