"""`lookback audit …`: export the log, verify it (from an export or the database), make a key."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Optional

import asyncpg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from shared.audit_db import count_ledger, export_database, verify_database
from shared.audit_file import read_checkpoint_dir, verify_file
from shared.audit_verify import VerifyResult
from shared.signing import (PUBLIC_KEY_ENV, generate_private_key, key_id, load_public_key, private_key_to_text,
                            public_key_to_text, public_keys_by_id)

cli = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Export the audit trail and verify it (docs/audit-format.md).")
_err = Console(stderr=True)


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=_err, disable=not enabled, transient=False)


async def _connect(database_url: str, role: str | None) -> asyncpg.Connection:
    settings = {"application_name": "lookback:audit"}
    if role:
        settings["role"] = role
    return await asyncpg.connect(database_url, server_settings=settings)


@cli.command()
def export(
    output: Path = typer.Option(..., "--output", "-o", help="The JSON Lines file to write."),
    database_url: str = typer.Option(..., "--database-url", envvar="LOOKBACK_DATABASE_URL"),
    role: Optional[str] = typer.Option(None, help="Database role to read as (lookback_auditor)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Write checkpoints, then every ledger entry with its event, from one consistent snapshot."""

    async def run() -> tuple[int, int]:
        conn = await _connect(database_url, role)
        try:
            total = await count_ledger(conn)
            with _progress(progress) as bar, open(output, "wb") as out:
                task = bar.add_task("exporting", total=total)
                return await export_database(conn, out,
                                             on_page=lambda n: bar.advance(task, n))
        finally:
            await conn.close()

    entries, checkpoints = asyncio.run(run())
    typer.echo(f"wrote {entries} entries and {checkpoints} checkpoints to {output}")


@cli.command()
def verify(
    source: Optional[Path] = typer.Argument(None, help="An export file (or use --database-url)."),
    database_url: Optional[str] = typer.Option(None, "--database-url"),
    public_key: list[str] = typer.Option(
        [], "--public-key", "-k", envvar=PUBLIC_KEY_ENV,
        help="Checkpoint public key: base64 of 32 bytes, PEM, or a file of either. Repeatable."),
    checkpoint_dir: Optional[Path] = typer.Option(
        None, help="Also verify the checkpoint files the sequencer wrote outside the database.",
        exists=True, file_okay=False, dir_okay=True, readable=True),
    role: Optional[str] = typer.Option(None, help="Database role to read as (lookback_auditor)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Recompute every hash, leaf and root; check every signature. Exit 1 at the first mismatch."""
    if (source is None) == (database_url is None):
        raise typer.BadParameter("give an export FILE or --database-url (one of them)")
    if not public_key:
        raise typer.BadParameter("give at least one --public-key (the checkpoint signing key)")
    try:
        keys = public_keys_by_id(load_public_key(k) for k in public_key)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--public-key") from None
    extra = read_checkpoint_dir(checkpoint_dir) if checkpoint_dir is not None else []

    if source is not None:
        with _progress(progress) as bar:
            task = bar.add_task("verifying", total=None)
            result = verify_file(source, keys, extra, on_progress=lambda n: bar.advance(task, n))
        unsequenced = None
    else:
        async def run() -> tuple[VerifyResult, int]:
            conn = await _connect(database_url, role)
            try:
                total = await count_ledger(conn)
                with _progress(progress) as bar:
                    task = bar.add_task("verifying", total=total)
                    # Worker processes read ranges of the same snapshot through their own
                    # connections, so they get the URL and role too.
                    result, facts = await verify_database(
                        conn, keys, extra_checkpoints=extra, on_page=lambda n: bar.advance(task, n),
                        dsn=database_url, server_settings={"role": role} if role else None)
                return result, facts.events - facts.ledger_rows
            finally:
                await conn.close()

        result, unsequenced = asyncio.run(run())
    typer.echo(result.summary())
    if not result.ok:
        raise typer.Exit(1)
    typer.echo(result.details(), err=True)
    if unsequenced:
        typer.echo(f"{unsequenced} event(s) appended but not yet sequenced (not covered)", err=True)


@cli.command()
def keygen(
    output: Path = typer.Option(..., "--output", "-o",
                                help="Where to write the private key (base64 seed, mode 0600)."),
) -> None:
    """Make an Ed25519 checkpoint key; point LOOKBACK_SIGNING_KEY_FILE at the file."""
    if output.exists():
        raise typer.BadParameter(f"{output} exists; not overwriting a key", param_hint="--output")
    key = generate_private_key()
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(private_key_to_text(key) + "\n")
    typer.echo(f"private key: {output}")
    typer.echo(f"public key:  {public_key_to_text(key.public_key())}")
    typer.echo(f"key id:      {key_id(key.public_key())}")
