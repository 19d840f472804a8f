"""HTTP routes of the rectification service: commands (request bodies are the commands) and
queries (read models, district roles see only their own unit).

A command route parses, runs the command through the kernel's pipeline (handlers.py has the
table) and maps the result: the pipeline refuses leaders and auditors and each handler's roles;
the domain checks the unit and the rest before anything is written. Command responses carry the
resulting state; queries read the projections (queries.py) and are eventually consistent.

The module stays whole (~540 lines): one flat list of routes of a few lines each, in the order of
the API document, so a reader finds a route by its path; the views above them are their shapes.
"""
from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from services.rectification import answers as a
from services.rectification import commands as c
from services.rectification import domain as d
from services.rectification import events as e
from services.rectification import handlers as h
from services.rectification import queries as q
from services.rectification import scoring as s
from services.rectification.config import RectificationConfig
from services.rectification.events import ProblemSource, ReportKind
from services.rectification.xlsx_export import (
    ListFooter,
    export_city_problem_list,
    export_monthly_list,
    export_problem_list,
)
from shared.api_contract import errors, text_content
from shared.auth import authorize_read
from shared.consistency import ReadYourWrites
from shared.errors import NotFoundError, ValidationFailed
from shared.messages import Actor
from shared.service import Runtime, runtime_of
from shared.telemetry import correlation_of
from shared.times import iso_local, local

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_OFFSET = 1_000_000  # as the registry's lists: far past any list here


# ----- plumbing ---------------------------------------------------------------------------------


def _runtime(request: Request) -> Runtime[RectificationConfig]:
    return runtime_of(request)


def _caller(request: Request) -> tuple[Runtime[RectificationConfig], Actor]:
    """The runtime and the authenticated principal (401 otherwise)."""
    runtime = _runtime(request)
    return runtime, runtime.authenticate(request)


def _known_unit(config: RectificationConfig, unit: str, field: str = "unit") -> None:
    """422 naming the valid codes (and, for a person, the units by name)."""
    if unit not in config.units:
        valid = ", ".join(config.units)
        names = "、".join(f"{config.unit_name(u)}（{u}）" for u in config.units)
        raise ValidationFailed([(field, f"unknown reporting unit {unit!r}; valid: {valid}")],
                               zh=f"填报单位代码有误，可选：{names}。")


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
#
# Every moment an answer carries is in the campaign's time zone (+08:00 for Ezhou), the kernel's
# convention (shared/times.py), applied here in one place (`_local`): the read models hold UTC, the
# store holds whatever offset the writer had, and an event payload's instants are ISO text.


def _local(value: Any, tz: ZoneInfo) -> Any:
    """`value` with every aware datetime in it (dicts, lists, tuples; ISO text in `*_at` / `due`
    keys of an event payload) moved to the campaign's time zone."""
    if isinstance(value, datetime):
        return local(value, tz) if value.tzinfo is not None else value
    if isinstance(value, dict):
        return {k: _local_field(k, v, tz) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_local(v, tz) for v in value]
    return value


def _local_field(key: Any, value: Any, tz: ZoneInfo) -> Any:
    if isinstance(value, str) and isinstance(key, str) and (key.endswith("_at") or key == "due"):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        return iso_local(moment, tz) if moment.tzinfo is not None else value
    return _local(value, tz)


def _json(value: Any, config: RectificationConfig) -> Any:
    return jsonable_encoder(_local(value, config.rules.tz))


def _points(value: Decimal) -> str:
    """Points as plain decimal text without trailing zeros ("98.5", "2", never "2.0" or "1E+2")."""
    return format(value.normalize(), "f")


def closure_view(closure: s.ClosureRate | None) -> dict[str, Any]:
    """销号率 as counts and a percentage: 0 of 5 is "0/5" and "0.0", never a reduced "0/1"."""
    if closure is None or closure.counted <= 0:
        return {"closure_rate": None, "closure_percent": None, "closure_closed": 0,
                "closure_counted": 0, "closure_text": "无问题"}
    return {"closure_rate": f"{closure.closed}/{closure.counted}",
            "closure_percent": str(closure.percent), "closure_closed": closure.closed,
            "closure_counted": closure.counted, "closure_text": closure.text}


