"""`lookback inspection ...`: the auditor's tools for a draw, usable offline.

`verify-draw` must stay importable without the service: it loads only `sampling` (and, through it,
`shared.canonical`), so an auditor can run it on a laptop with no database and no broker.
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
def verify_draw(export: Annotated[Path, typer.Argument(help="a draw export (.json)")]) -> None:
    """Recompute a draw from its exported frames, entropy and algorithm version alone."""
    try:
        doc = json.loads(export.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        typer.echo(f"cannot read {export}: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    if not isinstance(doc, dict):
        typer.echo(f"{export} is not a draw export (expected a JSON object)", err=True)
        raise typer.Exit(code=2)
    problems = sampling.verify_document(doc)
    if problems:
        typer.echo(f"MISMATCH: draw {doc.get('draw_id')!r} does not recompute "
                   f"({len(problems)} difference(s)):")
        for problem in problems:
            typer.echo(f"  - {problem}")
        raise typer.Exit(code=1)
    strata = doc["strata"]
    picks = sum(len(r["picks"]) for r in strata)
    typer.echo(f"MATCH: draw {doc['draw_id']!r}, algorithm {doc['algorithm_version']}, "
               f"units {', '.join(doc['units'])}: {len(strata)} strata, {picks} picks recomputed "
               f"from the frames and the entropy; frames digest {doc['frames_digest']}")
    discretionary = doc.get("discretionary") or []
    if discretionary:
        typer.echo(f"  note: {len(discretionary)} discretionary pick(s) are choices, not "
                   "recomputed; each carries its reason")


@cli.command("draw-list-xlsx")
def draw_list_xlsx(export: Annotated[Path, typer.Argument(help="a draw export (.json)")],
                   output: Annotated[Path, typer.Argument(help="the .xlsx to write")]) -> None:
    """Print the 抽查名单 of an export as .xlsx (one sheet per unit)."""
    from services.inspection.draw_export import write_draw_xlsx  # openpyxl only when needed

    doc = json.loads(export.read_text(encoding="utf-8"))
    write_draw_xlsx(doc, output)
    typer.echo(f"wrote {output}")


@cli.command("test-vectors")
def test_vectors() -> None:
    """Print the test vectors of docs/sampling.md as JSON, recomputed by this code."""
    vectors = [{"name": v.name, "draw_id": v.draw_id, "entropy": v.entropy, "frame": v.frame,
                "expected": v.expected} for v in sampling.documented_vectors()]
    typer.echo(json.dumps(vectors, ensure_ascii=False, indent=2))
