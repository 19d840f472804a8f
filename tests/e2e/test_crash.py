"""A consumer process killed with SIGKILL in the middle of its work loses nothing and does nothing
twice: the registry's ledger entries become exactly one problem item each in rectification,
across real processes, real PostgreSQL and real RabbitMQ."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import asyncpg
import pytest

from tests.conftest import AMQP_URL, TEST_MASTER_KEY
from tests.e2e.test_embedded_up import LOOKBACK, _await_ready, free_port_base, stop
from tests.faults import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def serve(service: str, port: int, database: str, prefix: str, tmp_path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKBACK_")}
    env.update({"LOOKBACK_PII_MASTER_KEY": TEST_MASTER_KEY,
                "LOOKBACK_DATABASE_URL": database, "LOOKBACK_AMQP_URL": AMQP_URL,
                "LOOKBACK_BUS_PREFIX": prefix, "LOOKBACK_HTTP_PORT": str(port),
                "LOOKBACK_TOKENS_JSON": "{}", "LOOKBACK_LOG_JSON": "true",
                "LOOKBACK_DATA_DIR": str(tmp_path / service),
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
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKBACK_")}
    env["LOOKBACK_DATABASE_URL"] = database
    env["LOOKBACK_PII_MASTER_KEY"] = TEST_MASTER_KEY
    seeded = subprocess.run([LOOKBACK, "seed"], env=env, capture_output=True, text=True, timeout=120)
    assert seeded.returncode == 0 and "sample data loaded" in seeded.stdout, seeded.stdout + seeded.stderr
    entries, _, _ = await counts(database)
    assert entries >= 10  # the sample puts a dozen or more projects on the 台账

    base = free_port_base()
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
        await eventually(lambda: _items_at_least(database, entries), timeout=90,
                         what=f"{entries} items after the restart (had {items_at_kill} at the kill)")
        await asyncio.sleep(1.0)  # redeliveries, if any, would land by now
        assert await counts(database) == (entries, entries, entries)
    finally:
        for proc in (rectification, registry):
            if proc.poll() is None:
                assert stop(proc) == 0


async def _items_at_least(dsn: str, n: int) -> bool:
    _, items, _ = await counts(dsn)
    return items >= n