def problem_view(state: d.ProblemState, config: RectificationConfig, now: datetime, *,
                 leader: str | None = None) -> dict[str, Any]:
    """An item as the API shows it. `leader`: the unit's 责任领导 (附件1), the 责任人 of an item
    nobody named (`responsible_person_effective`)."""
    view = dataclasses.asdict(state)
    light = s.item_light(state, now, config.is_working_day, rules=config.rules,
                         yellow_working_days=config.yellow_working_days)
    view.update(unit_name=config.unit_name(state.unit),
                status_label=d.STATUS_LABELS.get(state.status, ""),
                overdue=d.is_overdue(state, now, config.rules),
                light=str(light) if light else None,
                evidence_reuse_flagged=bool(state.flagged_hashes),
                responsible_person_effective=state.responsible_person or leader or "",
                deadline_text=(d.zh_deadline(state.deadline_kind, state.deadline)
                               if state.deadline is not None else None),
                deciders=d.close_out_deciders_zh(state) if state.is_registered else None)
    result: dict[str, Any] = _json(view, config)
    return result


def report_view(report: d.ReportState, config: RectificationConfig) -> dict[str, Any]:
    view = dataclasses.asdict(report)
    view["status_label"] = d.REPORT_STATUS_LABELS.get(report.status, "")
    result: dict[str, Any] = _json(view, config)
    return result


def progress_view(progress: s.UnitProgress, config: RectificationConfig) -> dict[str, Any]:
    view = dataclasses.asdict(progress)
    del view["closure"]
    view.update(unit_name=config.unit_name(progress.unit), light=str(progress.light),
                **closure_view(progress.closure))
    return view


def deduction_view(event: e.PointsDeducted | e.PointsRefunded, config: RectificationConfig, *,
                   at: datetime | None = None) -> dict[str, Any]:
    view = event.model_dump(mode="json")
    view["event_id"] = str(s.deduction_event_id(event))
    view["recorded_at"] = at
    if isinstance(event, e.PointsDeducted):
        view["rule"] = config.rule_description(event.rule_id)
        if event.deadline is not None:
            view["deadline_name"] = config.deadline_name(event.deadline)
    result: dict[str, Any] = _json(view, config)
    return result


def score_view(score: s.ScoreState, config: RectificationConfig,
               times: dict[uuid.UUID, Any] | None = None) -> dict[str, Any]:
    """A unit's deductions, each with its rule (the campaign file's Chinese description), what
    it was for and when, and the refund that gave it back if one did."""
    times = times or {}
    refunds = {(r.rule_id, r.trigger_ref): r for r in score.refunds}
    deductions = []
    for event in score.deductions:
        view = deduction_view(event, config, at=times.get(s.deduction_event_id(event)))
        refund = refunds.get((event.rule_id, event.trigger_ref))
        view["refunded"] = (None if refund is None else deduction_view(
            refund, config, at=times.get(s.deduction_event_id(refund))))
        deductions.append(view)
    return {"unit": score.unit, "unit_name": config.unit_name(score.unit),
            "deducted": _points(score.deducted), "deductions": deductions}


def _progress(config: RectificationConfig, now: datetime, unit: str, items: list[d.ProblemState],
              reports: list[d.ReportState], liaisons_at: dict[str, Any]) -> s.UnitProgress:
    return s.unit_progress(unit, items, reports, now=now, is_working_day=config.is_working_day,
                           rules=config.rules, yellow_working_days=config.yellow_working_days,
                           liaisons_at=liaisons_at.get(unit))


async def _item_view(runtime: Runtime[RectificationConfig], state: d.ProblemState
                     ) -> dict[str, Any]:
    """An item as a command leaves it, with its unit's 责任领导 (for `responsible_person_effective`)."""
    leaders = await q.responsible_leaders(runtime.pool, [state.unit])
    return problem_view(state, runtime.deps, runtime.clock(), leader=leaders.get(state.unit))


async def _item_command(cmd: c.Command, problem_id: uuid.UUID, request: Request) -> dict[str, Any]:
    """Run a command about one item; the item as it is afterwards."""
    runtime, actor = _caller(request)
    result = await runtime.run(cmd, actor, request)
    return await _item_view(runtime, result.state(d.problem_stream_id(problem_id)))


