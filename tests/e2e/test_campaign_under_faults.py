"""The campaign on the system as production runs it (the four services as separate `lookback
serve` processes on the real PostgreSQL and RabbitMQ, driven over HTTP), played twice: once
undisturbed, once under faults — a service SIGKILLed in the middle of its work and restarted,
two services' broker connections cut, a transaction held open for 30 s while the campaign goes
on committing. The faults change nothing a person can see: every service's queries answer the
same at the end, the SMTP server received each reminder exactly once, no dead letter was left,
and `lookback audit verify` and `lookback audit replay` pass (issue 16)."""
from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import pytest

from services.system import BACKEND_SERVICES
from shared.signing import generate_private_key, private_key_to_text, public_key_to_text
from shared.topology import Names
from tests.e2e.campaign_scenario import NOTIFIER_CLOCK_START, Scenario, final_state
from tests.e2e.system_load import ServiceProcess, hold_a_transaction, start_system
from tests.e2e.test_embedded_up import LOOKBACK
from tests.notifier.support import SmtpSink, smtp_sink
from tests.support.databases import fresh_database
from tests.support.faults import TcpProxy
from tests.support.services import AMQP_URL, SMALL_POOLS, TEST_MASTER_KEY, child_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

HELD_SECONDS = 30.0
CUT = ("inspection", "notifier")      # their broker connections go through a proxy we cut
KILLED = "rectification"              # the hub: consumes two services, feeds two others


@dataclass
class Run:
    state: dict[str, Any]
    sink: SmtpSink
    processes: dict[str, ServiceProcess]
    faults: list[str] = field(default_factory=list)
    seconds: float = 0.0


@asynccontextmanager
async def system(database: str, prefix: str, tmp: Path, sink: SmtpSink, proxy: TcpProxy | None
                 ) -> AsyncIterator[dict[str, ServiceProcess]]:
    """The four services, one process each; the registry's process leads the sequencing and signs
    checkpoints (its key and folder are under `tmp`)."""
    key = generate_private_key()
    (tmp / "checkpoint.pub").write_text(public_key_to_text(key.public_key()), encoding="utf-8")
    amqp = urlsplit(AMQP_URL)
    proxied = (AMQP_URL if proxy is None
               else AMQP_URL.replace(f":{amqp.port or 5672}", f":{proxy.port}"))
    processes = await start_system(
        database, prefix, tmp, services=BACKEND_SERVICES,
        amqp_urls={s: proxied if s in CUT else AMQP_URL for s in BACKEND_SERVICES},
        own={"notifier": {
            "notifier_smtp_host": "127.0.0.1", "notifier_smtp_port": str(sink.port),
            "notifier_simulated_clock_start": NOTIFIER_CLOCK_START.isoformat(),
            "notifier_retry_delays": "[0.2, 0.5, 1.0]", "notifier_takeover_check_seconds": "1"}},
        signing_key=private_key_to_text(key), checkpoint_dir=str(tmp / "checkpoints"),
        checkpoint_every_seconds="2", graceful_timeout="10",
        **{name: str(size) for name, size in SMALL_POOLS.items()})
    try:
        yield processes
    finally:
        for process in processes.values():
            if process.proc is not None and process.proc.poll() is None:
                assert process.terminate() == 0, process.tail()


