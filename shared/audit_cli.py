"""`lookback audit …`: export the log, verify it, prove one entry or the log's growth, make a key.

Kernel commands only (they need no service); the application adds `replay` and `history`
(services/cli.py), which need the list of services.
"""
from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import asyncpg
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from shared.settings import Settings
from shared.store import login_dsn
from shared.audit_db import count_ledger, export_database, verify_database
from shared.audit_file import read_checkpoint_dir, verify_file
from shared.audit_proofs import (
    ProofError,
    check_document,
    consistency_document,
    inclusion_document,
    load_consistency_proofs,
)
from shared.audit_verify import VerifyResult
from shared.errors import LookbackError
from shared.signing import (
    PUBLIC_KEY_ENV,
    generate_private_key,
    key_id,
    load_public_key,
    private_key_to_text,
    public_key_to_text,
    public_keys_by_id,
)

cli = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Export the audit trail, verify it, prove entries (docs/audit-format.md).")
_err = Console(stderr=True)

# Options shared by several commands (module-level, so the defaults are built once).
_DATABASE_URL = typer.Option(..., "--database-url", envvar="LOOKBACK_DATABASE_URL")
_ROLE = typer.Option(None, help="Database role to log in as (lookback_auditor).")
_PROGRESS = typer.Option(True, "--progress/--no-progress")
_PUBLIC_KEYS = typer.Option(
    [], "--public-key", "-k", envvar=PUBLIC_KEY_ENV,
    help="Checkpoint public key: base64 of 32 bytes, PEM, or a file of either. Repeatable.")


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=_err, disable=not enabled, transient=False)


def login(database_url: str, role: str | None) -> str:
    """The DSN logged in as `role` (its password from LOOKBACK_SECRETS_DIR, if any)."""
    if not role:
        return database_url
    return login_dsn(database_url, role, Settings().database_password(role))


async def connect(database_url: str, role: str | None) -> asyncpg.Connection:
    return await asyncpg.connect(login(database_url, role),
                                 server_settings={"application_name": "lookback:audit"})


def _keys(public_key: list[str]) -> dict[str, Ed25519PublicKey]:
    if not public_key:
        raise typer.BadParameter("give at least one --public-key (the checkpoint signing key)")
    try:
        return public_keys_by_id(load_public_key(k) for k in public_key)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--public-key") from None


@cli.command()
def export(
    output: Path = typer.Option(..., "--output", "-o", help="The JSON Lines file to write."),
    database_url: str = _DATABASE_URL,
    role: str | None = _ROLE,
    progress: bool = _PROGRESS,
) -> None:
    """Write checkpoints, then every ledger entry with its event, from one consistent snapshot."""

    async def run() -> tuple[int, int]:
        conn = await connect(database_url, role)
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
    source: Path | None = typer.Argument(None, help="An export file (or use --database-url)."),
    database_url: str | None = typer.Option(None, "--database-url"),
    public_key: list[str] = _PUBLIC_KEYS,
    checkpoint_dir: list[Path] = typer.Option(
        [], help="Also verify the signed checkpoint files of this folder (the sequencer's, or a "
        "witness copy). Repeatable.", exists=True, file_okay=False, dir_okay=True, readable=True),
    consistency_proof: list[Path] = typer.Option(
        [], help="A consistency proof document (`lookback audit consistency`) from the export's "
        "size to a newer checkpoint's: that checkpoint is then checked too. Repeatable.",
        exists=True, dir_okay=False, readable=True),
    role: str | None = _ROLE,
    progress: bool = _PROGRESS,
) -> None:
    """Recompute every hash, leaf and root; check every signature. Exit 1 at the first mismatch."""
    if (source is None) == (database_url is None):
        raise typer.BadParameter("give an export FILE or --database-url (one of them)")
    keys = _keys(public_key)
    extra = [(f"{folder}/{name}" if len(checkpoint_dir) > 1 else name, record)
             for folder in checkpoint_dir for name, record in read_checkpoint_dir(folder)]
    extra.sort(key=lambda item: (item[1]["tree_size"] or 0, item[0]))
    try:
        proofs = load_consistency_proofs(consistency_proof)
    except (ProofError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--consistency-proof") from None

    if source is not None:
        with _progress(progress) as bar:
            task = bar.add_task("verifying", total=None)
            result = verify_file(source, keys, extra, consistency_proofs=proofs,
                                 on_progress=lambda n: bar.advance(task, n))
        unsequenced = None
    else:
        assert database_url is not None

        async def run() -> tuple[VerifyResult, int]:
            conn = await connect(database_url, role)
            try:
                total = await count_ledger(conn)
                with _progress(progress) as bar:
                    task = bar.add_task("verifying", total=total)
                    # Worker processes read ranges of the same snapshot through their own
                    # connections, so they get the URL and role too.
                    result, facts = await verify_database(
                        conn, keys, extra_checkpoints=extra, on_page=lambda n: bar.advance(task, n),
                        dsn=login(database_url, role), server_settings=None)
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


def _print_document(make: Coroutine[Any, Any, dict[str, Any]]) -> None:
    try:
        doc = asyncio.run(make)
    except LookbackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(doc, ensure_ascii=False, indent=1))


@cli.command()
def prove(
    position: int = typer.Argument(..., help="The ledger position of the event."),
    tree_size: int | None = typer.Option(None, help="A signed tree size (default: the newest)."),
    database_url: str = _DATABASE_URL,
    role: str | None = _ROLE,
) -> None:
    """Print an inclusion proof (RFC 9162) of one event against a signed checkpoint, as JSON."""

    async def run() -> dict[str, Any]:
        conn = await connect(database_url, role)
        try:
            return await inclusion_document(conn, position, tree_size)
        finally:
            await conn.close()

    _print_document(run())


@cli.command()
def consistency(
    first: int = typer.Argument(..., help="The smaller tree size (e.g. an export's)."),
    second: int = typer.Argument(..., help="The larger tree size (e.g. a newer checkpoint's)."),
    database_url: str = _DATABASE_URL,
    role: str | None = _ROLE,
) -> None:
    """Print a consistency proof (RFC 9162) that the first tree is a prefix of the second."""

    async def run() -> dict[str, Any]:
        conn = await connect(database_url, role)
        try:
            return await consistency_document(conn, first, second)
        finally:
            await conn.close()

    _print_document(run())


@cli.command("check-proof")
def check_proof(
    document: Path = typer.Argument(..., help="A proof printed by `prove` or `consistency`.",
                                    exists=True, dir_okay=False),
    public_key: list[str] = _PUBLIC_KEYS,
) -> None:
    """Check a proof document offline: its signed checkpoint(s), then the proof."""
    keys = _keys(public_key)
    try:
        typer.echo(check_document(json.loads(document.read_text(encoding="utf-8")), keys))
    except (ProofError, ValueError) as exc:
        typer.echo(f"FAIL {exc}")
        raise typer.Exit(1) from None


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
