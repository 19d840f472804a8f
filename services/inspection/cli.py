"""`lookback inspection ...`: the auditor's tools for a draw, usable offline.

`verify-draw` must stay importable without the service: it loads only `sampling` (and, through it,
`shared.canonical`), so an auditor can run it on a laptop with no database and no broker; with
`--audit-log` it also loads the kernel's audit verifier (`shared.audit_*`), still offline.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from services.inspection import sampling

cli = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Inspection draws: verify a 抽查名单, print it, show the test vectors.")


@cli.command("verify-draw")
def verify_draw(
    export: Path = typer.Argument(..., help="a draw export (.json)"),
    audit_log: Path | None = typer.Option(
        None, "--audit-log", exists=True, dir_okay=False,
        help="an audit export (`lookback audit export`): the draw must be what its signed events say"),
    public_key: list[str] = typer.Option(
        [], "--public-key", "-k", envvar="LOOKBACK_CHECKPOINT_PUBLIC_KEY",
        help="the checkpoint public key, to verify the audit log first (repeatable)"),
) -> None:
    """Recompute a draw from its exported frames, entropy and algorithm version alone; with
    --audit-log, also check it against the draw's signed events (frame, commitment, reveal, picks)."""
    try:
        doc = json.loads(export.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        typer.echo(f"cannot read {export}: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    if not isinstance(doc, dict):
        typer.echo(f"{export} is not a draw export (expected a JSON object)", err=True)
        raise typer.Exit(code=2)
    problems = sampling.verify_document(doc)
    anchor = _anchor(doc, audit_log, public_key, problems) if audit_log is not None else None
    if problems:
        typer.echo(f"MISMATCH: draw {doc.get('draw_id')!r} does not verify "
                   f"({len(problems)} difference(s)):")
        for problem in problems:
            typer.echo(f"  - {problem}")
        raise typer.Exit(code=1)
    strata = doc["strata"]
    picks = sum(len(r["picks"]) for r in strata)
    typer.echo(f"MATCH: draw {doc['draw_id']!r}, algorithm {doc['algorithm_version']}, "
               f"units {', '.join(doc['units'])}: {len(strata)} strata, {picks} picks recomputed "
               f"from the frames and the entropy; frames digest {doc['frames_digest']}")
    if anchor:
        typer.echo(f"  {anchor}")
    discretionary = doc.get("discretionary") or []
    if discretionary:
        typer.echo(f"  note: {len(discretionary)} discretionary pick(s) are choices, not "
                   "recomputed; each carries its reason")


def _anchor(doc: dict, audit_log: Path, public_key: list[str], problems: list[str]) -> str:
    """Check the export against the draw stream of an audit export; return what was anchored."""
    from shared.audit_entry import AuditFormatError
    from shared.audit_file import (  # the kernel's verifier, only here
        read_export,
        verify_file,
    )
    from shared.signing import load_public_key, public_keys_by_id

    signed = 0
    if public_key:
        result = verify_file(audit_log, public_keys_by_id(load_public_key(k) for k in public_key))
        if not result.ok:
            problems.append(f"the audit log does not verify: FAIL {result.failure}")
            return ""
        signed = min(result.latest_checkpoint, result.entries)
    stream = sampling.draw_stream_id(str(doc.get("draw_id")))
    events, positions = [], []
    try:
        for _, record, _ in read_export(audit_log):
            ledger = record.get("ledger") if record.get("kind") == "entry" else None
            if ledger and ledger.get("stream_id") == stream:
                event = record.get("event") or {}
                events.append({"event_type": ledger["event_type"], "payload": event.get("payload")})
                positions.append(ledger["global_position"])
    except AuditFormatError as exc:
        problems.append(f"the audit log cannot be read: {exc}")
        return ""
    problems.extend(sampling.verify_against_log(doc, events))
    if not positions:
        return ""
    where = f"positions {positions[0]}..{positions[-1]} of the audit log"
    if not public_key:
        return (f"anchored to {where}; the audit log itself was not verified (give --public-key, "
                "or run `lookback audit verify`)")
    if signed >= positions[-1]:
        return f"anchored to {where}, covered by a checkpoint signed at tree size {signed}"
    return f"anchored to {where}; positions after {signed} are not yet covered by a signature"


@cli.command("draw-list-xlsx")
def draw_list_xlsx(export: Annotated[Path, typer.Argument(help="a draw export (.json)")],
                   output: Annotated[Path, typer.Argument(help="the .xlsx to write")]) -> None:
    """Print the 抽查名单 of an export as .xlsx (one sheet per unit)."""
    from services.inspection.draw_export import (
        write_draw_xlsx,  # openpyxl only when needed
    )

    doc = json.loads(export.read_text(encoding="utf-8"))
    write_draw_xlsx(doc, output)
    typer.echo(f"wrote {output}")


@cli.command("test-vectors")
def test_vectors() -> None:
    """Print the test vectors of docs/sampling.md as JSON, recomputed by this code."""
    vectors = [{"name": v.name, "draw_id": v.draw_id, "entropy": v.entropy, "frame": v.frame,
                "expected": v.expected} for v in sampling.documented_vectors()]
    typer.echo(json.dumps(vectors, ensure_ascii=False, indent=2))
