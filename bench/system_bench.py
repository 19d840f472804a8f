"""The whole system under load (issue 17): the load-and-fault test's workload, measured.

    .venv/bin/python -m bench.system_bench [--rate 20] [--seconds 60] [--unit-items 5000]
                       [--fold-items 1000] [--backlog 600] [--parts system,unit,sigterm]

Parts, each with its raw baseline measured in the same run and the ratio printed:

1. system: three `lookback serve` processes (registry, rectification, inspection) on the real
   PostgreSQL and RabbitMQ; the registry registers projects straight onto the 台账 at --rate for
   --seconds (each: a 201 from the registry, an automatic item in rectification, a row in
   inspection's view) while /metrics of the sequencing process is scraped ten times a second and
   rectification's query API is read. Reports accepted commands/s (baseline: the rate offered),
   p50/p99 from the registry's answer to the item in rectification's read model (baseline: a raw
   aio-pika publish-confirm-consume round trip at the same rate), catch-up after the load stops,
   RSS per process, sequencer leadership changes, and the query API's p50/p99 during the load
   (one item, as a person opens it; baseline: the same query on the idle system).
2. unit: items/s at 100 and at --unit-items items in one unit, through rectification's own
   command pipeline, 4 at a time (as its consumers run); baseline: the same with the counter
   folded whole (as before issue 17), to --fold-items items in another unit.
3. sigterm: a backlog of --backlog registrations waiting for rectification, SIGTERM once it is
   busy: the time to exit against its graceful_timeout, and that a restart finishes the backlog
   exactly once.

Needs PostgreSQL (superuser, 127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672); creates and drops
its own database and bus names. The machine should be otherwise idle; the load average is printed.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx

from shared.migrations import migrate
from shared.provisioning import MIGRATOR
from tests.e2e.system_load import (
    AUTH,
    ItemWatcher,
    ServiceProcess,
    Workload,
    consumer_lags,
    effects,
    percentile,
    start_system,
)

ADMIN = os.environ.get("LOOKBACK_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
CONSUMERS = {"rectification.on-registry": "rectification",
             "rectification.registry-view": "rectification",
             "inspection.on-registry": "inspection"}


def dsn_for(database: str, user: str = "postgres") -> str:
    base, _ = ADMIN.rsplit("/", 1)
    scheme, rest = base.split("://", 1)
    return f"{scheme}://{user}@{rest.split('@', 1)[-1]}/{database}"


async def make_database() -> tuple[str, str]:
    """A fresh database migrated as production does it (roles provisioned, the migration role)."""
    from services.system import login_roles, migration_folders
    from shared.provisioning import provision_roles

    await provision_roles(ADMIN, login_roles())
    name = f"lookback_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" OWNER {MIGRATOR}')
    finally:
        await admin.close()
    superuser = await asyncpg.connect(dsn_for(name))
    try:
        await superuser.execute(f"GRANT CREATE ON SCHEMA public TO {MIGRATOR}")
    finally:
        await superuser.close()
    conn = await asyncpg.connect(dsn_for(name, MIGRATOR))
    try:
        await migrate(conn, *migration_folders())
    finally:
        await conn.close()
    return name, dsn_for(name)


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(ADMIN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def delete_bus(prefix: str) -> None:
    import json
    import subprocess

    listed = {}
    for kind in ("queues", "exchanges"):
        out = subprocess.run(["rabbitmqctl", "-q", f"list_{kind}", "name", "--formatter", "json"],
                             capture_output=True, text=True, timeout=60).stdout
        listed[kind] = [row["name"] for row in json.loads(out or "[]")
                        if row["name"].startswith(prefix)]
    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel()
        for queue in listed["queues"]:
            await channel.queue_delete(queue)
        for exchange in listed["exchanges"]:
            await channel.exchange_delete(exchange)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def row(case: str, value: str, baseline: str = "", ratio: str = "") -> None:
    print(f"| {case} | {value} | {baseline} | {ratio} |", flush=True)


# ----- raw baselines -------------------------------------------------------------------------------


async def raw_round_trips(rate: float, seconds: float) -> list[float]:
    """aio-pika alone: publish persistent with confirms, consume from a quorum queue, ack."""
    connection = await aio_pika.connect(AMQP)
    times: list[float] = []
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(f"bench.raw.{uuid.uuid4().hex[:8]}", durable=True,
                                            arguments={"x-queue-type": "quorum"})
        sent: dict[str, float] = {}
        done = asyncio.Event()
        total = int(rate * seconds)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            times.append(time.monotonic() - sent[message.message_id or ""])
            await message.ack()
            if len(times) >= total:
                done.set()

        await channel.set_qos(prefetch_count=8)
        await queue.consume(on_message)
        started = time.monotonic()
        for i in range(total):
            due = started + i / rate
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            sent[str(i)] = time.monotonic()
            await channel.default_exchange.publish(
                aio_pika.Message(b'{"x": 1}', message_id=str(i), delivery_mode=2),
                routing_key=queue.name)
        await asyncio.wait_for(done.wait(), 60)
        await queue.delete(if_unused=False, if_empty=False)
    return times


async def timed_gets(url: str, path: str, count: int, interval: float = 0.05) -> list[float]:
    times = []
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as client:
        for _ in range(count):
            began = time.monotonic()
            response = await client.get(path)
            times.append(time.monotonic() - began)
            assert response.status_code == 200, response.text[:200]
            await asyncio.sleep(interval)
    return times


# ----- 1. the system ---------------------------------------------------------------------------------


async def system_part(dsn: str, prefix: str, data_dir: Path, rate: float, seconds: float) -> None:
    processes = await start_system(dsn, prefix, data_dir,
                                   amqp_urls=dict.fromkeys(("registry", "rectification",
                                                            "inspection"), AMQP))
    rss: dict[str, list[float]] = {name: [] for name in processes}
    watcher = ItemWatcher(dsn)
    watching = asyncio.create_task(watcher.run())
    try:
        rectification = processes["rectification"].url
        # One item to read, as a person opening it would: its query on the idle system first.
        first = Workload(processes["registry"].url, rate=1, run=prefix.strip(".") + "first")
        await first.run_for(60, limit=1)
        while first.accepted[0].project_id not in watcher.seen:
            await asyncio.sleep(0.05)
        conn = await asyncpg.connect(dsn)
        try:
            item = await conn.fetchval("SELECT problem_id FROM rectification.problems LIMIT 1")
        finally:
            await conn.close()
        query = f"/problems/{item}"
        idle_query = await timed_gets(rectification, query, 40)
        workload = Workload(processes["registry"].url, rate=rate, run=prefix.strip("."),
                            concurrency=8)
        busy_query: list[float] = []
        scrapes = 0

        async def scrape() -> None:
            nonlocal scrapes
            async with httpx.AsyncClient(base_url=processes["registry"].url, timeout=10) as client:
                while not workload.done:
                    await client.get("/metrics")
                    scrapes += 1
                    await asyncio.sleep(0.1)

        async def query_and_measure() -> None:
            async with httpx.AsyncClient(base_url=rectification, headers=AUTH, timeout=30) as client:
                while not workload.done:
                    began = time.monotonic()
                    assert (await client.get(query)).status_code == 200
                    busy_query.append(time.monotonic() - began)
                    for name, process in processes.items():
                        value = process.rss_mb()
                        if value is not None:
                            rss[name].append(value)
                    await asyncio.sleep(0.2)

        await asyncio.gather(workload.run_for(seconds), scrape(), query_and_measure())
        stopped = time.monotonic()
        accepted = len(workload.accepted) + 1
        while True:
            counts = await effects(dsn)
            lags = await consumer_lags(processes, CONSUMERS)
            if (counts["item_rows"] >= accepted and counts["inspection_rows"] >= accepted
                    and all(lag == 0 for lag in lags.values())):
                break
            if time.monotonic() - stopped > 1800:
                raise AssertionError(f"no catch-up in 30 minutes: {counts} {lags}")
            await asyncio.sleep(0.1)
        catch_up = time.monotonic() - stopped
        latencies = [watcher.seen[a.project_id] - a.answered for a in workload.accepted
                     if a.project_id in watcher.seen]
        raw = await raw_round_trips(rate, min(seconds, 20))
        elections = len(processes["registry"].logged("sequencer_elected"))
        losses = len(processes["registry"].logged("sequencer_lost_leadership"))
        print(f"\n## system: {rate:g}/s offered for {seconds:g} s, {accepted} accepted "
              f"(refused {len(workload.refused)}, failed {workload.failed})\n")
        print("| case | ours | raw baseline | ratio |\n|---|---:|---:|---|")
        row("accepted commands/s", f"{workload.elapsed_rate:.1f}/s", f"{rate:g}/s offered",
            f"{workload.elapsed_rate / rate:.2f}x")
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        r50, r99 = percentile(raw, 50), percentile(raw, 99)
        row("registry 201 → item in rectification's read model, p50", ms(p50),
            f"{ms(r50)} (aio-pika round trip)", f"{p50 / r50:.1f}x")
        row("the same, p99", ms(p99), ms(r99), f"{p99 / r99:.1f}x")
        row("catch-up after the load stopped", f"{catch_up:.2f} s")
        q50, q99 = percentile(busy_query, 50), percentile(busy_query, 99)
        i50, i99 = percentile(idle_query, 50), percentile(idle_query, 99)
        row("rectification GET /problems/{id} during the load, p50", ms(q50), f"{ms(i50)} idle",
            f"{q50 / i50:.2f}x")
        row("the same, p99", ms(q99), f"{ms(i99)} idle", f"{q99 / i99:.2f}x")
        row("/metrics scrapes of the sequencing process (10/s)", f"{scrapes}",
            "", f"{losses} leadership losses, {elections} election(s)")
        for name, values in rss.items():
            if values:
                row(f"RSS {name}", f"{max(values):.0f} MB peak, {values[-1]:.0f} MB at the end")
    finally:
        watcher.stop()
        await asyncio.gather(watching, return_exceptions=True)
        for process in processes.values():
            if process.proc is not None and process.proc.poll() is None:
                process.terminate()


# ----- 2. one unit's counter ----------------------------------------------------------------------


async def unit_part(dsn: str, items: int, fold_items: int) -> None:
    from prometheus_client import CollectorRegistry

    from services.rectification import commands as c
    from services.rectification import domain as d
    from services.rectification import handlers
    from services.rectification.app import build_deps
    from services.rectification.events import CONTRACT
    from shared.errors import ConcurrencyError
    from shared.messages import SYSTEM_ACTOR
    from shared.pipeline import CommandMetrics, CommandPipeline, StreamSpec
    from shared.settings import Settings
    from shared.store import PostgresEventStore, create_pool

    pool = await create_pool(dsn, role="lookback_rectification", max_size=4)
    try:
        commands = CommandPipeline(
            service="rectification", table=handlers.COMMANDS, events=CONTRACT.registry(),
            store=PostgresEventStore(pool), deps=build_deps(Settings(), pool, score_check_interval=None),
            metrics=CommandMetrics(CollectorRegistry()))
        now = datetime(2024, 3, 12, 2, tzinfo=UTC)

        async def open_items(unit: str, first: int, count: int, workers: int = 4) -> float:
            numbers = iter(range(first, first + count))
            began = time.monotonic()

            async def worker() -> None:
                for n in numbers:
                    command = c.OpenLedgerItem(
                        entry_id=f"{unit}-{n}", project_id=f"{unit}-p{n}", project_name=f"示例项目{n}",
                        project_year=2023, unit=unit, township="示例镇", reason="not_operating")
                    while True:  # as a consumer would: the pipeline's five rounds lost, try again
                        try:
                            await commands.run(command, actor=SYSTEM_ACTOR, now=now)
                            break
                        except ConcurrencyError:
                            conflicts[unit] = conflicts.get(unit, 0) + 1
                            await asyncio.sleep(0.1)

            await asyncio.gather(*(worker() for _ in range(workers)))
            return count / (time.monotonic() - began)

        def folded(unit: str) -> StreamSpec[Any]:  # the counter as it was read before issue 17
            return d.unit_spec(unit)

        conflicts: dict[str, int] = {}
        results: dict[str, tuple[int, float, float]] = {}
        for label, unit, size, patch in (("head version, locked (ours)", "huarong", items, None),
                                         ("folded whole (before)", "liangzihu", fold_items, folded)):
            original = d.unit_counter_spec
            if patch is not None:
                d.unit_counter_spec = patch  # type: ignore[assignment]
            try:
                at_100 = await open_items(unit, 1, 100)
                await open_items(unit, 101, size - 200)
                at_end = await open_items(unit, size - 99, 100)
            finally:
                d.unit_counter_spec = original  # type: ignore[assignment]
            results[label] = (size, at_100, at_end)
        print("\n## one unit: items/s through rectification's pipeline, 4 at a time\n")
        print("| counter read | items/s at items 1–100 | at the last 100 | ratio | "
              "conflicts lost after five rounds |\n|---|---:|---:|---|---:|")
        for (label, (size, at_100, at_end)), unit in zip(results.items(), ("huarong", "liangzihu"),
                                                          strict=True):
            print(f"| {label} | {at_100:.0f}/s | {at_end:.0f}/s (items {size - 99:,}–{size:,}) | "
                  f"{at_end / at_100:.2f}x | {conflicts.get(unit, 0)} |")
    finally:
        await pool.close()


# ----- 3. SIGTERM with a backlog --------------------------------------------------------------------


async def sigterm_part(dsn: str, prefix: str, data_dir: Path, backlog: int,
                       graceful_timeout: float = 10.0) -> None:
    processes = await start_system(dsn, prefix, data_dir, services=("registry", "rectification"),
                                   amqp_urls={"registry": AMQP, "rectification": AMQP},
                                   graceful_timeout=str(graceful_timeout))
    rectification: ServiceProcess = processes["rectification"]
    try:
        rectification.terminate()
        before = (await effects(dsn))["item_rows"]
        workload = Workload(processes["registry"].url, rate=200, run=prefix.strip(".") + "b",
                            concurrency=8)
        await workload.run_for(3600, limit=backlog)
        rectification.start()
        await rectification.ready()
        while (await effects(dsn))["item_rows"] < before + 20:  # busy with the backlog
            await asyncio.sleep(0.05)
        began = time.monotonic()
        code = rectification.terminate(timeout=300)
        took = time.monotonic() - began
        at_stop = (await effects(dsn))["item_rows"] - before
        rectification.start()
        await rectification.ready()
        while (await effects(dsn))["item_rows"] < before + len(workload.accepted):
            await asyncio.sleep(0.1)
        counts = await effects(dsn)
        print(f"\n## SIGTERM with a backlog of {len(workload.accepted)} registrations\n")
        print("| case | ours | bound | ratio |\n|---|---:|---:|---|")
        row("SIGTERM to exit (code " + str(code) + f", {at_stop} of the backlog done)",
            f"{took:.2f} s", f"graceful_timeout {graceful_timeout:g} s",
            f"{took / graceful_timeout:.2f}x")
        row("after a restart: items opened for the backlog, of those accepted",
            f"{counts['item_rows'] - before} of {len(workload.accepted)}",
            "", f"{counts['items'] - counts['distinct_items']} opened twice")
    finally:
        for process in processes.values():
            if process.proc is not None and process.proc.poll() is None:
                process.terminate()


# ----- main ------------------------------------------------------------------------------------------


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--unit-items", type=int, default=5000)
    parser.add_argument("--fold-items", type=int, default=1000,
                        help="the folded baseline's size (folding 5,000 takes many minutes)")
    parser.add_argument("--backlog", type=int, default=600)
    parser.add_argument("--parts", default="system,unit,sigterm")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    name, dsn = await make_database()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if "system" in parts:
                await system_part(dsn, prefix, Path(tmp), args.rate, args.seconds)
            if "unit" in parts:
                await unit_part(dsn, args.unit_items, args.fold_items)
            if "sigterm" in parts:
                await sigterm_part(dsn, prefix, Path(tmp), args.backlog)
    finally:
        await drop_database(name)
        await delete_bus(prefix)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    asyncio.run(main())
