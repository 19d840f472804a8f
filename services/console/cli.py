"""`lookback user add`: accounts of the console; and the embedded default's demo accounts.

An account is made in the console's own tables, as the console's database role. The password is
asked for twice without echo (or read from LOOKBACK_USER_PASSWORD for scripts); it is never
printed, logged or passed on the command line, where other users of the machine could see it.
"""
from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import typer

from services.console.accounts import AccountError, Accounts, check_account
from services.console.config import ConsoleSettings
from shared.campaign import load_campaign
from shared.hosting import DemoPrincipal
from shared.logging import get_logger
from shared.provisioning import service_role
from shared.settings import Settings
from shared.store import create_pool

log = get_logger()
cli = typer.Typer(no_args_is_help=True, help="People who sign in to the console (控制台).")
ROLE = service_role("console")


async def _accounts(settings: Settings) -> tuple[Accounts, object]:
    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, role=ROLE,
                             password=settings.database_password(ROLE), max_size=2)
    return Accounts(pool, ConsoleSettings()), pool


@cli.command("add")
def add(name: str = typer.Option(..., "--name", help="sign-in name, e.g. zhang.san"),
        display_name: str = typer.Option(None, "--display-name",
                                         help="the name shown and recorded (default: --name)"),
        role: str = typer.Option(..., "--role", help="city_admin | inspector | district_reporter "
                                 "| district_reviewer | leader | auditor"),
        unit: str = typer.Option(None, "--unit", help="the reporting unit of a district role"),
        replace: bool = typer.Option(False, help="reset an existing account (ends its sessions)"),
        ) -> None:
    """Create a console account (the password is asked for, never given on the command line)."""
    settings = Settings()
    if settings.database_url is None:
        raise typer.BadParameter("set LOOKBACK_DATABASE_URL (the embedded default makes demo "
                                 "accounts itself)")
    password = os.environ.get("LOOKBACK_USER_PASSWORD") or typer.prompt(
        "password", hide_input=True, confirmation_prompt=True)
    try:
        account = check_account(name, display_name or name, role, unit, password,
                                load_campaign(settings.campaign_file))
    except AccountError as exc:
        raise typer.BadParameter(str(exc)) from None

    async def run() -> bool:
        accounts, pool = await _accounts(settings)
        try:
            return await accounts.add(account, password, datetime.now(UTC), replace=replace)
        finally:
            await pool.close()  # type: ignore[attr-defined]

    if asyncio.run(run()) or replace:
        typer.echo(f"account {account.account_id} ({account.role.value}"
                   f"{' ' + account.unit if account.unit else ''}) is ready")
    else:
        typer.echo(f"account {account.account_id} already exists (use --replace to reset it)",
                   err=True)
        raise typer.Exit(1)


async def ensure_demo_accounts(settings: Settings, people: Sequence[DemoPrincipal]) -> Path | None:
    """Embedded default: one demo account per demo person, made once (while the console has no
    account at all), each with its own random password, listed in `<data_dir>/demo-accounts.txt`
    (mode 0600) for the person trying the system out."""
    accounts, pool = await _accounts(settings)
    demo = settings.data_dir / "demo-accounts.txt"
    try:
        if await accounts.count() > 0:
            return demo if demo.exists() else None
        campaign = load_campaign(settings.campaign_file)
        lines, now = [], datetime.now(UTC)
        for person in people:
            password = secrets.token_urlsafe(9)
            await accounts.add(check_account(person.id, person.name, person.role.value,
                                             person.unit, password, campaign), password, now)
            lines.append(f"{person.id}\t{password}\t{person.role.value}\t{person.unit or '-'}"
                         f"\t{person.name}")
    finally:
        await pool.close()  # type: ignore[attr-defined]
    fd = os.open(demo, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("# 演示账号（仅供试用，正式使用前请删除）: 登录名\t密码\t角色\t单位\t姓名\n"
                     + "\n".join(lines) + "\n")
    return demo


def print_sign_in(console_url: str, demo_file: Path | None, *, json: bool = False) -> None:
    """Where to sign in: the first demo account on a person's terminal; with JSON logs the
    console's address and the accounts' file only (a password does not belong in a log)."""
    if json:
        log.info("console_sign_in", console=console_url,
                 demo_accounts=str(demo_file) if demo_file is not None else None)
        return
    from rich.console import Console

    out = Console(stderr=True, soft_wrap=True)
    out.print(f"[bold]控制台 (console): {console_url}[/bold]")
    if demo_file is not None and demo_file.exists():
        first = next((line for line in demo_file.read_text(encoding="utf-8").splitlines()
                      if line and not line.startswith("#")), None)
        if first:
            account_id, password = first.split("\t")[:2]
            out.print(f"Sign in as {account_id} / {password}; every demo account (one per role "
                      f"and unit) is in {demo_file}")
