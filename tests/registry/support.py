"""Helpers for the registry's API tests: tokens for every role, the app on a fresh database with a
fixed clock inside the campaign, request bodies, and counts of what was written."""
from __future__ import annotations

import json
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, AsyncIterator
from zoneinfo import ZoneInfo

import asyncpg
import httpx

from services.registry.app import create_app
from shared.auth import hash_token
from shared.messages import Actor, Role
from shared.settings import Settings
from tests.faults import eventually
from tests.shared.test_bus import running

# Inside the self-inspection phase, after the liaisons were due (2024-03-06).
NOW = datetime(2024, 4, 10, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))

PRINCIPALS = {
    "admin": Actor(id="admin-1", name="市局管理员(示例)", role=Role.CITY_ADMIN),
    "inspector": Actor(id="insp-1", name="专班检查员(示例)", role=Role.INSPECTOR),
    "leader": Actor(id="lead-1", name="分管领导(示例)", role=Role.LEADER),
    "auditor": Actor(id="aud-1", name="审计员(示例)", role=Role.AUDITOR),
    "echeng-reporter": Actor(id="ec-r", name="鄂城填报人(示例)", role=Role.DISTRICT_REPORTER, unit="echeng"),
    "echeng-reviewer": Actor(id="ec-v", name="鄂城审核人(示例)", role=Role.DISTRICT_REVIEWER, unit="echeng"),
    "huarong-reporter": Actor(id="hr-r", name="华容填报人(示例)", role=Role.DISTRICT_REPORTER, unit="huarong"),
}
TOKENS = {name: f"tok-{name}" for name in PRINCIPALS}
TOKENS_JSON = json.dumps({hash_token(TOKENS[n]): a.model_dump(mode="json") for n, a in PRINCIPALS.items()})


def as_(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


def registry_settings(dsn: str, *, amqp_url: str | None = None, prefix: str = "", **extra: Any) -> Settings:
    return Settings(database_url=dsn, amqp_url=amqp_url, bus_prefix=prefix, tokens_json=TOKENS_JSON,
                    poll_interval=0.02, publish_timeout=3.0, graceful_timeout=3.0, **extra)


@asynccontextmanager
async def registry_client(dsn: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(registry_settings(dsn, **settings), clock=lambda: NOW)
    async with running(app) as client:
        yield client


# ----- request bodies ---------------------------------------------------------------------------

GOOD_SERVICES = ["meal_assistance", "day_care", "cleaning_assistance"]


def project_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "project_type": "community_center", "name": "凤凰街道(示例)测试社区居家养老服务中心",
        "unit": "echeng", "township": "凤凰街道", "village": "滨湖社区", "project_year": 2022,
        "provincial_key": False,
        "operator": {"kind": "professional", "name": "(示例)颐康养老服务有限公司",
                     "contract_start": "2023-01-01", "contract_end": "2025-12-31"},
        "services": GOOD_SERVICES, "claimed_status": "operating"}
    body.update(overrides)
    return body


def household_body(code: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "household_code": code, "village": "滨湖社区", "adaptation_year": 2022,
        "items": ["anti_slip_floor", "bathroom_grab_bar"], "acceptance_date": "2022-09-15",
        "name": "王某某(示例)", "address": "凤凰街道滨湖社区(示例)1栋101", "phone": "13800012345"}
    body.update(overrides)
    return body


def liaison_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"unit": "echeng", "role": "liaison", "name": "陈某某(示例)", "gender": "female",
                            "position": "养老服务科科长", "mobile": "13800009876",
                            "office_phone": "0711-0000123"}
    body.update(overrides)
    return body


# ----- what was written ---------------------------------------------------------------------------


async def fetchval(dsn: str, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def registry_event_count(dsn: str) -> int:
    return await fetchval(dsn, "SELECT count(*) FROM es.events WHERE category = ANY($1::text[])",
                          ["project", "adaptation", "liaison", "registryimport"])


async def subject_key_count(dsn: str) -> int:
    return await fetchval(dsn, "SELECT count(*) FROM pii.subject_keys")


async def projected(client: httpx.AsyncClient, path: str, predicate, *, who: str = "admin",
                    what: str = "") -> Any:
    """GET `path` until `predicate(json)` holds (read models are eventually consistent)."""
    async def attempt() -> Any:
        response = await client.get(path, headers=as_(who))
        if response.status_code != 200:
            return None
        body = response.json()
        return body if predicate(body) else None
    return await eventually(attempt, timeout=10, what=what or path)
