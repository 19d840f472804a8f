"""抽查: the draw ceremony (freeze the frame, commit to the entropy, reveal it, the result, and
how anyone verifies it), the visits with a form made for a phone (the checklist in Chinese,
photos hashed on upload), and the findings."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.backend import ServiceRefused
from services.console.evidence import EvidenceRefused
from services.console.labels import checklist_for
from services.console.pages.common import Who, campaign_now, checked_form, state_of, text
from services.console.pages.problems import store_uploads
from services.console.web import Person, render, see_other
from shared.messages import Role

router = APIRouter()
DRAW_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
DONE = {"frozen": "抽样框已冻结。", "committed": "随机数来源已承诺。",
        "revealed": "随机数已公布，样本已抽取。",
        "scheduled": "实地检查已安排。", "recorded": "检查结果已记录。"}


def _may_act(who: Person) -> bool:
    return who.role in (Role.INSPECTOR, Role.CITY_ADMIN)


def _check_id(value: str) -> str:
    if not DRAW_ID.match(value):
        raise ServiceRefused(404, "没有这个抽查批次")
    return value


@router.get("/inspection", response_class=HTMLResponse)
async def draws(request: Request, who: Who) -> HTMLResponse:
    return await draws_page(request, who)


async def draws_page(request: Request, who: Person, *, error: str | None = None,
                     status_code: int = 200) -> HTMLResponse:
    rows = await who.caller.get("inspection", "/draws")
    local = campaign_now(request).astimezone(state_of(request).campaign.tz)
    return render(request, "draws.html", person=who, draws=rows, may_act=_may_act(who),
                  suggested_id=f"draw-{local:%Y%m%d-%H%M}", error=error, status_code=status_code)


@router.post("/inspection/draws")
async def freeze(request: Request, who: Who) -> Response:
    form = await checked_form(request, who)
    draw_id = text(form, "draw_id")
    try:
        answer = await who.caller.post("inspection", "/draws",
                                       {"draw_id": draw_id, "title": text(form, "title")})
    except ServiceRefused as exc:
        if exc.status in (401,):
            raise
        return await draws_page(request, who, error=exc.explain(), status_code=exc.status)
    await _settle_draw(who, draw_id, answer)
    return see_other(f"/inspection/draws/{draw_id}?done=frozen")


@router.get("/inspection/draws/{draw_id}", response_class=HTMLResponse)
async def draw(request: Request, who: Who, draw_id: str, done: str | None = None) -> HTMLResponse:
    return await draw_page(request, who, draw_id, done=done)


async def draw_page(request: Request, who: Person, draw_id: str, *, done: str | None = None,
                    error: str | None = None, status_code: int = 200) -> HTMLResponse:
    _check_id(draw_id)
    unit = who.unit
    summary = await who.caller.get("inspection", f"/draws/{draw_id}", {"unit": unit})
    picks = (await who.caller.get("inspection", f"/draws/{draw_id}/picks", {"unit": unit}))["units"]
    visits = await who.caller.get("inspection", f"/draws/{draw_id}/visits", {"unit": unit})
    findings = await who.caller.get("inspection", f"/draws/{draw_id}/findings", {"unit": unit})
    progress = await who.caller.get("inspection", f"/draws/{draw_id}/progress", {"unit": unit})
    scheduled = {v["target_id"] for v in visits}
    names = _names(picks)
    today = campaign_now(request).astimezone(state_of(request).campaign.tz).date()
    return render(request, "draw.html", person=who, draw=summary, picks=picks, visits=visits,
                  findings=findings, progress=progress, scheduled=scheduled, names=names,
                  may_act=_may_act(who), done=DONE.get(done or ""), error=error, today=today,
                  status_code=status_code)


async def _draw_command(request: Request, who: Person, draw_id: str, path: str,
                        body: dict[str, Any], done: str) -> Response:
    try:
        answer = await who.caller.post("inspection", path, body)
    except ServiceRefused as exc:
        if exc.status in (401, 404):
            raise
        return await draw_page(request, who, draw_id, error=exc.explain(), status_code=exc.status)
    await _settle_draw(who, draw_id, answer)
    return see_other(f"/inspection/draws/{draw_id}?done={done}")


async def _settle_draw(who: Person, draw_id: str, answer: Any) -> None:
    """Wait (bounded) until the draw's read models show the step just taken."""
    stage = answer.get("stage") if isinstance(answer, dict) else None
    await who.caller.settle("inspection", f"/draws/{draw_id}",
                            lambda d: stage is None or d.get("stage") == stage,
                            params={"unit": who.unit})
    if isinstance(answer, dict) and "visit_id" in answer:
        visit_id = answer["visit_id"]
        outcome = answer.get("outcome")
        await who.caller.settle(
            "inspection", f"/draws/{draw_id}/visits",
            lambda rows: any(v["visit_id"] == visit_id and v.get("outcome") == outcome
                             for v in rows), params={"unit": who.unit})


@router.post("/inspection/draws/{draw_id}/commit")
async def commit(request: Request, who: Who, draw_id: str) -> Response:
    form = await checked_form(request, who)
    _check_id(draw_id)
    body: dict[str, Any] = {"draw_id": draw_id, "statement": text(form, "statement")}
    if text(form, "not_before"):
        try:
            local = datetime.fromisoformat(text(form, "not_before"))
        except ValueError:
            return await draw_page(request, who, draw_id, error="时间格式不正确", status_code=422)
        body["not_before"] = local.replace(tzinfo=state_of(request).campaign.tz).isoformat()
    return await _draw_command(request, who, draw_id, f"/draws/{draw_id}/entropy-commitment",
                               body, "committed")


