"""`lookback dlq list | show | replay | discard <service>`: dead letters, per service.

Application layer: it knows the services (their consumers, deps and command tables) and asks the
kernel (shared/deadletters.py) to read the local transport's `es.dead_letters` and, when
LOOKBACK_AMQP_URL is set, RabbitMQ's `<service>.dlq`. A replay or a discard is recorded as an event
in `deadletter-<consumer>` with who (`--by`) and why (`--why`).
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import typer

from services.system import SERVICE_NAMES, spec
from shared import deadletters as dl
from shared.consuming import ConsumerRuntime, Outcome
from shared.history import mask_value
from shared.messages import Actor, Role
from shared.pipeline import CommandPipeline
from shared.provisioning import OPERATOR
from shared.settings import Settings
from shared.store import PostgresEventStore, create_pool, login_dsn
from shared.topology import Names

cli = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Dead letters per service: list, show, replay, discard (each decision is "
                       "recorded as an event).")

_SERVICE = typer.Argument(..., help=" | ".join(SERVICE_NAMES))
_EVENT_ID = typer.Argument(..., help="the dead letter's event id (from `list`)")
_BY = typer.Option(..., "--by", help="who decides (recorded with the decision)")
_WHY = typer.Option(..., "--why", help="why (recorded with the decision)")


def _settings() -> Settings:
    settings = Settings()
    if settings.database_url is None:
        raise typer.BadParameter("set LOOKBACK_DATABASE_URL")
    return settings


def _consumers(service: str) -> dict[str, Any]:
    try:
        declared = spec(service)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="SERVICE") from None
    return {c.name: c for c in (*declared.consumers, *declared.projections)}


@asynccontextmanager
async def _dead_letters(service: str, settings: Settings) -> AsyncIterator[tuple[Any, list, Any]]:
    """The pool, every dead letter of the service (local, then RabbitMQ), and the DLQ if any."""
    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, max_size=2)
    rabbit = None
    try:
        found = await dl.local_dead_letters(pool, list(_consumers(service)))
        if settings.amqp_url:
            names = Names(settings.bus_prefix)
            # The operator's broker user: it may read dead-letter queues and put a message back
            # on its queue, nothing else (docs/adr/0009).
            amqp_url = login_dsn(settings.amqp_url, OPERATOR, settings.broker_password(OPERATOR))
            rabbit = dl.RabbitDeadLetters(amqp_url, names.dlq(service),
                                          lambda queue: queue.removeprefix(settings.bus_prefix))
            found += await rabbit.open()
        yield pool, found, rabbit
    finally:
        if rabbit is not None:
            await rabbit.close()
        await pool.close()


def _pick(found: list[dl.DeadLetter], event_id: str) -> dl.DeadLetter:
    for dead in found:
        if dead.event_id == event_id:
            return dead
    typer.echo(f"no dead letter {event_id}", err=True)
    raise typer.Exit(1)


@cli.command("list")
def list_(service: str = _SERVICE) -> None:
    """Every dead letter of the service, with its consumer and reason."""
    async def run() -> list[dl.DeadLetter]:
        async with _dead_letters(service, _settings()) as (_, found, _rabbit):
            return found

    found = asyncio.run(run())
    typer.echo(f"{service}: {len(found)} dead letter(s)")
    for dead in found:
        typer.echo(dead.line())


@cli.command()
def show(service: str = _SERVICE, event_id: str = _EVENT_ID) -> None:
    """One dead letter: where, why, and its payload (personal data masked)."""
    async def run() -> dl.DeadLetter:
        async with _dead_letters(service, _settings()) as (_, found, _rabbit):
            return _pick(found, event_id)

    dead = asyncio.run(run())
    typer.echo(dead.line())
    payload = {k: mask_value(k, v) for k, v in (dead.payload or {}).items()}
    typer.echo(json.dumps(payload, ensure_ascii=False, indent=1))


def _actor(by: str) -> Actor:
    if not by.strip():
        raise typer.BadParameter("say who decides", param_hint="--by")
    return Actor(id=f"operator:{by.strip()}", name=by.strip(), role=Role.CITY_ADMIN)


@cli.command()
def replay(service: str = _SERVICE, event_id: str = _EVENT_ID, by: str = _BY,
           why: str = _WHY) -> None:
    """Have the dead letter handled again by its consumer (it stays if it fails again)."""
    actor, settings = _actor(by), _settings()
    if not why.strip():
        raise typer.BadParameter("say why", param_hint="--why")

    async def run() -> str:
        async with _dead_letters(service, settings) as (pool, found, rabbit):
            dead = _pick(found, event_id)
            reason = dead.reason
            now = datetime.now(UTC)
            if dead.source == "local":
                consumer = _consumers(service).get(dead.consumer)
                if consumer is None:
                    raise typer.BadParameter(f"{dead.consumer} is not a consumer of {service}")
                declared = spec(service)
                service_pool = await create_pool(settings.database_url or "", max_size=2,
                                                 role=f"lookback_{service}")
                try:
                    store = PostgresEventStore(service_pool)
                    deps = declared.build_deps(settings, service_pool) if declared.build_deps else None
                    runtime = ConsumerRuntime(service=service, store=store, deps=deps,
                                              commands=CommandPipeline(
                                                  service=service, table=declared.commands,
                                                  events=declared.contract.registry(), store=store,
                                                  deps=deps))
                    result = await dl.replay_local(service_pool, dead, consumer, runtime, now)
                finally:
                    await service_pool.close()
                outcome = result.outcome.value
                if result.outcome is Outcome.DEAD:
                    dead.reason = result.reason
                else:
                    await dl.discard_local(pool, dead)  # handled now: the row has done its job
            else:
                assert rabbit is not None
                _, message = rabbit.find(event_id)
                await rabbit.republish(dead, message, Names(settings.bus_prefix).queue(dead.consumer))
                outcome = "republished"
            await dl.record(PostgresEventStore(pool), dl.DeadLetterReplayed(
                consumer=dead.consumer, event_id=dead.event_id, event_type=dead.event_type,
                source=dead.source, dead_reason=reason, why=why.strip(), outcome=outcome),
                dead.consumer, actor, now)
            if outcome == Outcome.DEAD.value:
                return f"still fails: {dead.reason} (kept; the attempt is recorded)"
            return f"replayed: {outcome} (recorded in {dl.stream_of(dead.consumer)})"

    typer.echo(asyncio.run(run()))


@cli.command()
def discard(service: str = _SERVICE, event_id: str = _EVENT_ID, by: str = _BY,
            why: str = _WHY) -> None:
    """Remove the dead letter without handling it."""
    actor, settings = _actor(by), _settings()
    if not why.strip():
        raise typer.BadParameter("say why", param_hint="--why")

    async def run() -> str:
        async with _dead_letters(service, settings) as (pool, found, rabbit):
            dead = _pick(found, event_id)
            if dead.source == "local":
                await dl.discard_local(pool, dead)
            else:
                assert rabbit is not None
                await rabbit.drop(rabbit.find(event_id)[1])
            await dl.record(PostgresEventStore(pool), dl.DeadLetterDiscarded(
                consumer=dead.consumer, event_id=dead.event_id, event_type=dead.event_type,
                source=dead.source, dead_reason=dead.reason, why=why.strip()),
                dead.consumer, actor, datetime.now(UTC))
            return f"discarded (recorded in {dl.stream_of(dead.consumer)})"

    typer.echo(asyncio.run(run()))