async def play(database: str, prefix: str, tmp: Path, *, faults: bool) -> Run:
    tmp.mkdir(parents=True, exist_ok=True)
    proxy = None
    if faults:
        proxy = TcpProxy(urlsplit(AMQP_URL).port or 5672)
        await proxy.start()
    started = time.monotonic()
    try:
        async with smtp_sink() as sink, system(database, prefix, tmp, sink, proxy) as processes:
            urls = {name: p.url for name, p in processes.items()}
            done: list[str] = []
            holding: list[asyncio.Task[None]] = []

            async def hook(phase: str) -> None:
                if not faults:
                    return
                assert proxy is not None
                if phase == "registered":
                    # The registry's 台账 entries are on their way to rectification: kill it there.
                    victim = processes[KILLED]
                    victim.kill()
                    done.append(f"SIGKILL {KILLED}")
                    victim.start()
                    await victim.ready()
                    # ... and hold the horizon while the campaign goes on committing.
                    holding.append(asyncio.create_task(hold_a_transaction(HELD_SECONDS)))
                    done.append(f"transaction held {HELD_SECONDS:.0f} s")
                elif phase == "rectified":
                    proxy.cut()
                    done.append(f"broker connections of {' and '.join(CUT)} cut")
                elif phase == "inspected":
                    await asyncio.gather(*holding)

            scenario = Scenario(urls, database, hook=hook)
            await scenario.run()
            print(f"{'faulted' if faults else 'undisturbed'}: {scenario.took}")
            state = await final_state(urls)
            for process in processes.values():
                assert process.logged("message_dead_lettered") == [], process.service
                assert process.logged("message_out_of_order") == [], process.service
            await dead_letter_queues_empty(prefix)
            return Run(state, sink, processes, done, time.monotonic() - started)
    finally:
        if proxy is not None:
            await proxy.close()


async def dead_letter_queues_empty(prefix: str) -> None:
    names = Names(prefix)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for service in BACKEND_SERVICES:
            queue = await channel.declare_queue(names.dlq(service), passive=True)
            assert queue.declaration_result.message_count == 0, names.dlq(service)


def audit(database: str, tmp: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = child_env(broker=False, LOOKBACK_DATABASE_URL=database,
                    LOOKBACK_PII_MASTER_KEY=TEST_MASTER_KEY, LOOKBACK_DATA_DIR=str(tmp))
    return subprocess.run([LOOKBACK, "audit", *command], env=env, capture_output=True, text=True,
                          timeout=300)


def each_once(sink: SmtpSink) -> Counter[str]:
    return Counter(r.message["Message-ID"] for r in sink.received)


async def test_the_campaign_under_faults_ends_as_it_does_without_them(
        template_db, database, unique_prefix, tmp_path):
    async with fresh_database(template_db) as undisturbed_db:
        undisturbed = await play(undisturbed_db, unique_prefix, tmp_path / "undisturbed",
                                 faults=False)
    faulted = await play(database, unique_prefix + ".", tmp_path / "faulted", faults=True)
    print(f"undisturbed {undisturbed.seconds:.0f} s; under {len(faulted.faults)} faults "
          f"({'; '.join(faulted.faults)}) {faulted.seconds:.0f} s; "
          f"{len(faulted.sink.received)} mails")

    # The campaign happened: every service shows its part of it.
    state = faulted.state
    assert len(faulted.faults) == 3
    assert faulted.sink.received, "no reminder was sent"
    for key, value in state.items():
        assert value, f"{key} is empty"

    # The faults changed nothing a person can see.
    for key in state:
        assert state[key] == undisturbed.state[key], key

    # Each reminder reached the SMTP server once, the same ones as without faults.
    for run in (undisturbed, faulted):
        repeated = {mid: n for mid, n in each_once(run.sink).items() if n > 1}
        assert repeated == {}
    assert faulted.sink.summaries() == undisturbed.sink.summaries()

    # The log proves itself, and every read model is what the log alone rebuilds.
    verified = audit(database, tmp_path, "verify", "--database-url", database, "--public-key",
                     str(tmp_path / "faulted" / "checkpoint.pub"), "--checkpoint-dir",
                     str(tmp_path / "faulted" / "checkpoints"), "--no-progress")
    assert verified.returncode == 0, verified.stdout + verified.stderr[-3000:]
    replayed = audit(database, tmp_path, "replay")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr[-3000:]
    assert replayed.stdout.splitlines()[-1].startswith("identical:"), replayed.stdout[-3000:]
