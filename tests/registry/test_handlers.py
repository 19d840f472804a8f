"""The import through the registry's pipeline against real PostgreSQL: one multi-stream append with
an expected version per stream, so a concurrent change anywhere makes it decide again from fresh
state, never half-apply."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Awaitable, Callable
from zoneinfo import ZoneInfo

import pytest

from services.registry import commands as c
from services.registry.api import import_summary
from services.registry.events import CONTRACT
from services.registry.handlers import COMMANDS, RegistryDeps
from services.registry.importing import ImportPlan, ImportRefused, parse_xlsx, rows_to_xlsx
from shared.campaign import load_campaign
from shared.messages import Actor, Role
from shared.personal_data import MasterKey, PostgresPersonalDataVault
from shared.pipeline import CommandPipeline
from shared.store import PostgresEventStore, create_pool
from tests.registry.test_api_import import HOUSEHOLD_ROWS, PROJECT_ROWS

MASTER = MasterKey(bytes(range(32)))  # a test's master key, never a real one

pytestmark = pytest.mark.integration

NOW = datetime(2024, 4, 10, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
ADMIN = Actor(id="admin-1", name="市局管理员(示例)", role=Role.CITY_ADMIN)
OTHER = Actor(id="ec-r", name="鄂城填报人(示例)", role=Role.DISTRICT_REPORTER, unit="echeng")


class InterferingStore:
    """The real store, with something else written just before the first append."""

    def __init__(self, inner: PostgresEventStore, interference: Callable[[], Awaitable[Any]]) -> None:
        self.inner, self.interference, self.appends = inner, interference, 0

    async def append(self, events, expected=None, *, conn=None):
        self.appends += 1
        if self.appends == 1:
            await self.interference()
        return await self.inner.append(events, expected, conn=conn)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
async def registry_pool(database):
    pool = await create_pool(database, role="lookback_registry", max_size=4)
    yield pool
    await pool.close()


def pipeline(store: Any, deps: RegistryDeps) -> CommandPipeline[RegistryDeps]:
    return CommandPipeline(service="registry", table=COMMANDS, events=CONTRACT.registry(),
                           store=store, deps=deps)


def plan() -> ImportPlan:
    campaign = load_campaign()
    result = parse_xlsx(rows_to_xlsx(PROJECT_ROWS, HOUSEHOLD_ROWS), campaign, today=NOW.date())
    assert isinstance(result, ImportPlan), result
    return result


async def event_rows(pool, correlation_id) -> list[Any]:
    return await pool.fetch("SELECT stream_id, event_type, tx_id FROM es.events "
                            "WHERE metadata->>'correlation_id' = $1", str(correlation_id))


async def test_a_concurrent_identical_registration_makes_the_import_decide_again_without_duplicates(registry_pool):
    deps = RegistryDeps(load_campaign(), PostgresPersonalDataVault(registry_pool, MASTER))
    store = PostgresEventStore(registry_pool)
    the_plan = plan()
    first_project = next(item.command for item in the_plan.items if isinstance(item.command, c.RegisterProject))

    async def register_it_first() -> None:
        await pipeline(store, deps).run(first_project, actor=OTHER, now=NOW)

    interfering = InterferingStore(store, register_it_first)
    result = await pipeline(interfering, deps).run(the_plan, actor=ADMIN, now=NOW)
    outcome = import_summary(result)

    assert interfering.appends == 2  # refused once (expected version), decided again, appended
    assert (outcome["projects_registered"], outcome["households_registered"],
            outcome["unchanged"]) == (2, 6, 1)
    registered = await registry_pool.fetch(
        "SELECT metadata->'actor'->>'id' AS actor FROM es.events WHERE event_type = 'registry.ProjectRegistered'")
    assert sorted(r["actor"] for r in registered) == ["admin-1", "admin-1", "ec-r"]
    rows = await event_rows(registry_pool, result.correlation_id)
    assert len(rows) == outcome["events_appended"] and len({r["tx_id"] for r in rows}) == 1


async def test_a_concurrent_conflicting_registration_refuses_the_whole_import(registry_pool):
    deps = RegistryDeps(load_campaign(), PostgresPersonalDataVault(registry_pool, MASTER))
    store = PostgresEventStore(registry_pool)
    the_plan = plan()
    first_project = next(item.command for item in the_plan.items if isinstance(item.command, c.RegisterProject))

    async def register_something_else_under_that_name() -> None:
        clash = first_project.model_copy(update={"services": ("day_care",)})
        await pipeline(store, deps).run(clash, actor=OTHER, now=NOW)

    interfering = InterferingStore(store, register_something_else_under_that_name)
    with pytest.raises(ImportRefused) as refused:
        await pipeline(interfering, deps).run(the_plan, actor=ADMIN, now=NOW)
    assert [(e.sheet, e.row, e.column) for e in refused.value.errors] == [("projects", 2, "name")]
    counts = await registry_pool.fetchrow(
        "SELECT count(*) FILTER (WHERE metadata->'actor'->>'id' = 'admin-1') AS imported, "
        "count(*) AS total FROM es.events")
    assert (counts["imported"], counts["total"]) == (0, 2)  # the clash and its ledger entry only
    assert await registry_pool.fetchval(
        "SELECT count(*) FROM es.events WHERE event_type = 'registry.HouseholdsRegistered'") == 0
    # The keys of the refused import were created in its transaction, and went with it.
    assert await registry_pool.fetchval("SELECT count(*) FROM pii.subject_keys") == 0
