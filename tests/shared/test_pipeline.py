"""The kernel's command pipeline on real PostgreSQL: every service's commands run through it, so
each of its promises (authorize, one transaction, retry a conflict within a bound, envelope, one
log line and one counter) has a test here that fails without it."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

import pytest
from prometheus_client import CollectorRegistry
from pydantic import Field
from structlog.testing import capture_logs

from shared.errors import ConcurrencyError, DomainError, ForbiddenError
from shared.messages import Actor, Command, Event, Role
from shared.pipeline import (CONCURRENCY_RETRIES, CommandMetrics, CommandPipeline, Decision,
                             Handler, Preparation, StreamSpec)
from shared.store import PostgresEventStore, create_pool
from tests.example_services import CONTRACT as EXAMPLE, ThingRegistered

pytestmark = pytest.mark.integration

NOW = datetime(2024, 3, 5, 10, 0, tzinfo=timezone.utc)
ADMIN = Actor(id="admin-1", name="市局管理员(示例)", role=Role.CITY_ADMIN)
REPORTER = Actor(id="rep-1", name="填报人(示例)", role=Role.DISTRICT_REPORTER, unit="echeng")
AUDITOR = Actor(id="aud-1", name="审计员(示例)", role=Role.AUDITOR)


class Name(Command):
    thing_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    name: str
    also: str | None = None  # a second thing written by the same decision


def thing(thing_id: str) -> StreamSpec[list[str]]:
    return StreamSpec(f"example-{thing_id}", lambda names, event: [*names, event.name], [])


def decide(x: Decision[Name, Any, None]) -> list[Event]:
    if x.command.name == "refuse-me":
        raise DomainError("names like that are refused", code="bad_name")
    events = [ThingRegistered(thing_id=x.command.thing_id, name=x.command.name, unit="echeng")]
    if x.command.also:
        events.append(ThingRegistered(thing_id=x.command.also, name=x.command.name, unit="echeng"))
    return events


def route(event: Event) -> str:
    assert isinstance(event, ThingRegistered)
    return thing(event.thing_id).stream_id


async def include_the_other(p: Preparation[Name, None]) -> None:
    if p.command.also:
        await p.include(thing(p.command.also))


TABLE = {Name: Handler(streams=lambda cmd, _deps: [thing(cmd.thing_id)], decide=decide,
                       prepare=include_the_other, route=route,
                       roles=frozenset({Role.CITY_ADMIN, Role.DISTRICT_REPORTER}))}


class InterferingStore:
    """The real store, with another writer's append slipped in before ours, `times` times."""

    def __init__(self, inner: PostgresEventStore, interfere: Callable[[], Awaitable[Any]],
                 times: int) -> None:
        self.inner, self.interfere, self.times, self.appends = inner, interfere, times, 0

    async def append(self, events, expected=None, *, conn=None):
        self.appends += 1
        if self.appends <= self.times:
            await self.interfere()
        return await self.inner.append(events, expected, conn=conn)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
async def example_store(database):
    pool = await create_pool(database, role="lookback_example", max_size=3)
    try:
        yield PostgresEventStore(pool)
    finally:
        await pool.close()


def pipeline(store: Any, registry: CollectorRegistry | None = None) -> CommandPipeline[None]:
    return CommandPipeline(service="example", table=TABLE, events=EXAMPLE.registry(), store=store,
                           deps=None, metrics=CommandMetrics(registry or CollectorRegistry()))


async def test_a_command_is_appended_with_its_actor_correlation_and_causation(example_store):
    correlation, cause = uuid.uuid4(), uuid.uuid4()
    result = await pipeline(example_store).run(Name(name="甲"), actor=REPORTER, now=NOW,
                                               correlation_id=correlation, causation_id=cause)
    [recorded] = await example_store.read_stream(f"example-{result.command.thing_id}")
    assert recorded.metadata["actor"] == REPORTER.model_dump(mode="json")
    assert recorded.metadata["correlation_id"] == str(correlation)
    assert recorded.metadata["causation_id"] == str(cause)
    assert result.correlation_id == correlation and result.version(recorded.stream_id) == 1
    assert result.state(recorded.stream_id) == ["甲"]


async def test_a_version_conflict_is_decided_again_from_fresh_state(example_store):
    cmd = Name(name="乙")

    async def someone_else_writes_the_same_stream() -> None:
        await pipeline(example_store).run(Name(thing_id=cmd.thing_id, name="丙"), actor=ADMIN,
                                          now=NOW)

    interfering = InterferingStore(example_store, someone_else_writes_the_same_stream, times=1)
    result = await pipeline(interfering).run(cmd, actor=REPORTER, now=NOW)
    assert interfering.appends == 2
    assert result.state(f"example-{cmd.thing_id}") == ["丙", "乙"]  # decided on the fresh state


