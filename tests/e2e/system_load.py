"""The system as production runs it, under a steady workload: one `lookback serve` process per
service on the real PostgreSQL and RabbitMQ, the registry registering projects that go straight
onto the 台账 (each becomes one automatic item in rectification and one project in inspection's
view), and the faults we inflict on it. Shared by the load-and-fault test and bench/system_bench.py.
"""
from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from shared.hosting import ready_addresses
from tests.e2e.test_embedded_up import LOOKBACK, free_port_base
from tests.support.actors import TOKENS_JSON, auth
from tests.support.broker import declare_system_bus
from tests.support.databases import ADMIN_DSN
from tests.support.services import TEST_MASTER_KEY, child_env

AUTH = auth("admin-1")   # the city admin of tests/support's actors (TOKENS_JSON knows them all)
UNIT, TOWNSHIP, VILLAGE = "echeng", "凤凰街道", "滨湖社区"


def project_body(n: int, run: str) -> dict[str, Any]:
    """A project that is registered "not operating": it goes onto the 台账 at once."""
    return {"project_type": "community_center", "unit": UNIT, "township": TOWNSHIP,
            "village": VILLAGE, "project_year": 2022, "provincial_key": False,
            "name": f"{TOWNSHIP}(示例)负载{run}-{n:05d}社区居家养老服务中心",
            "operator": {"kind": "professional", "name": "(示例)颐康养老服务有限公司",
                         "contract_start": "2023-01-01", "contract_end": "2025-12-31"},
            "services": ["meal_assistance", "day_care", "cleaning_assistance"],
            "claimed_status": "not_operating"}


# Lines a process writes for every message and every request: kept only in the tail.
ROUTINE = ("message_handled", "http_request")


@dataclass
class ServiceProcess:
    """One `lookback serve <service>` process; its output is kept (the last lines) for failures."""

    service: str
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[str] | None = None
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=400))
    notable: list[str] = field(default_factory=list)
    _ready: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._ready = threading.Event()
        self.proc = subprocess.Popen([LOOKBACK, "serve", self.service], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=self.env, text=True)
        threading.Thread(target=self._read, args=(self.proc, self._ready), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str], ready: threading.Event) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)
            if ready_addresses(line) is not None:
                ready.set()
            elif not any(f'"event": "{routine}"' in line for routine in ROUTINE):
                self.notable.append(line)

    async def ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready.is_set():
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.service} never said READY:\n" + self.tail())
            await asyncio.sleep(0.05)

    def tail(self, n: int = 40) -> str:
        return "".join(list(self.lines)[-n:])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 120.0) -> int:
        """SIGTERM, then wait for the exit; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def rss_mb(self) -> float | None:
        """Resident memory of the process now (Linux /proc), in MB."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None

    def logged(self, event: str) -> list[dict[str, Any]]:
        found = []
        for line in self.notable:
            if f'"{event}"' in line:
                try:
                    found.append(json.loads(line))
                except ValueError:
                    pass
        return found


def service_env(service: str, *, database: str, amqp_url: str, prefix: str, port: int,
                data_dir: Path, sequencer: bool, **settings: str) -> dict[str, str]:
    env = child_env()
    env.update({"LOOKBACK_DATABASE_URL": database, "LOOKBACK_AMQP_URL": amqp_url,
                "LOOKBACK_BUS_PREFIX": prefix, "LOOKBACK_HTTP_PORT": str(port),
                "LOOKBACK_TOKENS_JSON": TOKENS_JSON, "LOOKBACK_LOG_JSON": "true",
                "LOOKBACK_METRICS_ACCESS": "public", "LOOKBACK_DATA_DIR": str(data_dir / service),
                "LOOKBACK_PII_MASTER_KEY": TEST_MASTER_KEY,
                "LOOKBACK_RUN_SEQUENCER": "true" if sequencer else "false"})
    env.update({f"LOOKBACK_{k.upper()}": v for k, v in settings.items()})
    return env


async def start_system(database: str, prefix: str, data_dir: Path, *, amqp_urls: dict[str, str],
                       services: Sequence[str] = ("registry", "rectification", "inspection"),
                       own: dict[str, dict[str, str]] | None = None,
                       **settings: str) -> dict[str, ServiceProcess]:
    """One process per service, started together; the first service leads the sequencing. The
    bus is declared first, as `lookback provision` does before any service starts. `settings`
    go to every process, `own[service]` to that one only."""
    await declare_system_bus(prefix)
    base = free_port_base()
    processes = {}
    for i, service in enumerate(services):
        env = service_env(service, database=database, amqp_url=amqp_urls[service], prefix=prefix,
                          port=base + i, data_dir=data_dir, sequencer=i == 0,
                          **{**settings, **(own or {}).get(service, {})})
        processes[service] = ServiceProcess(service, base + i, env)
        processes[service].start()
    try:
        for process in processes.values():
            await process.ready()
    except BaseException:   # none left running behind a failed start (a port taken meanwhile)
        for process in processes.values():
            if process.proc is not None and process.proc.poll() is None:
                process.kill()
        raise
    return processes


