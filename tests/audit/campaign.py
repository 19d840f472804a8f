"""A small campaign across the services, for the audit tools: the registry lists projects (one on
the 台账 ledger), rectification opens the automatic item and closes a self-inspection item, the
inspection service draws its sample, the notifier keeps its calendar of them (on the real clock:
the 2024 campaign is over, so it sends nothing). Every service runs for real on one database
(local transport), each with its own clock."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

import tests.inspection.support as insp
import tests.rectification.api_support as rect
from services.inspection.app import create_app as inspection_app
from services.notifier.app import create_app as notifier_app
from services.rectification.app import create_app as rectification_app
from services.registry.app import create_app as registry_app
from services.system import specs
from tests.faults import eventually
from tests.notifier.support import notifier_settings, service_settings
from tests.rectification.support import at
from tests.registry import support as reg
from tests.shared.test_bus import running


@dataclass
class Campaign:
    registry: httpx.AsyncClient
    rectification: httpx.AsyncClient
    inspection: httpx.AsyncClient
    listed_project: str      # on the ledger: rectification opened an item for it
    good_project: str
    closed_problem: str      # a self-inspection item, raised and closed
    ledger_problem: str      # the automatic item of the ledger entry


async def caught_up(dsn: str) -> bool:
    """Everything appended is sequenced, and every projection and consumer has handled its part."""
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT (SELECT count(*) FROM es.events) <> "
                               "(SELECT count(*) FROM es.ledger)"):
            return False
        for spec in specs():
            for consumer in (*spec.projections, *spec.consumers):
                behind = await conn.fetchval(
                    """SELECT coalesce(max(l.global_position), 0) >
                              coalesce((SELECT global_position FROM es.positions WHERE name = $1), 0)
                         FROM es.ledger l JOIN es.events e ON e.event_id = l.event_id
                        WHERE e.category = ANY($2::text[]) AND e.event_type = ANY($3::text[])""",
                    f"local:{consumer.name}", list(consumer.categories), consumer.event_types)
                if behind:
                    return False
        return True
    finally:
        await conn.close()


async def _project(client: httpx.AsyncClient, **overrides) -> str:
    response = await client.post("/projects", json=reg.project_body(**overrides),
                                 headers=reg.as_("echeng-reporter"))
    assert response.status_code == 201, response.text
    return response.json()["project_id"]


@asynccontextmanager
async def campaign(dsn: str, tmp: Path) -> AsyncIterator[Campaign]:
    registry = registry_app(reg.registry_settings(dsn, data_dir=tmp / "registry"),
                            clock=lambda: reg.NOW)
    rect_clock = rect.Clock(at(2024, 4, 10))
    rectification = rectification_app(rect.settings_for(dsn, tmp / "rectification"),
                                      clock=rect_clock)
    insp_clock = insp.Clock(insp.FROZEN_AT)
    inspection = inspection_app(insp.settings_for(dsn, tmp / "inspection"), clock=insp_clock)
    notifier = notifier_app(service_settings(dsn, tmp / "notifier"),
                            notifier_settings=notifier_settings(None))
    async with running(registry) as r, running(rectification) as c, running(inspection) as i, \
            running(notifier):
        good = await _project(r, name="凤凰街道(示例)幸福食堂", project_type="canteen")
        listed = await _project(r, name="西山街道(示例)幸福食堂", project_type="canteen",
                                township="西山街道", services=["cleaning_assistance"])
        await rect.known_projects(c, good, listed)

        async def ledger_item() -> str | None:
            body = (await c.get("/problems", params={"project_id": listed},
                                headers=rect.auth("admin"))).json()
            return body["items"][0]["problem_id"] if body["items"] else None

        ledger_problem = await eventually(ledger_item, what="the ledger entry's automatic item")
        raised = await rect.register(c, "rep-echeng", good, problem_id=uuid.uuid4())
        problem_id = raised["problem_id"]
        await rect.start(c, "rep-echeng", problem_id)
        await rect.close(c, problem_id, "rep-echeng", "rev-echeng")
        await insp.drawn(i, insp_clock)
        await eventually(lambda: caught_up(dsn), what="every read model caught up")
        await asyncio.sleep(0)
        yield Campaign(r, c, i, listed, good, problem_id, ledger_problem)
