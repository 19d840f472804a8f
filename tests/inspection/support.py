"""The inspection service running for real: registry events as the registry would append them,
and helpers to walk a draw through its life over HTTP (actors, tokens, the clock and running a
service: tests/support; the draw's fixed instants: world.py)."""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from services.inspection.app import create_app
from services.registry import events as reg
from shared.messages import Event, new_event
from tests.inspection.world import AFTER_VISIT, DRAW_ID, DRAWN_AT, ENTROPY, ENTROPY_KNOWN_AT, FROZEN_AT
from tests.support.actors import auth, reporter
from tests.support.clock import Clock, at
from tests.support.databases import store_as
from tests.support.services import running, service_settings

EARLY_ON_VISIT_DAY = at(2024, 5, 10, 7, 30)

# Who runs the draws in these tests; district roles, the leader and the auditor may not.
INSPECTOR = auth("insp-1")
OUTSIDERS = ["leader-1", "auditor-1", "rep-echeng-1", "rev-echeng-1"]
REGISTRY_ACTOR = reporter("echeng")

# Stand-ins for the registry's per-subject ciphertext: they must never reach inspection's tables.
SEALED_MARK = "pii1.sealed-test-"


def inspection_clock() -> Clock:
    """Set to the frame's freezing; the service reads UTC, as from the real clock, and must decide
    in the campaign's local time itself."""
    return Clock(FROZEN_AT, utc=True)


@asynccontextmanager
async def inspection_service(dsn: str, data_dir: Path, clock: Clock, **settings: Any
                             ) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(service_settings(dsn, data_dir, **settings), clock=clock)
    async with running(app) as client:
        yield client


# ---------------------------------------------------------------------------------------------
# The registry, as its events


def facility(project_id: str, unit: str, township: str, project_type: str, *,
             provincial_key: bool = False, year: int = 2022, name: str | None = None
             ) -> reg.ProjectRegistered:
    services = ("meal_assistance", "day_care", "home_visits")
    return reg.ProjectRegistered(
        project_id=project_id, project_type=project_type, name=name or f"{project_id}(示例)",
        unit=unit, township=township, township_code=None, village=None, project_year=year,
        provincial_key=provincial_key, operator=reg.Operator(kind=reg.OperatorKind.NONE),
        services=services, claimed_status=reg.OperatingStatus.OPERATING,
        status=reg.OperatingStatus.OPERATING, status_reasons=())


def retirement(project: reg.ProjectRegistered, reason: str) -> reg.ProjectRetired:
    return reg.ProjectRetired(
        project_id=project.project_id, project_type=project.project_type, name=project.name,
        unit=project.unit, township=project.township, previous_status=project.status,
        reason_code=reg.RetirementReason.REPURPOSED, reason=reason,
        retired_on=dt.date(2024, 4, 1))


def assessment(project: reg.ProjectRegistered, number: int, *, provincial_key: bool
               ) -> reg.ProjectAssessed:
    return reg.ProjectAssessed(
        project_id=project.project_id, project_type=project.project_type, unit=project.unit,
        township=project.township, provincial_key=provincial_key, assessment_no=number,
        claimed_status=reg.OperatingStatus.OPERATING, status=reg.OperatingStatus.OPERATING,
        previous_status=reg.OperatingStatus.OPERATING, status_reasons=(),
        services=project.services, assessor="评估员(示例)", assessed_on=dt.date(2024, 4, number),
        evidence="现场评估(示例)", attachment_hashes=())


def programme(programme_id: str, unit: str, township: str, year: int = 2023
              ) -> reg.AdaptationProgrammeRegistered:
    return reg.AdaptationProgrammeRegistered(
        programme_id=programme_id, project_type="home_adaptation",
        name=f"{township}{year}年适老化改造(示例)", unit=unit, township=township,
        township_code=None, year=year)


def households(of: reg.AdaptationProgrammeRegistered, codes: list[str]) -> reg.HouseholdsRegistered:
    records = tuple(reg.HouseholdRecord(
        household_id=f"{of.programme_id}:{code}", household_code=code, village="示例村",
        adaptation_year=of.year, items=("grab_bar",), acceptance_date=dt.date(2023, 11, 1),
        subject_id=str(uuid.uuid4()), name_sealed=f"{SEALED_MARK}name-{code}",
        address_sealed=f"{SEALED_MARK}address-{code}", phone_sealed=f"{SEALED_MARK}phone-{code}")
        for code in codes)
    return reg.HouseholdsRegistered(programme_id=of.programme_id, unit=of.unit,
                                    township=of.township, year=of.year, households=records)


