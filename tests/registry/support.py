"""Helpers for the registry's API tests: the app on a fresh database with a fixed clock inside the
campaign, request bodies, and counts of what was written (actors and tokens: tests/support)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from services.registry.app import create_app
from services.registry.events import CONTRACT
from tests.support.actors import auth
from tests.support.clock import Clock, at
from tests.support.databases import event_count, fetchval
from tests.support.polling import eventually
from tests.support.services import running, service_settings

# Inside the self-inspection phase, after the liaisons were due (2024-03-06).
NOW = at(2024, 4, 10)


@asynccontextmanager
async def registry_client(dsn: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(service_settings(dsn, **settings), clock=Clock(NOW))
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


async def registry_event_count(dsn: str) -> int:
    return await event_count(dsn, CONTRACT.categories)


async def subject_key_count(dsn: str) -> int:
    count: int = await fetchval(dsn, "SELECT count(*) FROM pii.subject_keys")
    return count


async def projected(client: httpx.AsyncClient, path: str, predicate: Callable[[Any], bool], *,
                    who: str = "admin-1", what: str = "") -> Any:
    """GET `path` until `predicate(json)` holds (read models are eventually consistent)."""
    async def attempt() -> Any:
        response = await client.get(path, headers=auth(who))
        if response.status_code != 200:
            return None
        body = response.json()
        return body if predicate(body) else None
    return await eventually(attempt, timeout=10, what=what or path)
