"""Allocating a 序号 costs the same however many items the unit already has: the unit's counter
is read at its head version, never folded from its history (issue 17, docs/adr/0011)."""
from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from services.rectification import commands as c
from services.rectification import domain as d
from services.rectification.app import build_deps
from services.rectification.events import CONTRACT
from services.rectification.handlers import COMMANDS
from shared.messages import SYSTEM_ACTOR
from shared.pipeline import CommandMetrics, CommandPipeline
from shared.settings import Settings
from shared.store import PostgresEventStore, create_pool

pytestmark = pytest.mark.integration

NOW = datetime(2024, 3, 12, 2, 0, tzinfo=UTC)
UNIT = "huarong"


class ReadCountingStore:
    """The real store, counting the events each stream read returned."""

    def __init__(self, inner: PostgresEventStore) -> None:
        self.inner = inner
        self.events_read: dict[str, int] = {}

    async def read_stream(self, stream_id: str, after_version: int = 0, *, conn: Any = None):
        events = await self.inner.read_stream(stream_id, after_version, conn=conn)
        self.events_read[stream_id] = self.events_read.get(stream_id, 0) + len(events)
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def ledger_entry(n: int) -> c.OpenLedgerItem:
    return c.OpenLedgerItem(entry_id=f"entry-{n}", project_id=f"project-{n}",
                            project_name=f"示例项目{n}", project_year=2023, unit=UNIT,
                            township="示例镇", reason="not_operating")


@pytest.fixture
async def rectification_store(database):
    pool = await create_pool(database, role="lookback_rectification", max_size=2)
    try:
        yield ReadCountingStore(PostgresEventStore(pool)), pool
    finally:
        await pool.close()


def pipeline(store: Any, pool: Any) -> CommandPipeline[Any]:
    return CommandPipeline(service="rectification", table=COMMANDS, events=CONTRACT.registry(),
                           store=store, deps=build_deps(Settings(), pool, score_check_interval=None),
                           metrics=CommandMetrics(CollectorRegistry()))


async def test_opening_an_item_reads_the_units_counter_at_its_head_not_its_history(
        rectification_store):
    store, pool = rectification_store
    commands = pipeline(store, pool)
    for n in range(1, 41):
        await commands.run(ledger_entry(n), actor=SYSTEM_ACTOR, now=NOW)
    store.events_read.clear()
    result = await commands.run(ledger_entry(41), actor=SYSTEM_ACTOR, now=NOW)
    assert store.events_read.get(d.unit_stream_id(UNIT), 0) == 0
    [registered] = [e for e in result.events if type(e).__name__ == "ProblemRegistered"]
    assert registered.seq_no == 41
    numbers = await pool.fetch("SELECT payload->>'seq_no' AS n FROM es.events "
                               "WHERE stream_id = $1 ORDER BY stream_version", d.unit_stream_id(UNIT))
    assert [int(r["n"]) for r in numbers] == list(range(1, 42))


@pytest.mark.unit
def test_a_reopening_may_not_take_the_id_of_an_existing_item():
    """The counter read at its head names no items, so the successor's own stream decides."""
    from services.rectification.handlers import reopen
    from shared.pipeline import Decision
    from tests.rectification.support import Desk, at, inspector, reporter, reviewer

    desk = Desk()
    original = desk.register(reporter(UNIT), at(2024, 3, 12), unit=UNIT)
    taken = desk.register(reporter(UNIT), at(2024, 3, 12), unit=UNIT)
    desk.start(original, reporter(UNIT), at(2024, 3, 13))
    desk.request(original, reporter(UNIT), at(2024, 3, 14))
    desk.verify(original, reviewer(UNIT), at(2024, 3, 15))
    counter = d.sequence_at_version(d.UnitSequenceState(unit=UNIT), 2)
    config = build_deps(Settings(), None, score_check_interval=None)  # type: ignore[arg-type]

    def deciding(successor: uuid.UUID) -> list:
        command = c.ReopenProblem(problem_id=original, new_problem_id=successor, reason="复查发现问题反弹")
        states = {d.problem_stream_id(original): desk.problem(original),
                  d.problem_stream_id(successor): desk.problem(successor),
                  d.unit_stream_id(UNIT): counter}
        return reopen(Decision(command=command, states=states, inputs=None, actor=inspector(),
                               now=at(2024, 3, 20), deps=config))

    with pytest.raises(d.InvalidCommandError):
        deciding(taken)
    fresh = deciding(uuid.uuid4())
    assert [type(e).__name__ for e in fresh] == ["ProblemReopened", "SeqNoAllocated",
                                                 "ProblemRegistered"]
    assert fresh[1].seq_no == 3


async def test_writers_of_one_units_counter_take_turns_instead_of_conflicting(database):
    pool = await create_pool(database, role="lookback_rectification", max_size=8)
    try:
        commands = pipeline(PostgresEventStore(pool), pool)
        await commands.run(ledger_entry(1), actor=SYSTEM_ACTOR, now=NOW)
        with capture_logs() as logs:
            await asyncio.gather(*(commands.run(ledger_entry(n), actor=SYSTEM_ACTOR, now=NOW)
                                   for n in range(2, 10)))
        handled = [line for line in logs if line.get("event") == "command_handled"]
        assert [line["attempts"] for line in handled] == [1] * 8
        numbers = await pool.fetch("SELECT payload->>'seq_no' AS n FROM es.events "
                                   "WHERE stream_id = $1", d.unit_stream_id(UNIT))
        assert sorted(int(r["n"]) for r in numbers) == list(range(1, 10))
    finally:
        await pool.close()
