"""督办与积分: the board per unit (items, 销号率 as a percentage, overdue, score with each
deduction and its reason) and its charts, as SVG images of this site."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.charts import burndown_chart, overdue_chart, progress_chart
from services.console.pages.common import Who, campaign_now, now, state_of
from services.console.web import Person, render

router = APIRouter()
CHARTS = ("progress", "burndown", "overdue")


@router.get("/board", response_class=HTMLResponse)
async def board(request: Request, who: Who) -> HTMLResponse:
    """The ranking as rectification computes and explains it: each unit's progress, 销号率 as
    counts and a percentage, its score and every deduction with its rule (and refund)."""
    body = await who.caller.get("rectification", "/scores/board")
    return render(request, "board.html", person=who, rows=body["board"], order=body.get("order"),
                  as_of=body.get("as_of"), charts=CHARTS, stamp=int(now().timestamp()))


def _short_names(request: Request) -> dict[str, str]:
    return {u.code: u.area_name for u in state_of(request).campaign.units}


@router.get("/board/charts/{name}.svg")
async def chart(request: Request, who: Who, name: str) -> Response:
    if name not in CHARTS:
        return Response(status_code=404)
    svg = await chart_svg(request, who, name)
    return Response(svg, media_type="image/svg+xml",
                    headers={"Cache-Control": "private, no-store"})


async def chart_svg(request: Request, who: Person, name: str) -> str:
    caller, campaign = who.caller, state_of(request).campaign
    if name == "burndown":
        items = (await caller.get("rectification", "/problems", {"limit": 1000}))["items"]
        today = campaign_now(request).astimezone(campaign.tz).date()
        return burndown_chart(items, campaign.campaign.starts_on, max(today, campaign.campaign.starts_on))
    units = (await caller.get("rectification", "/progress"))["units"]
    if name == "progress":
        return progress_chart(units, _short_names(request))
    return overdue_chart(units, _short_names(request))
