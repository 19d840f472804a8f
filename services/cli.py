"""The `lookback` command: one entry point, one sub-command group per concern.

It belongs to the application (it knows the services); the kernel's own groups (`audit`) and the
services' (`inspection`) are registered here.
"""
from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Lookback (回头看): follow up public works with an audit trail.")

# Sub-command groups live beside the code they drive; each module exposes a `cli` Typer.
_GROUPS = {
    "audit": "shared.audit_cli",
    "inspection": "services.inspection.cli",
    "dlq": "services.dlq_cli",
    "user": "services.console.cli",
}


def _register_groups() -> None:
    for name, module_name in _GROUPS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        app.add_typer(module.cli, name=name)


_register_groups()
_audit = next(group.typer_instance for group in app.registered_groups if group.name == "audit")


@_audit.command("history")
def audit_history(subject: str = typer.Argument(..., help="a project, problem item or draw id, or a "
                                                          "stream id (project-…, problem-…)"),
                  as_json: bool = typer.Option(False, "--json", help="JSON instead of text")) -> None:
    """Every event of or about one subject across services, in order: who, when, what, in Chinese,
    personal data masked."""
    import json

    from services.audit_labels import EVENT_LABELS
    from shared.campaign import load_campaign
    from shared.history import history
    from shared.settings import Settings

    settings = Settings()
    if settings.database_url is None:
        raise typer.BadParameter("set LOOKBACK_DATABASE_URL")
    database_url = settings.database_url

    async def run() -> list:
        import asyncpg

        conn = await asyncpg.connect(database_url)
        try:
            return await history(conn, subject, labels=EVENT_LABELS,
                                 zone=load_campaign(settings.campaign_file).tz)
        finally:
            await conn.close()

    entries = asyncio.run(run())
    if as_json:
        typer.echo(json.dumps([e.as_dict() for e in entries], ensure_ascii=False, indent=1))
    elif not entries:
        typer.echo(f"{subject}: 无记录 (no events)")
    for item in entries if not as_json else ():
        typer.echo(item.text())


@_audit.command("replay")
def audit_replay(
        keep: bool = typer.Option(False, help="keep the scratch database to look at")) -> None:
    """Rebuild every service's read models from the log alone in a fresh database and compare
    them with the live ones: `identical`, or the first difference by table and key."""
    from services.system import replay_read_models
    from shared.settings import Settings

    settings = Settings()
    if settings.database_url is None:
        raise typer.BadParameter("set LOOKBACK_DATABASE_URL")
    report = asyncio.run(replay_read_models(settings, keep=keep))
    typer.echo(report.summary())
    for note in report.notes:
        typer.echo(f"  note: {note}", err=True)
    if not report.identical:
        raise typer.Exit(1)


@app.command()
def up(port_base: int = typer.Option(None, help="first HTTP port (default 8700..8704)"),
       data_dir: Path = typer.Option(None, help="embedded data folder (default ./var)"),
       seed: bool = typer.Option(True, help="load the sample data into an empty store")) -> None:
    """Run the console and the four services in one process (embedded PostgreSQL unless URLs
    are set); the console's address is printed first."""
    from services.system import up as run_up
    from shared.settings import Settings

    settings = Settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    asyncio.run(run_up(settings, port_base=port_base, seed=seed))


@app.command()
def serve(service: str = typer.Argument(
        ..., help="console | registry | rectification | inspection | notifier")) -> None:
    """Run one service process against LOOKBACK_DATABASE_URL and LOOKBACK_AMQP_URL."""
    from services.system import serve as run_serve
    from shared.settings import Settings

    asyncio.run(run_serve(service, Settings()))


@app.command("migrate")
def migrate_command() -> None:
    """Apply the database migrations to LOOKBACK_DATABASE_URL."""
    from services.system import migrate
    from shared.settings import Settings

    settings = Settings()
    if settings.database_url is None:
        raise typer.BadParameter("set LOOKBACK_DATABASE_URL")
    applied = asyncio.run(migrate(settings))
    typer.echo(f"applied {len(applied)} migrations: {', '.join(applied) or 'none needed'}")