async def _report_command(cmd: c.Command, report_id: str, request: Request, *,
                          unit: str | None = None) -> dict[str, Any]:
    """Run a command about one report (of a known `unit`); the report as it is afterwards."""
    runtime, actor = _caller(request)
    if unit is not None:
        _known_unit(runtime.deps, unit)
    result = await runtime.run(cmd, actor, request)
    return report_view(result.state(d.report_stream_id(report_id)), runtime.deps)


router = APIRouter(dependencies=[ReadYourWrites])

# ----- problem items: commands ----------------------------------------------------------------------


@router.post("/problems/register", status_code=201, tags=["problems"], response_model=a.Problem,
             summary="登记问题 · Register a problem item", responses=errors(404))
async def register(cmd: c.RegisterProblem, request: Request) -> JSONResponse:
    """登记 a problem item of a known project (its unit's next 序号)."""
    runtime, actor = _caller(request)
    result = await runtime.run(cmd, actor, request)
    view = await _item_view(runtime, result.state(d.problem_stream_id(cmd.problem_id)))
    return JSONResponse(view, status_code=201 if result.changed else 200)


@router.post("/problems/start", tags=["problems"], response_model=a.Problem,
             summary="开始整改 · Start rectification", responses=errors(404))
async def start(cmd: c.StartRectification, request: Request) -> dict[str, Any]:
    """The unit starts rectifying an item, with its plan. 单位开始整改并填写整改措施。"""
    return await _item_command(cmd, cmd.problem_id, request)


@router.post("/problems/request-close-out", tags=["problems"], response_model=a.Problem,
             summary="申请销号 · Request close-out", responses=errors(404))
async def request_close_out(cmd: c.RequestCloseOut, request: Request) -> dict[str, Any]:
    """申请销号 with evidence; an attachment already filed for another item is flagged."""
    return await _item_command(cmd, cmd.problem_id, request)


@router.post("/problems/verify", tags=["problems"], response_model=a.Problem,
             summary="销号核验 · Verify a close-out", responses=errors(404))
async def verify(cmd: c.VerifyCloseOut, request: Request) -> dict[str, Any]:
    """销号: the unit's reviewer (self-found, ledger) or an inspector (city-found), never the
    requester; when the requester is the unit's own reviewer, city_admin decides too."""
    return await _item_command(cmd, cmd.problem_id, request)


@router.post("/problems/return", tags=["problems"], response_model=a.Problem,
             summary="退回销号申请 · Return a close-out request", responses=errors(404))
async def return_close_out(cmd: c.ReturnCloseOut, request: Request) -> dict[str, Any]:
    """The verifier sends a close-out request back with its reasons. 核验人退回销号申请。"""
    return await _item_command(cmd, cmd.problem_id, request)


@router.post("/problems/request-extension", tags=["problems"], response_model=a.Problem,
             summary="申请延期 · Request an extension", responses=errors(404))
async def request_extension(cmd: c.RequestExtension, request: Request) -> dict[str, Any]:
    """The unit asks for a later 整改限期, with its reason. 单位申请延长整改期限。"""
    return await _item_command(cmd, cmd.problem_id, request)


@router.post("/problems/decide-extension", tags=["problems"], response_model=a.Problem,
             summary="审批延期 · Decide an extension", responses=errors(404))
async def decide_extension(cmd: c.DecideExtension, request: Request) -> dict[str, Any]:
    """Grant or refuse a requested extension. 批准或驳回延期申请。"""
    return await _item_command(cmd, cmd.problem_id, request)


@router.post("/problems/withdraw", tags=["problems"], response_model=a.Problem,
             summary="撤销问题 · Withdraw a problem item", responses=errors(404))
async def withdraw(cmd: c.WithdrawProblem, request: Request) -> dict[str, Any]:
    """Withdraw an item registered in error, with the reason. 撤销误登记的问题。"""
    return await _item_command(cmd, cmd.problem_id, request)


@router.post("/problems/reopen", status_code=201, tags=["problems"], response_model=a.Reopened,
             summary="问题反弹 · Reopen a closed item", responses=errors(404))