async def test_a_conflict_that_never_ends_stops_after_the_bound_and_is_counted(example_store):
    cmd = Name(name="丁")
    counter = iter(range(100))

    async def always_first() -> None:
        await pipeline(example_store).run(Name(thing_id=cmd.thing_id, name=f"x{next(counter)}"),
                                          actor=ADMIN, now=NOW)

    registry = CollectorRegistry()
    interfering = InterferingStore(example_store, always_first, times=100)
    with pytest.raises(ConcurrencyError):
        await pipeline(interfering, registry).run(cmd, actor=REPORTER, now=NOW)
    assert interfering.appends == CONCURRENCY_RETRIES
    assert registry.get_sample_value(
        "lookback_commands_total", {"service": "example", "command": "Name", "outcome": "conflict"}) == 1


async def test_a_stream_found_while_preparing_is_appended_at_the_version_read(example_store):
    other = uuid.uuid4().hex
    await pipeline(example_store).run(Name(thing_id=other, name="先"), actor=ADMIN, now=NOW)
    result = await pipeline(example_store).run(Name(name="后", also=other), actor=ADMIN, now=NOW)
    assert result.version(f"example-{other}") == 2
    assert result.state(f"example-{other}") == ["先", "后"]

    async def write_the_included_stream() -> None:
        await pipeline(example_store).run(Name(thing_id=other, name="插"), actor=ADMIN, now=NOW)

    interfering = InterferingStore(example_store, write_the_included_stream, times=1)
    result = await pipeline(interfering).run(Name(name="再", also=other), actor=ADMIN, now=NOW)
    assert interfering.appends == 2  # the included stream's version was expected, and checked
    assert result.state(f"example-{other}") == ["先", "后", "插", "再"]


async def test_a_refused_command_rolls_back_whatever_its_preparation_wrote(database, example_store):
    async def prepare_writes(p: Preparation[Name, None]) -> None:
        await p.conn.execute("INSERT INTO es.inbox (consumer, event_id) VALUES ('example.prepared', $1)",
                             uuid.uuid4())

    table = {Name: Handler(streams=TABLE[Name].streams, decide=decide, prepare=prepare_writes)}
    commands = CommandPipeline(service="example", table=table, events=EXAMPLE.registry(),
                               store=example_store, deps=None)
    with pytest.raises(DomainError):
        await commands.run(Name(name="refuse-me"), actor=ADMIN, now=NOW)
    await commands.run(Name(name="accept-me"), actor=ADMIN, now=NOW)
    prepared = await example_store.pool.fetchval(
        "SELECT count(*) FROM es.inbox WHERE consumer = 'example.prepared'")
    assert prepared == 1  # only the accepted command's preparation stayed


async def test_readers_send_no_commands_and_the_tables_roles_narrow_who_may(example_store):
    commands = pipeline(example_store)
    with pytest.raises(ForbiddenError):
        await commands.run(Name(name="戊"), actor=AUDITOR, now=NOW)
    inspector = Actor(id="insp-1", name="检查员(示例)", role=Role.INSPECTOR)
    with pytest.raises(ForbiddenError, match="allowed: city_admin, district_reporter"):
        await commands.run(Name(name="己"), actor=inspector, now=NOW)
    assert await example_store.pool.fetchval("SELECT count(*) FROM es.events") == 0


async def test_every_command_logs_one_line_and_is_counted_by_outcome(example_store):
    registry = CollectorRegistry()
    commands = pipeline(example_store, registry)
    same = Name(name="庚")
    with capture_logs() as logs:
        await commands.run(same, actor=ADMIN, now=NOW)
        with pytest.raises(DomainError):
            await commands.run(Name(name="refuse-me"), actor=ADMIN, now=NOW)
        with pytest.raises(ForbiddenError):
            await commands.run(Name(name="辛"), actor=AUDITOR, now=NOW)
    lines = [line for line in logs if line["event"] in ("command_handled", "command_rejected")]
    assert [(line["event"], line["outcome"]) for line in lines] == [
        ("command_handled", "accepted"), ("command_rejected", "rejected"),
        ("command_rejected", "forbidden")]
    keys = {"service", "command", "actor", "actor_role", "correlation_id", "causation_id", "outcome"}
    assert all(keys <= set(line) for line in lines)
    assert lines[1]["error"] == "bad_name"

    def count(outcome: str) -> float | None:
        return registry.get_sample_value("lookback_commands_total", {
            "service": "example", "command": "Name", "outcome": outcome})

    assert (count("accepted"), count("rejected"), count("forbidden")) == (1, 1, 1)


async def test_a_decision_over_several_streams_needs_a_route_for_its_events(example_store):
    table = {Name: Handler(streams=lambda cmd, _deps: [thing(cmd.thing_id), thing("other")],
                           decide=decide)}
    commands = CommandPipeline(service="example", table=table, events=EXAMPLE.registry(),
                               store=example_store, deps=None)
    with pytest.raises(ValueError, match="names no route"):
        await commands.run(Name(name="壬"), actor=ADMIN, now=NOW)
    assert await example_store.pool.fetchval("SELECT count(*) FROM es.events") == 0
