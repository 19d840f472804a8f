"""HTTP routes of the rectification service: commands (request bodies are the commands) and
queries (read models, district roles see only their own unit).

A command route parses, runs the command through the kernel's pipeline (handlers.py has the
table) and maps the result: the pipeline refuses leaders and auditors and each handler's roles;
the domain checks the unit and the rest before anything is written. Command responses carry the
resulting state; queries read the projections (queries.py) and are eventually consistent.

The module stays whole (~400 lines): one flat list of routes of a few lines each, in the order of
the API document, so a reader finds a route by its path; the views above them are their shapes.
"""
from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from services.rectification import commands as c
from services.rectification import domain as d
from services.rectification import events as e
from services.rectification import handlers as h
from services.rectification import queries as q
from services.rectification import scoring as s
from services.rectification.config import RectificationConfig
from services.rectification.events import ReportKind
from services.rectification.xlsx_export import ListFooter, export_monthly_list, export_problem_list
from shared.auth import authorize_read
from shared.errors import NotFoundError, ValidationFailed
from shared.messages import Actor
from shared.service import Runtime, new_correlation_id, runtime_of

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# ----- plumbing ---------------------------------------------------------------------------------


def _runtime(request: Request) -> Runtime[RectificationConfig]:
    return runtime_of(request)


def _caller(request: Request) -> tuple[Runtime[RectificationConfig], Actor]:
    """The runtime and the authenticated principal (401 otherwise)."""
    runtime = _runtime(request)
    return runtime, runtime.authenticate(request)


def _known_unit(config: RectificationConfig, unit: str, field: str = "unit") -> None:
    if unit not in config.units:
        raise ValidationFailed([(field, f"unknown reporting unit {unit!r}")])


def _units_readable(actor: Actor, config: RectificationConfig, unit: str | None) -> list[str]:
    """The units a query may show: a district role its own only (asking for another is 403)."""
    if actor.role.is_district:
        authorize_read(actor, unit=unit)
        return [actor.unit or ""]
    if unit is not None:
        return [unit]
    return list(config.units)


