"""HTTP routes of the notifier: its calendar, what it sent, the unit's .ics, the contact directory,
and (on a simulated clock only) the clock.

A district role sees only its own unit (asking for another is 403). Addresses are shown masked
to everyone, city_admin included: nobody needs to read them off a screen, and the directory is
where they are corrected. Only city_admin changes the directory.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, SecretStr

from services.notifier import answers as a
from services.notifier import commands as c
from services.notifier import directory
from services.notifier import queries as q
from services.notifier.domain.calendar import NOT_REMINDED_WHY, ReminderStatus, plan, status_of
from services.notifier.domain.contacts import mask_email, mask_url
from services.notifier.domain.messages import missing
from services.notifier.domain.obligations import ObligationState, due_at
from services.notifier.events import Audience, ContactSet
from services.notifier.handlers import NotifierDeps
from services.notifier.ics import unit_calendar
from shared.api_contract import text_content
from shared.auth import authorize_read
from shared.clock import SimulatedClock
from shared.errors import DomainError, ForbiddenError, NotFoundError
from shared.messages import Actor, Role
from shared.service import Runtime, runtime_of

router = APIRouter()
ICS_MEDIA_TYPE = "text/calendar; charset=utf-8"


# ----- plumbing ---------------------------------------------------------------------------------


def _runtime(request: Request) -> Runtime[NotifierDeps]:
    return runtime_of(request)


def _deps(request: Request) -> NotifierDeps:
    return _runtime(request).deps


async def reader(request: Request) -> Actor:
    return _runtime(request).authenticate(request)


async def city_admin(request: Request) -> Actor:
    actor = _runtime(request).authenticate(request)
    if actor.role is not Role.CITY_ADMIN:
        raise ForbiddenError(f"{actor.role.value} may not do this (only city_admin)")
    return actor


Reader = Annotated[Actor, Depends(reader)]
CityAdmin = Annotated[Actor, Depends(city_admin)]


def _known_unit(unit: str | None, deps: NotifierDeps, where: str = "query") -> None:
    if unit is not None and not deps.campaign.has_unit(unit):
        raise RequestValidationError([{"loc": (where, "unit"), "type": "value_error",
                                       "msg": f"unknown unit {unit!r}"}])


def _scope(actor: Actor, unit: str | None) -> str | None:
    """The unit a query may show: a district role's own unit whatever it asked, else the asked one."""
    authorize_read(actor, unit=unit)
    return actor.unit if actor.role.is_district else unit


