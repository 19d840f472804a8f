"""The rectification service running for real (PostgreSQL; local transport or RabbitMQ), registry
and inspection events put where the service's consumers find them, and its commands over HTTP.
Actors, tokens, the clock and running a service: tests/support."""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx

from services.inspection.events import FindingRecorded
from services.rectification.app import create_app
from services.registry.events import (
    Gender,
    LedgerEntryAdded,
    LiaisonRegistered,
    LiaisonRole,
    OperatingStatus,
    Operator,
    OperatorKind,
    ProjectRegistered,
)
from shared.messages import Event, new_event
from shared.store import PostgresEventStore
from tests.rectification.support import TOWNSHIPS, content_hash
from tests.support.actors import auth, reporter
from tests.support.clock import Clock, at
from tests.support.databases import store_as
from tests.support.polling import eventually
from tests.support.services import delete_bus_objects, running, service_settings

# The registry events a test appends are a district reporter's, as the registry's would be.
REGISTRY_ACTOR = reporter("echeng")


@asynccontextmanager
async def rectification(dsn: str, tmp: Path, clock: Clock, *, amqp_url: str | None = None,
                        prefix: str = "", score_check_interval: float | None = None,
                        **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(service_settings(dsn, tmp, amqp_url=amqp_url, prefix=prefix, **settings),
                     clock=clock, score_check_interval=score_check_interval)
    async with running(app) as client:
        yield client


async def delete_rectification_bus_objects(prefix: str) -> None:
    await delete_bus_objects(
        prefix, services=("rectification", "registry", "inspection"),
        consumers=("rectification.on-registry", "rectification.on-inspection",
                   "rectification.registry-view"))


# ------------------------------------------------------------------------------------------
# Other services' events, appended as those services would (their database roles)


class OtherServices:
    """Appends registry and inspection events to the store, as those services' roles."""

    def __init__(self, registry: PostgresEventStore, inspection: PostgresEventStore) -> None:
        self.registry, self.inspection = registry, inspection

    async def append(self, store: PostgresEventStore, stream_id: str, event: Event, *,
                     occurred_at: datetime | None = None) -> uuid.UUID:
        recorded = new_event(stream_id, event, actor=REGISTRY_ACTOR,
                             occurred_at=occurred_at or at(2024, 3, 8))
        await store.append([recorded])
        return recorded.event_id

    async def liaisons(self, unit: str, when: datetime, *, leader: str = "王某(示例)",
                       version: int = 1) -> None:
        """附件1 of a unit (its 责任领导 and 联络员), registered with the registry at `when`."""
        for role, name in ((LiaisonRole.LEADER, leader), (LiaisonRole.LIAISON, "李某某(示例)")):
            await self.append(self.registry, f"liaison-{unit}", LiaisonRegistered(
                unit=unit, role=role, version=version, name=name, gender=Gender.FEMALE,
                position="副局长" if role is LiaisonRole.LEADER else "科长",
                subject_id=f"subject-{unit}-{role}", mobile_sealed="pii1.sealed",
                mobile_masked="138****0001", office_phone_sealed=None, office_phone_masked=None,
                submitted_late=when > at(2024, 3, 6, 23, 59, 59)), occurred_at=when)

    async def project(self, unit: str, n: int = 1, *, year: int = 2022,
                      project_type: str = "canteen") -> str:
        project_id = f"p-{unit}-{n}"
        await self.append(self.registry, f"project-{project_id}", ProjectRegistered(
            project_id=project_id, project_type=project_type, name=project_name(unit, n),
            unit=unit, township=TOWNSHIPS[unit], township_code=None, village=None,
            project_year=year, provincial_key=False, operator=Operator(kind=OperatorKind.NONE),
            services=("meal_assistance", "day_care", "rehabilitation"),
            claimed_status=OperatingStatus.OPERATING, status=OperatingStatus.OPERATING,
            status_reasons=()))
        return project_id

    async def ledger_entry(self, project_id: str, unit: str, entry_id: str,
                           reason: str = "not_operating") -> uuid.UUID:
        return await self.append(self.registry, f"project-{project_id}", ledger_entry(
            project_id, unit, entry_id, reason))

    async def finding(self, finding: FindingRecorded) -> uuid.UUID:
        return await self.append(self.inspection, f"visit-{finding.visit_id}", finding)


def project_name(unit: str, n: int = 1) -> str:
    return f"{TOWNSHIPS[unit]}幸福食堂{n}(示例)"


def ledger_entry(project_id: str, unit: str, entry_id: str, reason: str = "not_operating",
                 ) -> LedgerEntryAdded:
    return LedgerEntryAdded(
        entry_id=entry_id, project_id=project_id, project_type="canteen",
        project_name=project_name(unit, int(project_id.rsplit("-", 1)[1])), project_year=2021,
        unit=unit, township=TOWNSHIPS[unit], village=None, provincial_key=False, reason=reason,
        reason_details=("fewer_than_min_services", "no_meal_assistance"),
        status=OperatingStatus(reason), listed_on=date(2024, 3, 8))


def finding(project_id: str, unit: str, finding_id: str, *, deadline: date = date(2024, 5, 30),
            text: str = "助餐服务未正常开展(示例)") -> FindingRecorded:
    return FindingRecorded(
        finding_id=finding_id, draw_id="draw-1", visit_id=f"visit-{finding_id}",
        project_id=project_id, unit=unit, project_name=project_name(unit),
        township=TOWNSHIPS[unit], project_year=2022, project_type="canteen", text=text,
        deadline=deadline, found_on=date(2024, 5, 10))


@asynccontextmanager
async def other_services(dsn: str) -> AsyncIterator[OtherServices]:
    async with AsyncExitStack() as stack:
        registry = await stack.enter_async_context(store_as(dsn, "registry"))
        inspection = await stack.enter_async_context(store_as(dsn, "inspection"))
        yield OtherServices(registry, inspection)


async def known_projects(client: httpx.AsyncClient, *project_ids: str) -> None:
    async def seen() -> bool:
        response = await client.get("/projects", headers=auth("admin-1"))
        known = {p["project_id"] for p in response.json()["projects"]}
        return set(project_ids) <= known

    await eventually(seen, what=f"projects {project_ids} in the rectification view")


# ------------------------------------------------------------------------------------------
# Commands through the API


async def register(client: httpx.AsyncClient, who: str, project_id: str, *,
                   problem_id: uuid.UUID | None = None, deadline: str | None = "2024-05-07",
                   source: str = "self_inspection", description: str = "未开展助餐服务(示例)",
                   expect: int = 201) -> dict[str, Any]:
    body: dict[str, Any] = {"problem_id": str(problem_id or uuid.uuid4()), "project_id": project_id,
                            "description": description, "responsible_person": "张某(示例)",
                            "source": source}
    if deadline is None:
        body["deadline_kind"] = "immediate"
    else:
        body["deadline"] = deadline
    response = await client.post("/problems/register", json=body, headers=auth(who))
    assert response.status_code == expect, response.text
    return response.json()


async def post(client: httpx.AsyncClient, path: str, who: str, body: dict[str, Any], *,
               expect: int = 200) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=auth(who))
    assert response.status_code == expect, f"{path} as {who}: {response.status_code} {response.text}"
    return response.json()


