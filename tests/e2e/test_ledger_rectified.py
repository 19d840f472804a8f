"""The registry and rectification agree after 销号 (DOMAIN.md §4), on the real servers: both
services running on PostgreSQL, over RabbitMQ and over the embedded local transport.

A project registered not operating goes on the 台账; rectification opens its item; the item's 销号
is verified; the registry marks the entry rectified (整改完成, with the verifying event) while the
project stays listed; an assessment finding it idle again puts it back with a new entry and
rectification opens a new item; the next 销号 and an assessment finding it operating take it off.
Every read after a write goes with the writer's consistency token, across services too, so each
check sees exactly the state the last command left (ADR 0013)."""
from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.rectification.app import create_app as rectification_app
from services.registry.app import create_app as registry_app
from shared.auth import hash_token
from shared.messages import Actor, Role
from shared.settings import Settings
from tests.conftest import AMQP_URL
from tests.faults import eventually
from tests.shared.test_bus import running

pytestmark = pytest.mark.integration

ACTORS = {
    "admin": Actor(id="admin-1", name="市局管理员(示例)", role=Role.CITY_ADMIN),
    "reporter": Actor(id="ec-r", name="鄂城填报人(示例)", role=Role.DISTRICT_REPORTER, unit="echeng"),
    "reviewer": Actor(id="ec-v", name="鄂城审核人(示例)", role=Role.DISTRICT_REVIEWER, unit="echeng"),
}
TOKENS_JSON = json.dumps({hash_token(f"tok-{who}"): a.model_dump(mode="json")
                          for who, a in ACTORS.items()})
CST = ZoneInfo("Asia/Shanghai")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 4, 10, 10, 0, tzinfo=CST)

    def __call__(self) -> datetime:
        return self.now


