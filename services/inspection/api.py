"""HTTP routes of the inspection service: the draw's commands, its 抽查名单 and the visit progress.

Commands: only `inspector` and `city_admin` act; everyone else gets 403 before the body is even
read (the command table says the same to the pipeline, which is the authority). The frozen
commands are the request bodies; a response carries the resulting state, so a caller need not
wait for the read models. Queries: every role reads; a district role sees only its own unit (its
draw list, picks, visits, findings, progress), whatever unit it asks for. The 抽查名单 is built
from the draw stream itself, so the served document is exactly what verifies offline.
"""
from __future__ import annotations

import io
import re
from collections.abc import Awaitable, Callable
from datetime import tzinfo
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError

from services.inspection import answers as a
from services.inspection import commands as c
from services.inspection import domain as d
from services.inspection import queries as q
from services.inspection.config import InspectionDeps
from services.inspection.draw_export import document_json, draw_document, write_draw_xlsx
from services.inspection.events import FindingRecorded, HouseholdReplaced
from services.inspection.vocabulary import inspection_vocabulary
from shared.api_contract import text_content
from shared.auth import authorize_command, authorize_read
from shared.consistency import ReadYourWrites
from shared.errors import FieldProblem, ValidationFailed
from shared.messages import Actor
from shared.pipeline import CommandResult
from shared.service import Runtime, runtime_of
from shared.times import json_value

# Draw and visit ids travel in URL paths and file names: keep them plain.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
_ID_RULE = "1-80 letters, digits, '.', '_' or '-', starting with a letter or digit"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# ----- plumbing -----------------------------------------------------------------------------------


def _runtime(request: Request) -> Runtime[InspectionDeps]:
    return runtime_of(request)


async def reader(request: Request) -> Actor:
    """Any authenticated principal (401 otherwise)."""
    return _runtime(request).authenticate(request)


async def commander(request: Request) -> Actor:
    """The caller, if it may send inspection commands; as a dependency it runs before the body is
    validated, so everyone else gets 403 whatever they send."""
    actor = _runtime(request).authenticate(request)
    authorize_command(actor, roles=d.INSPECTION_ROLES)
    return actor


Reader = Annotated[Actor, Depends(reader)]
Commander = Annotated[Actor, Depends(commander)]


def _check_ids(**fields: tuple[str, str | None]) -> None:
    """422 for a malformed id, or a body id that differs from the one in the path."""
    problems = []
    for name, (value, in_path) in fields.items():
        if not _ID.match(value):
            problems.append({"loc": ("body", name), "msg": f"use {_ID_RULE}", "type": "value_error"})
        elif in_path is not None and value != in_path:
            problems.append({"loc": ("body", name), "msg": f"{value!r} differs from the path's "
                             f"{in_path!r}", "type": "value_error"})
    if problems:
        raise RequestValidationError(problems)


def _scope(request: Request, actor: Actor, unit: str | None) -> str | None:
    """The unit a query may show: a district role's own unit whatever it asked, else the asked one.
    An unknown unit code is a 422 naming the valid ones."""
    units = inspection_vocabulary(_runtime(request).deps.campaign)["unit"]
    if unit is not None and not units.has(unit):
        raise ValidationFailed([FieldProblem("unit", f"unknown unit {unit!r}", units.codes)],
                               zh=f"填报单位“{unit}”不存在，可选：{units.valid()}。")
    authorize_read(actor, unit=unit)
    return actor.unit if actor.role.is_district else unit


async def _run(request: Request, cmd: c.DrawCommand, actor: Actor
               ) -> tuple[d.DrawState, int, CommandResult]:
    """Run a command on its draw: the draw's state and version afterwards, and the result."""
    result = await _runtime(request).run(cmd, actor, request)
    stream_id = d.draw_spec(cmd.draw_id).stream_id
    state: d.DrawState = result.state(stream_id)
    return state, result.version(stream_id), result


def _tz(request: Request) -> tzinfo:
    """The campaign's time zone: every instant in an answer carries its offset (+08:00)."""
    return _runtime(request).deps.campaign.tz


def _iso(value: Any, tz: tzinfo) -> Any:
    return json_value(value, tz)


def _rows(rows: list[asyncpg.Record], tz: tzinfo) -> list[dict[str, Any]]:
    return [{k: _iso(v, tz) for k, v in dict(r).items()} for r in rows]


# ----- shapes of command responses ----------------------------------------------------------------


