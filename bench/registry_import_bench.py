"""Registry bulk import benchmark: 2,000 adapted households through the import handler on real
PostgreSQL, as one atomic multi-stream append.

    python bench/registry_import_bench.py [--dsn postgresql://postgres@127.0.0.1:5432/postgres]
                                          [--households 2000] [--repeat 3] [--no-projection]

Per run, in a fresh database this script creates (migrated) and drops:

  parse       the .xlsx workbook → an ImportPlan (openpyxl read + row checks)
  decide      decide_import alone, in memory, with throw-away keys (the pure part)
  import      the ImportRegistry command through the pipeline against PostgreSQL as `lookback_registry`: load every
              touched stream, fetch/create the subjects' keys (AES-GCM sealing of name, address,
              phone), decide, ONE append with an expected version per stream
  re-import   the same plan again: loads, decides "identical", appends nothing
  projection  (unless --no-projection) the registry service started in embedded mode: time until
              its read model `registry.households` holds every household (sequencer + projection)

Two shapes: `spread` puts the households over every township of four units and three years
(one programme stream per township and year, the realistic case) and `one-programme` puts them all
in one programme (one stream, one large event).
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator
from zoneinfo import ZoneInfo

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.registry.api import import_summary  # noqa: E402
from services.registry.events import CONTRACT  # noqa: E402
from services.registry.handlers import COMMANDS, RegistryDeps, import_decision  # noqa: E402
from services.registry.importing import ImportPlan, parse_xlsx, rows_to_xlsx  # noqa: E402
from shared.personal_data import MasterKey, InMemoryPersonalDataVault  # noqa: E402
from shared.pipeline import CommandPipeline, Decision  # noqa: E402
from shared.campaign import Campaign, load_campaign  # noqa: E402
from shared.messages import Actor, Role  # noqa: E402
from shared.migrations import migrate  # noqa: E402
from shared.personal_data import Keyring, PostgresPersonalDataVault  # noqa: E402
from services.system import migration_folders as all_migration_folders  # noqa: E402
from shared.store import PostgresEventStore, create_pool  # noqa: E402

MASTER = MasterKey(bytes(range(32)))  # a test's master key, never a real one

NOW = datetime(2024, 4, 10, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
ADMIN = Actor(id="bench", name="基准测试(示例)", role=Role.CITY_ADMIN)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙胡朱高林何郭马罗"


def household_rows(campaign: Campaign, count: int, shape: str) -> list[dict[str, Any]]:
    units = ("echeng", "huarong", "liangzihu", "linkong")
    places = [(unit, t.name) for unit in units for t in campaign.townships_of(unit)]
    if shape == "one-programme":
        places = places[:1]
    years = (2021, 2022, 2023) if shape == "spread" else (2022,)
    items = [item.name for item in campaign.adaptation_items][:5]
    rows = []
    for n in range(count):
        unit, township = places[n % len(places)]
        year = years[(n // len(places)) % len(years)]
        rows.append({
            "unit": campaign.unit(unit).area_name, "township": township, "village": f"(示例){township[:2]}村",
            "household_code": f"B-{n:05d}", "adaptation_year": year,
            "items": "、".join(items[(n + k) % len(items)] for k in range(2)),
            "acceptance_date": f"{year}-{6 + n % 6:02d}-{1 + n % 28:02d}",
            "name": f"{SURNAMES[n % len(SURNAMES)]}某某(示例)", "address": f"{township}(示例){n}号",
            "phone": f"1380{n:07d}" if n % 3 else ""})
    return rows


@asynccontextmanager
async def fresh_database(admin_dsn: str) -> AsyncIterator[str]:
    name = f"lookback_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn, *all_migration_folders())
        finally:
            await conn.close()
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def projection_seconds(dsn: str, expected: int) -> float:
    from services.registry.app import create_app
    from shared.settings import Settings

    app = create_app(Settings(database_url=dsn, amqp_url=None, poll_interval=0.02), clock=lambda: NOW)
    started = time.perf_counter()
    async with app.router.lifespan_context(app):
        conn = await asyncpg.connect(dsn)
        try:
            while await conn.fetchval("SELECT count(*) FROM registry.households") < expected:
                await asyncio.sleep(0.01)
                if time.perf_counter() - started > 120:
                    raise TimeoutError("projection did not catch up in 120 s")
        finally:
            await conn.close()
        return time.perf_counter() - started


async def one_run(admin_dsn: str, campaign: Campaign, workbook: bytes, households: int,
                  projection: bool) -> dict[str, float]:
    figures: dict[str, float] = {}
    started = time.perf_counter()
    plan = parse_xlsx(workbook, campaign, today=NOW.date())
    figures["parse"] = time.perf_counter() - started
    assert isinstance(plan, ImportPlan), plan.errors[:3]

    started = time.perf_counter()
    decision = import_decision(Decision(
        command=plan, states={}, inputs=Keyring(generate_missing=True), actor=ADMIN, now=NOW,
        deps=RegistryDeps(campaign, InMemoryPersonalDataVault())))
    figures["decide"] = time.perf_counter() - started

    async with fresh_database(admin_dsn) as dsn:
        pool = await create_pool(dsn, role="lookback_registry", max_size=10)
        try:
            commands = CommandPipeline(
                service="registry", table=COMMANDS, events=CONTRACT.registry(),
                store=PostgresEventStore(pool),
                deps=RegistryDeps(campaign, PostgresPersonalDataVault(pool, MASTER)))
            started = time.perf_counter()
            outcome = import_summary(await commands.run(plan, actor=ADMIN, now=NOW))
            figures["import"] = time.perf_counter() - started
            assert outcome["households_registered"] == households, outcome
            assert outcome["events_appended"] == decision.event_count
            figures["events"] = outcome["events_appended"]
            figures["streams"] = outcome["streams_written"]
            figures["payload_mb"] = await pool.fetchval(
                "SELECT sum(octet_length(payload::text)) FROM es.events") / 1e6
            started = time.perf_counter()
            again = import_summary(await commands.run(plan, actor=ADMIN, now=NOW))
            figures["reimport"] = time.perf_counter() - started
            assert again["events_appended"] == 0
        finally:
            await pool.close()
        if projection:
            figures["projection"] = await projection_seconds(dsn, households)
    return figures


def row(label: str, runs: list[dict[str, float]], households: int) -> str:
    med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    best_import = min(r["import"] for r in runs)
    cells = [label, f"{int(med['events'])}", f"{int(med['streams'])}", f"{med['payload_mb']:.2f}",
             f"{med['parse'] * 1000:.0f}", f"{med['decide'] * 1000:.0f}",
             f"{med['import'] * 1000:.0f} (best {best_import * 1000:.0f})",
             f"{med['events'] / med['import']:.0f}", f"{households / med['import']:.0f}",
             f"{med['reimport'] * 1000:.0f}"]
    cells.append(f"{med['projection'] * 1000:.0f}" if "projection" in med else "-")
    return " | ".join(cells)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--households", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-projection", action="store_true")
    args = parser.parse_args()

    campaign = load_campaign()
    lines = ["shape | events | streams | payload MB | parse ms | decide ms | import ms (median) | "
             "events/s | households/s | re-import ms | projection ms", "-" * 120]
    for shape in ("spread", "one-programme"):
        workbook = rows_to_xlsx(households=household_rows(campaign, args.households, shape))
        runs = [await one_run(args.dsn, campaign, workbook, args.households, not args.no_projection)
                for _ in range(args.repeat)]
        lines.append(row(shape, runs, args.households))
    print(f"registry import of {args.households} households, {args.repeat} runs each "
          f"(median; `import` = load + keys + decide + one append)")
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
