"""报表: the monthly problem list (附件2) submitted and downloaded, the self-inspection report and
typical cases with attachments, the review of each (returned versions and their reasons stay
visible), and the 附件1 liaison list."""
from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.backend import ServiceRefused
from services.console.evidence import EvidenceRefused
from services.console.pages.common import Who, checked_form, state_of, text
from services.console.pages.problems import store_uploads
from services.console.web import Person, render, see_other
from shared.messages import Role

router = APIRouter()
REPORT_ID = re.compile(r"^[a-z]+-[a-z_]+(-[0-9A-Za-z-]+)?$")
DONE = {"monthly": "月度问题清单已报送。", "self": "自查报告已报送。", "case": "典型案例已报送。",
        "review": "审核意见已提交。", "return": "月度清单已退回。"}


def _months(request: Request) -> list[str]:
    campaign = state_of(request).campaign
    months = []
    for deadline in getattr(campaign, "deadlines", ()):
        period = getattr(deadline, "period", None)
        if period and re.match(r"^\d{4}-\d{2}$", str(period)):
            months.append(str(period))
    return sorted(set(months)) or ["2024-03", "2024-04"]


async def _page(request: Request, who: Person, *, error: str | None = None, done: str | None = None,
                status_code: int = 200) -> HTMLResponse:
    reports = (await who.caller.get("rectification", "/reports"))["reports"]
    liaisons = (await who.caller.get("registry", "/liaisons"))["items"]
    units = [who.unit] if who.unit else [u.code for u in state_of(request).campaign.units]
    return render(request, "reports.html", person=who, reports=reports, liaisons=liaisons,
                  months=_months(request), units=units, error=error, done=DONE.get(done or ""),
                  case_id=str(uuid.uuid4()), status_code=status_code,
                  may_review=who.role is Role.DISTRICT_REVIEWER,
                  may_return=who.role is Role.CITY_ADMIN,
                  may_submit=who.role is Role.DISTRICT_REPORTER)


@router.get("/reports", response_class=HTMLResponse)
async def reports(request: Request, who: Who, done: str | None = None) -> HTMLResponse:
    return await _page(request, who, done=done)


async def _send(request: Request, who: Person, path: str, body: dict[str, Any], done: str) -> Response:
    try:
        await who.caller.post("rectification", path, body)
    except ServiceRefused as exc:
        if exc.status in (401, 404):
            raise
        return await _page(request, who, error=exc.explain(), status_code=exc.status)
    return see_other(f"/reports?done={done}")


@router.post("/reports/monthly-list")
async def submit_monthly(request: Request, who: Who) -> Response:
    form = await checked_form(request, who)
    return await _send(request, who, "/reports/monthly-list/submit",
                       {"unit": who.unit or text(form, "unit"), "month": text(form, "month")},
                       "monthly")


@router.post("/reports/monthly-list/return")
async def return_monthly(request: Request, who: Who) -> Response:
    form = await checked_form(request, who)
    return await _send(request, who, "/reports/monthly-list/return",
                       {"unit": text(form, "unit"), "month": text(form, "month"),
                        "comment": text(form, "comment")}, "return")


@router.post("/reports/self-inspection")
async def submit_self_inspection(request: Request, who: Who) -> Response:
    form = await checked_form(request, who)
    try:
        hashes = await store_uploads(request, who, form, "files")
    except EvidenceRefused as exc:
        return await _page(request, who, error=str(exc), status_code=422)
    return await _send(request, who, "/reports/self-inspection/submit",
                       {"unit": who.unit or text(form, "unit"), "text": text(form, "text"),
                        "attachment_hashes": hashes}, "self")


@router.post("/reports/typical-case")
async def submit_case(request: Request, who: Who) -> Response:
    form = await checked_form(request, who)
    try:
        hashes = await store_uploads(request, who, form, "files")
    except EvidenceRefused as exc:
        return await _page(request, who, error=str(exc), status_code=422)
    return await _send(request, who, "/reports/typical-case/submit",
                       {"unit": who.unit or text(form, "unit"), "case_id": text(form, "case_id"),
                        "title": text(form, "title"), "text": text(form, "text"),
                        "attachment_hashes": hashes}, "case")


@router.post("/reports/review")
async def review(request: Request, who: Who) -> Response:
    form = await checked_form(request, who)
    return await _send(request, who, "/reports/review",
                       {"report_id": text(form, "report_id"), "approved": text(form, "approved") == "yes",
                        "comment": text(form, "comment")}, "review")


def _attachment(response: Any, fallback: str) -> Response:
    disposition = response.headers.get("content-disposition") or f'attachment; filename="{fallback}"'
    return Response(response.content, media_type=response.headers.get("content-type"),
                    headers={"Content-Disposition": disposition})


@router.get("/reports/{report_id}/xlsx")
async def monthly_xlsx(who: Who, report_id: str) -> Response:
    if not REPORT_ID.match(report_id):
        return Response(status_code=404)
    return _attachment(await who.caller.download("rectification", f"/reports/{report_id}/xlsx"),
                       f"{report_id}.xlsx")


@router.get("/problem-list.xlsx")
async def live_list(who: Who, unit: str) -> Response:
    return _attachment(await who.caller.download("rectification", "/problem-list.xlsx",
                                                 {"unit": unit}), f"{unit}-problem-list.xlsx")


@router.get("/reports/liaisons.xlsx")
async def liaisons_xlsx(who: Who) -> Response:
    """附件1 责任领导和联络员登记表 as the registry prints it (phones masked)."""
    return _attachment(await who.caller.download("registry", "/liaisons.xlsx",
                                                 {"unit": who.unit} if who.unit else None),
                       "fujian1-liaisons.xlsx")
