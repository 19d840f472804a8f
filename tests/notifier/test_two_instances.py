"""Two notifier processes (`lookback serve notifier`) against the same PostgreSQL and RabbitMQ run
the whole simulated campaign: they compete for every delivery of every queue and race for every
reminder, and each reminder reaches the SMTP server exactly once."""
from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from services.inspection.events import CONTRACT as INSPECTION
from services.rectification.events import CONTRACT as RECTIFICATION
from services.registry.events import CONTRACT as REGISTRY
from shared.messages import EventContract
from shared.service import ServiceSpec, create_service_app
from tests.e2e.test_embedded_up import LOOKBACK, _await_ready, free_port_base, stop
from tests.notifier.campaign import EXPECTED, run_campaign
from tests.notifier.support import CAMPAIGN_START, SmtpSink, Upstream, smtp_sink
from tests.support.actors import TOKENS_JSON, auth
from tests.support.databases import fetch
from tests.support.services import AMQP_URL, child_env, running, service_settings, small_pools_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def serve_notifier(port: int, database: str, prefix: str, sink: SmtpSink, data_dir: Path
                   ) -> subprocess.Popen[str]:
    env = child_env()
    env.update({
        "LOOKBACK_DATABASE_URL": database, "LOOKBACK_AMQP_URL": AMQP_URL,
        "LOOKBACK_BUS_PREFIX": prefix, "LOOKBACK_HTTP_PORT": str(port),
        "LOOKBACK_TOKENS_JSON": TOKENS_JSON, "LOOKBACK_LOG_JSON": "true", **small_pools_env(),
        "LOOKBACK_DATA_DIR": str(data_dir), "LOOKBACK_RUN_SEQUENCER": "false",
        "LOOKBACK_POLL_INTERVAL": "0.02",
        "LOOKBACK_NOTIFIER_SMTP_HOST": "127.0.0.1", "LOOKBACK_NOTIFIER_SMTP_PORT": str(sink.port),
        "LOOKBACK_NOTIFIER_SIMULATED_CLOCK_START": CAMPAIGN_START.isoformat(),
        "LOOKBACK_NOTIFIER_RETRY_DELAYS": "[0.05, 0.1]",
        "LOOKBACK_NOTIFIER_TAKEOVER_CHECK_SECONDS": "0.5"})
    proc = subprocess.Popen([LOOKBACK, "serve", "notifier"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, text=True)
    return _await_ready(proc)[0]


@asynccontextmanager
async def producers(database: str, prefix: str, tmp_path: Path) -> AsyncIterator[None]:
    """Stand-ins for the registry, rectification and inspection processes: the kernel's shell
    with only their contracts, so their relays publish what the test appends (and the first
    one runs the sequencer). None of their own logic runs."""
    async with AsyncExitStack() as stack:
        for i, contract in enumerate((REGISTRY, RECTIFICATION, INSPECTION)):
            spec: ServiceSpec[None] = ServiceSpec(contract=EventContract(
                contract.service, contract.categories, contract.events), description="relay")
            app = create_service_app(spec, service_settings(
                database, tmp_path / contract.service, amqp_url=AMQP_URL, bus_prefix=prefix,
                run_sequencer=i == 0))
            await stack.enter_async_context(running(app))
        yield


async def test_two_notifier_processes_deliver_every_reminder_exactly_once(database, unique_prefix,
                                                                          tmp_path):
    prefix = unique_prefix + "."
    base = free_port_base()
    upstream = Upstream(database)
    processes: list[subprocess.Popen[str]] = []
    try:
        async with smtp_sink() as sink:
            processes = await asyncio.gather(*(asyncio.to_thread(
                serve_notifier, base + i, database, prefix, sink, tmp_path / f"notifier-{i}")
                for i in range(2)))
            urls = [f"http://127.0.0.1:{base + i}" for i in range(2)]
            async with producers(database, prefix, tmp_path), \
                    httpx.AsyncClient(base_url=urls[0], timeout=10) as first, \
                    httpx.AsyncClient(base_url=urls[1], timeout=10) as second:

                async def move_clock(moment: datetime) -> None:
                    answers = await asyncio.gather(*(
                        client.post("/clock", json={"now": moment.isoformat()},
                                    headers=auth("admin-1")) for client in (first, second)))
                    assert all(answer.status_code == 200 for answer in answers), answers

                await run_campaign(database, first, move_clock, upstream)
                metrics = [(await client.get("/metrics", headers=auth("admin-1"))).text
                           for client in (first, second)]
    finally:
        await upstream.close()
        for proc in processes:
            if proc.poll() is None:
                assert stop(proc) == 0

    assert sink.summaries() == EXPECTED
    assert len({r.message["Message-ID"].strip() for r in sink.received}) == len(EXPECTED)
    claims = await fetch(database, "SELECT payload->>'instance_id' AS instance, "
                                   "(payload->>'attempt')::int AS attempt FROM es.events "
                                   "WHERE event_type = 'notifier.ReminderClaimed'")
    assert len(claims) == len(EXPECTED) and {row["attempt"] for row in claims} == {1}
    sent = [_counter(text, 'lookback_notifier_deliveries_total{channel="email",outcome="sent"}')
            for text in metrics]
    print(f"sent by each process: {sent}")
    assert sum(sent) == len(EXPECTED)


def _counter(metrics: str, name: str) -> int:
    for line in metrics.splitlines():
        if line.startswith(name):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0