def stream_of(event: Event) -> str:
    if isinstance(event, (reg.AdaptationProgrammeRegistered, reg.HouseholdsRegistered)):
        return reg.programme_stream(event.programme_id)
    return reg.project_stream(event.project_id)  # type: ignore[attr-defined]


CANTEENS = [facility(f"EC-CANTEEN-{n}", "echeng", "凤凰街道", "canteen") for n in range(1, 6)]
RETIRED_CANTEEN = facility("EC-CANTEEN-9", "echeng", "古楼街道", "canteen")
KEY_COMPLEX = facility("EC-COMPLEX-1", "echeng", "泽林镇", "complex", provincial_key=True,
                       year=2023)
OTHER_COMPLEX = facility("EC-COMPLEX-2", "echeng", "杜山镇", "complex", year=2023)
RURAL_CENTER = facility("EC-RURAL-1", "echeng", "碧石镇", "rural_center", year=2021)
HUARONG_CENTERS = [facility(f"HR-CC-{n}", "huarong", "华容镇", "community_center")
                   for n in (1, 2)]
FENGHUANG = programme("EC-HA-FH", "echeng", "凤凰街道")
ZELIN = programme("EC-HA-ZL", "echeng", "泽林镇")
HUARONG_HA = programme("HR-HA-HR", "huarong", "华容镇")


def registry_world() -> list[Event]:
    """A small registry: echeng with every kind of stratum, huarong thin, the others empty."""
    return [
        *CANTEENS, RETIRED_CANTEEN, retirement(RETIRED_CANTEEN, "改作社区办公用房"),
        KEY_COMPLEX, OTHER_COMPLEX, RURAL_CENTER,
        # The rural centre became a provincial key project at its first assessment.
        assessment(RURAL_CENTER, 1, provincial_key=True),
        *HUARONG_CENTERS,
        FENGHUANG, households(FENGHUANG, [f"FH-{n}" for n in range(1, 6)]),
        ZELIN, households(ZELIN, ["ZL-1", "ZL-2", "ZL-3"]),
        HUARONG_HA, households(HUARONG_HA, ["HR-1"]),
    ]


PROJECT_COUNT = 14   # facilities and programmes in registry_world()


async def append_registry_events(dsn: str, events: list[Event]) -> None:
    """Append as the registry does: its database role, its stream categories, one event each."""
    async with store_as(dsn, "registry") as store:
        await store.append([new_event(stream_of(e), e, actor=REGISTRY_ACTOR, occurred_at=FROZEN_AT)
                            for e in events])


async def view_has(client: httpx.AsyncClient, count: int) -> list[dict[str, Any]] | bool:
    rows = (await client.get("/registry-view/projects", headers=INSPECTOR)).json()
    return rows if len(rows) >= count else False


# ---------------------------------------------------------------------------------------------
# A draw over HTTP


async def drawn(client: httpx.AsyncClient, clock: Clock, *, headers: dict[str, str] = INSPECTOR
                ) -> dict[str, Any]:
    """Freeze, commit and reveal; returns the reveal's response (the drawn summary)."""
    clock.now = FROZEN_AT
    response = await client.post("/draws", headers=headers,
                                 json={"draw_id": DRAW_ID, "title": "2024年回头看市级抽查(示例)"})
    assert response.status_code == 201, response.text
    response = await client.post(f"/draws/{DRAW_ID}/entropy-commitment", headers=headers, json={
        "draw_id": DRAW_ID, "statement": "中国福利彩票3D 2024-05-08 开奖号码",
        "not_before": ENTROPY_KNOWN_AT.isoformat()})
    assert response.status_code == 200, response.text
    clock.now = DRAWN_AT
    response = await client.post(f"/draws/{DRAW_ID}/entropy-reveal", headers=headers,
                                 json={"draw_id": DRAW_ID, "entropy": ENTROPY})
    assert response.status_code == 200, response.text
    clock.now = AFTER_VISIT
    return response.json()


def stratum(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in summary["strata"] if s["stratum"] == name)
