"""HTTP routes of the rectification service: commands (request bodies are the commands) and
queries (read models, district roles see only their own unit).

Every command is checked against the principal before anything is written: leaders and auditors
send none, a district role acts only on its own unit (`authorize_command` where the unit is in the
command, the domain's own checks where it is the item's). A broken four-eyes rule is 409
(handlers.py says why), a missing authority 403. Command responses carry the resulting state;
queries read the projections and are eventually consistent.
"""
from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any, Sequence

from fastapi import APIRouter, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from shared.auth import authorize_command, authorize_read
from shared.errors import ForbiddenError, NotFoundError, ValidationFailed
from shared.messages import Actor, Role
from shared.service import Runtime, new_correlation_id

from . import commands as c
from . import domain as d
from . import handlers as h
from . import scoring as s
from .config import RectificationConfig
from .events import ReportKind
from .projections import points_deducted, problem_state, report_state
from .xlsx_export import ListFooter, export_monthly_list, export_problem_list

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclasses.dataclass(frozen=True)
class Call:
    """What every route needs: the runtime, the principal, the campaign config, now."""

    runtime: Runtime
    actor: Actor
    config: RectificationConfig
    now: datetime
    correlation_id: uuid.UUID

    @property
    def store(self) -> Any:
        return self.runtime.store

    @property
    def pool(self) -> Any:
        return self.runtime.pool


def _call(request: Request) -> Call:
    runtime: Runtime = request.app.state.runtime
    actor = runtime.authenticate(request)
    return Call(runtime=runtime, actor=actor, config=runtime.deps, now=runtime.clock(),
                correlation_id=new_correlation_id(request))


def _known_unit(call: Call, unit: str, field: str = "unit") -> None:
    if unit not in call.config.units:
        raise ValidationFailed([(field, f"unknown reporting unit {unit!r}")])


def _units_readable(call: Call, unit: str | None) -> list[str]:
    """The units a query may show: a district role its own only (asking for another is 403)."""
    if call.actor.role.is_district:
        authorize_read(call.actor, unit=unit)
        return [call.actor.unit or ""]
    if unit is not None:
        return [unit]
    return list(call.config.units)


# ------------------------------------------------------------------------------------------
# Views


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


def problem_view(state: d.ProblemState, call: Call) -> dict[str, Any]:
    view = dataclasses.asdict(state)
    light = s.item_light(state, call.now, call.config.is_working_day, rules=call.config.rules,
                         yellow_working_days=call.config.yellow_working_days)
    view.update(unit_name=call.config.unit_name(state.unit),
                overdue=d.is_overdue(state, call.now, call.config.rules),
                light=str(light) if light else None,
                evidence_reuse_flagged=bool(state.flagged_hashes))
    return jsonable_encoder(view)


def report_view(report: d.ReportState) -> dict[str, Any]:
    return jsonable_encoder(dataclasses.asdict(report))


def progress_view(progress: s.UnitProgress, config: RectificationConfig) -> dict[str, Any]:
    view = dataclasses.asdict(progress)
    view.update(unit_name=config.unit_name(progress.unit), light=str(progress.light),
                closure_rate=_fraction(progress.closure_rate),
                closure_percent=_percent(progress.closure_rate))
    return view


def deduction_view(event: Any) -> dict[str, Any]:
    return jsonable_encoder(event.model_dump(mode="json"))


# ------------------------------------------------------------------------------------------
# Read-model access


async def _project(call: Call, project_id: str) -> d.ProjectRef | None:
    row = await call.pool.fetchrow(
        "SELECT project_id, unit, township, name, project_year FROM rectification.projects "
        "WHERE project_id = $1", project_id)
    if row is None:
        return None
    return d.ProjectRef(project_id=row["project_id"], unit=row["unit"], township=row["township"],
                        name=row["name"], year=row["project_year"] or 0)


async def _items(call: Call, units: Sequence[str]) -> list[d.ProblemState]:
    rows = await call.pool.fetch(
        "SELECT * FROM rectification.problems WHERE unit = ANY($1) ORDER BY unit, seq_no",
        list(units))
    return [problem_state(row) for row in rows]


async def _reports(call: Call, units: Sequence[str]) -> list[d.ReportState]:
    rows = await call.pool.fetch(
        "SELECT * FROM rectification.reports WHERE unit = ANY($1) ORDER BY unit, report_id",
        list(units))
    return [report_state(row) for row in rows]


