"""The notifier's consumers on a real database: a fact delivered twice, or replayed late after a
newer one, changes nothing; a fact about a unit the campaign does not know is refused."""
from __future__ import annotations

import uuid
from datetime import date

import pytest

from services.notifier.app import build_deps
from services.notifier.events import CONTRACT
from services.notifier.handlers import COMMANDS
from services.notifier.subscribers import CONSUMERS
from shared.clock import SimulatedClock
from shared.consuming import ConsumerRuntime, Outcome, handle
from shared.envelope import Delivery
from shared.messages import Event
from shared.pipeline import CommandPipeline
from shared.settings import Settings
from shared.store import PostgresEventStore, create_pool
from tests.notifier.campaign import ITEM_A, close_out, problem, verified
from tests.notifier.support import at, fetch, notifier_settings

pytestmark = pytest.mark.integration
RECTIFICATION = next(spec for spec in CONSUMERS if spec.name == "notifier.on-rectification")


def delivery(stream_id: str, event: Event, version: int) -> Delivery:
    return Delivery(event_id=uuid.uuid4(), event_type=event.type_name,
                    schema_version=event.schema_version, source="rectification",
                    stream_id=stream_id, stream_version=version, occurred_at=at(3, 20, 10),
                    payload=event.model_dump(mode="json"))


@pytest.fixture
async def deliver(database, tmp_path):
    pool = await create_pool(database, role="lookback_notifier", max_size=2)
    clock = SimulatedClock(at(3, 20, 10))
    deps = build_deps(Settings(database_url=database, data_dir=tmp_path), pool,
                      notifier_settings=notifier_settings(None), clock=clock)
    store = PostgresEventStore(pool)
    commands = CommandPipeline(service="notifier", table=COMMANDS, events=CONTRACT.registry(),
                               store=store, deps=deps, clock=clock)
    runtime = ConsumerRuntime(service="notifier", store=store, deps=deps, commands=commands)

    async def send(item: Delivery) -> Outcome:
        return (await handle(pool, RECTIFICATION, item, runtime=runtime, clock=clock)).outcome

    try:
        yield send
    finally:
        await pool.close()


async def notices(database: str) -> list[str]:
    rows = await fetch(database, "SELECT event_type FROM es.events WHERE stream_id = $1 "
                                 "ORDER BY stream_version", f"notice-problem:{ITEM_A}")
    return [row["event_type"] for row in rows]


async def test_a_redelivered_or_replayed_fact_changes_nothing(deliver, database):
    registered = delivery(*problem(ITEM_A, "echeng", 1, date(2024, 4, 8), at(3, 20, 10)), 1)
    assert await deliver(registered) is Outcome.HANDLED
    assert await deliver(registered) is Outcome.DUPLICATE            # the inbox knows it
    assert await deliver(delivery(*close_out(ITEM_A, "echeng", at(4, 7, 15)), 2)) is Outcome.HANDLED
    assert await deliver(delivery(*verified(ITEM_A, "echeng", at(4, 9, 10)), 3)) is Outcome.HANDLED
    # The registration again under a new message id (a replay): older than what we know.
    replay = registered.model_copy(update={"event_id": uuid.uuid4()})
    assert await deliver(replay) is Outcome.HANDLED
    assert await notices(database) == ["notifier.ObligationOpened", "notifier.ObligationFulfilled",
                                       "notifier.ObligationFulfilled"]


async def test_a_fact_of_a_unit_outside_the_campaign_is_refused_and_recorded(deliver, database):
    stream_id, event = problem(ITEM_A, "wuhan", 1, date(2024, 4, 8), at(3, 20, 10))
    assert await deliver(delivery(stream_id, event, 1)) is Outcome.REJECTED
    assert await notices(database) == []