async def reopen(cmd: c.ReopenProblem, request: Request) -> dict[str, Any]:
    """反弹: the closed item is marked reopened and a new item (next 序号) registered."""
    runtime, actor = _caller(request)
    result = await runtime.run(cmd, actor, request)
    return {"original": await _item_view(runtime, result.state(d.problem_stream_id(cmd.problem_id))),
            "problem": await _item_view(runtime,
                                        result.state(d.problem_stream_id(cmd.new_problem_id)))}


# ----- problem items: queries -----------------------------------------------------------------------


@router.get("/problems", tags=["problems"], response_model=a.ProblemPage,
            summary="问题列表 · List problem items")
async def list_problems(request: Request, unit: str | None = None,
                        status: d.ProblemStatus | None = None, overdue: bool | None = None,
                        source: ProblemSource | None = None,
                        project_id: str | None = Query(None, min_length=1, max_length=200),
                        limit: int = Query(100, ge=1, le=1000),
                        offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> dict[str, Any]:
    """Items by unit, project and state, each with its overdue flag (open and past its
    整改限期), by unit and 序号, a page at a time (`total` counts every match)."""
    runtime, actor = _caller(request)
    config, now = runtime.deps, runtime.clock()
    units = _units_readable(actor, config, unit)
    if unit is not None:
        _known_unit(config, unit)
    items = [item for item in await q.items(runtime.pool, units)
             if (status is None or item.status is status)
             and (overdue is None or d.is_overdue(item, now, config.rules) == overdue)
             and (source is None or item.source is source)
             and (project_id is None or item.project_id == project_id)]
    leaders = await q.responsible_leaders(runtime.pool, units)
    page = [problem_view(item, config, now, leader=leaders.get(item.unit))
            for item in items[offset:offset + limit]]
    return {"items": page, "total": len(items), "limit": limit, "offset": offset,
            "as_of": _json(now, config)}


@router.get("/problems/{problem_id}", tags=["problems"], response_model=a.ProblemWithHistory,
            summary="问题详情及历史 · A problem item and its history")
async def get_problem(problem_id: uuid.UUID, request: Request) -> dict[str, Any]:
    """One item with its history (every event, who did it, when)."""
    runtime, actor = _caller(request)
    item = await q.item(runtime.pool, problem_id)
    if item is None:
        raise NotFoundError(f"no problem {problem_id}", zh="未找到该问题，请核对问题编号。")
    authorize_read(actor, unit=item.unit)
    leaders = await q.responsible_leaders(runtime.pool, [item.unit])
    view = problem_view(item, runtime.deps, runtime.clock(), leader=leaders.get(item.unit))
    view["history"] = _json(await q.item_history(runtime.pool, problem_id), runtime.deps)
    return view


@router.get("/evidence/{content_hash}", tags=["problems"], response_model=a.EvidenceUse,
            summary="附件用于哪些问题 · Where an attachment was filed")
async def evidence(content_hash: str, request: Request) -> dict[str, Any]:
    """The items an attachment (by its SHA-256) was filed for."""
    runtime, actor = _caller(request)
    rows = await q.evidence_filed(runtime.pool, content_hash,
                                  _units_readable(actor, runtime.deps, None))
    return {"content_hash": content_hash, "filed_for": _json(rows, runtime.deps)}


@router.get("/projects", tags=["problems"], response_model=a.ProjectList,
            summary="项目（本服务视图） · Projects as this service sees them")
async def projects(request: Request, unit: str | None = None) -> dict[str, Any]:
    """This service's view of the registry's projects (unit, place, name, year, ledger)."""
    runtime, actor = _caller(request)
    rows = await q.projects(runtime.pool, _units_readable(actor, runtime.deps, unit))
    return {"projects": jsonable_encoder(rows)}


@router.get("/problem-list.xlsx", tags=["problems"], response_class=Response,
            summary="问题清单表格 · The live problem list (附件2, .xlsx)",
            responses=text_content(XLSX, binary=True))
async def live_list(request: Request, unit: str | None = None) -> Response:
    """The live problem list as .xlsx in the 附件2 layout: a unit's (a district role: its own),
    or, without `unit`, the city-wide list of every unit for the bureau (by unit, then 序号)."""
    runtime, actor = _caller(request)
    config, now = runtime.deps, runtime.clock()
    units = _units_readable(actor, config, unit)
    for code in units:
        _known_unit(config, code)
    items = await q.items(runtime.pool, units)
    leaders = await q.responsible_leaders(runtime.pool, units)
    footer = ListFooter(day=config.rules.local_date(now))
    rows = {code: d.problem_list_rows(items, unit=code, responsible_leader=leaders.get(code, ""))
            for code in units}
    if len(units) == 1 and (unit is not None or actor.role.is_district):
        [code] = units
        content = export_problem_list(rows[code], unit_name=config.unit_name(code), footer=footer,
                                      title=config.problem_list_title, as_of=now,
                                      rules=config.rules)
        return _xlsx(content, f"{code}-problem-list.xlsx")
    content = export_city_problem_list(
        [(config.area_name(code), rows[code]) for code in units],
        issuer=config.campaign.campaign.issuer, title=config.problem_list_title, footer=footer,
        as_of=now, rules=config.rules)
    return _xlsx(content, "city-problem-list.xlsx")


# ----- reports ------------------------------------------------------------------------------------


@router.post("/reports/monthly-list/submit", tags=["reports"], response_model=a.Report,
             summary="报送月度问题清单 · Submit the monthly list")
async def submit_monthly_list(cmd: c.SubmitMonthlyList, request: Request) -> dict[str, Any]:
    """The unit's 填报人 files this month's list: a frozen snapshot of its items."""
    return await _report_command(cmd, d.monthly_list_report_id(cmd.unit, cmd.month), request, unit=cmd.unit)


@router.post("/reports/monthly-list/return", tags=["reports"], response_model=a.Report,
             summary="退回月度问题清单 · Return a monthly list", responses=errors(404))
async def return_monthly_list(cmd: c.ReturnMonthlyList, request: Request) -> dict[str, Any]:
    """Send a submitted monthly list back to its unit. 退回已报送的月度清单。"""
    return await _report_command(cmd, d.monthly_list_report_id(cmd.unit, cmd.month), request, unit=cmd.unit)


@router.post("/reports/self-inspection/submit", tags=["reports"], response_model=a.Report,
             summary="报送自查报告 · Submit the self-inspection report")
async def submit_self_inspection(cmd: c.SubmitSelfInspectionReport,
                                 request: Request) -> dict[str, Any]:
    """The unit's 填报人 files its self-inspection report. 单位报送自查报告。"""
    return await _report_command(cmd, d.self_inspection_report_id(cmd.unit), request, unit=cmd.unit)


@router.post("/reports/work-plan/submit", tags=["reports"], response_model=a.Report,
             summary="报送工作计划 · Submit the work plan")
async def submit_work_plan(cmd: c.SubmitWorkPlan, request: Request) -> dict[str, Any]:
    """工作计划 (phase 1, due with the liaisons): the unit's 填报人 files it; late is recorded."""
    return await _report_command(cmd, d.work_plan_report_id(cmd.unit), request, unit=cmd.unit)


@router.post("/reports/typical-case/submit", tags=["reports"], response_model=a.Report,
             summary="报送典型案例 · Submit a typical case")
async def submit_typical_case(cmd: c.SubmitTypicalCase, request: Request) -> dict[str, Any]:
    """The unit files a typical case (典型案例). 单位报送典型案例。"""
    return await _report_command(cmd, d.typical_case_report_id(cmd.unit, cmd.case_id), request, unit=cmd.unit)


@router.post("/reports/review", tags=["reports"], response_model=a.Report,
             summary="审核报告 · Review a report", responses=errors(404))
async def review(cmd: c.ReviewReport, request: Request) -> dict[str, Any]:
    """The unit's 审核人 approves a submitted report or sends it back (never its submitter)."""
    return await _report_command(cmd, cmd.report_id, request)


@router.get("/reports", tags=["reports"], response_model=a.ReportList,
            summary="报告列表 · List reports")
async def list_reports(request: Request, unit: str | None = None,
                       kind: ReportKind | None = None) -> dict[str, Any]:
    """Reports by unit and kind, each with its state. 按单位和类型列出报告。"""
    runtime, actor = _caller(request)
    reports = await q.reports(runtime.pool, _units_readable(actor, runtime.deps, unit))
    return {"reports": [report_view(r, runtime.deps) for r in reports
                        if kind is None or r.kind is kind]}


@router.get("/reports/{report_id}", tags=["reports"], response_model=a.Report,
            summary="报告详情 · A report")
async def get_report(report_id: str, request: Request) -> dict[str, Any]:
    """One report as it stands. 单份报告。"""
    runtime, actor = _caller(request)
    report = await q.report(runtime.pool, report_id)
    if report is None:
        raise NotFoundError(f"no report {report_id}", zh=d.NO_REPORT_ZH)
    authorize_read(actor, unit=report.unit)
    return report_view(report, runtime.deps)


@router.get("/reports/{report_id}/xlsx", tags=["reports"], response_class=Response,
            summary="月度清单表格 · A filed monthly list (.xlsx)",
            responses=text_content(XLSX, binary=True))
async def monthly_list_xlsx(report_id: str, request: Request) -> Response:
    """A submitted monthly list as filed (its frozen rows), .xlsx in the 附件2 layout. Read
    from the report's own stream: the document is never a second copy that could drift."""
    runtime, actor = _caller(request)
    initial = d.report_initial(report_id)
    authorize_read(actor, unit=initial.unit)
    if initial.kind is not ReportKind.MONTHLY_LIST:
        raise NotFoundError(f"{report_id} is not a monthly list",
                            zh="只有月度问题清单可以导出为表格。")
    report = await q.report_from_store(runtime.store, report_id)
    if report.status is None:
        raise NotFoundError(f"monthly list {report_id} has not been submitted",
                            zh="该月问题清单尚未报送，无可导出。")
    content = export_monthly_list(report, unit_name=runtime.deps.unit_name(report.unit),
                                  rules=runtime.deps.rules, title=runtime.deps.problem_list_title)
    return _xlsx(content, f"{report_id}.xlsx")


# ----- progress and scores ------------------------------------------------------------------------


@router.get("/progress", tags=["scores"], response_model=a.Progress,
            summary="各单位进度 · Progress per unit")
async def progress(request: Request, unit: str | None = None) -> dict[str, Any]:
    """Per unit: items open / closed / overdue / reopened, 销号率, late and missing reports,
    traffic light."""
    runtime, actor = _caller(request)
    config, now = runtime.deps, runtime.clock()
    units = _units_readable(actor, config, unit)
    items, reports = await q.items(runtime.pool, units), await q.reports(runtime.pool, units)
    liaisons_at = await q.liaisons_complete_at(runtime.pool, units)
    return {"as_of": _json(now, config),
            "units": [progress_view(_progress(config, now, u, items, reports, liaisons_at), config)
                      for u in units]}


@router.get("/scores/board", tags=["scores"], response_model=a.ScoreBoard,
            summary="积分排名 · The score board")
async def score_board(request: Request) -> dict[str, Any]:
    """The units ranked (`order` says how, in Chinese), each with its score, its 销号率 as counts
    and a percentage, its progress, and every deduction with its rule (the campaign file's
    description), what it was for, when, and its refund if one gave it back."""
    runtime, _ = _caller(request)
    config, now = runtime.deps, runtime.clock()
    units = list(config.units)
    items, reports = await q.items(runtime.pool, units), await q.reports(runtime.pool, units)
    liaisons_at = await q.liaisons_complete_at(runtime.pool, units)
    progress_by_unit = {u: _progress(config, now, u, items, reports, liaisons_at) for u in units}
    scores = await q.scores(runtime.pool, units)
    times = await q.deduction_times(runtime.pool, units)
    board = s.score_board(units, scores, progress_by_unit)
    return {"as_of": _json(now, config), "order": s.BOARD_ORDER_ZH, "board": [
        {"rank": row.rank, "unit": row.unit, "unit_name": config.unit_name(row.unit),
         "score": _points(row.score), "deducted": _points(row.deducted),
         **closure_view(row.closure),
         "progress": progress_view(progress_by_unit[row.unit], config),
         "deductions": score_view(scores[row.unit], config, times)["deductions"]}
        for row in board]}


@router.get("/scores/{unit}", tags=["scores"], response_model=a.UnitScore,
            summary="单位扣分明细 · A unit's deductions")
async def unit_score(unit: str, request: Request) -> dict[str, Any]:
    """A unit's deductions with their rules and refunds. 单位的扣分及退还明细。"""
    runtime, actor = _caller(request)
    [unit] = _units_readable(actor, runtime.deps, unit)
    _known_unit(runtime.deps, unit)
    return score_view((await q.scores(runtime.pool, [unit]))[unit], runtime.deps,
                      await q.deduction_times(runtime.pool, [unit]))


@router.post("/scores/deduct", tags=["scores"], response_model=a.UnitScore,
             summary="酌情扣分 · Deduct points")
async def deduct(cmd: c.DeductPoints, request: Request) -> dict[str, Any]:
    """酌情扣分 by city_admin, with a reason (the deduction id makes a retry harmless)."""
    runtime, actor = _caller(request)
    _known_unit(runtime.deps, cmd.unit)
    result = await runtime.run(cmd, actor, request)
    return score_view(result.state(d.score_stream_id(cmd.unit)), runtime.deps)


@router.post("/scores/check", tags=["scores"], response_model=a.CheckResult,
             summary="按规则扣分 · Apply the deduction rules now")
async def check(request: Request) -> dict[str, Any]:
    """Apply the campaign's deduction rules now (the service also does this periodically)."""
    runtime, actor = _caller(request)
    decided = await h.apply_deductions(runtime.commands, actor=actor, now=runtime.clock(),
                                       correlation_id=correlation_of(request))
    return {"deducted": [deduction_view(x, runtime.deps) for x in decided
                         if isinstance(x, e.PointsDeducted)],
            "refunded": [deduction_view(x, runtime.deps) for x in decided
                         if isinstance(x, e.PointsRefunded)]}


PUBLIC_RESULTS = "/public/results"


@router.get(PUBLIC_RESULTS, tags=["public"], response_model=a.PublicResults,
            summary="公开结果 · Public results")
async def public_results(request: Request) -> dict[str, Any]:
    """一公开: each unit's results for anyone, no token needed: counts, 销号率 and score, and
    nothing else: no item, no project, no person, no reason text (which could name one)."""
    runtime = _runtime(request)
    config, now = runtime.deps, runtime.clock()
    units = list(config.units)
    items, reports = await q.items(runtime.pool, units), await q.reports(runtime.pool, units)
    liaisons_at = await q.liaisons_complete_at(runtime.pool, units)
    progress_by_unit = {u: _progress(config, now, u, items, reports, liaisons_at) for u in units}
    board = s.score_board(units, await q.scores(runtime.pool, units), progress_by_unit)
    rows = []
    for row in board:
        unit_progress = progress_by_unit[row.unit]
        rows.append({"rank": row.rank, "unit": row.unit, "unit_name": config.unit_name(row.unit),
                     "score": _points(row.score), "registered": unit_progress.registered,
                     "open": unit_progress.open, "closed": unit_progress.closed,
                     "overdue": unit_progress.overdue, "reopened": unit_progress.reopened,
                     **closure_view(row.closure), "light": str(unit_progress.light)})
    return {"as_of": _json(now, config), "order": s.BOARD_ORDER_ZH, "units": rows}


@router.get("/rules", tags=["scores"], response_model=a.Rules,
            summary="适用规则 · The campaign rules applied")
async def rules(request: Request) -> dict[str, Any]:
    """The campaign rules this service applies, and the campaign rules it does not."""
    runtime, _ = _caller(request)
    config = runtime.deps
    result: dict[str, Any] = jsonable_encoder({
        "campaign": config.campaign_id,
        "rectification": dataclasses.asdict(config.rules),
        "deduction_rules": [
            {**dataclasses.asdict(rule), "points": s.points_str(rule.points),
             "max_points": s.points_str(rule.max_points) if rule.max_points else None,
             "deadline_name": config.deadline_name(rule.deadline) if rule.deadline else None}
            for rule in config.deduction_rules],
        "not_applied": [{"rule": rule, "reason": why} for rule, why in config.not_applied],
        "yellow_working_days": config.yellow_working_days,
    })
    return result