async def _scores(call: Call, units: Sequence[str]) -> dict[str, s.ScoreState]:
    rows = await call.pool.fetch(
        "SELECT * FROM rectification.deductions WHERE unit = ANY($1) ORDER BY occurred_at, event_id",
        list(units))
    events: dict[str, list[Any]] = {unit: [] for unit in units}
    for row in rows:
        events[row["unit"]].append(points_deducted(row))
    return {unit: s.fold_score(unit, events[unit]) for unit in units}


def _progress(call: Call, unit: str, items: list[d.ProblemState],
              reports: list[d.ReportState]) -> s.UnitProgress:
    return s.unit_progress(unit, items, reports, now=call.now,
                           is_working_day=call.config.is_working_day, rules=call.config.rules,
                           yellow_working_days=call.config.yellow_working_days)


def _xlsx(content: bytes, filename: str) -> Response:
    return Response(content, media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _no_commands_for_readers(actor: Actor) -> None:
    if not actor.role.may_command:
        raise ForbiddenError(f"role {actor.role.value} sends no commands")


# ------------------------------------------------------------------------------------------
# Routes


def routes() -> APIRouter:  # noqa: C901 - one flat list of routes reads best
    router = APIRouter()

    # ---- problem items: commands -------------------------------------------------------------

    @router.post("/problems/register", status_code=201, tags=["problems"])
    async def register(cmd: c.RegisterProblem, request: Request) -> JSONResponse:
        """登记 a problem item of a known project (its unit's next 序号)."""
        call = _call(request)
        project = await _project(call, cmd.project_id)
        if project is None:
            _no_commands_for_readers(call.actor)
            raise NotFoundError(f"unknown project {cmd.project_id}: a problem needs a known project")
        authorize_command(call.actor, unit=project.unit)
        outcome = await h.register_problem(call.store, cmd, project, actor=call.actor,
                                           now=call.now, rules=call.config.rules,
                                           correlation_id=call.correlation_id)
        state = outcome.state(d.problem_stream_id(cmd.problem_id))
        return JSONResponse(problem_view(state, call), status_code=201 if outcome.events else 200)

    async def change(request: Request, problem_id: uuid.UUID, decide: Any,
                     call: Call | None = None) -> dict[str, Any]:
        call = call or _call(request)
        outcome = await h.change_problem(
            call.store, problem_id, lambda state: decide(state, call), actor=call.actor,
            now=call.now, correlation_id=call.correlation_id)
        return problem_view(outcome.state(d.problem_stream_id(problem_id)), call)

    @router.post("/problems/start", tags=["problems"])
    async def start(cmd: c.StartRectification, request: Request) -> dict[str, Any]:
        return await change(request, cmd.problem_id, lambda st, call: d.decide_start_rectification(
            st, cmd, actor=call.actor, now=call.now))

    @router.post("/problems/request-close-out", tags=["problems"])
    async def request_close_out(cmd: c.RequestCloseOut, request: Request) -> dict[str, Any]:
        """申请销号 with evidence; an attachment already filed for another item is flagged."""
        call = _call(request)
        index = await h.evidence_index(call.pool, cmd.attachment_hashes)
        return await change(request, cmd.problem_id, lambda st, call: d.decide_request_close_out(
            st, cmd, actor=call.actor, now=call.now, evidence_index=index), call)

    @router.post("/problems/verify", tags=["problems"])
    async def verify(cmd: c.VerifyCloseOut, request: Request) -> dict[str, Any]:
        """销号: the unit's reviewer (self-found, ledger) or an inspector (city-found), never the
        requester."""
        return await change(request, cmd.problem_id, lambda st, call: d.decide_verify_close_out(
            st, cmd, actor=call.actor, now=call.now))

    @router.post("/problems/return", tags=["problems"])
    async def return_close_out(cmd: c.ReturnCloseOut, request: Request) -> dict[str, Any]:
        return await change(request, cmd.problem_id, lambda st, call: d.decide_return_close_out(
            st, cmd, actor=call.actor, now=call.now))

    @router.post("/problems/request-extension", tags=["problems"])
    async def request_extension(cmd: c.RequestExtension, request: Request) -> dict[str, Any]:
        return await change(request, cmd.problem_id, lambda st, call: d.decide_request_extension(
            st, cmd, actor=call.actor, now=call.now))

    @router.post("/problems/decide-extension", tags=["problems"])
    async def decide_extension(cmd: c.DecideExtension, request: Request) -> dict[str, Any]:
        return await change(request, cmd.problem_id, lambda st, call: d.decide_extension(
            st, cmd, actor=call.actor, now=call.now))

    @router.post("/problems/withdraw", tags=["problems"])
    async def withdraw(cmd: c.WithdrawProblem, request: Request) -> dict[str, Any]:
        return await change(request, cmd.problem_id, lambda st, call: d.decide_withdraw_problem(
            st, cmd, actor=call.actor, now=call.now))

    @router.post("/problems/reopen", status_code=201, tags=["problems"])
    async def reopen(cmd: c.ReopenProblem, request: Request) -> dict[str, Any]:
        """反弹: the closed item is marked reopened and a new item (next 序号) registered."""
        call = _call(request)
        outcome = await h.reopen_problem(call.store, cmd, actor=call.actor, now=call.now,
                                         rules=call.config.rules,
                                         correlation_id=call.correlation_id)
        return {"original": problem_view(outcome.state(d.problem_stream_id(cmd.problem_id)), call),
                "problem": problem_view(outcome.state(d.problem_stream_id(cmd.new_problem_id)),
                                        call)}

    # ---- problem items: queries ---------------------------------------------------------------

    @router.get("/problems", tags=["problems"])
    async def list_problems(request: Request, unit: str | None = None,
                            status: d.ProblemStatus | None = None, overdue: bool | None = None,
                            source: str | None = None) -> dict[str, Any]:
        """Items by unit and state, each with its overdue flag (open and past its 整改限期)."""
        call = _call(request)
        views = [problem_view(item, call) for item in await _items(call, _units_readable(call, unit))]
        views = [v for v in views
                 if (status is None or v["status"] == status.value)
                 and (overdue is None or v["overdue"] == overdue)
                 and (source is None or v["source"] == source)]
        return {"items": views, "as_of": call.now.isoformat()}

    @router.get("/problems/{problem_id}", tags=["problems"])
    async def get_problem(problem_id: uuid.UUID, request: Request) -> dict[str, Any]:
        """One item with its history (every event, who did it, when)."""
        call = _call(request)
        row = await call.pool.fetchrow("SELECT * FROM rectification.problems WHERE problem_id = $1",
                                       problem_id)
        if row is None:
            raise NotFoundError(f"no problem {problem_id}")
        authorize_read(call.actor, unit=row["unit"])
        history = await call.pool.fetch(
            "SELECT event_id, stream_version, event_type, occurred_at, actor_id, actor_name, "
            "actor_role, payload FROM rectification.problem_history WHERE problem_id = $1 "
            "ORDER BY stream_version", problem_id)
        view = problem_view(problem_state(row), call)
        view["history"] = jsonable_encoder([dict(r) for r in history])
        return view

    @router.get("/evidence/{content_hash}", tags=["problems"])
    async def evidence(content_hash: str, request: Request) -> dict[str, Any]:
        """The items an attachment (by its SHA-256) was filed for."""
        call = _call(request)
        units = _units_readable(call, None)
        rows = await call.pool.fetch(
            "SELECT problem_id, unit, filed_at FROM rectification.evidence "
            "WHERE content_hash = $1 AND unit = ANY($2) ORDER BY filed_at", content_hash, units)
        return {"content_hash": content_hash, "filed_for": jsonable_encoder([dict(r) for r in rows])}

    @router.get("/projects", tags=["problems"])
    async def projects(request: Request, unit: str | None = None) -> dict[str, Any]:
        """This service's view of the registry's projects (unit, place, name, year, ledger)."""
        call = _call(request)
        rows = await call.pool.fetch(
            "SELECT project_id, project_type, name, unit, township, project_year, "
            "operating_status, on_ledger, ledger_entry_id, ledger_reason, ledger_reason_details, "
            "listed_on FROM rectification.projects WHERE unit = ANY($1) ORDER BY unit, project_id",
            _units_readable(call, unit))
        return {"projects": jsonable_encoder([dict(r) for r in rows])}

    @router.get("/problem-list.xlsx", tags=["problems"], response_class=Response)
    async def live_list(request: Request, unit: str = Query(...)) -> Response:
        """The unit's live problem list as .xlsx in the 附件2 layout."""
        call = _call(request)
        [unit] = _units_readable(call, unit)
        _known_unit(call, unit)
        rows = d.problem_list_rows(await _items(call, [unit]), unit=unit)
        content = export_problem_list(rows, unit_name=call.config.unit_name(unit),
                                      footer=ListFooter(day=call.config.rules.local_date(call.now)))
        return _xlsx(content, f"{unit}-problem-list.xlsx")

    # ---- reports ------------------------------------------------------------------------------

    @router.post("/reports/monthly-list/submit", tags=["reports"])
    async def submit_monthly_list(cmd: c.SubmitMonthlyList, request: Request) -> dict[str, Any]:
        """The unit's 填报人 files this month's list: a frozen snapshot of its items."""
        call = _call(request)
        _known_unit(call, cmd.unit)
        authorize_command(call.actor, unit=cmd.unit, roles={Role.DISTRICT_REPORTER})
        outcome = await h.submit_monthly_list(call.store, cmd, actor=call.actor, now=call.now,
                                              rules=call.config.rules,
                                              correlation_id=call.correlation_id)
        report_id = d.monthly_list_report_id(cmd.unit, cmd.month)
        return report_view(outcome.state(d.report_stream_id(report_id)))

    @router.post("/reports/monthly-list/return", tags=["reports"])
    async def return_monthly_list(cmd: c.ReturnMonthlyList, request: Request) -> dict[str, Any]:
        call = _call(request)
        _known_unit(call, cmd.unit)
        authorize_command(call.actor, unit=cmd.unit, roles={Role.CITY_ADMIN})
        report_id = d.monthly_list_report_id(cmd.unit, cmd.month)
        outcome = await h.change_report(
            call.store, report_id, lambda report: d.decide_return_monthly_list(
                report, cmd, actor=call.actor, now=call.now),
            actor=call.actor, now=call.now, correlation_id=call.correlation_id)
        return report_view(outcome.state(d.report_stream_id(report_id)))

    @router.post("/reports/self-inspection/submit", tags=["reports"])
    async def submit_self_inspection(cmd: c.SubmitSelfInspectionReport,
                                     request: Request) -> dict[str, Any]:
        call = _call(request)
        _known_unit(call, cmd.unit)
        authorize_command(call.actor, unit=cmd.unit, roles={Role.DISTRICT_REPORTER})
        report_id = d.self_inspection_report_id(cmd.unit)
        outcome = await h.change_report(
            call.store, report_id, lambda report: d.decide_submit_self_inspection_report(
                report, cmd, actor=call.actor, now=call.now, rules=call.config.rules),
            actor=call.actor, now=call.now, correlation_id=call.correlation_id)
        return report_view(outcome.state(d.report_stream_id(report_id)))

    @router.post("/reports/typical-case/submit", tags=["reports"])
    async def submit_typical_case(cmd: c.SubmitTypicalCase, request: Request) -> dict[str, Any]:
        call = _call(request)
        _known_unit(call, cmd.unit)
        authorize_command(call.actor, unit=cmd.unit, roles={Role.DISTRICT_REPORTER})
        report_id = d.typical_case_report_id(cmd.unit, cmd.case_id)
        outcome = await h.change_report(
            call.store, report_id, lambda report: d.decide_submit_typical_case(
                report, cmd, actor=call.actor, now=call.now, rules=call.config.rules),
            actor=call.actor, now=call.now, correlation_id=call.correlation_id)
        return report_view(outcome.state(d.report_stream_id(report_id)))

    @router.post("/reports/review", tags=["reports"])
    async def review(cmd: c.ReviewReport, request: Request) -> dict[str, Any]:
        """The unit's 审核人 approves a submitted report or sends it back (never its submitter)."""
        call = _call(request)
        unit = h.report_initial(cmd.report_id).unit
        authorize_command(call.actor, unit=unit, roles={Role.DISTRICT_REVIEWER})
        outcome = await h.change_report(
            call.store, cmd.report_id, lambda report: d.decide_review_report(
                report, cmd, actor=call.actor, now=call.now),
            actor=call.actor, now=call.now, correlation_id=call.correlation_id)
        return report_view(outcome.state(d.report_stream_id(cmd.report_id)))

    @router.get("/reports", tags=["reports"])
    async def list_reports(request: Request, unit: str | None = None,
                           kind: ReportKind | None = None) -> dict[str, Any]:
        call = _call(request)
        reports = await _reports(call, _units_readable(call, unit))
        return {"reports": [report_view(r) for r in reports if kind is None or r.kind is kind]}

    @router.get("/reports/{report_id}", tags=["reports"])
    async def get_report(report_id: str, request: Request) -> dict[str, Any]:
        call = _call(request)
        row = await call.pool.fetchrow("SELECT * FROM rectification.reports WHERE report_id = $1",
                                       report_id)
        if row is None:
            raise NotFoundError(f"no report {report_id}")
        authorize_read(call.actor, unit=row["unit"])
        return report_view(report_state(row))

    @router.get("/reports/{report_id}/xlsx", tags=["reports"], response_class=Response)
    async def monthly_list_xlsx(report_id: str, request: Request) -> Response:
        """A submitted monthly list as filed (its frozen rows), .xlsx in the 附件2 layout. Read
        from the report's own stream: the document is never a second copy that could drift."""
        call = _call(request)
        initial = h.report_initial(report_id)
        authorize_read(call.actor, unit=initial.unit)
        if initial.kind is not ReportKind.MONTHLY_LIST:
            raise NotFoundError(f"{report_id} is not a monthly list")
        report = await h.load_report(call.store, report_id)
        if report.status is None:
            raise NotFoundError(f"monthly list {report_id} has not been submitted")
        content = export_monthly_list(report, unit_name=call.config.unit_name(report.unit),
                                      rules=call.config.rules)
        return _xlsx(content, f"{report_id}.xlsx")

    # ---- progress and scores ------------------------------------------------------------------

    @router.get("/progress", tags=["scores"])
    async def progress(request: Request, unit: str | None = None) -> dict[str, Any]:
        """Per unit: items open / closed / overdue / reopened, 销号率, late and missing reports,
        traffic light."""
        call = _call(request)
        units = _units_readable(call, unit)
        items, reports = await _items(call, units), await _reports(call, units)
        return {"as_of": call.now.isoformat(),
                "units": [progress_view(_progress(call, u, items, reports), call.config)
                          for u in units]}

    @router.get("/scores/board", tags=["scores"])
    async def score_board(request: Request) -> dict[str, Any]:
        """The units ranked: 100 minus deductions, ties by 销号率, then unit code."""
        call = _call(request)
        units = list(call.config.units)
        items, reports = await _items(call, units), await _reports(call, units)
        progress_by_unit = {u: _progress(call, u, items, reports) for u in units}
        board = s.score_board(units, await _scores(call, units), progress_by_unit)
        return {"as_of": call.now.isoformat(), "board": [
            {"rank": row.rank, "unit": row.unit, "unit_name": call.config.unit_name(row.unit),
             "score": _points(row.score), "deducted": _points(row.deducted),
             "closure_rate": _fraction(row.closure_rate),
             "closure_percent": _percent(row.closure_rate)} for row in board]}

    @router.get("/scores/{unit}", tags=["scores"])
    async def unit_score(unit: str, request: Request) -> dict[str, Any]:
        call = _call(request)
        [unit] = _units_readable(call, unit)
        score = (await _scores(call, [unit]))[unit]
        return {"unit": unit, "deducted": _points(score.deducted),
                "deductions": [deduction_view(x) for x in score.deductions]}

    @router.post("/scores/deduct", tags=["scores"])
    async def deduct(cmd: c.DeductPoints, request: Request) -> dict[str, Any]:
        """酌情扣分 by city_admin, with a reason (the deduction id makes a retry harmless)."""
        call = _call(request)
        _known_unit(call, cmd.unit)
        authorize_command(call.actor, unit=cmd.unit, roles={Role.CITY_ADMIN})
        outcome = await h.deduct_points(call.store, cmd, actor=call.actor, now=call.now,
                                        correlation_id=call.correlation_id)
        score = outcome.state(d.score_stream_id(cmd.unit))
        return {"unit": cmd.unit, "deducted": _points(score.deducted),
                "deductions": [deduction_view(x) for x in score.deductions]}

    @router.post("/scores/check", tags=["scores"])
    async def check(request: Request) -> dict[str, Any]:
        """Apply the campaign's deduction rules now (the service also does this periodically)."""
        call = _call(request)
        authorize_command(call.actor, roles={Role.CITY_ADMIN})
        decided = await h.check_deductions(
            call.store, call.pool, units=call.config.units, rules=call.config.rules,
            deduction_rules=call.config.deduction_rules, now=call.now,
            correlation_id=call.correlation_id)
        return {"deducted": [deduction_view(x) for x in decided]}

    @router.get("/rules", tags=["scores"])
    async def rules(request: Request) -> dict[str, Any]:
        """The campaign rules this service applies, and the campaign rules it does not."""
        call = _call(request)
        config = call.config
        return jsonable_encoder({
            "campaign": config.campaign_id,
            "rectification": dataclasses.asdict(config.rules),
            "deduction_rules": [
                {**dataclasses.asdict(rule), "points": s.points_str(rule.points),
                 "max_points": s.points_str(rule.max_points) if rule.max_points else None}
                for rule in config.deduction_rules],
            "not_applied": [{"rule": rule, "reason": why} for rule, why in config.not_applied],
            "yellow_working_days": config.yellow_working_days,
        })

    return router
