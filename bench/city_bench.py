"""A city ten times Ezhou (issue 16): the campaign's work at scale, through the HTTP APIs, with
every service in its own `lookback serve` process on the real PostgreSQL and RabbitMQ.

    .venv/bin/python -m bench.city_bench [--scale 1.0] [--concurrency 8]

At --scale 1 the synthetic city has the five units of the campaign file, 3,000 projects (a fifth
of them idle: each goes on the 台账 and rectification opens its item), 15,000 households of
home-adaptation programmes (one programme per unit, township and year, 50 households a call),
and 10,000 problem items, each through its life cycle: registered (or opened from the 台账),
rectification started, 销号 requested, verified; every tenth is returned once and requested again.
The notifier runs on a simulated clock that walks through the campaign while the work goes on,
so the campaign's reminders, urgings and escalations are sent (to its mail folder). Four processes
(registry leading the sequencing, rectification, inspection, notifier), each logged in to RabbitMQ
as its own broker user and to PostgreSQL as its own role.

Reported: events, wall time (first command to the last consumer caught up), events/s end to end,
p50/p99 of the HTTP commands (each kind, and all), p50/p99 of the event latency from the producer's
commit to the other service's inbox row (written in the same transaction as its read model),
RSS per process; and, measured in the same run after the city: raw asyncpg single-row INSERTs on
8 connections (bench/store_bench.py's raw-8) for as long as comparable volume takes, raw aio-pika
publish (confirms, 100 outstanding) + consume of as many messages as the city's events through a
quorum queue, and a raw publish → consume round trip at the city's event rate; the ratios.

Needs PostgreSQL (superuser, 127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672, management API on
15672 to provision the broker users); creates and drops its own database and bus names. The
machine should be otherwise idle; the load average is printed before and after.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aio_pika
import asyncpg
import httpx

from shared.campaign import load_campaign
from tests.e2e.system_load import ServiceProcess, consumer_lags, percentile, start_system
from tests.support.actors import auth

FULL = {"projects": 3000, "households": 15000, "items": 10000}
IDLE_EVERY = 5            # every fifth project is idle: on the 台账, with an item opened for it
RETURNED_EVERY = 10       # every tenth item's 销号 is returned once before it is verified
HOUSEHOLDS_PER_CALL = 50
YEARS = (2022, 2023)
SERVICES = ("registry", "rectification", "inspection", "notifier")
CAMPAIGN_TZ = ZoneInfo("Asia/Shanghai")
CLOCK_START = datetime(2024, 3, 1, 8, 0, tzinfo=CAMPAIGN_TZ)
CAMPAIGN_END = date(2024, 5, 31)


# ----- the city ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectPlan:
    key: str          # the bench's handle; the registry assigns the project id
    unit: str
    township: str
    idle: bool


@dataclass(frozen=True)
class ProgrammePlan:
    unit: str
    township: str
    year: int
    households: int


@dataclass(frozen=True)
class CityPlan:
    scale: float
    units: tuple[str, ...]
    projects: tuple[ProjectPlan, ...]
    programmes: tuple[ProgrammePlan, ...]
    self_items: tuple[tuple[str, int], ...]   # (unit, index of one of the unit's projects)

    @property
    def ledger_items(self) -> int:
        return sum(p.idle for p in self.projects)

    @property
    def items(self) -> int:
        return self.ledger_items + len(self.self_items)

    @property
    def households(self) -> int:
        return sum(p.households for p in self.programmes)


def _spread(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def plan_city(scale: float) -> CityPlan:
    """The synthetic city at `scale` (1.0: ten times Ezhou), spread over the campaign file's units
    and townships. Deterministic: the same scale plans the same city."""
    if scale <= 0:
        raise ValueError("--scale must be positive")
    campaign = load_campaign()
    units = tuple(campaign.unit_codes)
    townships = [(t.unit, t.name) for t in campaign.townships]
    of_unit = {unit: [name for u, name in townships if u == unit] for unit in units}
    n_projects = max(len(units), round(FULL["projects"] * scale))

    def project(n: int) -> ProjectPlan:   # units in turn, then each unit's townships in turn
        unit = units[n % len(units)]
        names = of_unit[unit]
        return ProjectPlan(f"p{n:05d}", unit, names[(n // len(units)) % len(names)],
                           # one in IDLE_EVERY, a different unit's in each round of the units
                           idle=n % IDLE_EVERY == (n // len(units)) % IDLE_EVERY)

    projects = tuple(project(n) for n in range(n_projects))
    programme_keys = [(unit, name, year) for year in YEARS for unit, name in townships]
    sizes = _spread(max(len(programme_keys), round(FULL["households"] * scale)), len(programme_keys))
    programmes = tuple(ProgrammePlan(u, t, y, size) for (u, t, y), size in zip(programme_keys, sizes,
                                                                              strict=True))
    ledger = sum(p.idle for p in projects)
    by_unit = {unit: [i for i, p in enumerate(projects) if p.unit == unit] for unit in units}
    n_self = max(len(units), round(FULL["items"] * scale) - ledger)
    self_items = tuple((units[n % len(units)], by_unit[units[n % len(units)]][
        (n // len(units)) % len(by_unit[units[n % len(units)]])]) for n in range(n_self))
    return CityPlan(scale, units, projects, programmes, self_items)


def project_body(plan: ProjectPlan) -> dict[str, Any]:
    operating = {"operator": {"kind": "professional", "name": "(示例)颐康养老服务有限公司",
                              "contract_start": "2023-01-01", "contract_end": "2026-12-31"},
                 "services": ["meal_assistance", "day_care", "cleaning_assistance"],
                 "claimed_status": "operating"}
    idle = {"operator": {"kind": "none"}, "services": [], "claimed_status": "not_operating"}
    return {"project_type": "canteen", "unit": plan.unit, "township": plan.township,
            "project_year": 2022, "provincial_key": False,
            "name": f"{plan.township}(示例)城市基准{plan.key}幸福食堂",
            **(idle if plan.idle else operating)}


def household_batches(programme: ProgrammePlan, programme_id: str) -> Iterator[dict[str, Any]]:
    place = zlib.crc32(programme.township.encode()) % 10**6
    codes = [f"{programme.unit}-{programme.year}-{place:06d}-{n:05d}"
             for n in range(programme.households)]
    for start in range(0, len(codes), HOUSEHOLDS_PER_CALL):
        yield {"programme_id": programme_id, "households": [
            {"household_code": code, "village": f"{programme.township}示例村",
             "adaptation_year": programme.year, "items": ["anti_slip_floor", "bathroom_grab_bar"],
             "acceptance_date": f"{programme.year}-09-15", "name": "王某某(示例)",
             "address": f"{programme.township}示例村(示例){n % 40}组",
             "phone": f"138{zlib.crc32(code.encode()) % 10**8:08d}"}
            for n, code in enumerate(codes[start:start + HOUSEHOLDS_PER_CALL], start)]}


def photo_hash(problem_id: str, round_: int) -> str:
    import hashlib

    return hashlib.sha256(f"{problem_id}-{round_}".encode()).hexdigest()


# ----- driving it over HTTP -------------------------------------------------------------------------


@dataclass
class Commands:
    """Every command the bench sends, timed by kind; refusals are failures of the run."""

    clients: dict[str, httpx.AsyncClient]
    latencies: dict[str, list[float]] = field(default_factory=dict)
    retries: int = 0

    async def send(self, kind: str, service: str, path: str, who: str, body: dict[str, Any],
                   status: int = 200, *, retry_unknown: bool = False) -> dict[str, Any]:
        while True:
            began = time.monotonic()
            response = await self.clients[service].post(path, json=body, headers=auth(who))
            took = time.monotonic() - began
            if response.status_code == status:
                self.latencies.setdefault(kind, []).append(took)
                answer: dict[str, Any] = response.json()
                return answer
            if retry_unknown and response.status_code == 404:
                self.retries += 1   # the project has not reached rectification's view yet
                await asyncio.sleep(0.2)
                continue
            raise AssertionError(f"{kind}: {response.status_code} {response.text[:300]}")


async def in_parallel(workers: int, jobs: Iterator[Callable[[], Awaitable[None]]]) -> None:
    async def worker() -> None:
        for job in jobs:
            await job()

    await asyncio.gather(*(worker() for _ in range(workers)))


async def item_life(commands: Commands, unit: str, problem_id: str, returned: bool) -> None:
    rep, rev = f"rep-{unit}-1", f"rev-{unit}-1"
    await commands.send("start", "rectification", "/problems/start", rep,
                        {"problem_id": problem_id, "plan": "落实整改责任，限期整改(示例)"})
    rounds = 2 if returned else 1
    for round_ in range(1, rounds + 1):
        await commands.send("request 销号", "rectification", "/problems/request-close-out", rep, {
            "problem_id": problem_id, "evidence_text": f"整改照片与台账资料(示例)第{round_}次",
            "attachment_hashes": [photo_hash(problem_id, round_)]})
        if round_ < rounds:
            await commands.send("return", "rectification", "/problems/return", rev,
                                {"problem_id": problem_id, "reason": "佐证材料不全，请补充(示例)"})
    await commands.send("verify", "rectification", "/problems/verify", rev,
                        {"problem_id": problem_id, "conclusion": "经核验已整改到位(示例)"})


@dataclass
class Observed:
    wall: float
    commands_done: float     # the last command answered, seconds after the first was sent
    events: int
    counts: dict[str, int]
    event_latency: dict[str, float]
    rss: dict[str, list[float]]
    mails: int


async def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def wait_for(what: str, check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        await asyncio.sleep(0.25)


async def final_counts(dsn: str) -> dict[str, int]:
    """What the city's work left in every service's read model."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("""
            SELECT
              (SELECT count(*) FROM registry.projects) AS registry_projects,
              (SELECT count(*) FROM rectification.projects) AS rectification_projects,
              (SELECT count(*) FROM inspection.projects WHERE kind = 'facility') AS inspection_projects,
              (SELECT count(*) FROM registry.households) AS registry_households,
              (SELECT count(*) FROM inspection.households) AS inspection_households,
              (SELECT count(*) FROM rectification.problems) AS items,
              (SELECT count(*) FROM rectification.problems WHERE status = 'closed') AS closed,
              (SELECT count(*) FROM registry.rectification_items) AS registry_items,
              (SELECT count(*) FROM registry.ledger WHERE rectified_problem_id IS NOT NULL)
                 AS entries_rectified,
              (SELECT count(*) FROM notifier.obligations WHERE kind = 'problem') AS obligations,
              (SELECT count(*) FROM notifier.obligations WHERE kind = 'problem'
                 AND status = 'fulfilled') AS obligations_met,
              (SELECT count(*) FROM notifier.reminders WHERE status = 'sent') AS reminders_sent,
              (SELECT count(*) FROM es.events) AS events,
              (SELECT count(*) FROM es.ledger) AS sequenced""")
        return dict(row)
    finally:
        await conn.close()


async def event_latencies(dsn: str) -> dict[str, float]:
    """Commit → the other service's read model, for every event another service consumed: the
    producer's row time to the consumer's inbox row (the same transaction as its read model).
    Both are clock_timestamp() inside their transactions, so each is within a commit of the truth."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("""
            SELECT count(*) AS n,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY lat) AS p50,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY lat) AS p99,
                   max(lat) AS max
              FROM (SELECT extract(epoch FROM i.handled_at - e.recorded_at) AS lat
                      FROM es.inbox i JOIN es.events e USING (event_id)
                     WHERE i.consumer NOT LIKE '%:%'
                       AND split_part(i.consumer, '.', 1) <> split_part(e.event_type, '.', 1)) x""")
        return {k: float(v or 0) for k, v in dict(row).items()}
    finally:
        await conn.close()


async def run_city(plan: CityPlan, dsn: str, prefix: str, data_dir: Path, *, concurrency: int = 8,
                   catch_up_timeout: float = 3600, clock_end: date = CAMPAIGN_END, **settings: str
                   ) -> tuple[Observed, Commands, dict[str, ServiceProcess]]:
    """Start the four processes, play the city through them, wait until every consumer has caught
    up and every effect is in place; the processes are stopped before this returns."""
    processes = await start_system(
        dsn, prefix, data_dir, services=SERVICES, amqp_urls=dict.fromkeys(SERVICES, AMQP),
        notifier_simulated_clock_start=CLOCK_START.isoformat(), **settings)
    rss: dict[str, list[float]] = {name: [] for name in processes}
    limits = httpx.Limits(max_connections=concurrency + 4)
    clients = {name: httpx.AsyncClient(base_url=p.url, timeout=120, limits=limits)
               for name, p in processes.items()}
    commands = Commands(clients)
    consumers = {c.name: s for s, c in all_consumers()}
    done = asyncio.Event()

    async def sample_memory() -> None:
        while not done.is_set():
            for name, process in processes.items():
                if (value := process.rss_mb()) is not None:
                    rss[name].append(value)
            await asyncio.sleep(1.0)

    async def walk_the_clock() -> None:
        """The notifier's clock to each working day's sending time in turn, a second apart while
        the work goes on (half a second after): the campaign's reminders fall due and are sent.
        A reminder goes out on its own day or not at all, so no working day is jumped over."""
        campaign = load_campaign()
        day = campaign.working_day_on_or_after(CLOCK_START.date())
        while day <= clock_end:
            moment = campaign.local_datetime(day, campaign.reminders.send_at) + timedelta(minutes=1)
            await commands.send("notifier clock", "notifier", "/clock", "admin-1",
                                {"now": moment.isoformat()})
            await asyncio.sleep(0.5 if done.is_set() else 1.0)
            day = campaign.working_day_on_or_after(day + timedelta(days=1))

    sampling = asyncio.create_task(sample_memory())
    clock: asyncio.Task[None] | None = None
    reporting: asyncio.Task[None] | None = None
    try:
        began = time.monotonic()
        for unit in plan.units:   # 附件1 of every unit, the first thing the campaign asks for
            for role, name in (("leader", "王某某(示例)"), ("liaison", "陈某某(示例)")):
                await commands.send("liaison", "registry", "/liaisons", f"rep-{unit}-1", {
                    "unit": unit, "role": role, "name": name, "gender": "female",
                    "position": "副局长" if role == "leader" else "科长",
                    "mobile": "13800009876"}, 201)
        project_ids: list[str] = [""] * len(plan.projects)

        def register(i: int) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                p = plan.projects[i]
                answer = await commands.send("register project", "registry", "/projects",
                                             f"rep-{p.unit}-1", project_body(p), 201)
                project_ids[i] = answer["project_id"]
            return job

        await in_parallel(concurrency, (register(i) for i in range(len(plan.projects))))
        clock = asyncio.create_task(walk_the_clock())

        async def households() -> None:
            for programme in plan.programmes:
                answer = await commands.send("register programme", "registry", "/programmes",
                                             f"rep-{programme.unit}-1", {
                                                 "unit": programme.unit, "township": programme.township,
                                                 "year": programme.year}, 201)
                programme_id = answer["programme_id"]
                for body in household_batches(programme, programme_id):
                    await commands.send(f"register {HOUSEHOLDS_PER_CALL} households", "registry",
                                        f"/programmes/{programme_id}/households",
                                        f"rep-{programme.unit}-1", body, 201)

        async def ledger_items() -> None:
            """The items rectification opened for idle projects, each through its life cycle."""
            async def opened() -> bool:
                count = await fetchval(dsn, "SELECT count(*) FROM rectification.problems "
                                            "WHERE source = 'ledger'")
                return bool(count >= plan.ledger_items)

            await wait_for("every idle project's item opened", opened, catch_up_timeout)
            conn = await asyncpg.connect(dsn)
            try:
                rows = await conn.fetch("SELECT problem_id::text, unit FROM rectification.problems "
                                        "WHERE source = 'ledger' ORDER BY seq_no")
            finally:
                await conn.close()
            await in_parallel(max(1, concurrency // 4), (
                (lambda r=r, n=n: item_life(commands, r["unit"], r["problem_id"],
                                            n % RETURNED_EVERY == 0))
                for n, r in enumerate(rows)))

        today = datetime.now(CAMPAIGN_TZ).date()

        def self_item(n: int) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                unit, index = plan.self_items[n]
                problem_id = str(uuid.uuid4())
                await commands.send("register item", "rectification", "/problems/register",
                                    f"rep-{unit}-1", {
                                        "problem_id": problem_id, "project_id": project_ids[index],
                                        "description": f"自查发现：助餐服务记录不全(示例){n}",
                                        "deadline": (today + timedelta(days=30)).isoformat(),
                                        "responsible_person": "张某某(示例)"},
                                    201, retry_unknown=True)
                await item_life(commands, unit, problem_id, n % RETURNED_EVERY == 0)
            return job

        async def progress() -> None:
            """A line every 30 s: a run cut short still shows how far it got, and how fast."""
            while True:
                await asyncio.sleep(30)
                counts = await final_counts(dsn)
                lags = await consumer_lags(processes, consumers)
                print(f"[{time.monotonic() - began:6.0f} s] events {counts['events']:,} · items "
                      f"{counts['items']:,}, closed {counts['closed']:,} · notifier obligations met "
                      f"{counts['obligations_met']:,} · households in inspection "
                      f"{counts['inspection_households']:,} · lags "
                      f"{ {k: v for k, v in lags.items() if v} }", flush=True)

        reporting = asyncio.create_task(progress())
        await asyncio.gather(households(), ledger_items(),
                             in_parallel(concurrency, (self_item(n)
                                                       for n in range(len(plan.self_items)))))
        commands_done = time.monotonic() - began
        print(f"every command answered after {commands_done:.0f} s", flush=True)
        done.set()
        await clock

        async def settled() -> bool:
            counts = await final_counts(dsn)
            lags = await consumer_lags(processes, consumers)
            return (counts["closed"] >= plan.items and counts["entries_rectified"] >= plan.ledger_items
                    and counts["inspection_households"] >= plan.households
                    and counts["obligations_met"] >= plan.items
                    and counts["sequenced"] == counts["events"]
                    and all(lag == 0 for lag in lags.values()))

        await wait_for("every consumer caught up", settled, catch_up_timeout)
        wall = time.monotonic() - began
        counts = await final_counts(dsn)
        mails = len(list((data_dir / "notifier" / "mail").rglob("*.eml")))
        latencies = await event_latencies(dsn)
        return (Observed(wall, commands_done, counts["events"], counts, latencies, rss, mails),
                commands, processes)
    except BaseException:
        for name, process in processes.items():
            print(f"--- {name}, its last lines:\n{process.tail(60)}", file=sys.stderr)
        raise
    finally:
        done.set()
        for task in (sampling, clock, reporting):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for client in clients.values():
            await client.aclose()
        for process in processes.values():
            if process.proc is not None and process.proc.poll() is None:
                process.terminate()


# ----- raw baselines, same run ----------------------------------------------------------------------


async def raw_publish_consume(count: int, window: int = 100) -> float:
    """aio-pika alone: `count` persistent messages through a quorum queue, published with confirms
    (`window` outstanding) while one consumer (prefetch 100, manual ack) drains them; msgs/s."""
    publisher, consumer = await aio_pika.connect(AMQP), await aio_pika.connect(AMQP)
    async with publisher, consumer:
        out = await publisher.channel(publisher_confirms=True)
        into = await consumer.channel()
        await into.set_qos(prefetch_count=100)
        queue = await into.declare_queue(f"bench.raw.{uuid.uuid4().hex[:8]}", durable=True,
                                          arguments={"x-queue-type": "quorum"})
        received = 0
        all_in = asyncio.Event()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal received
            await message.ack()
            received += 1
            if received >= count:
                all_in.set()

        tag = await queue.consume(on_message)
        body = ('{"specversion":"1.0","type":"rectification.CloseOutVerified","data":{"note":"'
                + "经核验已整改到位" * 30 + '"}}').encode()
        gate = asyncio.Semaphore(window)

        async def one(i: int) -> None:
            async with gate:
                await out.default_exchange.publish(
                    aio_pika.Message(body, message_id=str(i), delivery_mode=2), routing_key=queue.name)

        began = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(count)))
        await asyncio.wait_for(all_in.wait(), 600)
        rate = count / (time.monotonic() - began)
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
    return rate


async def raw_inserts(dsn: str, events: int) -> tuple[float, list[float], int]:
    """bench/store_bench.py's raw-8 (single-row INSERTs, 8 connections) in the city's database,
    for as long as `events` take at its usual rate (at least 5 s, at most 60 s)."""
    from bench.store_bench import RAW_TABLE, raw_case

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(RAW_TABLE)
    finally:
        await conn.close()
    seconds = min(60.0, max(5.0, events / 5000))
    figure = await raw_case(dsn, 8, seconds)
    return figure.rate, figure.latencies, round(figure.rate * seconds)


# ----- the report -----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def report(plan: CityPlan, observed: Observed, commands: Commands, raw_insert: tuple[float, list[float], int],
           raw_bus: float, raw_trip: list[float], concurrency: int) -> None:
    c = observed.counts
    rate = observed.events / observed.wall
    print(f"\n## A city at scale {plan.scale:g} (1 = ten times Ezhou), {concurrency} clients at once\n")
    print(f"projects {len(plan.projects):,} ({plan.ledger_items:,} idle, on the 台账) · households "
          f"{plan.households:,} · items {plan.items:,} ({plan.ledger_items:,} from the 台账, "
          f"{len(plan.self_items):,} registered; {len(commands.latencies.get('return', [])):,}"
          f" returned once) · every one closed: {c['closed']:,} · 台账 entries marked rectified: "
          f"{c['entries_rectified']:,} · households in inspection's view: {c['inspection_households']:,}"
          f" · reminders sent: {c['reminders_sent']:,} ({observed.mails:,} mails) · "
          f"registrations retried while the project was on its way: {commands.retries}\n")
    every = [t for values in commands.latencies.values() for t in values]
    r50, r99 = percentile(raw_trip, 50), percentile(raw_trip, 99)
    i50, i99 = percentile(raw_insert[1], 50), percentile(raw_insert[1], 99)
    print("| figure | ours | raw baseline, same run | ratio |\n|---|---:|---:|---|")
    print(f"| events (total in the store) | {observed.events:,} | | |")
    print(f"| HTTP commands | {len(every):,} | | |")
    print(f"| wall time, first command → every consumer caught up | {observed.wall:,.1f} s | | |")
    print(f"| of which: first command → last command answered | {observed.commands_done:,.1f} s | | |")
    print(f"| **events/s end to end** | **{rate:,.1f}/s** | {raw_insert[0]:,.0f}/s raw INSERT, 8 conns "
          f"({raw_insert[2]:,} rows) | **{rate / raw_insert[0]:.3f}x** |")
    print(f"| the same | | {raw_bus:,.0f} msgs/s raw aio-pika publish + consume, quorum "
          f"({observed.events:,} msgs) | **{rate / raw_bus:.3f}x** |")
    print(f"| HTTP commands/s | {len(every) / observed.wall:,.1f}/s | | |")
    p50, p99 = percentile(every, 50), percentile(every, 99)
    print(f"| HTTP command latency p50 | {ms(p50)} | {ms(i50)} raw INSERT | {p50 / i50:.0f}x |")
    print(f"| HTTP command latency p99 | {ms(p99)} | {ms(i99)} raw INSERT | {p99 / i99:.0f}x |")
    lat = observed.event_latency
    print(f"| event latency, commit → other service's read model, p50 ({lat['n']:,.0f} deliveries) "
          f"| {ms(lat['p50'])} | {ms(r50)} raw round trip at {rate:,.0f}/s | {lat['p50'] / r50:.0f}x |")
    print(f"| the same, p99 | {ms(lat['p99'])} | {ms(r99)} | {lat['p99'] / r99:.0f}x |")
    print(f"| the same, max | {ms(lat['max'])} | | |")
    for name, values in observed.rss.items():
        if values:
            print(f"| RSS {name} | {max(values):,.0f} MB peak, {values[-1]:,.0f} MB at the end | | |")
    print("\n| command | count | p50 | p99 |\n|---|---:|---:|---:|")
    for kind, values in commands.latencies.items():
        print(f"| {kind} | {len(values):,} | {ms(percentile(values, 50))} | "
              f"{ms(percentile(values, 99))} |")


async def main() -> None:
    from bench.system_bench import delete_bus, drop_database, make_database

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="1 = 3,000 projects, 15,000 households, 10,000 items; 0.1 takes minutes")
    parser.add_argument("--concurrency", type=int, default=8, help="HTTP clients at once")
    args = parser.parse_args()
    plan = plan_city(args.scale)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    await broker_users()
    name, dsn = await make_database()
    prefix = f"t{uuid.uuid4().hex[:10]}."   # within the provisioned users' permissions
    print(f"database {name}, bus prefix {prefix}", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            observed, commands, _ = await run_city(plan, dsn, prefix, Path(tmp),
                                                   concurrency=args.concurrency)
        print(f"city done in {observed.wall:.0f} s; raw baselines…", flush=True)
        raw_insert = await raw_inserts(dsn, observed.events)
        raw_bus = await raw_publish_consume(observed.events)
        from bench.system_bench import raw_round_trips

        event_rate = observed.events / observed.wall
        raw_trip = await raw_round_trips(event_rate, min(20.0, max(5.0, 2000 / event_rate)))
        report(plan, observed, commands, raw_insert, raw_bus, raw_trip, args.concurrency)
    finally:
        await drop_database(name)
        await delete_bus(prefix)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


async def broker_users() -> None:
    """Every service's broker user with its test password, as the test suite provisions them
    (tests/support/broker.py); the processes read the passwords from LOOKBACK_SECRETS_DIR."""
    from tests.support.broker import provision_test_broker, secrets_dir

    if "LOOKBACK_SECRETS_DIR" not in os.environ:
        os.environ["LOOKBACK_SECRETS_DIR"] = str(secrets_dir(SERVICES))
    await provision_test_broker(SERVICES)


def all_consumers() -> list[tuple[str, Any]]:
    from services.system import all_consumers as every

    return [(s, c) for s, c in every() if s in SERVICES]


AMQP = os.environ.get("LOOKBACK_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

if __name__ == "__main__":
    asyncio.run(main())
