"""项目台账: the projects with search and filters, and one project's page with a single timeline
across services (the registry's history of it, its problem items' histories, its visits and
findings), each line with who and when."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.audit_labels import EVENT_LABELS
from services.console.backend import ServiceRefused
from services.console.pages.common import Who, state_of
from services.console.web import Person, render

router = APIRouter()
PAGE = 30


@router.get("/projects", response_class=HTMLResponse)
async def projects(request: Request, who: Who, unit: str | None = None, project_type: str | None = None,
                   status: str | None = None, ledger: str | None = None, q: str | None = None,
                   page: int = 1) -> HTMLResponse:
    # The registry filters by unit, type and status; the name search is done here over its answer.
    body = await who.caller.get("registry", "/projects", {
        "unit": unit, "project_type": project_type, "status": status, "limit": 500})
    rows: list[dict[str, Any]] = body["items"]
    if ledger == "yes":
        rows = [r for r in rows if r.get("on_ledger")]
    if q:
        needle = q.strip()
        rows = [r for r in rows if needle in r.get("name", "") or needle in r.get("township", "")]
    page = max(page, 1)
    shown = rows[(page - 1) * PAGE: page * PAGE]
    ledger_rows = (await who.caller.get("registry", "/ledger", {"unit": unit, "limit": 200}))["items"]
    return render(request, "projects.html", person=who, rows=shown, total=len(rows), page=page,
                  pages=max(1, -(-len(rows) // PAGE)), ledger_rows=ledger_rows,
                  filters={"unit": unit or "", "project_type": project_type or "",
                           "status": status or "", "ledger": ledger or "", "q": q or ""})


def _line(at: Any, service: str, what: str, actor: dict[str, Any] | None, detail: str = "",
          link: str | None = None) -> dict[str, Any]:
    actor = actor or {}
    return {"at": at, "service": service, "what": what, "who": actor.get("name") or "—",
            "role": actor.get("role"), "detail": detail, "link": link}


@router.get("/projects/{project_id}", response_class=HTMLResponse)
async def project(request: Request, who: Who, project_id: str) -> HTMLResponse:
    body = await who.caller.get("registry", f"/projects/{project_id}")
    state, timeline = body["project"], []
    for entry in body.get("history", []):
        timeline.append(_line(entry.get("occurred_at"), "项目登记",
                              EVENT_LABELS.get(entry.get("event_type", ""), entry.get("event_type")),
                              entry.get("actor")))
    items = (await who.caller.get("rectification", "/problems",
                                  {"unit": state["unit"], "project_id": project_id,
                                   "limit": 1000}))["items"]
    for item in items:
        detail = await who.caller.get("rectification", f"/problems/{item['problem_id']}")
        for entry in detail.get("history", []):
            timeline.append(_line(
                entry.get("occurred_at"), f"问题（序号{item.get('seq_no')}）",
                EVENT_LABELS.get(entry.get("event_type", ""), entry.get("event_type")),
                {"name": entry.get("actor_name"), "role": entry.get("actor_role")},
                link=f"/problems/{item['problem_id']}"))
    visits = await visits_of(who, state["unit"], project_id)
    labels = state_of(request).labels
    for visit in visits:
        outcome = visit.get("outcome")
        timeline.append(_line(visit.get("visited_on") or visit.get("scheduled_for"), "抽查",
                              "实地检查" if outcome else "安排实地检查", None,
                              detail=f"结论：{labels.label('visit_outcome', outcome)}" if outcome else "",
                              link=f"/inspection/draws/{visit['draw_id']}"))
    timeline.sort(key=lambda line: str(line["at"] or ""))
    return render(request, "project.html", person=who, project=state, items=items,
                  timeline=timeline, visits=visits)


async def visits_of(who: Person, unit: str, project_id: str) -> list[dict[str, Any]]:
    """The project's visits in every draw this person may read."""
    found: list[dict[str, Any]] = []
    for draw in await who.caller.get("inspection", "/draws"):
        try:
            rows = await who.caller.get("inspection", f"/draws/{draw['draw_id']}/visits",
                                        {"unit": unit if who.is_district else None})
        except ServiceRefused as exc:
            if exc.status in (403, 404):
                continue  # the draw has no stratum of this unit
            raise
        found += [{**v, "draw_id": draw["draw_id"]} for v in rows if v.get("target_id") == project_id]
    return found
