"""The rectification service running for real (PostgreSQL; local transport or RabbitMQ), tokens,
a settable clock, and registry / inspection events put where the service's consumers find them."""
from __future__ import annotations

import hashlib
import json
import uuid
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, AsyncIterator

import aio_pika
import httpx

from services.inspection.events import FindingRecorded
from services.rectification.app import create_app
from services.registry.events import (Gender, LedgerEntryAdded, LiaisonRegistered, LiaisonRole,
                                      OperatingStatus, Operator, OperatorKind, ProjectRegistered)
from shared.auth import hash_token
from shared.messages import Actor, Event, Role, new_event
from shared.settings import Settings
from shared.store import PostgresEventStore, create_pool
from tests.conftest import AMQP_URL
from tests.faults import eventually
from tests.shared.test_bus import running

from .support import TOWNSHIPS, at

ACTORS = {
    "rep-echeng": Actor(id="rep-echeng-1", name="鄂城填报人(示例)", role=Role.DISTRICT_REPORTER,
                        unit="echeng"),
    "rep2-echeng": Actor(id="rep-echeng-2", name="鄂城填报人二(示例)", role=Role.DISTRICT_REPORTER,
                         unit="echeng"),
    "rev-echeng": Actor(id="rev-echeng-1", name="鄂城审核人(示例)", role=Role.DISTRICT_REVIEWER,
                        unit="echeng"),
    "rev2-echeng": Actor(id="rev-echeng-2", name="鄂城审核人二(示例)", role=Role.DISTRICT_REVIEWER,
                         unit="echeng"),
    "inspector": Actor(id="insp-1", name="检查员(示例)", role=Role.INSPECTOR),
    "inspector2": Actor(id="insp-2", name="检查员二(示例)", role=Role.INSPECTOR),
    "admin": Actor(id="admin-1", name="市局管理员(示例)", role=Role.CITY_ADMIN),
    "leader": Actor(id="leader-1", name="领导(示例)", role=Role.LEADER),
    "auditor": Actor(id="auditor-1", name="审计(示例)", role=Role.AUDITOR),
}
for _unit in ("huarong", "liangzihu", "gedian", "linkong"):
    ACTORS[f"rep-{_unit}"] = Actor(id=f"rep-{_unit}-1", name=f"{_unit}填报人(示例)",
                                   role=Role.DISTRICT_REPORTER, unit=_unit)
    ACTORS[f"rev-{_unit}"] = Actor(id=f"rev-{_unit}-1", name=f"{_unit}审核人(示例)",
                                   role=Role.DISTRICT_REVIEWER, unit=_unit)
TOKENS_JSON = json.dumps({hash_token(f"tok-{name}"): actor.model_dump(mode="json")
                          for name, actor in ACTORS.items()})
REGISTRY_ACTOR = Actor(id="registry-rep", name="登记员(示例)", role=Role.DISTRICT_REPORTER,
                       unit="echeng")


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer tok-{who}"}


class Clock:
    """The service's clock, set by the test (the campaign lives in 2024)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, *args: int) -> None:
        self.now = at(*args)


def settings_for(dsn: str, tmp: Path, *, amqp_url: str | None = None, prefix: str = "",
                 **extra: Any) -> Settings:
    return Settings(database_url=dsn, amqp_url=amqp_url, bus_prefix=prefix,
                    tokens_json=TOKENS_JSON, poll_interval=0.02, publish_timeout=3.0,
                    graceful_timeout=5.0, data_dir=tmp, checkpoint_dir=tmp / "checkpoints",
                    **extra)


@asynccontextmanager
async def rectification(dsn: str, tmp: Path, clock: Clock, *, amqp_url: str | None = None,
                        prefix: str = "", score_check_interval: float | None = None,
                        **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(dsn, tmp, amqp_url=amqp_url, prefix=prefix, **settings),
                     clock=clock, score_check_interval=score_check_interval)
    async with running(app) as client:
        yield client


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


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
    registry = await create_pool(dsn, role="lookback_registry", max_size=2)
    inspection = await create_pool(dsn, role="lookback_inspection", max_size=2)
    try:
        yield OtherServices(PostgresEventStore(registry), PostgresEventStore(inspection))
    finally:
        await registry.close()
        await inspection.close()


async def known_projects(client: httpx.AsyncClient, *project_ids: str) -> None:
    async def seen() -> bool:
        response = await client.get("/projects", headers=auth("admin"))
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


async def problem(client, problem_id: str, *, who: str = "admin", version: int | None = None
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


async def delete_bus_objects(prefix: str) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for queue in ("rectification.on-registry", "rectification.on-inspection",
                      "rectification.registry-view", "rectification.events.archive",
                      "rectification.dlq"):
            try:
                await channel.queue_delete(prefix + queue)
            except Exception:
                channel = await connection.channel()
        for exchange in ("rectification.events", "rectification.dlx", "registry.events",
                         "inspection.events"):
            try:
                await channel.exchange_delete(prefix + exchange)
            except Exception:
                channel = await connection.channel()