async def start(client, who: str, problem_id: str) -> dict[str, Any]:
    return await post(client, "/problems/start", who, {"problem_id": problem_id, "plan": "引进运营机构"})


async def request_close_out(client, who: str, problem_id: str, *, photo: str | None = None,
                            expect: int = 200) -> dict[str, Any]:
    return await post(client, "/problems/request-close-out", who, {
        "problem_id": problem_id, "evidence_text": "整改前后对比照片",
        "attachment_hashes": [content_hash(photo or f"photo-{problem_id}")]}, expect=expect)


async def verify(client, who: str, problem_id: str, *, expect: int = 200) -> dict[str, Any]:
    return await post(client, "/problems/verify", who,
                      {"problem_id": problem_id, "conclusion": "经核验已整改到位"}, expect=expect)


async def close(client, problem_id: str, requester: str, verifier: str) -> dict[str, Any]:
    await request_close_out(client, requester, problem_id)
    return await verify(client, verifier, problem_id)


async def problem(client, problem_id: str, *, who: str = "admin-1", version: int | None = None
                  ) -> dict[str, Any]:
    """The item from the read model, once it shows `version` events (or at all)."""
    async def fetch() -> dict[str, Any] | None:
        response = await client.get(f"/problems/{problem_id}", headers=auth(who))
        if response.status_code != 200:
            return None
        body = response.json()
        if version is not None and len(body["history"]) < version:
            return None
        return body

    return await eventually(fetch, what=f"problem {problem_id} in the read model")
