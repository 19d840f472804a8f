"""Evidence files (photos, PDF) by content: the storage port and its folder implementation.

A file is named by the SHA-256 of its bytes, the hash the services record (a 销号 request's
attachments, a visit's photos): the same bytes are stored once, and a file filed for two items
is the same hash, which is how rectification flags reuse. What a file is comes from its first
bytes, never from the name or the type the browser claims; only JPEG, PNG, WebP and PDF are
taken. The folder store writes to a temporary name and renames, so a reader never sees half a
file, and never overwrites what is there (the name is the content).
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

HASH = re.compile(r"^[0-9a-f]{64}$")

KINDS = {"image/jpeg": "照片（JPEG）", "image/png": "图片（PNG）", "image/webp": "图片（WebP）",
         "application/pdf": "PDF文件"}


class EvidenceRefused(ValueError):
    """Not a file we take: the message says why, in Chinese."""


def sniff(content: bytes) -> str | None:
    """The media type by the file's own first bytes; None for anything we do not take."""
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    if content.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def check_file(content: bytes, max_bytes: int) -> tuple[str, str]:
    """(sha-256 hex, media type) of an acceptable file, or EvidenceRefused."""
    if not content:
        raise EvidenceRefused("文件是空的")
    if len(content) > max_bytes:
        raise EvidenceRefused(f"文件超过{max_bytes // (1024 * 1024)}MB上限")
    media_type = sniff(content)
    if media_type is None:
        raise EvidenceRefused("只接受照片（JPEG、PNG、WebP）和PDF文件")
    return hashlib.sha256(content).hexdigest(), media_type


class EvidenceStore(Protocol):
    """Where evidence bytes live, by their SHA-256 (a folder, or an object store)."""

    def put(self, content_hash: str, content: bytes) -> None: ...

    def get(self, content_hash: str) -> bytes | None: ...


class FolderEvidenceStore:
    """`<root>/ab/cd/<hash>`: a local folder, the embedded default (a volume in a container)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, content_hash: str) -> Path:
        if not HASH.match(content_hash):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / content_hash[:2] / content_hash[2:4] / content_hash

    def put(self, content_hash: str, content: bytes) -> None:
        if hashlib.sha256(content).hexdigest() != content_hash:
            raise ValueError("the content does not have this hash")
        path = self._path(content_hash)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, content_hash: str) -> bytes | None:
        path = self._path(content_hash)
        return path.read_bytes() if path.exists() else None