@dataclass
class Accepted:
    project_id: str
    answered: float     # time.monotonic() when the registry answered 201


class Workload:
    """Registers projects at a steady rate, a few requests at a time, until stopped or done."""

    def __init__(self, registry_url: str, *, rate: float, run: str, concurrency: int = 4) -> None:
        self.registry_url, self.rate, self.run = registry_url, rate, run
        self.concurrency = concurrency
        self.accepted: list[Accepted] = []
        self.refused: list[str] = []
        self.failed = 0
        self._stop = asyncio.Event()
        self._next = 0
        self.done = False

    def stop(self) -> None:
        self._stop.set()

    async def run_for(self, seconds: float, limit: int | None = None) -> None:
        """Offer registrations for `seconds` (or until `limit` were offered)."""
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=self.registry_url, headers=AUTH, timeout=30) as client:
            async def one(n: int) -> None:
                try:
                    response = await client.post("/projects", json=project_body(n, self.run))
                except httpx.HTTPError:
                    self.failed += 1
                    return
                if response.status_code == 201:
                    self.accepted.append(Accepted(response.json()["project_id"], time.monotonic()))
                else:
                    self.refused.append(f"{response.status_code} {response.text[:200]}")

            running: set[asyncio.Task[None]] = set()
            while (not self._stop.is_set() and time.monotonic() - started < seconds
                   and (limit is None or self._next < limit)):
                due = started + self._next / self.rate
                if due > time.monotonic():
                    await asyncio.sleep(due - time.monotonic())
                while len(running) >= self.concurrency:
                    _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                running.add(asyncio.create_task(one(self._next)))
                self._next += 1
            if running:
                await asyncio.wait(running)
        self.done = True

    @property
    def elapsed_rate(self) -> float:
        if len(self.accepted) < 2:
            return 0.0
        span = self.accepted[-1].answered - self.accepted[0].answered
        return (len(self.accepted) - 1) / span if span > 0 else 0.0


class ItemWatcher:
    """Notes when each project's automatic item first appears in rectification's read model."""

    def __init__(self, dsn: str, interval: float = 0.05) -> None:
        self.dsn, self.interval = dsn, interval
        self.seen: dict[str, float] = {}
        self._stop = asyncio.Event()

    async def run(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while not self._stop.is_set():
                rows = await conn.fetch("SELECT project_id FROM rectification.problems")
                now = time.monotonic()
                for row in rows:
                    self.seen.setdefault(row["project_id"], now)
                await asyncio.sleep(self.interval)
        finally:
            await conn.close()

    def stop(self) -> None:
        self._stop.set()


async def effects(dsn: str) -> dict[str, int]:
    """What the whole system did, counted from the store and the read models."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("""
            SELECT
              (SELECT count(*) FROM es.events WHERE event_type = 'registry.LedgerEntryAdded') AS entries,
              (SELECT count(*) FROM es.events WHERE event_type = 'rectification.ProblemRegistered'
                  AND payload->>'source' = 'ledger') AS items,
              (SELECT count(DISTINCT payload->>'source_ref') FROM es.events
                WHERE event_type = 'rectification.ProblemRegistered'
                  AND payload->>'source' = 'ledger') AS distinct_items,
              (SELECT count(*) FROM rectification.problems WHERE source = 'ledger') AS item_rows,
              (SELECT count(*) FROM registry.projects) AS projects,
              (SELECT count(*) FROM inspection.projects WHERE kind = 'facility') AS inspection_rows,
              (SELECT count(*) FROM es.events) AS events,
              (SELECT count(*) FROM es.ledger) AS sequenced""")
        return dict(row)
    finally:
        await conn.close()


async def hold_a_transaction(seconds: float) -> None:
    """A transaction open elsewhere in the cluster holds back the sequencing horizon: events
    committed meanwhile wait to be sequenced, and so does every read model."""
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        async with conn.transaction():
            await conn.fetchval("SELECT pg_current_xact_id()")
            await asyncio.sleep(seconds)
    finally:
        await conn.close()


async def metric(url: str, name: str, labels: str = "") -> float | None:
    """One sample of a gauge from a service's /metrics (None: absent)."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{url}/metrics")).text
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return None


async def consumer_lags(processes: dict[str, ServiceProcess], consumers: dict[str, str]
                        ) -> dict[str, float | None]:
    """Each named consumer's lag gauge, read from its service's /metrics."""
    return {name: await metric(processes[service].url, "lookback_consumer_lag_events",
                               f'consumer="{name}"') for name, service in consumers.items()}


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]
