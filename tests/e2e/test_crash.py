"""A consumer process killed with SIGKILL in the middle of its work loses nothing and does nothing
twice: the registry's ledger entries become exactly one problem item each in rectification,
across real processes, real PostgreSQL and real RabbitMQ."""
from __future__ import annotations

import asyncio
import json
import signal
import subprocess

import aio_pika
import asyncpg
import pytest

from tests.e2e.system_load import metric
from tests.e2e.test_embedded_up import LOOKBACK, _await_ready, free_port_base, stop
from tests.support.broker import declare_system_bus
from tests.support.polling import eventually
from tests.support.services import AMQP_URL, TEST_MASTER_KEY, child_env, small_pools_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


def serve(service: str, port: int, database: str, prefix: str, tmp_path) -> subprocess.Popen:
    env = child_env()
    env.update({"LOOKBACK_PII_MASTER_KEY": TEST_MASTER_KEY,
                "LOOKBACK_DATABASE_URL": database, "LOOKBACK_AMQP_URL": AMQP_URL,
                "LOOKBACK_BUS_PREFIX": prefix, "LOOKBACK_HTTP_PORT": str(port),
                "LOOKBACK_TOKENS_JSON": "{}", "LOOKBACK_LOG_JSON": "true",
                "LOOKBACK_METRICS_ACCESS": "public",
                "LOOKBACK_DATA_DIR": str(tmp_path / service),
                **small_pools_env(),
                # only the registry process sequences; a killed one must not be the leader
                "LOOKBACK_RUN_SEQUENCER": "true" if service == "registry" else "false"})
    proc = subprocess.Popen([LOOKBACK, "serve", service], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, text=True)
    return _await_ready(proc)[0]


async def counts(dsn: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        entries = await conn.fetchval(
            "SELECT count(*) FROM es.events WHERE event_type = 'registry.LedgerEntryAdded'")
        items = await conn.fetchval(
            "SELECT count(*) FROM es.events WHERE event_type = 'rectification.ProblemRegistered' "
            "AND payload->>'source' = 'ledger'")
        distinct = await conn.fetchval(
            "SELECT count(DISTINCT payload->>'source_ref') FROM es.events "
            "WHERE event_type = 'rectification.ProblemRegistered' AND payload->>'source' = 'ledger'")
        return entries, items, distinct
    finally:
        await conn.close()


async def test_a_consumer_killed_mid_stream_catches_up_exactly_once(database, unique_prefix, tmp_path):
    prefix = unique_prefix + "."
    env = child_env()
    env["LOOKBACK_DATABASE_URL"] = database
    env["LOOKBACK_PII_MASTER_KEY"] = TEST_MASTER_KEY
    seeded = subprocess.run([LOOKBACK, "seed"], env=env, capture_output=True, text=True, timeout=120)
    assert seeded.returncode == 0 and "sample data loaded" in seeded.stdout, seeded.stdout + seeded.stderr
    entries, _, _ = await counts(database)
    assert entries >= 10  # the sample puts a dozen or more projects on the 台账

    base = free_port_base()
    await declare_system_bus(prefix)  # as `lookback provision` does before any service starts
    registry = serve("registry", base, database, prefix, tmp_path)
    rectification = serve("rectification", base + 1, database, prefix, tmp_path)
    try:
        # Kill the consumer as soon as it has started opening items, before it has finished.
        await eventually(lambda: _items_at_least(database, 1), timeout=60, interval=0.01,
                         what="the first automatic item")
        rectification.send_signal(signal.SIGKILL)
        rectification.wait(timeout=30)
        _, items_at_kill, _ = await counts(database)
        print(f"killed with {items_at_kill} of {entries} items opened")
        rectification = serve("rectification", base + 1, database, prefix, tmp_path)
        await eventually(lambda: _items_at_least(database, entries), timeout=180,
                         what=f"{entries} items after the restart (had {items_at_kill} at the kill)")
        # Every delivery settled (redeliveries of what the killed process held included): the
        # consumer has nothing left to see, and its queue holds nothing, not even unacknowledged.
        await eventually(lambda: _settled(base + 1, prefix + "rectification.on-registry"),
                         timeout=180, interval=0.2, what="the consumer settled")
        assert await counts(database) == (entries, entries, entries)
    finally:
        for proc in (rectification, registry):
            if proc.poll() is None:
                assert stop(proc) == 0


async def _items_at_least(dsn: str, n: int) -> bool:
    _, items, _ = await counts(dsn)
    return items >= n


async def _settled(port: int, queue: str) -> bool:
    lag = await metric(f"http://127.0.0.1:{port}", "lookback_consumer_lag_events",
                       'consumer="rectification.on-registry"')
    if lag != 0:
        return False
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count == 0 and await _unacked(queue) == 0


async def _unacked(queue: str) -> int:
    listed = await asyncio.to_thread(subprocess.run, [
        "rabbitmqctl", "-q", "list_queues", "name", "messages_unacknowledged", "--formatter", "json"],
        capture_output=True, text=True, timeout=60, check=True)
    return sum(row["messages_unacknowledged"] for row in json.loads(listed.stdout)
               if row["name"] == queue)