@router.post("/inspection/draws/{draw_id}/reveal")
async def reveal(request: Request, who: Who, draw_id: str) -> Response:
    form = await checked_form(request, who)
    _check_id(draw_id)
    return await _draw_command(request, who, draw_id, f"/draws/{draw_id}/entropy-reveal",
                               {"draw_id": draw_id, "entropy": text(form, "entropy")}, "revealed")


@router.post("/inspection/draws/{draw_id}/visits")
async def schedule(request: Request, who: Who, draw_id: str) -> Response:
    form = await checked_form(request, who)
    _check_id(draw_id)
    target = text(form, "target_id")
    body = {"draw_id": draw_id, "visit_id": f"v-{target[:36]}",
            "target_kind": text(form, "target_kind") or "project", "target_id": target,
            "scheduled_for": text(form, "scheduled_for") or None,
            "inspector_ids": [who.account.account_id]}
    return await _draw_command(request, who, draw_id, f"/draws/{draw_id}/visits", body, "scheduled")


def _names(picks: list[dict[str, Any]]) -> dict[str, str]:
    """target id → what a person calls it: the project's name and township (a household's code)."""
    names = {}
    for unit in picks:
        for pick in unit.get("picks", []):
            name = pick.get("name") or pick.get("target_id")
            township = pick.get("township")
            names[pick["target_id"]] = f"{name}（{township}）" if township else str(name)
    return names


async def _visit(who: Person, draw_id: str, visit_id: str) -> dict[str, Any]:
    for visit in await who.caller.get("inspection", f"/draws/{draw_id}/visits", {"unit": who.unit}):
        if visit["visit_id"] == visit_id:
            return dict(visit)
    raise ServiceRefused(404, "没有这次实地检查")


@router.get("/inspection/draws/{draw_id}/visits/{visit_id}", response_class=HTMLResponse)
async def visit_form(request: Request, who: Who, draw_id: str, visit_id: str) -> HTMLResponse:
    return await visit_page(request, who, draw_id, visit_id)


async def visit_page(request: Request, who: Person, draw_id: str, visit_id: str, *,
                     error: str | None = None, status_code: int = 200) -> HTMLResponse:
    _check_id(draw_id), _check_id(visit_id)
    visit = await _visit(who, draw_id, visit_id)
    state = state_of(request)
    checklist = checklist_for(state.labels, visit.get("project_type") or "")
    today = campaign_now(request).astimezone(state.campaign.tz).date()
    picks = (await who.caller.get("inspection", f"/draws/{draw_id}/picks", {"unit": who.unit}))["units"]
    visit["target_name"] = _names(picks).get(visit["target_id"], visit["target_id"])
    return render(request, "visit.html", person=who, draw_id=draw_id, visit=visit,
                  checklist=checklist, may_act=_may_act(who), today=today, error=error,
                  answers=state.labels.terms("checklist_answer"), status_code=status_code,
                  outcomes=state.labels.terms("visit_outcome"),
                  max_mb=state.console.evidence_max_bytes // (1024 * 1024))


@router.post("/inspection/draws/{draw_id}/visits/{visit_id}")
async def record(request: Request, who: Who, draw_id: str, visit_id: str) -> Response:
    form = await checked_form(request, who)
    _check_id(draw_id), _check_id(visit_id)
    visit = await _visit(who, draw_id, visit_id)
    checklist = checklist_for(state_of(request).labels, visit.get("project_type") or "")
    findings = []
    for i in range(1, 4):
        finding_text, deadline = text(form, f"finding_{i}"), text(form, f"finding_{i}_deadline")
        if finding_text:
            findings.append({"text": finding_text, "deadline": deadline or None})
    try:
        photos = await store_uploads(request, who, form, "photos")
        answer = await who.caller.post("inspection", f"/draws/{draw_id}/visits/{visit_id}/record", {
            "draw_id": draw_id, "visit_id": visit_id, "outcome": text(form, "outcome"),
            "visited_on": text(form, "visited_on") or None,
            "inspector_ids": [who.account.account_id],
            "checklist": {code: text(form, f"check_{code}") for code in checklist
                          if text(form, f"check_{code}")},
            "notes": text(form, "notes"), "photo_hashes": photos, "findings": findings})
    except EvidenceRefused as exc:
        return await visit_page(request, who, draw_id, visit_id, error=str(exc),
                                status_code=422)
    except ServiceRefused as exc:
        if exc.status in (401, 404):
            raise
        return await visit_page(request, who, draw_id, visit_id, error=exc.explain(),
                                status_code=exc.status)
    await _settle_draw(who, draw_id, answer)
    return see_other(f"/inspection/draws/{draw_id}?done=recorded")


@router.get("/inspection/draws/{draw_id}/list.json")
async def draw_list(who: Who, draw_id: str) -> Response:
    """The 抽查名单 as the JSON anyone recomputes offline (`lookback inspection verify-draw`)."""
    _check_id(draw_id)
    response = await who.caller.download("inspection", f"/draws/{draw_id}/list", {"unit": who.unit}
                                         if who.unit else None)
    return Response(response.content, media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{draw_id}.json"'})


@router.get("/inspection/draws/{draw_id}/list.xlsx")
async def draw_xlsx(who: Who, draw_id: str) -> Response:
    _check_id(draw_id)
    response = await who.caller.download("inspection", f"/draws/{draw_id}/list.xlsx",
                                         {"unit": who.unit} if who.unit else None)
    return Response(response.content, media_type=response.headers.get("content-type"),
                    headers={"Content-Disposition": f'attachment; filename="{draw_id}.xlsx"'})
