"""An export file as a source of the verifier, and the checkpoint folder beside it.

`read_export` yields each line's record with its bytes (the verifier checks every byte);
`verify_file` runs the pure fold (shared/audit_verify.py) over it, in worker processes for large
files; `read_checkpoint_dir` reads the signed notes the sequencer (or a witness) wrote as files.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared import audit_workers
from shared.audit_entry import AuditFormatError, _decode
from shared.audit_verify import (
    Verifier,
    VerifyResult,
    checkpoint_record_from_note,
    feed_externals,
    verify_labelled,
)
from shared.audit_workers import Item, check_item, fold_items, ordered, process_pool, worker_count


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
                extra_checkpoints: Iterable[tuple[str, dict[str, Any]]] = (), *,
                consistency_proofs: Mapping[tuple[int, int], Sequence[bytes]] | None = None,
                workers: int | None = None,
                on_progress: Callable[[int], None] | None = None) -> VerifyResult:
    """Verify an export; `extra_checkpoints` (from a checkpoint folder or a witness) are fed first.

    An export is a snapshot: an extra checkpoint newer than it is checked with a consistency proof
    from `consistency_proofs` when there is one, and otherwise reported, not failed.

    Large files are checked by `workers` processes (default: one per CPU), each over its own
    slice of lines; the result, including which failure is reported first, is the same.
    """
    extras = list(extra_checkpoints)
    size = os.path.getsize(path)
    workers = worker_count(workers)
    if workers <= 1 or size < audit_workers.PARALLEL_MIN_BYTES:
        return verify_labelled(read_export(path), public_keys, external=extras,
                               consistency_proofs=consistency_proofs)
    verifier = Verifier(public_keys, consistency_proofs=consistency_proofs)
    if feed_externals(verifier, extras):
        return verifier.result()
    slices = _file_slices(path, size, max(workers * 4, size // (4 << 20)))
    with process_pool(workers) as pool:
        results = ordered(pool, _check_file_slice, [(str(path), a, b) for a, b in slices],
                          window=workers * 2)
        line_base = 0
        for lines, items in results:
            if fold_items(verifier, items, _line_namer(line_base)):
                break
            line_base += lines
            if on_progress is not None:
                on_progress(lines)
    return verifier.result()


def _line_namer(base: int) -> Callable[[int], str]:
    return lambda index: f"line {base + index + 1}"


def _check_file_slice(path: str, start: int, end: int) -> tuple[int, list[Item]]:
    """Worker: check the lines starting in [start, end) of an export file."""
    items: list[Item] = []
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
            items.append(check_item(record, line))
            if items[-1][0] >= 2:
                break
    return lines, items


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
    return list(zip(starts, starts[1:] + [size], strict=True))


def read_checkpoint_dir(folder: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """(file name, checkpoint record) for every checkpoint file, smallest tree first.

    Files named `checkpoint-<digits>.txt` with other than 12 digits are read too, so that the
    verifier names them rather than passing over them.
    """
    paths = sorted((p for p in Path(folder).iterdir() if _ANY_CHECKPOINT_FILE.fullmatch(p.name)),
                   key=_file_order)
    return [(p.name, checkpoint_record_from_note(p.read_bytes().decode("utf-8", "replace")))
            for p in paths]


def _file_order(path: Path) -> tuple[int, str]:
    digits = path.name[len("checkpoint-"):-len(".txt")]
    return int(digits), path.name


_ANY_CHECKPOINT_FILE = re.compile(r"checkpoint-\d+\.txt")
