"""Signed checkpoint notes: format, keys from configuration, and what a signature check refuses."""
from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization

from shared.signing import (
    CheckpointError,
    CheckpointSigner,
    generate_private_key,
    key_id,
    load_private_key,
    load_public_key,
    parse_note,
    private_key_to_text,
    public_key_to_text,
    public_keys_by_id,
    raw_public_key,
    signer_from_env,
    verify_note,
)

pytestmark = pytest.mark.unit

SEED = bytes(range(32))
ROOT = hashlib.sha256(b"root").digest()


@pytest.fixture
def signer() -> CheckpointSigner:
    return CheckpointSigner(load_private_key(base64.b64encode(SEED).decode()), "lookback.test/log")


def test_a_note_is_origin_size_root_blank_line_and_signature_line(signer):
    checkpoint = signer.sign(42, ROOT)
    lines = checkpoint.note.split("\n")
    assert lines[:4] == ["lookback.test/log", "42", base64.b64encode(ROOT).decode(), ""]
    assert lines[4].startswith("\u2014 lookback.test/log ") and lines[5] == ""
    stamp = base64.b64decode(lines[4].split(" ")[-1])
    assert stamp[:8].hex() == checkpoint.key_id == key_id(signer.public_key)
    signer.public_key.verify(stamp[8:], "\n".join(lines[:3]).encode() + b"\n")


def test_the_key_id_is_the_first_8_bytes_of_sha256_of_the_raw_public_key(signer):
    raw = raw_public_key(signer.public_key)
    assert signer.key_id == hashlib.sha256(raw).hexdigest()[:16]


def test_a_signed_note_verifies_and_parses_back(signer):
    checkpoint = signer.sign(7, ROOT)
    parsed = verify_note(checkpoint.note, {signer.key_id: signer.public_key})
    assert (parsed.tree_size, parsed.root_hash, parsed.signature) == (7, ROOT, checkpoint.signature)


@pytest.mark.parametrize("edit", [
    lambda n: n.replace("\n7\n", "\n8\n"),
    lambda n: n.replace("lookback.test/log\n", "lookback.test/lag\n", 1),
    lambda n: n[:-3] + ("A" if n[-3] != "A" else "B") + n[-2:],
    lambda n: n.replace("\n\n", "\n"),
    lambda n: n + "extra\n",
])
def test_any_edit_of_a_note_is_refused(signer, edit):
    note = signer.sign(7, ROOT).note
    with pytest.raises(CheckpointError):
        verify_note(edit(note), {signer.key_id: signer.public_key})


def test_a_note_signed_by_an_unknown_key_is_refused(signer):
    other = generate_private_key().public_key()
    with pytest.raises(CheckpointError, match="not among the given public keys"):
        verify_note(signer.sign(1, ROOT).note, public_keys_by_id([other]))


def test_keys_load_from_base64_pem_and_files(tmp_path, signer):
    pem = signer.private_key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()).decode()
    assert key_id(load_private_key(pem).public_key()) == signer.key_id
    public_pem = signer.public_key.public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key_id(load_public_key(public_pem)) == signer.key_id
    path = tmp_path / "key.pub"
    path.write_text(public_key_to_text(signer.public_key))
    assert key_id(load_public_key(str(path))) == signer.key_id
    with pytest.raises(ValueError):
        load_private_key("not a key")


def test_the_signer_comes_from_the_environment(tmp_path):
    key = generate_private_key()
    path = tmp_path / "checkpoint.key"
    path.write_text(private_key_to_text(key) + "\n")
    from_file = signer_from_env({"LOOKBACK_SIGNING_KEY_FILE": str(path),
                                 "LOOKBACK_CHECKPOINT_ORIGIN": "city.example/lookback"})
    assert from_file.key_id == key_id(key.public_key()) and from_file.origin == "city.example/lookback"
    inline = signer_from_env({"LOOKBACK_SIGNING_KEY": private_key_to_text(key)})
    assert inline.key_id == from_file.key_id
    assert signer_from_env({}) is None


def test_parse_note_rejects_a_non_canonical_root_encoding(signer):
    note = signer.sign(3, ROOT).note
    body, rest = note.split("\n\n", 1)
    origin, size, root = body.split("\n")
    with pytest.raises(CheckpointError):
        parse_note(f"{origin}\n{size}\n{root.rstrip('=')}\n\n{rest}")