def draw_summary(state: d.DrawState, version: int, tz: tzinfo) -> dict[str, Any]:
    strata = []
    for frame in state.frames:
        item: dict[str, Any] = {
            "stratum": frame.stratum, "unit": frame.unit, "project_type": frame.project_type,
            "rule": frame.rule.value, "frame_digest": state.stated_digests[frame.stratum],
            "frame_size": frame.size,
            "excluded": [e.to_object() for e in frame.exclusions]}
        outcome = state.outcomes.get(frame.stratum)
        if outcome is not None:
            item.update(sample_size=outcome.sample_size, picks=list(outcome.picks),
                        replacements=len(outcome.replacements),
                        no_eligible_project=outcome.no_eligible_project,
                        insufficient_sample=outcome.insufficient_sample, township=outcome.township)
        strata.append(item)
    return {
        "draw_id": state.draw_id, "title": state.title, "stage": state.stage.name.lower(),
        "units": list(state.units),
        "frames_digest": state.frames_digest, "entropy_statement": state.statement,
        "entropy_not_before": _iso(state.not_before, tz), "entropy": state.entropy,
        "frozen_at": _iso(state.frozen_at, tz), "committed_at": _iso(state.committed_at, tz),
        "revealed_at": _iso(state.revealed_at, tz), "drawn_at": _iso(state.drawn_at, tz),
        "strata": strata,
        "discretionary": [{"project_id": pid, "reason": reason}
                          for pid, reason in sorted(state.discretionary.items())],
        "active_households": {u: list(codes) for u, codes in sorted(state.active_households.items())},
        "version": version,
    }


def visit_shape(visit: d.Visit) -> dict[str, Any]:
    return {"visit_id": visit.visit_id, "target_kind": visit.target_kind.value,
            "target_id": visit.target_id, "unit": visit.unit, "project_type": visit.project_type,
            "scheduled_for": visit.scheduled_for.isoformat(),
            "inspector_ids": list(visit.inspector_ids),
            "outcome": visit.outcome.value if visit.outcome else None,
            "visited_on": visit.visited_on.isoformat() if visit.visited_on else None,
            "unable_reason_code": visit.unable_reason_code,
            "finding_ids": list(visit.finding_ids)}


def finding_shape(finding: FindingRecorded) -> dict[str, Any]:
    return finding.model_dump(mode="json")


# Every route waits for the caller's own write when asked to (X-Lookback-After, ADR 0013): the
# picks right after the reveal, a frame right after the registry changed.
router = APIRouter(tags=["inspection"], dependencies=[ReadYourWrites])


# ----- commands -----------------------------------------------------------------------------------


@router.post("/draws", status_code=201, response_model=a.Draw,
             summary="冻结抽样框 · Freeze the sampling frames")
async def freeze_frame(cmd: c.FreezeFrame, request: Request, actor: Commander) -> dict[str, Any]:
    """Freeze every stratum's sampling frame from the service's view of the registry."""
    _check_ids(draw_id=(cmd.draw_id, None))
    state, version, _ = await _run(request, cmd, actor)
    return draw_summary(state, version, _tz(request))


@router.post("/draws/{draw_id}/entropy-commitment", response_model=a.Draw,
             summary="承诺随机源 · Commit the entropy source")
async def commit_entropy(draw_id: str, cmd: c.CommitEntropy, request: Request,
                         actor: Commander) -> dict[str, Any]:
    """State the entropy source before it exists (e.g. the 福彩3D numbers of a future date)."""
    _check_ids(draw_id=(cmd.draw_id, draw_id))
    state, version, _ = await _run(request, cmd, actor)
    return draw_summary(state, version, _tz(request))


@router.post("/draws/{draw_id}/entropy-reveal", response_model=a.Draw,
             summary="公布随机数并抽签 · Reveal the entropy and draw")
async def reveal_and_draw(draw_id: str, cmd: c.RevealEntropy, request: Request,
                          actor: Commander) -> dict[str, Any]:
    """Reveal the committed entropy and draw every stratum with it."""
    _check_ids(draw_id=(cmd.draw_id, draw_id))
    state, version, _ = await _run(request, cmd, actor)
    return draw_summary(state, version, _tz(request))


@router.post("/draws/{draw_id}/discretionary-picks", status_code=201,
             response_model=a.DiscretionaryPick, summary="增加指定抽查项目 · Add a discretionary pick")
async def add_discretionary_pick(draw_id: str, cmd: c.AddDiscretionaryPick, request: Request,
                                 actor: Commander) -> dict[str, Any]:
    """Add a project the rules did not select, with the reason (a recorded choice)."""
    _check_ids(draw_id=(cmd.draw_id, draw_id))
    state, version, _ = await _run(request, cmd, actor)
    return {"draw_id": cmd.draw_id, "project": state.projects[cmd.project_id].model_dump(mode="json"),
            "reason": cmd.reason, "version": version}