def _plain(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


# ----- the calendar -------------------------------------------------------------------------------


def obligation_view(state: ObligationState, records: Mapping[Any, q.ReminderRecord],
                    now: datetime, deps: NotifierDeps) -> dict[str, Any]:
    campaign = deps.campaign
    deadline = due_at(state, campaign)
    reminders = []
    for reminder in plan(state, campaign):
        record = records.get(reminder.reminder_id)
        status = status_of(reminder, state, record.status if record else None, now, campaign)
        if status is ReminderStatus.CANCELLED:
            continue   # never sent, and never will be: the obligation's status says why
        reminders.append({
            "reminder_id": str(reminder.reminder_id), "at": reminder.at.isoformat(),
            "kind": reminder.kind.value, "audience": reminder.audience.value,
            "status": status.value, "why": reminder.why})
    return {
        "obligation_id": state.obligation_id, "unit": state.unit,
        "unit_name": campaign.unit(state.unit).name if campaign.has_unit(state.unit) else "",
        "kind": state.kind.value, "title": state.title,
        "due_on": _plain(state.due_on), "due_at": _plain(deadline),
        "status": state.status.value, "missing": missing(state, campaign) if state.is_open else [],
        "reminded": state.kind not in NOT_REMINDED_WHY,
        "not_reminded_why": NOT_REMINDED_WHY.get(state.kind),
        "details": state.details, "reminders": reminders}


@router.get("/calendar", tags=["calendar"], response_model=a.Calendar,
            summary="提醒日历 · The reminder calendar")
async def calendar(request: Request, actor: Reader, unit: str | None = None,
                   kind: str | None = None) -> dict[str, Any]:
    """What will be sent when, and why; and where every reminder already stands."""
    runtime, deps = _runtime(request), _deps(request)
    _known_unit(unit, deps)
    unit = _scope(actor, unit)
    now = deps.clock()
    async with runtime.pool.acquire() as conn:
        states = await q.obligations(conn, deps.campaign, unit=unit)
        records = await q.reminder_records(conn, unit=unit)
    items = [obligation_view(state, records, now, deps) for state in states
             if state.opened and (kind is None or state.kind.value == kind)]
    counts = Counter(r["status"] for item in items for r in item["reminders"])
    return {"now": now.astimezone(deps.campaign.tz).isoformat(),
            "timezone": deps.campaign.campaign.timezone, "unit": unit,
            "reminder_counts": dict(sorted(counts.items())), "obligations": items}


@router.get("/calendar/{unit}.ics", tags=["calendar"], response_class=Response,
            summary="单位日历（ICS） · A unit's due dates (iCalendar)",
            responses=text_content("text/calendar"))
async def calendar_ics(unit: str, request: Request, actor: Reader) -> Response:
    """The unit's due dates for a calendar application (RFC 5545; stable UIDs)."""
    runtime, deps = _runtime(request), _deps(request)
    if not deps.campaign.has_unit(unit):
        raise NotFoundError(f"no unit {unit!r} in campaign {deps.campaign.id}")
    authorize_read(actor, unit=unit)
    async with runtime.pool.acquire() as conn:
        states = await q.obligations(conn, deps.campaign, unit=unit)
    body = unit_calendar(states, deps.campaign, unit, deps.clock())
    return Response(body, media_type=ICS_MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="lookback-{unit}.ics"'})


# ----- what was sent ------------------------------------------------------------------------------


@router.get("/reminders", tags=["reminders"], response_model=a.SentReminderPage,
            summary="已发送的提醒 · Reminders sent")
async def reminders(request: Request, actor: Reader, unit: str | None = None,
                    status: str | None = Query(None, pattern="^(claimed|pending|sent|failed)$"),
                    limit: int = Query(100, ge=1, le=1000),
                    offset: int = Query(0, ge=0)) -> dict[str, Any]:
    """What was sent, to whom (masked), by which channel, with what result."""
    runtime, deps = _runtime(request), _deps(request)
    _known_unit(unit, deps)
    async with runtime.pool.acquire() as conn:
        rows, total = await q.sent_reminders(conn, unit=_scope(actor, unit), status=status,
                                             limit=limit, offset=offset)
    items = [{key: _plain(value) for key, value in dict(row).items()} for row in rows]
    for item in items:
        item["reminder_id"] = str(item["reminder_id"])
    return {"items": items, "total": total, "limit": limit, "offset": offset}


# ----- the contact directory ----------------------------------------------------------------------


class ContactBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: SecretStr | None = None
    webhook_url: SecretStr | None = None
    webhook_format: c.WebhookFormat = c.WebhookFormat.JSON


def _contact_view(contact: directory.Contact, source: str, updated_at: Any) -> dict[str, Any]:
    return {"unit": contact.unit, "audience": contact.audience.value,
            "email": mask_email(contact.email) if contact.email else None,
            "webhook": mask_url(contact.webhook_url) if contact.webhook_url else None,
            "webhook_format": contact.webhook_format.value if contact.webhook_url else None,
            "source": source, "updated_at": _plain(updated_at)}


@router.get("/contacts", tags=["contacts"], response_model=a.ContactList,
            summary="联系方式 · Contacts (masked)")
async def contacts(request: Request, actor: Reader, unit: str | None = None
                   ) -> dict[str, Any]:
    """Where each unit's liaison and leader are reached, masked."""
    runtime, deps = _runtime(request), _deps(request)
    _known_unit(unit, deps)
    async with runtime.pool.acquire() as conn:
        rows = await directory.all_contacts(conn, _scope(actor, unit))
    return {"items": [_contact_view(*row) for row in rows]}


@router.put("/contacts/{unit}/{audience}", tags=["contacts"], response_model=a.ContactSet,
            summary="设置联系方式 · Set a contact")
async def set_contact(unit: str, audience: Audience, body: ContactBody, request: Request,
                      actor: CityAdmin) -> dict[str, Any]:
    """Set the e-mail address and/or webhook of a unit's liaison or leader (city_admin)."""
    result = await _runtime(request).run(
        c.SetContact(unit=unit, audience=audience, email=body.email, webhook_url=body.webhook_url,
                     webhook_format=body.webhook_format), actor, request)
    [event] = result.events
    assert isinstance(event, ContactSet)
    return {"unit": unit, "audience": audience.value, "email": event.email_masked,
            "webhook": event.webhook_masked}


@router.delete("/contacts/{unit}/{audience}", tags=["contacts"], status_code=204,
               response_class=Response, summary="删除联系方式 · Erase a contact")
async def erase_contact(unit: str, audience: Audience, request: Request,
                        actor: CityAdmin) -> Response:
    """Erase a contact from the directory (the log keeps only that it was erased)."""
    result = await _runtime(request).run(c.EraseContact(unit=unit, audience=audience), actor,
                                         request)
    if not result.changed:
        raise NotFoundError(f"no contact for {unit}/{audience.value}")
    return Response(status_code=204)


# ----- the clock ------------------------------------------------------------------------------------


class ClockMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    now: AwareDatetime


@router.get("/clock", tags=["clock"], response_model=a.ClockReading,
            summary="当前时间 · The service's clock")
async def read_clock(request: Request, actor: Reader) -> dict[str, Any]:
    """The notifier's now, and whether its clock is simulated. 提醒服务的当前时间。"""
    deps = _deps(request)
    return {"now": deps.clock().astimezone(deps.campaign.tz).isoformat(),
            "simulated": isinstance(deps.clock, SimulatedClock)}


@router.post("/clock", tags=["clock"], response_model=a.ClockReading,
             summary="拨动模拟时钟 · Move the simulated clock")
async def move_clock(body: ClockMove, request: Request, actor: CityAdmin
                     ) -> dict[str, Any]:
    """Move a simulated clock forward (tests and demos: LOOKBACK_NOTIFIER_SIMULATED_CLOCK_START).
    A process on the real clock answers 404; moving back is refused (409)."""
    deps = _deps(request)
    clock = deps.clock
    if not isinstance(clock, SimulatedClock):
        raise NotFoundError("this notifier runs on the real clock")
    try:
        moved = clock.set(body.now)
    except ValueError as exc:
        raise DomainError(str(exc), code="clock_backwards") from None
    return {"now": moved.astimezone(deps.campaign.tz).isoformat(), "simulated": True}
