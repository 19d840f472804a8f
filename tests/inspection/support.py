"""The inspection service running for real: tokens per role, registry events as the registry would
append them, a settable clock, and helpers to walk a draw through its life over HTTP."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import asyncpg
import httpx

from services.inspection.app import create_app
from services.registry import events as reg
from shared.auth import hash_token
from shared.messages import Actor, Event, Role, new_event
from shared.settings import Settings
from shared.store import PostgresEventStore, create_pool
from tests.shared.test_bus import running

CST = dt.timezone(dt.timedelta(hours=8))
FROZEN_AT = dt.datetime(2024, 5, 7, 9, 0, tzinfo=CST)
ENTROPY_KNOWN_AT = dt.datetime(2024, 5, 8, 21, 30, tzinfo=CST)
DRAWN_AT = dt.datetime(2024, 5, 8, 22, 0, tzinfo=CST)
VISIT_DAY = dt.date(2024, 5, 10)
AFTER_VISIT = dt.datetime(2024, 5, 10, 18, 0, tzinfo=CST)
EARLY_ON_VISIT_DAY = dt.datetime(2024, 5, 10, 7, 30, tzinfo=CST)

DRAW_ID = "ezhou-2024-city-01"
ENTROPY = "福彩3D 2024-05-08: 3 7 1"
UNITS = ["echeng", "huarong", "liangzihu", "gedian", "linkong"]   # the Ezhou 2024 campaign's

PRINCIPALS = {
    "tok-inspector": Actor(id="insp-1", name="检查员甲(示例)", role=Role.INSPECTOR),
    "tok-admin": Actor(id="admin-1", name="市局管理员(示例)", role=Role.CITY_ADMIN),
    "tok-leader": Actor(id="leader-1", name="分管领导(示例)", role=Role.LEADER),
    "tok-auditor": Actor(id="auditor-1", name="审计员(示例)", role=Role.AUDITOR),
    "tok-echeng-reporter": Actor(id="r-ec", name="鄂城填报人(示例)", role=Role.DISTRICT_REPORTER,
                                 unit="echeng"),
    "tok-echeng-reviewer": Actor(id="v-ec", name="鄂城审核人(示例)", role=Role.DISTRICT_REVIEWER,
                                 unit="echeng"),
    "tok-huarong-reporter": Actor(id="r-hr", name="华容填报人(示例)", role=Role.DISTRICT_REPORTER,
                                  unit="huarong"),
}
TOKENS_JSON = json.dumps({hash_token(t): a.model_dump(mode="json") for t, a in PRINCIPALS.items()})
OUTSIDER_TOKENS = ["tok-leader", "tok-auditor", "tok-echeng-reporter", "tok-echeng-reviewer"]
REGISTRY_ACTOR = Actor(id="r-ec", name="鄂城填报人(示例)", role=Role.DISTRICT_REPORTER, unit="echeng")

# Stand-ins for the registry's per-subject ciphertext: they must never reach inspection's tables.
SEALED_MARK = "pii1.sealed-test-"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


INSPECTOR = auth("tok-inspector")


class Clock:
    """A clock the test moves by hand (the service and its consumers read it)."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now.astimezone(dt.timezone.utc)


def settings_for(dsn: str, data_dir: Path, *, amqp_url: str | None = None, prefix: str = "",
                 **extra: Any) -> Settings:
    return Settings(database_url=dsn, amqp_url=amqp_url, bus_prefix=prefix,
                    tokens_json=TOKENS_JSON, data_dir=data_dir, poll_interval=0.02,
                    publish_timeout=3.0, graceful_timeout=5.0, **extra)


@asynccontextmanager
async def inspection_service(dsn: str, data_dir: Path, clock: Clock, **settings: Any
                             ) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(dsn, data_dir, **settings), clock=clock)
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
    pool = await create_pool(dsn, role="lookback_registry", max_size=2)
    try:
        store = PostgresEventStore(pool)
        await store.append([new_event(stream_of(e), e, actor=REGISTRY_ACTOR, occurred_at=FROZEN_AT)
                            for e in events])
    finally:
        await pool.close()


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


async def fetchval(dsn: str, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def fetch(dsn: str, query: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


def stratum(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in summary["strata"] if s["stratum"] == name)
