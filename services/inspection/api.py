"""HTTP routes of the inspection service: the draw's commands, its 抽查名单 and the visit progress.

Commands: only `inspector` and `city_admin` act; everyone else gets 403 before anything is read
or written. Queries: every role reads; a district role sees only its own unit (its draw list,
picks, visits, findings, progress), whatever unit it asks for.
"""
from __future__ import annotations

import io
import re
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from services.inspection import domain
from services.inspection.commands import (
    AddDiscretionaryPick, CommitEntropy, FreezeFrame, RecordFinding, RecordVisit, ReplaceHousehold,
    RevealEntropy, ScheduleVisit,
)
from services.inspection.draw_export import document_json, draw_document, write_draw_xlsx
from services.inspection.events import FindingRecorded
from services.inspection.handlers import Inspection, new_events
from shared.auth import authorize_command, authorize_read
from shared.errors import NotFoundError
from shared.messages import Actor
from shared.service import Runtime, new_correlation_id

# Draw and visit ids travel in URL paths and file names: keep them plain.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
_ID_RULE = "1-80 letters, digits, '.', '_' or '-', starting with a letter or digit"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _inspection(runtime: Runtime) -> Inspection:
    return Inspection(runtime.store, runtime.pool, runtime.deps)


def _commander(request: Request) -> Actor:
    """The caller, if it may send inspection commands (403 otherwise, before anything else)."""
    actor = _runtime(request).authenticate(request)
    authorize_command(actor, roles=domain.INSPECTION_ROLES)
    return actor


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


def _scope(actor: Actor, unit: str | None) -> str | None:
    """The unit a query may show: a district role's own unit whatever it asked, else the asked one."""
    authorize_read(actor, unit=unit)
    return actor.unit if actor.role.is_district else unit


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


# ---------------------------------------------------------------------------------------------
# Shapes of command responses (the resulting state, so a caller need not wait for read models)


def draw_summary(state: domain.DrawState, version: int, *, unit: str | None = None) -> dict[str, Any]:
    strata = []
    for frame in state.frames:
        if unit is not None and frame.unit != unit:
            continue
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
        "units": list(state.units) if unit is None else [unit],
        "frames_digest": state.frames_digest, "entropy_statement": state.statement,
        "entropy_not_before": _iso(state.not_before), "entropy": state.entropy,
        "frozen_at": _iso(state.frozen_at), "committed_at": _iso(state.committed_at),
        "revealed_at": _iso(state.revealed_at), "drawn_at": _iso(state.drawn_at),
        "strata": strata,
        "discretionary": [{"project_id": pid, "reason": reason}
                          for pid, reason in sorted(state.discretionary.items())
                          if unit is None or state.projects[pid].unit == unit],
        "active_households": {u: list(codes) for u, codes in sorted(state.active_households.items())
                              if unit is None or u == unit},
        "version": version,
    }


def visit_shape(visit: domain.Visit) -> dict[str, Any]:
    return {"visit_id": visit.visit_id, "target_kind": visit.target_kind.value,
            "target_id": visit.target_id, "unit": visit.unit, "project_type": visit.project_type,
            "scheduled_for": visit.scheduled_for.isoformat(),
            "inspector_ids": list(visit.inspector_ids),
            "outcome": visit.outcome.value if visit.outcome else None,
            "visited_on": _iso(visit.visited_on), "unable_reason_code": visit.unable_reason_code,
            "finding_ids": list(visit.finding_ids)}


def finding_shape(finding: FindingRecorded) -> dict[str, Any]:
    return finding.model_dump(mode="json")


def _rows(rows: list[Any]) -> list[dict[str, Any]]:
    return [{k: _iso(v) for k, v in dict(r).items()} for r in rows]


# ---------------------------------------------------------------------------------------------