@router.post("/draws/{draw_id}/household-replacements", status_code=201,
             response_model=a.HouseholdReplacement, summary="替换无法入户的农户 · Replace a household")
async def replace_household(draw_id: str, cmd: c.ReplaceHousehold, request: Request,
                            actor: Commander) -> dict[str, Any]:
    """无法入户: the next household of the same pick sequence takes the place."""
    _check_ids(draw_id=(cmd.draw_id, draw_id))
    state, version, result = await _run(request, cmd, actor)
    [event] = result.events_of(HouseholdReplaced)
    return {**event.model_dump(mode="json"),
            "active_households": list(state.active_households[event.unit]), "version": version}


@router.post("/draws/{draw_id}/visits", status_code=201, response_model=a.ScheduledVisit,
             summary="安排实地检查 · Schedule a visit")
async def schedule_visit(draw_id: str, cmd: c.ScheduleVisit, request: Request,
                         actor: Commander) -> dict[str, Any]:
    """Schedule a visit to a picked project or household, with its inspectors. 安排检查。"""
    _check_ids(draw_id=(cmd.draw_id, draw_id), visit_id=(cmd.visit_id, None))
    state, version, _ = await _run(request, cmd, actor)
    return {**visit_shape(state.visits[cmd.visit_id]), "version": version}


@router.post("/draws/{draw_id}/visits/{visit_id}/record", response_model=a.RecordedVisit,
             summary="记录检查结果 · Record a visit's outcome")
async def record_visit(draw_id: str, visit_id: str, cmd: c.RecordVisit, request: Request,
                       actor: Commander) -> dict[str, Any]:
    """The visit's outcome (合格 / 发现问题 / 无法入户) and its findings."""
    _check_ids(draw_id=(cmd.draw_id, draw_id), visit_id=(cmd.visit_id, visit_id))
    state, version, result = await _run(request, cmd, actor)
    return {**visit_shape(state.visits[cmd.visit_id]),
            "findings": [finding_shape(f) for f in result.events_of(FindingRecorded)],
            "version": version}


@router.post("/draws/{draw_id}/visits/{visit_id}/findings", status_code=201,
             response_model=a.RecordedFinding, summary="补记发现的问题 · Record a further finding")
async def record_finding(draw_id: str, visit_id: str, cmd: c.RecordFinding, request: Request,
                         actor: Commander) -> dict[str, Any]:
    """A further finding on a visit recorded as problems_found."""
    _check_ids(draw_id=(cmd.draw_id, draw_id), visit_id=(cmd.visit_id, visit_id))
    _, version, result = await _run(request, cmd, actor)
    [finding] = result.events_of(FindingRecorded)
    return {**finding_shape(finding), "version": version}


# ----- queries: read models -----------------------------------------------------------------------


@router.get("/draws", response_model=list[a.DrawRow], summary="抽签列表 · List draws")
async def list_draws(request: Request, actor: Reader) -> list[dict[str, Any]]:
    """Every draw, newest first. 全部抽签，最新的在前。"""
    return _rows(await q.draws(_runtime(request).pool), _tz(request))


@router.get("/draws/{draw_id}", response_model=a.DrawWithStrata,
            summary="抽签详情 · A draw and its strata")
async def get_draw(draw_id: str, request: Request, actor: Reader,
                   unit: str | None = None) -> dict[str, Any]:
    """The draw and its strata (a district role: its own unit's strata)."""
    pool = _runtime(request).pool
    scope = _scope(request, actor, unit)
    row = await q.draw(pool, draw_id)
    tz = _tz(request)
    return {**_rows([row], tz)[0], "strata": _rows(await q.strata(pool, draw_id, unit=scope), tz)}


@router.get("/draws/{draw_id}/picks", response_model=a.Picks,
            summary="抽中名单 · The sample per unit")
async def picks(draw_id: str, request: Request, actor: Reader,
                unit: str | None = None) -> dict[str, Any]:
    """The sample per unit: rule picks, discretionary picks, replacements (and whom they replaced)."""
    pool = _runtime(request).pool
    units = await q.draw_units(pool, draw_id, unit=_scope(request, actor, unit))
    by_unit: dict[str, list[dict[str, Any]]] = {u: [] for u in units}
    for item in _rows(await q.picks(pool, draw_id, units), _tz(request)):
        by_unit[item.pop("unit")].append(item)
    return {"draw_id": draw_id, "units": [{"unit": u, "picks": p} for u, p in by_unit.items()]}