def auth(who: str, token: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer tok-{who}"}
    if token is not None:
        headers["X-Lookback-After"] = token
    return headers


@asynccontextmanager
async def both_services(dsn: str, tmp: Path, clock: Clock, amqp_url: str | None, prefix: str
                        ) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    base = Settings(database_url=dsn, amqp_url=amqp_url, bus_prefix=prefix, tokens_json=TOKENS_JSON,
                    poll_interval=0.02, publish_timeout=3.0, graceful_timeout=5.0, data_dir=tmp,
                    checkpoint_dir=tmp / "checkpoints")
    registry = registry_app(base, clock=clock)
    # One sequencer candidate is enough (the lock elects one across processes anyway).
    rectification = rectification_app(base.model_copy(update={"run_sequencer": False}),
                                      clock=clock, score_check_interval=None)
    async with running(registry) as reg, running(rectification) as rect:
        yield reg, rect


async def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    return response.json()


async def post(client: httpx.AsyncClient, path: str, who: str, body: dict[str, Any],
               status: int = 200) -> tuple[dict[str, Any], str]:
    response = await client.post(path, json=body, headers=auth(who))
    return await ok(response, status), response.headers["X-Lookback-Token"]


def photo(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def close_out(rect: httpx.AsyncClient, problem_id: str, round_: int) -> str:
    """Start, request 销号 (the reporter) and verify it (the reviewer); the verification's token."""
    await post(rect, "/problems/start", "reporter", {"problem_id": problem_id, "plan": "引进运营机构"})
    await post(rect, "/problems/request-close-out", "reporter", {
        "problem_id": problem_id, "evidence_text": "运营合同与服务记录(示例)",
        "attachment_hashes": [photo(f"contract-{round_}")]})
    _, token = await post(rect, "/problems/verify", "reviewer",
                          {"problem_id": problem_id, "conclusion": "经核验已整改到位"})
    return token


async def ledger_items(rect: httpx.AsyncClient, project_id: str, statuses: list[str]
                       ) -> list[dict[str, Any]]:
    """The project's items in rectification once they have these statuses. Polled: rectification's
    routes take the read-your-writes dependency when its engineer applies it (then this reads
    with the token, like the registry's reads below)."""
    async def seen() -> list[dict[str, Any]] | None:
        body = await ok(await rect.get("/problems", params={"unit": "echeng"}, headers=auth("admin")))
        items = [item for item in body["items"] if item["project_id"] == project_id]
        return items if sorted(i["status"] for i in items) == sorted(statuses) else None

    found: list[dict[str, Any]] = await eventually(seen, what=f"items {statuses} of {project_id}")
    return found


async def registry_view(reg: httpx.AsyncClient, token: str, project_id: str
                        ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The project as /projects shows it, and its 台账 entries (cleared ones too)."""
    projects = await ok(await reg.get("/projects", params={"unit": "echeng"},
                                      headers=auth("reporter", token)))
    [project] = [p for p in projects["items"] if p["project_id"] == project_id]
    ledger = await ok(await reg.get("/ledger", params={"include_cleared": "true"},
                                    headers=auth("reporter", token)))
    return project, [e for e in ledger["items"] if e["project_id"] == project_id]


@pytest.mark.parametrize("transport", ["local", "rabbitmq"])
async def test_a_verified_close_out_marks_the_ledger_entry_rectified_in_both_services(
        database, tmp_path, unique_prefix, transport):
    clock = Clock()
    amqp = AMQP_URL if transport == "rabbitmq" else None
    async with both_services(database, tmp_path, clock, amqp, unique_prefix) as (reg, rect):
        project, token = await post(reg, "/projects", "reporter", {
            "project_type": "canteen", "name": "凤凰街道(示例)闲置幸福食堂", "unit": "echeng",
            "township": "凤凰街道", "project_year": 2022, "operator": {"kind": "none"},
            "services": [], "claimed_status": "not_operating"}, status=201)
        project_id = project["project_id"]
        assert project["ledger_state"] == "open"

        # Rectification opened the ledger item.
        [item] = await ledger_items(rect, project_id, ["registered"])
        assert item["source"] == "ledger"
        problem_id = item["problem_id"]

        verified = await close_out(rect, problem_id, 1)
        # Rectification: closed (已销号). Registry, read with rectification's token: the same
        # project is still listed, its entry rectified by that very item, awaiting assessment.
        [item] = await ledger_items(rect, project_id, ["closed"])
        shown, entries = await registry_view(reg, verified, project_id)
        assert (shown["status"], shown["on_ledger"], shown["ledger_state"]) == (
            "not_operating", True, "rectified")
        assert shown["ledger_state_text"] == "整改完成，待复评"
        [entry] = entries
        assert entry["state"] == "rectified" and entry["open"] is True
        rectification = entry["rectification"]
        assert rectification["problem_id"] == problem_id
        assert rectification["seq_no"] == item["seq_no"]
        assert rectification["verified_by"] == "ec-v"
        assert rectification["verified_at"].endswith("+08:00")
        assert rectification["verified_on_text"] == "2024年4月10日"
        assert entry["problem_items"] == [{"problem_id": problem_id, "seq_no": item["seq_no"]}]
        history = await ok(await reg.get(f"/projects/{project_id}", headers=auth("admin", verified)))
        [marked] = [h for h in history["history"] if h["event_type"] == "registry.LedgerEntryRectified"]
        assert marked["actor"]["id"] == "system"
        assert marked["data"]["verification_event_id"] == rectification["verification_event_id"]

        # Still idle at the next assessment: back on the 台账 with a new entry, and a new item.
        assessed, token = await post(reg, f"/projects/{project_id}/assessments", "reporter", {
            "project_id": project_id, "claimed_status": "underperforming", "assessor": "评估员(示例)",
            "assessed_on": "2024-04-10", "evidence": "仍未开展助餐(示例)",
            "services": ["day_care"]}, status=201)
        assert assessed["ledger_state"] == "open"
        shown, entries = await registry_view(reg, token, project_id)
        by_state = {e["state"]: e for e in entries}
        assert sorted(by_state) == ["open", "superseded"]
        assert by_state["superseded"]["superseded_by"] == by_state["open"]["entry_id"]
        assert by_state["superseded"]["rectification"]["problem_id"] == problem_id
        items = await ledger_items(rect, project_id, ["closed", "registered"])
        [new_item] = [i for i in items if i["status"] == "registered"]

        # The new item's 销号, then an assessment finding it operating: off the 台账.
        verified = await close_out(rect, new_item["problem_id"], 2)
        shown, entries = await registry_view(reg, verified, project_id)
        assert shown["ledger_state"] == "rectified"
        assessed, token = await post(reg, f"/projects/{project_id}/assessments", "reporter", {
            "project_id": project_id, "claimed_status": "operating", "assessor": "评估员(示例)",
            "assessed_on": "2024-04-10", "evidence": "已引进运营机构，开展助餐等3项服务(示例)",
            "attachment_hashes": [photo("assessment")],
            "services": ["meal_assistance", "day_care", "cleaning_assistance"]}, status=201)
        shown, entries = await registry_view(reg, token, project_id)
        assert (shown["status"], shown["on_ledger"], shown["ledger_state"]) == (
            "operating", False, None)
        assert sorted(e["state"] for e in entries) == ["cleared", "superseded"]
        open_ledger = await ok(await reg.get("/ledger", headers=auth("admin", token)))
        assert project_id not in {e["project_id"] for e in open_ledger["items"]}
