"""Sign-in and sign-out, the 工作台 (each role's desk) and the 公开 page (no sign-in)."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.backend import ServiceRefused
from services.console.pages.common import Who, campaign_now, checked_form, now, person, state_of, text
from services.console.web import SESSION_COOKIE, Person, render, see_other, to_date
from shared.logging import get_logger
from shared.messages import Role

log = get_logger()
router = APIRouter()


def _safe_next(target: str | None) -> str:
    """Only a path of this site (never `//evil`, never a full URL): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", next=_safe_next(next), error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    state = state_of(request)
    assert state.accounts is not None
    form = await request.form(max_fields=10)
    account_id, password = text(form, "username"), form.get("password")
    target = _safe_next(text(form, "next"))
    result = await state.accounts.sign_in(account_id, password if isinstance(password, str) else "",
                                          _address(request), now())
    if result.session_cookie is None or result.account is None:
        # Who tried and from where, never the password (nor how close it was).
        log.warning("console_sign_in_refused", account=account_id[:64], address=_address(request),
                    wait_seconds=result.wait_seconds)
        return render(request, "login.html", status_code=429 if result.wait_seconds else 401,
                      next=target, error=result.refused, username=account_id[:64])
    log.info("console_signed_in", account=result.account.account_id,
             role=result.account.role.value, unit=result.account.unit,
             address=_address(request))
    response = see_other(target)
    response.set_cookie(SESSION_COOKIE, result.session_cookie, httponly=True, samesite="strict",
                        secure=state.console.cookie_secure, path="/",
                        max_age=int(state.console.session_hours * 3600))
    return response


@router.post("/logout")
async def logout(request: Request, who: Who) -> Response:
    await checked_form(request, who)
    state = state_of(request)
    assert state.accounts is not None
    await state.accounts.sign_out(request.cookies.get(SESSION_COOKIE))
    log.info("console_signed_out", account=who.account.account_id)
    response = see_other("/login")
    response.delete_cookie(SESSION_COOKIE, path="/", samesite="strict", httponly=True,
                           secure=state.console.cookie_secure)
    return response


def _due_soon(item: dict[str, Any], today: date, days: int = 7) -> bool:
    deadline = to_date(item.get("deadline"))
    return deadline is not None and today <= deadline <= today + timedelta(days=days)


def awaiting_me(item: dict[str, Any], who: Person) -> bool:
    """Items this person would be the one to verify (the service still decides when they try):
    the unit's reviewer for self-found and 台账 items, an inspector for city-found ones, the city
    bureau when the requester is the unit's reviewer; never the requester."""
    if item.get("status") != "close_out_requested":
        return False
    if item.get("close_out_requested_by") == who.account.account_id:
        return False
    if who.role is Role.DISTRICT_REVIEWER:
        return item.get("source") in ("self_inspection", "ledger")
    if who.role is Role.INSPECTOR:
        return item.get("source") == "city"
    return who.role is Role.CITY_ADMIN


@router.get("/", response_class=HTMLResponse)
async def desk(request: Request, who: Who) -> HTMLResponse:
    caller = who.caller
    problems = (await caller.get("rectification", "/problems", {"limit": 1000}))["items"]
    today = campaign_now(request).astimezone(state_of(request).campaign.tz).date()
    open_items = [i for i in problems if i.get("status") in
                  ("registered", "in_rectification", "close_out_requested")]
    desk_items = {
        "overdue": [i for i in open_items if i.get("overdue")],
        "due_soon": [i for i in open_items if not i.get("overdue") and _due_soon(i, today)],
        "returned": [i for i in open_items
                     if i.get("times_returned") and i.get("status") == "in_rectification"],
        "awaiting_me": [i for i in problems if awaiting_me(i, who)],
    }
    reports = (await caller.get("rectification", "/reports"))["reports"]
    reports_waiting = [r for r in reports if r.get("status") == "submitted"
                       and who.role in (Role.DISTRICT_REVIEWER, Role.CITY_ADMIN)]
    reports_returned = [r for r in reports if r.get("status") == "returned"]
    progress = (await caller.get("rectification", "/progress"))["units"]
    reminders, reminders_note = await reminders_for(who)
    return render(request, "desk.html", person=who, desk=desk_items, progress=progress,
                  reports_waiting=reports_waiting, reports_returned=reports_returned,
                  reminders=reminders, reminders_note=reminders_note, today=today)


async def reminders_for(who: Person) -> tuple[list[dict[str, Any]], str | None]:
    """What the notifier sent for this person's unit (or all units), newest first."""
    try:
        body = await who.caller.get("notifier", "/reminders", {"unit": who.unit, "limit": 20})
    except ServiceRefused as exc:
        if exc.status in (404, 405):
            return [], "提醒服务尚未提供发送记录。"
        return [], exc.explain()
    return list(body.get("items", [])), None


@router.get("/public", response_class=HTMLResponse)
async def public(request: Request) -> HTMLResponse:
    """一公开: per unit, counts and rates only. Asked of the service with no identity at all: what
    the public may see is the service's decision (its one public route)."""
    state = state_of(request)
    assert state.backend is not None
    body = await state.backend.as_person(None).get("rectification", "/public/results")
    who = None
    try:
        who = await person(request)
    except Exception:  # the public page needs nobody signed in
        who = None
    return render(request, "public.html", person=who, results=body)
