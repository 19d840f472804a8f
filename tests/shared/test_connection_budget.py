"""The test suite's share of PostgreSQL stays bounded: every service on the bus at once, each with
its pools and a sequencer candidate, on RabbitMQ, with an entry travelling from the registry to
rectification and inspection, holds fewer connections than a test database admits
(`DATABASE_CONNECTION_LIMIT`, which the server enforces on every login role, so the console's
tests, which add the console in front of these, are held to it too). CI's server allows 100
connections and other work may hold ~30 of them."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
import pytest

from services.system import BACKEND_SERVICES, service_app
from tests.registry.support import project_body
from tests.support.actors import auth
from tests.support.clock import Clock, at
from tests.support.databases import DATABASE_CONNECTION_LIMIT
from tests.support.polling import eventually
from tests.support.services import AMQP_URL, delete_bus_objects, running, service_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# What the test suite may hold at once: one test at a time, plus the session's own connection to
# create and drop databases, leaves room for other work within CI's 100.
SUITE_BUDGET = 100 - 30


@asynccontextmanager
async def peak_connections(dsn: str) -> AsyncIterator[list[int]]:
    """Samples the connections to the test database (every login, superusers too, this sampler
    included) while inside; the yielded list holds the highest count seen so far."""
    peak = [0]
    conn = await asyncpg.connect(dsn)
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            count = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            peak[0] = max(peak[0], count)
            try:
                await asyncio.wait_for(stop.wait(), 0.01)
            except TimeoutError:
                pass

    sampler = asyncio.create_task(sample())
    try:
        yield peak
    finally:
        stop.set()
        await sampler
        await conn.close()


async def test_every_service_at_once_stays_within_a_test_databases_connection_limit(
        database, unique_prefix, tmp_path):
    clock = Clock(at(2024, 4, 10))
    async with peak_connections(database) as peak, AsyncExitStack() as stack:
        stack.push_async_callback(delete_bus_objects, unique_prefix, services=BACKEND_SERVICES,
                                  consumers=("rectification.on-registry", "rectification.on-inspection",
                                             "inspection.on-registry"))
        clients = {}
        for name in BACKEND_SERVICES:
            # The notifier keeps its own clock (it sleeps until reminders are due).
            clocked = {} if name == "notifier" else {"clock": clock}
            app = service_app(name, service_settings(database, tmp_path / name, amqp_url=AMQP_URL,
                                                     prefix=unique_prefix), **clocked)
            clients[name] = await stack.enter_async_context(running(app))

        # A project without 助餐 goes on the 台账: rectification opens an item, inspection sees it.
        created = await clients["registry"].post(
            "/projects", headers=auth("rep-echeng-1"),
            json=project_body(services=["day_care", "cleaning_assistance", "health_management"]))
        assert created.status_code == 201, created.text

        async def item_opened() -> bool:
            response = await clients["rectification"].get("/problems", headers=auth("admin-1"))
            return bool(response.json()["items"])

        async def in_the_inspection_view() -> bool:
            response = await clients["inspection"].get("/registry-view/projects",
                                                       headers=auth("insp-1"))
            return bool(response.json())

        await eventually(item_opened, timeout=60, what="the automatic item in rectification")
        await eventually(in_the_inspection_view, timeout=60, what="the project in inspection's view")
        for client in clients.values():
            await eventually(lambda c=client: _ready(c), timeout=30, what="every service ready")

    assert 0 < peak[0] < DATABASE_CONNECTION_LIMIT <= SUITE_BUDGET, (
        f"{peak[0]} connections at the peak; a test database admits {DATABASE_CONNECTION_LIMIT}")


async def _ready(client) -> bool:
    return (await client.get("/readyz")).status_code == 200