@router.get("/draws/{draw_id}/progress", response_model=list[a.UnitVisitProgress],
            summary="检查进度 · Visit progress per unit")
async def progress(draw_id: str, request: Request, actor: Reader,
                   unit: str | None = None) -> list[dict[str, Any]]:
    """Visit progress per unit: sampled, scheduled, inspected, outcomes, findings."""
    return await _per_unit(request, draw_id, _scope(request, actor, unit), q.progress)


@router.get("/draws/{draw_id}/visits", response_model=list[a.Visit],
            summary="检查安排 · A draw's visits")
async def visits(draw_id: str, request: Request, actor: Reader,
                 unit: str | None = None) -> list[dict[str, Any]]:
    """The draw's visits with their outcomes (a district role: its own unit's). 检查安排及结果。"""
    return await _per_unit(request, draw_id, _scope(request, actor, unit), q.visits)


@router.get("/draws/{draw_id}/findings", response_model=list[a.Finding],
            summary="发现的问题 · A draw's findings")
async def findings(draw_id: str, request: Request, actor: Reader,
                   unit: str | None = None) -> list[dict[str, Any]]:
    """The findings recorded on the draw's visits. 检查中发现的问题。"""
    return await _per_unit(request, draw_id, _scope(request, actor, unit), q.findings)


async def _per_unit(request: Request, draw_id: str, scope: str | None,
                    read: Callable[[asyncpg.Pool, str, list[str]], Awaitable[list[asyncpg.Record]]]
                    ) -> list[dict[str, Any]]:
    """A read model's rows for the draw's units in scope (404 for a unit the draw lacks)."""
    pool = _runtime(request).pool
    return _rows(await read(pool, draw_id, await q.draw_units(pool, draw_id, unit=scope)),
                 _tz(request))


# ----- queries: the 抽查名单 (from the draw stream, so it is exactly what verifies) ----------------


async def _document(request: Request, draw_id: str, scope: str | None) -> dict[str, Any]:
    state = await q.draw_state(_runtime(request).store, draw_id)
    if scope is not None and scope not in state.units:
        raise d.UnitNotInDrawError(f"unit {scope!r} is not part of draw {draw_id!r}",
                                   zh="该单位不在本次抽查范围内。")
    return draw_document(state, unit=scope)


@router.get("/draws/{draw_id}/list", response_model=a.DrawList,
            summary="抽查名单（可核验） · The draw list (verifiable JSON)")
async def draw_list(draw_id: str, request: Request, actor: Reader,
                    unit: str | None = None) -> Response:
    """The draw list as the JSON `lookback inspection verify-draw` recomputes offline."""
    doc = await _document(request, draw_id, _scope(request, actor, unit))
    return Response(document_json(doc), media_type="application/json")


@router.get("/draws/{draw_id}/list.xlsx", response_class=Response,
            summary="抽查名单表格 · The printable draw list (.xlsx)",
            responses=text_content(XLSX_MEDIA_TYPE, binary=True))
async def draw_list_xlsx(draw_id: str, request: Request, actor: Reader,
                         unit: str | None = None) -> Response:
    """The printable 抽查名单: one sheet per unit, with digests, entropy and algorithm version."""
    scope = _scope(request, actor, unit)
    doc = await _document(request, draw_id, scope)
    buffer = io.BytesIO()
    write_draw_xlsx(doc, buffer, campaign=_runtime(request).deps.campaign)
    name = f"draw-{draw_id}-{scope}.xlsx" if scope else f"draw-{draw_id}.xlsx"
    return Response(buffer.getvalue(), media_type=XLSX_MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# ----- queries: the view of the registry ----------------------------------------------------------


@router.get("/registry-view/projects", response_model=list[a.RegistryProject],
            summary="项目（本服务视图） · Projects as this service knows them")
async def registry_projects(request: Request, actor: Reader,
                            unit: str | None = None) -> list[dict[str, Any]]:
    """Projects and programmes as this service knows them from registry events."""
    return _rows(await q.registry_projects(_runtime(request).pool, unit=_scope(request, actor, unit)),
                 _tz(request))


@router.get("/registry-view/townships", response_model=list[a.TownshipHouseholds],
            summary="各乡镇改造户 · Adapted households per township")
async def registry_townships(request: Request, actor: Reader,
                             unit: str | None = None) -> list[dict[str, Any]]:
    """Adapted households per township (codes only)."""
    return _rows(await q.registry_townships(_runtime(request).pool, unit=_scope(request, actor, unit)),
                 _tz(request))