@app.command("seed")
def seed_command(data_dir: Path = typer.Option(None, help="embedded data folder (default ./var)")) -> None:
    """Load the sample registry data (all five units) into an empty registry; else do nothing."""
    from services.system import migrate, prepare_embedded, seed_if_empty
    from shared.settings import Settings

    settings = Settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})

    async def run() -> Any:
        prepared = await prepare_embedded(settings) if settings.embedded else settings
        await migrate(prepared)
        return await seed_if_empty(prepared)

    report = asyncio.run(run())
    if report is None:
        typer.echo("the registry already has data: the sample was not loaded")
    else:
        typer.echo(f"sample data loaded: {report.commands} commands, {report.events} events")


@app.command("provision")
def provision_command(
    admin_database_url: str = typer.Option(
        ..., envvar="LOOKBACK_ADMIN_DATABASE_URL",
        help="A PostgreSQL superuser's DSN (used for this step only; no service uses it)."),
    broker_admin_url: str = typer.Option(
        None, envvar="LOOKBACK_BROKER_ADMIN_URL",
        help="RabbitMQ management API with an administrator, e.g. http://admin:…@rabbitmq:15672"),
    generate_passwords: bool = typer.Option(
        False, help="make a random password for every login that has none in LOOKBACK_SECRETS_DIR"),
) -> None:
    """Create or correct the database, its login roles, the broker's vhost, users and
    permissions (idempotent); prints what it did, never a password."""
    from services.system import provision
    from shared.settings import Settings

    done = asyncio.run(provision(Settings(), admin_database_url,
                                 generate_passwords=generate_passwords,
                                 broker_admin_url=broker_admin_url))
    for line in done:
        typer.echo(line)


events = typer.Typer(no_args_is_help=True, add_completion=False,
                     help="The events' published contract (docs/events.md).")
app.add_typer(events, name="events")


@events.command("publish")
def publish_events() -> None:
    """Write each event's JSON Schema at its current version to docs/events/schemas."""
    from services.system import EVENT_SCHEMAS, contracts
    from shared.contracts import publish

    written = publish(EVENT_SCHEMAS, contracts())
    typer.echo(f"{len(written)} schema(s) written" + "".join(f"\n  {p}" for p in written))


@events.command("check")
def check_events() -> None:
    """Fail when an event no longer matches its published schema (docs/events.md)."""
    from services.system import EVENT_SCHEMAS, contracts
    from shared.contracts import contract_problems

    problems = contract_problems(EVENT_SCHEMAS, contracts())
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("every event matches its published schema")


@events.command("asyncapi")
def asyncapi_command(
        service: str = typer.Argument(..., help="registry, rectification, inspection or notifier"),
        output: Path = typer.Option(None, "--output", "-o", help="file to write (default: stdout)"),
) -> None:
    """Write a service's AsyncAPI 3 document, as the service serves it at /asyncapi.json, for the
    deployment the LOOKBACK_* settings describe (broker URL, bus prefix, deployment name)."""
    from services.system import BACKEND_SERVICES, spec
    from shared.asyncapi import render
    from shared.service import asyncapi_of
    from shared.settings import Settings

    if service not in BACKEND_SERVICES:
        typer.echo(f"unknown service {service!r}; one of {', '.join(BACKEND_SERVICES)}", err=True)
        raise typer.Exit(2)
    text = render(asyncapi_of(spec(service), Settings()))
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"{service}'s AsyncAPI document written to {output}")


@app.command("token")
def token_command(id: str = typer.Option(...), name: str = typer.Option(...),
                  role: str = typer.Option(...), unit: str = typer.Option(None)) -> None:
    """Make a bearer token: prints the token once, and the hashed line for the tokens file."""
    import json

    from pydantic import ValidationError

    from shared.auth import hash_token, new_token
    from shared.messages import Actor

    try:
        actor = Actor(id=id, name=name, role=role, unit=unit)
    except ValidationError as exc:
        reasons = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        raise typer.BadParameter(reasons) from None
    token = new_token()
    typer.echo(f"token: {token}")
    typer.echo(json.dumps({hash_token(token): actor.model_dump(mode="json")}, ensure_ascii=False))


def main() -> None:
    app()