def routes() -> APIRouter:
    router = APIRouter(tags=["inspection"])

    # ----- commands ---------------------------------------------------------------------------

    @router.post("/draws", status_code=201)
    async def freeze_frame(cmd: FreezeFrame, request: Request) -> dict[str, Any]:
        """Freeze every stratum's sampling frame from the service's view of the registry."""
        actor = _commander(request)
        _check_ids(draw_id=(cmd.draw_id, None))
        runtime = _runtime(request)
        outcome = await _inspection(runtime).freeze_frame(
            cmd, actor=actor, now=runtime.clock(), correlation_id=new_correlation_id(request))
        return draw_summary(outcome.state, outcome.version)

    @router.post("/draws/{draw_id}/entropy-commitment")
    async def commit_entropy(draw_id: str, cmd: CommitEntropy, request: Request) -> dict[str, Any]:
        """State the entropy source before it exists (e.g. the 福彩3D numbers of a future date)."""
        actor = _commander(request)
        _check_ids(draw_id=(cmd.draw_id, draw_id))
        runtime = _runtime(request)
        outcome = await _inspection(runtime).commit_entropy(
            cmd, actor=actor, now=runtime.clock(), correlation_id=new_correlation_id(request))
        return draw_summary(outcome.state, outcome.version)

    @router.post("/draws/{draw_id}/entropy-reveal")
    async def reveal_and_draw(draw_id: str, cmd: RevealEntropy, request: Request) -> dict[str, Any]:
        """Reveal the committed entropy and draw every stratum with it."""
        actor = _commander(request)
        _check_ids(draw_id=(cmd.draw_id, draw_id))
        runtime = _runtime(request)
        outcome = await _inspection(runtime).reveal_and_draw(
            cmd, actor=actor, now=runtime.clock(), correlation_id=new_correlation_id(request))
        return draw_summary(outcome.state, outcome.version)

    @router.post("/draws/{draw_id}/discretionary-picks", status_code=201)
    async def add_discretionary_pick(draw_id: str, cmd: AddDiscretionaryPick,
                                     request: Request) -> dict[str, Any]:
        """Add a project the rules did not select, with the reason (a recorded choice)."""
        actor = _commander(request)
        _check_ids(draw_id=(cmd.draw_id, draw_id))
        runtime = _runtime(request)
        outcome = await _inspection(runtime).add_discretionary_pick(
            cmd, actor=actor, now=runtime.clock(), correlation_id=new_correlation_id(request))
        label = outcome.state.projects[cmd.project_id]
        return {"draw_id": cmd.draw_id, "project": label.model_dump(mode="json"),
                "reason": cmd.reason, "version": outcome.version}

    @router.post("/draws/{draw_id}/household-replacements", status_code=201)
    async def replace_household(draw_id: str, cmd: ReplaceHousehold,
                                request: Request) -> dict[str, Any]:
        """无法入户: the next household of the same pick sequence takes the place."""
        actor = _commander(request)
        _check_ids(draw_id=(cmd.draw_id, draw_id))
        runtime = _runtime(request)
        outcome = await _inspection(runtime).replace_household(
            cmd, actor=actor, now=runtime.clock(), correlation_id=new_correlation_id(request))
        event = outcome.events[0]
        return {**event.model_dump(mode="json"),
                "active_households": list(outcome.state.active_households[event.unit]),
                "version": outcome.version}

    @router.post("/draws/{draw_id}/visits", status_code=201)
    async def schedule_visit(draw_id: str, cmd: ScheduleVisit, request: Request) -> dict[str, Any]:
        actor = _commander(request)
        _check_ids(draw_id=(cmd.draw_id, draw_id), visit_id=(cmd.visit_id, None))
        runtime = _runtime(request)
        outcome = await _inspection(runtime).schedule_visit(
            cmd, actor=actor, now=runtime.clock(), correlation_id=new_correlation_id(request))
        return {**visit_shape(outcome.state.visits[cmd.visit_id]), "version": outcome.version}

    @router.post("/draws/{draw_id}/visits/{visit_id}/record")
    async def record_visit(draw_id: str, visit_id: str, cmd: RecordVisit,
                           request: Request) -> dict[str, Any]:
        """The visit's outcome (合格 / 发现问题 / 无法入户) and its findings."""
        actor = _commander(request)
        _check_ids(draw_id=(cmd.draw_id, draw_id), visit_id=(cmd.visit_id, visit_id))
        runtime = _runtime(request)
        outcome = await _inspection(runtime).record_visit(
            cmd, actor=actor, now=runtime.clock(), correlation_id=new_correlation_id(request))
        return {**visit_shape(outcome.state.visits[cmd.visit_id]),
                "findings": [finding_shape(f) for f in new_events(outcome, FindingRecorded)],
                "version": outcome.version}

    @router.post("/draws/{draw_id}/visits/{visit_id}/findings", status_code=201)
    async def record_finding(draw_id: str, visit_id: str, cmd: RecordFinding,
                             request: Request) -> dict[str, Any]:
        """A further finding on a visit recorded as problems_found."""
        actor = _commander(request)
        _check_ids(draw_id=(cmd.draw_id, draw_id), visit_id=(cmd.visit_id, visit_id))
        runtime = _runtime(request)
        outcome = await _inspection(runtime).record_finding(
            cmd, actor=actor, now=runtime.clock(), correlation_id=new_correlation_id(request))
        return {**finding_shape(new_events(outcome, FindingRecorded)[0]),
                "version": outcome.version}

    # ----- queries: read models ---------------------------------------------------------------

    @router.get("/draws")
    async def list_draws(request: Request) -> list[dict[str, Any]]:
        runtime = _runtime(request)
        runtime.authenticate(request)
        rows = await runtime.pool.fetch(
            """SELECT draw_id, title, stage, algorithm_version, units, frames_digest,
                      entropy_statement, entropy_not_before, entropy, frozen_at, committed_at,
                      revealed_at, drawn_at
                 FROM inspection.draws ORDER BY frozen_at DESC, draw_id""")
        return _rows(rows)

    @router.get("/draws/{draw_id}")
    async def get_draw(draw_id: str, request: Request,
                       unit: str | None = Query(None)) -> dict[str, Any]:
        """The draw and its strata (a district role: its own unit's strata)."""
        runtime = _runtime(request)
        scope = _scope(runtime.authenticate(request), unit)
        row = await runtime.pool.fetchrow(
            """SELECT draw_id, title, stage, algorithm_version, units, frames_digest,
                      entropy_statement, entropy_not_before, entropy, frozen_at, committed_at,
                      revealed_at, drawn_at
                 FROM inspection.draws WHERE draw_id = $1""", draw_id)
        if row is None:
            raise NotFoundError(f"draw {draw_id!r} does not exist", code="draw_not_found")
        strata = await runtime.pool.fetch(
            """SELECT stratum, unit, project_type, rule, frame_digest, frame_size, excluded,
                      sample_size, replacements, no_eligible_project, insufficient_sample, township
                 FROM inspection.draw_strata
                WHERE draw_id = $1 AND ($2::text IS NULL OR unit = $2) ORDER BY stratum""",
            draw_id, scope)
        return {**_rows([row])[0], "strata": _rows(strata)}

    @router.get("/draws/{draw_id}/picks")
    async def picks(draw_id: str, request: Request,
                    unit: str | None = Query(None)) -> dict[str, Any]:
        """The sample per unit: rule picks, discretionary picks, replacements (and whom they replaced)."""
        runtime = _runtime(request)
        scope = _scope(runtime.authenticate(request), unit)
        units = await _draw_units(runtime, draw_id, scope)
        rows = await runtime.pool.fetch(
            """SELECT unit, stratum, project_type, selection, sequence_no, target_kind, target_id,
                      in_sample, replaces, replaced_by, reason_code, reason, project_id, name,
                      township, project_year
                 FROM inspection.draw_picks
                WHERE draw_id = $1 AND unit = ANY($2::text[])
                ORDER BY unit, stratum NULLS LAST, sequence_no NULLS LAST, target_id""",
            draw_id, units)
        by_unit: dict[str, list[dict[str, Any]]] = {u: [] for u in units}
        for item in _rows(rows):
            by_unit[item.pop("unit")].append(item)
        return {"draw_id": draw_id, "units": [{"unit": u, "picks": p} for u, p in by_unit.items()]}

    @router.get("/draws/{draw_id}/progress")
    async def progress(draw_id: str, request: Request,
                       unit: str | None = Query(None)) -> list[dict[str, Any]]:
        """Visit progress per unit: sampled, scheduled, inspected, outcomes, findings."""
        runtime = _runtime(request)
        scope = _scope(runtime.authenticate(request), unit)
        units = await _draw_units(runtime, draw_id, scope)
        rows = await runtime.pool.fetch(
            """SELECT unit, sampled, scheduled, inspected, passed, problems_found,
                      unable_to_enter, findings, no_eligible_strata, insufficient_sample
                 FROM inspection.visit_progress
                WHERE draw_id = $1 AND unit = ANY($2::text[]) ORDER BY unit""", draw_id, units)
        return _rows(rows)

    @router.get("/draws/{draw_id}/visits")
    async def visits(draw_id: str, request: Request,
                     unit: str | None = Query(None)) -> list[dict[str, Any]]:
        runtime = _runtime(request)
        scope = _scope(runtime.authenticate(request), unit)
        units = await _draw_units(runtime, draw_id, scope)
        rows = await runtime.pool.fetch(
            """SELECT visit_id, target_kind, target_id, unit, project_type, scheduled_for,
                      inspector_ids, outcome, unable_reason_code, visited_on, checklist,
                      photo_hashes, findings
                 FROM inspection.visits WHERE draw_id = $1 AND unit = ANY($2::text[])
                ORDER BY unit, scheduled_for, visit_id""", draw_id, units)
        return _rows(rows)

    @router.get("/draws/{draw_id}/findings")
    async def findings(draw_id: str, request: Request,
                       unit: str | None = Query(None)) -> list[dict[str, Any]]:
        runtime = _runtime(request)
        scope = _scope(runtime.authenticate(request), unit)
        units = await _draw_units(runtime, draw_id, scope)
        rows = await runtime.pool.fetch(
            """SELECT finding_id, visit_id, project_id, household_code, unit, project_type,
                      project_name, township, project_year, text, deadline, found_on
                 FROM inspection.findings WHERE draw_id = $1 AND unit = ANY($2::text[])
                ORDER BY unit, found_on, finding_id""", draw_id, units)
        return _rows(rows)

    # ----- queries: the 抽查名单 (from the draw stream, so it is exactly what verifies) ------------

    @router.get("/draws/{draw_id}/list")
    async def draw_list(draw_id: str, request: Request,
                        unit: str | None = Query(None)) -> Response:
        """The draw list as the JSON `lookback inspection verify-draw` recomputes offline."""
        runtime = _runtime(request)
        doc = await _document(runtime, draw_id, _scope(runtime.authenticate(request), unit))
        return Response(document_json(doc), media_type="application/json")

    @router.get("/draws/{draw_id}/list.xlsx", response_class=Response,
                responses={200: {"content": {XLSX_MEDIA_TYPE: {}}}})
    async def draw_list_xlsx(draw_id: str, request: Request,
                             unit: str | None = Query(None)) -> Response:
        """The printable 抽查名单: one sheet per unit, with digests, entropy and algorithm version."""
        runtime = _runtime(request)
        scope = _scope(runtime.authenticate(request), unit)
        doc = await _document(runtime, draw_id, scope)
        buffer = io.BytesIO()
        write_draw_xlsx(doc, buffer)
        name = f"draw-{draw_id}-{scope}.xlsx" if scope else f"draw-{draw_id}.xlsx"
        return Response(buffer.getvalue(), media_type=XLSX_MEDIA_TYPE,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    # ----- queries: the view of the registry --------------------------------------------------

    @router.get("/registry-view/projects")
    async def registry_projects(request: Request,
                                unit: str | None = Query(None)) -> list[dict[str, Any]]:
        """Projects and programmes as this service knows them from registry events."""
        runtime = _runtime(request)
        scope = _scope(runtime.authenticate(request), unit)
        rows = await runtime.pool.fetch(
            """SELECT project_id, kind, project_type, unit, township, name, project_year,
                      provincial_key, registered, retired, retired_reason_code, retired_reason,
                      retired_on
                 FROM inspection.projects WHERE $1::text IS NULL OR unit = $1
                ORDER BY unit, project_type, project_id""", scope)
        return _rows(rows)

    @router.get("/registry-view/townships")
    async def registry_townships(request: Request,
                                 unit: str | None = Query(None)) -> list[dict[str, Any]]:
        """Adapted households per township (codes only)."""
        runtime = _runtime(request)
        scope = _scope(runtime.authenticate(request), unit)
        rows = await runtime.pool.fetch(
            """SELECT unit, township, count(*)::int AS households,
                      array_agg(household_code ORDER BY household_code) AS household_codes
                 FROM inspection.households WHERE $1::text IS NULL OR unit = $1
                GROUP BY unit, township ORDER BY unit, township""", scope)
        return _rows(rows)

    return router


async def _draw_units(runtime: Runtime, draw_id: str, scope: str | None) -> list[str]:
    units = await runtime.pool.fetchval("SELECT units FROM inspection.draws WHERE draw_id = $1",
                                        draw_id)
    if units is None:
        raise NotFoundError(f"draw {draw_id!r} does not exist", code="draw_not_found")
    if scope is None:
        return list(units)
    if scope not in units:
        raise NotFoundError(f"unit {scope!r} is not part of draw {draw_id!r}",
                            code="unit_not_in_draw")
    return [scope]


async def _document(runtime: Runtime, draw_id: str, scope: str | None) -> dict[str, Any]:
    state, _ = await _inspection(runtime).load(draw_id)
    if scope is not None and scope not in state.units:
        raise NotFoundError(f"unit {scope!r} is not part of draw {draw_id!r}",
                            code="unit_not_in_draw")
    return draw_document(state, unit=scope)

