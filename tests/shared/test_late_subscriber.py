"""A subscriber added late, written only against the published contract (examples/), catches up
on the producer's whole history from its archive stream, then follows live events, and applies
every event exactly once — across a restart of its own in between."""
from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import AMQP_URL
from tests.faults import eventually
from tests.registry.support import as_, project_body, registry_client

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "external_subscriber.py"


def subscriber_module():
    spec = importlib.util.spec_from_file_location("external_subscriber", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def registry_event_ids(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT l.event_id::text FROM es.ledger l JOIN es.events e "
                                "USING (event_id) WHERE e.category = ANY($1::text[]) "
                                "ORDER BY l.global_position",
                                ["project", "adaptation", "liaison", "registryimport"])
        return [r["event_id"] for r in rows]
    finally:
        await conn.close()


async def register(client, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        services = ["day_care"] if i % 2 else ["meal_assistance", "day_care", "cleaning_assistance"]
        created = await client.post("/projects", headers=as_("admin"), json=project_body(
            name=f"(示例)订阅测试中心{i}", services=services))
        assert created.status_code == 201, created.text


async def test_a_late_subscriber_catches_up_then_follows_live_exactly_once(database, unique_prefix,
                                                                         tmp_path):
    module = subscriber_module()
    stream = f"{unique_prefix}registry.events.archive"
    state = tmp_path / "subscriber-state.json"
    async with registry_client(database, amqp_url=AMQP_URL, prefix=unique_prefix) as client:
        await register(client, 4)  # history, published before the subscriber exists
        history = await eventually(lambda: _at_least(database, 6), what="the history in the log")

        first, stop = module.Subscriber(AMQP_URL, stream, state), asyncio.Event()
        running = asyncio.create_task(first.run(stop))
        await eventually(lambda: len(first.applied) >= len(history), timeout=30,
                         what="the late subscriber caught up")
        await register(client, 2, start=4)  # live, while it follows
        await eventually(lambda: _applied_all(first, database), timeout=30,
                         what="the live events followed")
        stop.set()
        await running

        await register(client, 2, start=6)  # published while the subscriber is down
        second, stop = module.Subscriber(AMQP_URL, stream, state), asyncio.Event()
        running = asyncio.create_task(second.run(stop))
        await eventually(lambda: _applied_all(second, database), timeout=30,
                         what="the restarted subscriber caught up from its offset")
        stop.set()
        await running

    ids = [event["id"] for event in second.applied]
    assert ids == await registry_event_ids(database)  # each once, in the producer's order
    assert len(set(ids)) == len(ids) and not second.refused


async def _at_least(dsn: str, n: int) -> list[str] | None:
    ids = await registry_event_ids(dsn)
    return ids if len(ids) >= n else None


async def _applied_all(subscriber, dsn: str) -> bool:
    return len(subscriber.applied) == len(await registry_event_ids(dsn))