def _xlsx(content: bytes, filename: str) -> Response:
    return Response(content, media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# ----- views --------------------------------------------------------------------------------------


def _percent(rate: Fraction | None) -> str | None:
    if rate is None:
        return None
    value = Decimal(rate.numerator) * 100 / Decimal(rate.denominator)
    return str(value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _points(value: Decimal) -> str:
    """Points as plain decimal text without trailing zeros ("98.5", "2", never "2.0" or "1E+2")."""
    return format(value.normalize(), "f")


def _fraction(rate: Fraction | None) -> str | None:
    return None if rate is None else f"{rate.numerator}/{rate.denominator}"


def problem_view(state: d.ProblemState, config: RectificationConfig, now: datetime
                 ) -> dict[str, Any]:
    view = dataclasses.asdict(state)
    light = s.item_light(state, now, config.is_working_day, rules=config.rules,
                         yellow_working_days=config.yellow_working_days)
    view.update(unit_name=config.unit_name(state.unit),
                overdue=d.is_overdue(state, now, config.rules),
                light=str(light) if light else None,
                evidence_reuse_flagged=bool(state.flagged_hashes))
    result: dict[str, Any] = jsonable_encoder(view)
    return result


def report_view(report: d.ReportState) -> dict[str, Any]:
    result: dict[str, Any] = jsonable_encoder(dataclasses.asdict(report))
    return result


def progress_view(progress: s.UnitProgress, config: RectificationConfig) -> dict[str, Any]:
    view = dataclasses.asdict(progress)
    view.update(unit_name=config.unit_name(progress.unit), light=str(progress.light),
                closure_rate=_fraction(progress.closure_rate),
                closure_percent=_percent(progress.closure_rate))
    return view


def deduction_view(event: e.PointsDeducted) -> dict[str, Any]:
    result: dict[str, Any] = jsonable_encoder(event.model_dump(mode="json"))
    return result


def score_view(score: s.ScoreState) -> dict[str, Any]:
    return {"unit": score.unit, "deducted": _points(score.deducted),
            "deductions": [deduction_view(x) for x in score.deductions]}


def _progress(config: RectificationConfig, now: datetime, unit: str, items: list[d.ProblemState],
              reports: list[d.ReportState]) -> s.UnitProgress:
    return s.unit_progress(unit, items, reports, now=now, is_working_day=config.is_working_day,
                           rules=config.rules, yellow_working_days=config.yellow_working_days)


async def _item_command(cmd: c.Command, problem_id: uuid.UUID, request: Request) -> dict[str, Any]:
    """Run a command about one item; the item as it is afterwards."""
    runtime, actor = _caller(request)
    result = await runtime.run(cmd, actor, request)
    return problem_view(result.state(d.problem_stream_id(problem_id)), runtime.deps,
                        runtime.clock())


async def _report_command(cmd: c.Command, report_id: str, request: Request, *,
                          unit: str | None = None) -> dict[str, Any]:
    """Run a command about one report (of a known `unit`); the report as it is afterwards."""
    runtime, actor = _caller(request)
    if unit is not None:
        _known_unit(runtime.deps, unit)
    result = await runtime.run(cmd, actor, request)
    return report_view(result.state(d.report_stream_id(report_id)))


router = APIRouter()

# ----- problem items: commands ----------------------------------------------------------------------


@router.post("/problems/register", status_code=201, tags=["problems"])
async def register(cmd: c.RegisterProblem, request: Request) -> JSONResponse:
    """登记 a problem item of a known project (its unit's next 序号)."""
    runtime, actor = _caller(request)
    result = await runtime.run(cmd, actor, request)
    view = problem_view(result.state(d.problem_stream_id(cmd.problem_id)), runtime.deps,
                        runtime.clock())
    return JSONResponse(view, status_code=201 if result.changed else 200)


@router.post("/problems/start", tags=["problems"])
async def start(cmd: c.StartRectification, request: Request) -> dict[str, Any]:
    return await _item_command(cmd, cmd.problem_id, request)


@router.post("/problems/request-close-out", tags=["problems"])
async def request_close_out(cmd: c.RequestCloseOut, request: Request) -> dict[str, Any]:
    """申请销号 with evidence; an attachment already filed for another item is flagged."""
    return await _item_command(cmd, cmd.problem_id, request)


@router.post("/problems/verify", tags=["problems"])
async def verify(cmd: c.VerifyCloseOut, request: Request) -> dict[str, Any]:
    """销号: the unit's reviewer (self-found, ledger) or an inspector (city-found), never the
    requester."""
    return await _item_command(cmd, cmd.problem_id, request)


@router.post("/problems/return", tags=["problems"])
async def return_close_out(cmd: c.ReturnCloseOut, request: Request) -> dict[str, Any]:
    return await _item_command(cmd, cmd.problem_id, request)


@router.post("/problems/request-extension", tags=["problems"])
async def request_extension(cmd: c.RequestExtension, request: Request) -> dict[str, Any]:
    return await _item_command(cmd, cmd.problem_id, request)


@router.post("/problems/decide-extension", tags=["problems"])
async def decide_extension(cmd: c.DecideExtension, request: Request) -> dict[str, Any]:
    return await _item_command(cmd, cmd.problem_id, request)


@router.post("/problems/withdraw", tags=["problems"])
async def withdraw(cmd: c.WithdrawProblem, request: Request) -> dict[str, Any]:
    return await _item_command(cmd, cmd.problem_id, request)


@router.post("/problems/reopen", status_code=201, tags=["problems"])
async def reopen(cmd: c.ReopenProblem, request: Request) -> dict[str, Any]:
    """反弹: the closed item is marked reopened and a new item (next 序号) registered."""
    runtime, actor = _caller(request)
    result = await runtime.run(cmd, actor, request)
    config, now = runtime.deps, runtime.clock()
    return {"original": problem_view(result.state(d.problem_stream_id(cmd.problem_id)), config, now),
            "problem": problem_view(result.state(d.problem_stream_id(cmd.new_problem_id)), config,
                                    now)}


# ----- problem items: queries -----------------------------------------------------------------------


@router.get("/problems", tags=["problems"])
async def list_problems(request: Request, unit: str | None = None,
                        status: d.ProblemStatus | None = None, overdue: bool | None = None,
                        source: str | None = None) -> dict[str, Any]:
    """Items by unit and state, each with its overdue flag (open and past its 整改限期)."""
    runtime, actor = _caller(request)
    config, now = runtime.deps, runtime.clock()
    items = await q.items(runtime.pool, _units_readable(actor, config, unit))
    views = [problem_view(item, config, now) for item in items]
    views = [v for v in views
             if (status is None or v["status"] == status.value)
             and (overdue is None or v["overdue"] == overdue)
             and (source is None or v["source"] == source)]
    return {"items": views, "as_of": now.isoformat()}


@router.get("/problems/{problem_id}", tags=["problems"])
async def get_problem(problem_id: uuid.UUID, request: Request) -> dict[str, Any]:
    """One item with its history (every event, who did it, when)."""
    runtime, actor = _caller(request)
    item = await q.item(runtime.pool, problem_id)
    if item is None:
        raise NotFoundError(f"no problem {problem_id}")
    authorize_read(actor, unit=item.unit)
    view = problem_view(item, runtime.deps, runtime.clock())
    view["history"] = jsonable_encoder(await q.item_history(runtime.pool, problem_id))
    return view


@router.get("/evidence/{content_hash}", tags=["problems"])
async def evidence(content_hash: str, request: Request) -> dict[str, Any]:
    """The items an attachment (by its SHA-256) was filed for."""
    runtime, actor = _caller(request)
    rows = await q.evidence_filed(runtime.pool, content_hash,
                                  _units_readable(actor, runtime.deps, None))
    return {"content_hash": content_hash, "filed_for": jsonable_encoder(rows)}


@router.get("/projects", tags=["problems"])
async def projects(request: Request, unit: str | None = None) -> dict[str, Any]:
    """This service's view of the registry's projects (unit, place, name, year, ledger)."""
    runtime, actor = _caller(request)
    rows = await q.projects(runtime.pool, _units_readable(actor, runtime.deps, unit))
    return {"projects": jsonable_encoder(rows)}


@router.get("/problem-list.xlsx", tags=["problems"], response_class=Response)
async def live_list(request: Request, unit: str = Query(...)) -> Response:
    """The unit's live problem list as .xlsx in the 附件2 layout."""
    runtime, actor = _caller(request)
    config = runtime.deps
    [unit] = _units_readable(actor, config, unit)
    _known_unit(config, unit)
    rows = d.problem_list_rows(await q.items(runtime.pool, [unit]), unit=unit)
    content = export_problem_list(rows, unit_name=config.unit_name(unit),
                                  footer=ListFooter(day=config.rules.local_date(runtime.clock())))
    return _xlsx(content, f"{unit}-problem-list.xlsx")


# ----- reports ------------------------------------------------------------------------------------


@router.post("/reports/monthly-list/submit", tags=["reports"])
async def submit_monthly_list(cmd: c.SubmitMonthlyList, request: Request) -> dict[str, Any]:
    """The unit's 填报人 files this month's list: a frozen snapshot of its items."""
    return await _report_command(cmd, d.monthly_list_report_id(cmd.unit, cmd.month), request, unit=cmd.unit)


@router.post("/reports/monthly-list/return", tags=["reports"])
async def return_monthly_list(cmd: c.ReturnMonthlyList, request: Request) -> dict[str, Any]:
    return await _report_command(cmd, d.monthly_list_report_id(cmd.unit, cmd.month), request, unit=cmd.unit)


@router.post("/reports/self-inspection/submit", tags=["reports"])
async def submit_self_inspection(cmd: c.SubmitSelfInspectionReport,
                                 request: Request) -> dict[str, Any]:
    return await _report_command(cmd, d.self_inspection_report_id(cmd.unit), request, unit=cmd.unit)


@router.post("/reports/typical-case/submit", tags=["reports"])
async def submit_typical_case(cmd: c.SubmitTypicalCase, request: Request) -> dict[str, Any]:
    return await _report_command(cmd, d.typical_case_report_id(cmd.unit, cmd.case_id), request, unit=cmd.unit)


@router.post("/reports/review", tags=["reports"])
async def review(cmd: c.ReviewReport, request: Request) -> dict[str, Any]:
    """The unit's 审核人 approves a submitted report or sends it back (never its submitter)."""
    return await _report_command(cmd, cmd.report_id, request)


@router.get("/reports", tags=["reports"])
async def list_reports(request: Request, unit: str | None = None,
                       kind: ReportKind | None = None) -> dict[str, Any]:
    runtime, actor = _caller(request)
    reports = await q.reports(runtime.pool, _units_readable(actor, runtime.deps, unit))
    return {"reports": [report_view(r) for r in reports if kind is None or r.kind is kind]}


@router.get("/reports/{report_id}", tags=["reports"])
async def get_report(report_id: str, request: Request) -> dict[str, Any]:
    runtime, actor = _caller(request)
    report = await q.report(runtime.pool, report_id)
    if report is None:
        raise NotFoundError(f"no report {report_id}")
    authorize_read(actor, unit=report.unit)
    return report_view(report)


@router.get("/reports/{report_id}/xlsx", tags=["reports"], response_class=Response)
async def monthly_list_xlsx(report_id: str, request: Request) -> Response:
    """A submitted monthly list as filed (its frozen rows), .xlsx in the 附件2 layout. Read
    from the report's own stream: the document is never a second copy that could drift."""
    runtime, actor = _caller(request)
    initial = d.report_initial(report_id)
    authorize_read(actor, unit=initial.unit)
    if initial.kind is not ReportKind.MONTHLY_LIST:
        raise NotFoundError(f"{report_id} is not a monthly list")
    report = await q.report_from_store(runtime.store, report_id)
    if report.status is None:
        raise NotFoundError(f"monthly list {report_id} has not been submitted")
    content = export_monthly_list(report, unit_name=runtime.deps.unit_name(report.unit),
                                  rules=runtime.deps.rules)
    return _xlsx(content, f"{report_id}.xlsx")


# ----- progress and scores ------------------------------------------------------------------------


@router.get("/progress", tags=["scores"])
async def progress(request: Request, unit: str | None = None) -> dict[str, Any]:
    """Per unit: items open / closed / overdue / reopened, 销号率, late and missing reports,
    traffic light."""
    runtime, actor = _caller(request)
    config, now = runtime.deps, runtime.clock()
    units = _units_readable(actor, config, unit)
    items, reports = await q.items(runtime.pool, units), await q.reports(runtime.pool, units)
    return {"as_of": now.isoformat(),
            "units": [progress_view(_progress(config, now, u, items, reports), config)
                      for u in units]}


@router.get("/scores/board", tags=["scores"])
async def score_board(request: Request) -> dict[str, Any]:
    """The units ranked: 100 minus deductions, ties by 销号率, then unit code."""
    runtime, _ = _caller(request)
    config, now = runtime.deps, runtime.clock()
    units = list(config.units)
    items, reports = await q.items(runtime.pool, units), await q.reports(runtime.pool, units)
    progress_by_unit = {u: _progress(config, now, u, items, reports) for u in units}
    board = s.score_board(units, await q.scores(runtime.pool, units), progress_by_unit)
    return {"as_of": now.isoformat(), "board": [
        {"rank": row.rank, "unit": row.unit, "unit_name": config.unit_name(row.unit),
         "score": _points(row.score), "deducted": _points(row.deducted),
         "closure_rate": _fraction(row.closure_rate),
         "closure_percent": _percent(row.closure_rate)} for row in board]}


@router.get("/scores/{unit}", tags=["scores"])
async def unit_score(unit: str, request: Request) -> dict[str, Any]:
    runtime, actor = _caller(request)
    [unit] = _units_readable(actor, runtime.deps, unit)
    return score_view((await q.scores(runtime.pool, [unit]))[unit])


@router.post("/scores/deduct", tags=["scores"])
async def deduct(cmd: c.DeductPoints, request: Request) -> dict[str, Any]:
    """酌情扣分 by city_admin, with a reason (the deduction id makes a retry harmless)."""
    runtime, actor = _caller(request)
    _known_unit(runtime.deps, cmd.unit)
    result = await runtime.run(cmd, actor, request)
    return score_view(result.state(d.score_stream_id(cmd.unit)))


@router.post("/scores/check", tags=["scores"])
async def check(request: Request) -> dict[str, Any]:
    """Apply the campaign's deduction rules now (the service also does this periodically)."""
    runtime, actor = _caller(request)
    decided = await h.apply_deductions(runtime.commands, actor=actor, now=runtime.clock(),
                                       correlation_id=new_correlation_id(request))
    return {"deducted": [deduction_view(x) for x in decided]}


PUBLIC_RESULTS = "/public/results"


@router.get(PUBLIC_RESULTS, tags=["public"])
async def public_results(request: Request) -> dict[str, Any]:
    """一公开: each unit's results for anyone, no token needed: counts, 销号率 and score, and
    nothing else: no item, no project, no person, no reason text (which could name one)."""
    runtime = _runtime(request)
    config, now = runtime.deps, runtime.clock()
    units = list(config.units)
    items, reports = await q.items(runtime.pool, units), await q.reports(runtime.pool, units)
    progress_by_unit = {u: _progress(config, now, u, items, reports) for u in units}
    board = s.score_board(units, await q.scores(runtime.pool, units), progress_by_unit)
    rows = []
    for row in board:
        unit_progress = progress_by_unit[row.unit]
        rows.append({"rank": row.rank, "unit": row.unit, "unit_name": config.unit_name(row.unit),
                     "score": _points(row.score), "registered": unit_progress.registered,
                     "open": unit_progress.open, "closed": unit_progress.closed,
                     "overdue": unit_progress.overdue, "reopened": unit_progress.reopened,
                     "closure_percent": _percent(row.closure_rate),
                     "light": str(unit_progress.light)})
    return {"as_of": now.isoformat(), "units": rows}


@router.get("/rules", tags=["scores"])
async def rules(request: Request) -> dict[str, Any]:
    """The campaign rules this service applies, and the campaign rules it does not."""
    runtime, _ = _caller(request)
    config = runtime.deps
    result: dict[str, Any] = jsonable_encoder({
        "campaign": config.campaign_id,
        "rectification": dataclasses.asdict(config.rules),
        "deduction_rules": [
            {**dataclasses.asdict(rule), "points": s.points_str(rule.points),
             "max_points": s.points_str(rule.max_points) if rule.max_points else None}
            for rule in config.deduction_rules],
        "not_applied": [{"rule": rule, "reason": why} for rule, why in config.not_applied],
        "yellow_working_days": config.yellow_working_days,
    })
    return result
