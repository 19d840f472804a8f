"""HTTP routes of the registry: commands (the frozen commands are the request bodies) and queries.

Every command passes the principal check before anything is read or written: leader and auditor
are refused (403) before the body is even validated; the domain then checks role and unit (a
district role acts only in its own unit) before any event exists. Bad input gets 422 with each
field's reason (the shell maps ValidationFailed), and nothing is written.

Queries read the projections (eventually consistent), except one project's history, which reads
the project's stream from the event store: every event, who and when. A district role sees only
its own unit; asking for another one is 403.

Who sees officials' phones in clear (DOMAIN.md §8)
--------------------------------------------------
The liaison list (附件1) shows phones masked (`138****0001`) to everyone by default: it is a list
people open, print and screenshot, and most readers need to know *who*, not the number.
A clear number is shown only on an explicit `?reveal=true`, and only to the roles whose work is
to call these people: `city_admin` (runs the campaign, chases deadlines and escalations) and the
unit's own district roles (they filed the list and keep it right). Inspectors go through the
task force, leaders and auditors oversee, and the notifier reaches liaisons service-to-service,
so none of them reads numbers off this list; they get 403 for `reveal=true` rather than a silently
masked answer that could be mistaken for the real thing. Each reveal is recorded before the
answer leaves, in `registry.personal_data_access` (append-only for the service, readable by the
auditor) and as a `personal_data_revealed` log line: who, when, which unit and subjects, which
fields, never the values. Older people's households are always shown masked (name `王*`, phone
`138****0001`, no address); their clear data stays in the sealed store.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile as StarletteUploadFile

from services.registry import answers as a
from services.registry import commands as c
from services.registry import domain as d
from services.registry import events as e
from services.registry import queries as q
from services.registry import vocabulary as vocab
from services.registry.events import CONTRACT, LedgerState, OperatingStatus, describe_reason
from services.registry.handlers import RegistryDeps
from services.registry.importing import (
    HOUSEHOLDS,
    PROJECTS,
    ImportRefused,
    ImportRejected,
    RowError,
    build_template,
    parse_csv,
    parse_xlsx,
)
from services.registry.liaison_export import liaison_workbook
from services.registry.vocabulary import registry_vocabulary
from shared.api_contract import ImportRefusedBody, errors, text_content
from shared.auth import authorize_read
from shared.consistency import ReadYourWrites
from shared.errors import FieldProblem, ForbiddenError, NotFoundError, ValidationFailed
from shared.isolation import IsolatedWorkRefused, Limits, run_isolated
from shared.logging import get_logger
from shared.messages import Actor, Role
from shared.personal_data import ERASED, mask_name, mask_phone
from shared.pipeline import CommandResult
from shared.service import Runtime, runtime_of
from shared.telemetry import correlation_of
from shared.times import iso_local, json_value, parse_instant, written_date
from shared.vocabulary import Terms, Vocabulary

log = get_logger()

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_OFFSET = 1_000_000  # far past any list here, and far below what the database's bigint takes
REVEALING_ROLES = frozenset({Role.CITY_ADMIN, Role.DISTRICT_REPORTER, Role.DISTRICT_REVIEWER})
_ZIP_MAGIC = b"PK\x03\x04"


# ----- plumbing ---------------------------------------------------------------------------------


EVENTS = CONTRACT.registry()


def _runtime(request: Request) -> Runtime[RegistryDeps]:
    return runtime_of(request)


def _deps(request: Request) -> RegistryDeps:
    return _runtime(request).deps


async def reader(request: Request) -> Actor:
    """Any authenticated principal (401 otherwise)."""
    return _runtime(request).authenticate(request)


async def commander(request: Request) -> Actor:
    """A principal that may send commands at all. As a dependency it runs before the body is
    validated, so a leader or auditor gets 403 whatever they send."""
    actor = _runtime(request).authenticate(request)
    if not actor.role.may_command:
        raise ForbiddenError(f"{actor.role.value} may read the registry but not change it",
                             zh="您的角色只能查看登记信息，不能修改。")
    return actor


def _scope(actor: Actor, unit: str | None) -> str | None:
    """The unit a query may show: a district role's own unit whatever it asked, else the asked one."""
    authorize_read(actor, unit=unit)
    return actor.unit if actor.role.is_district else unit


def _same_id(field: str, in_body: str, in_path: str) -> None:
    if in_body != in_path:
        raise RequestValidationError([{"loc": ("body", field), "type": "value_error",
                                       "msg": f"{in_body!r} differs from the path's {in_path!r}"}])


def _check_code(field: str, value: str | None, terms: Terms) -> None:
    """422 for a code the vocabulary does not know, naming every valid one."""
    if value is not None and not terms.has(value):
        raise ValidationFailed(
            [FieldProblem(field, f"unknown {field} {value!r}", terms.codes)],
            zh=f"{terms.title}“{value}”不存在，可选：{terms.valid()}。")


def _vocabulary(deps: RegistryDeps) -> Vocabulary:
    return registry_vocabulary(deps.campaign)


def _plain(value: Any, deps: RegistryDeps) -> Any:
    """A value for the answer: instants in the campaign's offset (+08:00), dates as ISO."""
    return json_value(value, deps.campaign.tz)


def _row(record: Mapping[str, Any], deps: RegistryDeps) -> dict[str, Any]:
    return {key: _plain(value, deps) for key, value in dict(record).items()}


def _page(items: list[dict[str, Any]], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset}


async def _run(request: Request, response: Response, cmd: c.RegistryCommand, actor: Actor
               ) -> tuple[Any, int, CommandResult]:
    """Run a one-stream command; its stream's state and version afterwards, and the result."""
    result = await _runtime(request).run(cmd, actor, request)
    if not result.changed:
        response.status_code = 200  # an identical resubmission: nothing new was recorded
    [stream_id] = result.states
    return result.state(stream_id), result.version(stream_id), result


# ----- views (the same shape from the folded stream and from the read model) ----------------------


def project_view(state: d.ProjectState, version: int, deps: RegistryDeps) -> dict[str, Any]:
    registration = state.registration
    assert registration is not None and state.status is not None
    operator = state.operator or registration.operator
    retirement = state.retirement
    return {
        "project_id": state.project_id, "project_type": registration.project_type,
        "name": registration.name, "unit": registration.unit, "township": registration.township,
        "township_code": registration.township_code, "village": registration.village,
        "project_year": registration.project_year, "provincial_key": registration.provincial_key,
        "operator": operator.model_dump(mode="json"), "services": list(state.services),
        "meets_service_rule": deps.campaign.meets_service_rule(state.services),
        "status": state.status.value, "status_text": vocab.STATUS.label(state.status.value),
        "status_reasons": list(state.status_reasons),
        "status_reason_text": [describe_reason(r, deps.campaign) for r in state.status_reasons],
        "on_ledger": state.on_ledger, **_ledger_state(state.on_ledger, state.ledger_rectified),
        "assessments": state.assessments,
        "last_assessed_on": _plain(state.last_assessed_on, deps),
        "retirement": None if retirement is None else {
            "reason_code": retirement.reason_code.value, "reason": retirement.reason,
            "retired_on": retirement.retired_on.isoformat()},
        "version": version,
    }


def project_row_view(row: Mapping[str, Any], deps: RegistryDeps) -> dict[str, Any]:
    r = _row(row, deps)
    return {
        "project_id": r["project_id"], "project_type": r["project_type"], "name": r["name"],
        "unit": r["unit"], "township": r["township"], "township_code": r["township_code"],
        "village": r["village"], "project_year": r["project_year"],
        "provincial_key": r["provincial_key"],
        "operator": {"kind": r["operator_kind"], "name": r["operator_name"],
                     "contract_start": r["contract_start"], "contract_end": r["contract_end"]},
        "services": r["services"], "meets_service_rule": r["meets_service_rule"],
        "status": r["status"], "status_text": vocab.STATUS.label(r["status"]),
        "status_reasons": r["status_reasons"],
        "status_reason_text": [describe_reason(x, deps.campaign) for x in r["status_reasons"]],
        "on_ledger": r["on_ledger"], **_ledger_state(r["on_ledger"], r["ledger_rectified"]),
        "assessments": r["assessments"],
        "last_assessed_on": r["last_assessed_on"],
        "retirement": None if r["retired_on"] is None else {
            "reason_code": r["retired_reason_code"], "reason": r["retired_reason"],
            "retired_on": r["retired_on"]},
        "version": r["version"],
    }


def _ledger_state(on_ledger: bool, rectified: bool) -> dict[str, Any]:
    """Where the project stands on the 台账: not on it, listed awaiting rectification, or
    rectified (a verified 销号) awaiting the assessment that takes it off."""
    if not on_ledger:
        return {"ledger_state": None, "ledger_state_text": "未列入台账"}
    state = LedgerState.RECTIFIED if rectified else LedgerState.OPEN
    return {"ledger_state": state.value, "ledger_state_text": vocab.LEDGER_STATE.label(state.value)}


def programme_view(state: d.ProgrammeState, version: int) -> dict[str, Any]:
    registration = state.registration
    assert registration is not None
    return {"programme_id": state.programme_id, "project_type": registration.project_type,
            "name": registration.name, "unit": registration.unit,
            "township": registration.township, "township_code": registration.township_code,
            "year": registration.year, "households": len(state.households), "version": version}


def liaison_view(event: e.LiaisonRegistered) -> dict[str, Any]:
    """附件1 row as everyone sees it: phones masked."""
    return {"unit": event.unit, "role": event.role.value, "version": event.version,
            "name": event.name, "gender": event.gender.value, "position": event.position,
            "mobile": event.mobile_masked, "office_phone": event.office_phone_masked,
            "submitted_late": event.submitted_late, "revealed": False}


def import_summary(result: CommandResult) -> dict[str, Any]:
    """What an import did: rows read, records registered, events appended."""
    plan = result.command
    assert isinstance(plan, c.ImportRegistry)
    projects = result.events_of(e.ProjectRegistered)
    programmes = result.events_of(e.AdaptationProgrammeRegistered)
    households = result.events_of(e.HouseholdsRegistered)
    # Each row's command registers one record (a project, a programme, a batch of households)
    # or, found identical, nothing: the rest of the items were unchanged.
    changed = len(projects) + len(programmes) + len(households)
    return {"source_digest": plan.source_digest, "correlation_id": str(result.correlation_id),
            "project_rows": plan.project_rows, "household_rows": plan.household_rows,
            "projects_registered": len(projects), "programmes_registered": len(programmes),
            "households_registered": sum(len(x.households) for x in households),
            "unchanged": len(plan.items) - changed,
            "events_appended": len(result.events),
            "streams_written": len({a.stream_id for a in result.appended})}


def _history_entry(recorded: Any, deps: RegistryDeps) -> dict[str, Any]:
    meta = recorded.metadata
    occurred = meta.get("occurred_at")
    return {"version": recorded.stream_version, "event_id": str(recorded.event_id),
            "event_type": recorded.event_type,
            "occurred_at": iso_local(parse_instant(occurred), deps.campaign.tz) if occurred else None,
            "actor": meta.get("actor"), "correlation_id": meta.get("correlation_id"),
            "data": recorded.payload}


# ----- import upload ------------------------------------------------------------------------------


async def _form_files(request: Request) -> dict[str, bytes]:
    """The uploaded files of a multipart/form-data body, by field name (python-multipart)."""
    try:
        form = await request.form()
    except Exception as exc:  # malformed multipart: say so, write nothing
        raise _UploadError(f"unreadable multipart body: {exc}") from exc
    return {name: await value.read() for name, value in form.multi_items()
            if isinstance(value, StarletteUploadFile)}


class _UploadError(ValueError):
    pass


def _import_refused(errors: tuple[RowError, ...] | list[RowError]) -> JSONResponse:
    """422: every refused row with its sheet, row number, column and reason; nothing written."""
    rows = [err.as_dict() for err in errors]
    detail = [{"field": f"{r['sheet']}[{r['row']}].{r['column']}" if r["sheet"] else r["column"],
               "reason": r["reason"]} for r in rows]
    return JSONResponse({"error": "import_refused",
                         "message": "导入未完成：以下行有误，请修改后重新上传（本次未导入任何数据）。",
                         "detail": detail, "rows": rows},
                        status_code=422)


async def _parse_upload(request: Request, body: bytes, sheet: str | None, deps: RegistryDeps,
                        today: date) -> Any:
    content_type = request.headers.get("content-type", "").lower()
    campaign = deps.campaign
    if content_type.startswith("multipart/form-data"):
        fields = await _form_files(request)
        if "file" in fields:
            data = fields["file"]
            if data.startswith(_ZIP_MAGIC):
                return await _isolated(parse_xlsx, data, campaign, today=today)
            if sheet not in (PROJECTS, HOUSEHOLDS):
                raise _UploadError("a CSV in `file` needs ?sheet=projects or ?sheet=households; "
                                   "or send fields `projects` and/or `households`")
            return await _isolated(parse_csv, **{sheet: data}, campaign=campaign, today=today)
        if PROJECTS in fields or HOUSEHOLDS in fields:
            return await _isolated(parse_csv, projects=fields.get(PROJECTS),
                                   households=fields.get(HOUSEHOLDS), campaign=campaign,
                                   today=today)
        raise _UploadError("send the workbook as field `file`, or CSV files as fields "
                           "`projects` and/or `households`")
    if body.startswith(_ZIP_MAGIC):
        return await _isolated(parse_xlsx, body, campaign, today=today)
    if content_type.startswith(("text/csv", "text/plain", "application/csv")):
        if sheet not in (PROJECTS, HOUSEHOLDS):
            raise _UploadError("a CSV body needs ?sheet=projects or ?sheet=households")
        return await _isolated(parse_csv, **{sheet: body}, campaign=campaign, today=today)
    raise _UploadError(f"send an .xlsx workbook ({XLSX_MEDIA_TYPE}), a CSV (text/csv with "
                       "?sheet=…), or multipart/form-data")


# Reading an uploaded file is untrusted work: a child process with these bounds, never the event
# loop (shared/isolation.py). A real 20,000-row workbook reads in a few seconds within them.
PARSING_LIMITS = Limits(seconds=60, cpu_seconds=60, memory_bytes=768 * 1024 * 1024)


async def _isolated(parse: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await run_isolated(parse, *args, limits=PARSING_LIMITS, **kwargs)
    except IsolatedWorkRefused as exc:
        return ImportRejected((RowError("", 0, "file", f"the file could not be read within the "
                                        f"limits ({exc.reason}: {exc.detail}); split it into "
                                        "smaller files"),))


_UPLOAD_OPENAPI = {"requestBody": {"required": True, "content": {
    XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
    "text/csv": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "string", "format": "binary", "description": ".xlsx workbook"},
        "projects": {"type": "string", "format": "binary", "description": "projects CSV"},
        "households": {"type": "string", "format": "binary", "description": "households CSV"},
    }}}}}}


# ----- routes -------------------------------------------------------------------------------------


# Every route waits for the caller's own write when asked to (X-Lookback-After, ADR 0013).
router = APIRouter(tags=["registry"], dependencies=[ReadYourWrites])

# ----- commands ---------------------------------------------------------------------------------


@router.post("/projects", status_code=201, response_model=a.Project,
             summary="登记设施项目 · Register a facility project")
async def register_project(cmd: c.RegisterProject, request: Request, response: Response,
                           actor: Actor = Depends(commander)) -> dict[str, Any]:
    """Register a facility project (complex, community/rural centre, canteen)."""
    state, version, _ = await _run(request, response, cmd, actor)
    return project_view(state, version, _deps(request))


@router.post("/projects/{project_id}/operator", response_model=a.Project,
             summary="变更运营主体 · Change the operator")
async def change_operator(project_id: str, cmd: c.ChangeOperator, request: Request,
                          response: Response, actor: Actor = Depends(commander)) -> dict[str, Any]:
    """Change the operator (运营主体)."""
    _same_id("project_id", cmd.project_id, project_id)
    state, version, _ = await _run(request, response, cmd, actor)
    return project_view(state, version, _deps(request))


@router.post("/projects/{project_id}/services", response_model=a.Project,
             summary="变更服务内容 · Change the services")
async def change_services(project_id: str, cmd: c.ChangeServices, request: Request,
                          response: Response, actor: Actor = Depends(commander)) -> dict[str, Any]:
    """Change the elderly services provided (fewer than 3 or no 助餐: underperforming)."""
    _same_id("project_id", cmd.project_id, project_id)
    state, version, _ = await _run(request, response, cmd, actor)
    return project_view(state, version, _deps(request))


@router.post("/projects/{project_id}/assessments", status_code=201, response_model=a.Project,
             summary="记录运营状态评估 · Assess a project")
async def assess_project(project_id: str, cmd: c.AssessProject, request: Request,
                         response: Response, actor: Actor = Depends(commander)) -> dict[str, Any]:
    """Record an operating-status assessment (status, assessor, date, evidence, attachments)."""
    _same_id("project_id", cmd.project_id, project_id)
    state, version, _ = await _run(request, response, cmd, actor)
    return project_view(state, version, _deps(request))


@router.post("/projects/{project_id}/retirement", status_code=201, response_model=a.Project,
             summary="项目退出 · Retire a project")
async def retire_project(project_id: str, cmd: c.RetireProject, request: Request,
                         response: Response, actor: Actor = Depends(commander)) -> dict[str, Any]:
    """Retire a project (改作他用 / 撤并 / 拆除) with its reason."""
    _same_id("project_id", cmd.project_id, project_id)
    state, version, _ = await _run(request, response, cmd, actor)
    return project_view(state, version, _deps(request))


@router.post("/programmes", status_code=201, response_model=a.Programme,
             summary="登记适老化改造计划 · Register an adaptation programme")
async def register_programme(cmd: c.RegisterAdaptationProgramme, request: Request,
                             response: Response, actor: Actor = Depends(commander)) -> dict[str, Any]:
    """Register a home-adaptation programme (one per unit, township and year)."""
    state, version, _ = await _run(request, response, cmd, actor)
    return programme_view(state, version)


@router.post("/programmes/{programme_id}/households", status_code=201,
             response_model=a.ProgrammeWithHouseholds, summary="登记改造户 · Register households")
async def register_households(programme_id: str, cmd: c.RegisterHouseholds, request: Request,
                              response: Response, actor: Actor = Depends(commander)) -> dict[str, Any]:
    """Register adapted households; names, addresses and phones are sealed, never stored clear."""
    _same_id("programme_id", cmd.programme_id, programme_id)
    state, version, result = await _run(request, response, cmd, actor)
    registered = [h.household_code for event in result.events_of(e.HouseholdsRegistered)
                  for h in event.households]
    return {**programme_view(state, version), "households_registered": len(registered),
            "household_codes": registered}


@router.post("/liaisons", status_code=201, response_model=a.Liaison,
             summary="登记责任领导和联络员 · Register a leader or liaison (附件1)")
async def register_liaison(cmd: c.RegisterLiaison, request: Request, response: Response,
                           actor: Actor = Depends(commander)) -> dict[str, Any]:
    """附件1: register a unit's responsible leader or liaison (a new version each change)."""
    state, _, _ = await _run(request, response, cmd, actor)
    assert isinstance(state, d.LiaisonState)
    return liaison_view(state.current[cmd.role.value])


@router.post("/imports", status_code=201, openapi_extra=_UPLOAD_OPENAPI,
             response_model=a.ImportSummary, summary="批量导入 · Bulk import (.xlsx or CSV)",
             responses={**errors(415), **errors(422, model=ImportRefusedBody)})
async def import_file(request: Request, response: Response,
                      sheet: str | None = Query(None, description="projects | households, "
                                                "for a single CSV"),
                      actor: Actor = Depends(commander)) -> Any:
    """Bulk import from .xlsx (sheets projects/项目 and households/改造户) or CSV: every
    valid row or none. 422 lists every refused row with its row number and reason.
    Importing the same file again registers nothing new (200)."""
    body = await request.body()  # at most MAX_UPLOAD_BYTES: the edge counts it as it arrives
    runtime, deps = _runtime(request), _deps(request)
    try:
        parsed = await _parse_upload(request, body, sheet, deps,
                                     deps.campaign.local_date(runtime.clock()))
    except _UploadError as exc:
        return JSONResponse({"error": "unsupported_upload",
                             "message": "请上传 .xlsx 工作簿或 CSV 文件。", "detail": str(exc)},
                            status_code=415)
    if isinstance(parsed, ImportRejected):
        return _import_refused(parsed.errors)
    try:
        result = await runtime.run(parsed, actor, request)
    except ImportRefused as exc:
        return _import_refused(exc.errors)
    if not result.changed:
        response.status_code = 200
    return import_summary(result)


@router.get("/imports/template", response_class=Response,
            summary="导入模板 · The import workbook", responses=text_content(XLSX_MEDIA_TYPE, binary=True))
async def import_template(request: Request, actor: Actor = Depends(reader)) -> Response:
    """The import workbook: both sheets with bilingual headers, choices and a guide sheet."""
    return Response(build_template(_deps(request).campaign), media_type=XLSX_MEDIA_TYPE,
                    headers={"Content-Disposition":
                             'attachment; filename="registry-import-template.xlsx"'})


# ----- queries ----------------------------------------------------------------------------------


@router.get("/projects", response_model=a.ProjectPage, summary="项目列表 · List projects")
async def list_projects(request: Request, actor: Actor = Depends(reader),
                        unit: str | None = None, project_type: str | None = None,
                        status: OperatingStatus | None = None,
                        provincial_key: bool | None = None,
                        limit: int = Query(50, ge=1, le=500),
                        offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> dict[str, Any]:
    """Facility projects by unit, type, status and provincial key flag, a page at a time."""
    deps = _deps(request)
    _check_code("project_type", project_type, _vocabulary(deps)["project_type"])
    _check_code("unit", unit, _vocabulary(deps)["unit"])
    page = await q.projects(_runtime(request).pool, unit=_scope(actor, unit),
                            project_type=project_type, status=status.value if status else None,
                            provincial_key=provincial_key, limit=limit, offset=offset)
    return _page([project_row_view(r, deps) for r in page.rows], page.total, limit, offset)


@router.get("/projects/{project_id}", response_model=a.ProjectWithHistory,
            summary="项目详情及历史 · A project and its history")
async def get_project(project_id: str, request: Request,
                      actor: Actor = Depends(reader)) -> dict[str, Any]:
    """One project as its stream says now, with its full history: every event, who and when."""
    runtime = _runtime(request)
    spec = d.project_spec(project_id)
    recorded = await q.project_stream(runtime.store, spec.stream_id)
    if not recorded:
        raise NotFoundError(f"project {project_id} is not registered",
                            zh="未找到该项目，请检查项目编号。")
    state = spec.initial
    for item in recorded:
        state = spec.evolve(state, EVENTS.load_recorded(item))
    authorize_read(actor, unit=state.unit)
    return {"project": project_view(state, recorded[-1].stream_version, runtime.deps),
            "history": [_history_entry(item, runtime.deps) for item in recorded]}


@router.get("/ledger", response_model=a.LedgerPage, summary="问题台账 · The ledger (台账)")
async def ledger(request: Request, actor: Actor = Depends(reader), unit: str | None = None,
                 include_cleared: bool = False, limit: int = Query(100, ge=1, le=1000),
                 offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> dict[str, Any]:
    """The 台账: projects not operating or underperforming, with the reason, until cleared. An
    entry whose problem item passed its 销号 shows `state: rectified` (整改完成, with the verifying
    event) until the next assessment clears it or, finding the project idle again, supersedes
    it with a new entry (`include_cleared=true` shows those too)."""
    deps = _deps(request)
    _check_code("unit", unit, _vocabulary(deps)["unit"])
    page = await q.ledger(_runtime(request).pool, unit=_scope(actor, unit),
                          include_cleared=include_cleared, limit=limit, offset=offset)
    return _page([ledger_row_view(row, deps) for row in page.rows], page.total, limit, offset)


def ledger_row_view(row: Mapping[str, Any], deps: RegistryDeps) -> dict[str, Any]:
    item = _row({k: v for k, v in dict(row).items() if not k.startswith("rectifi")}, deps)
    item["reason_text"] = describe_reason(item["reason"], deps.campaign)
    item["reason_details_text"] = [describe_reason(x, deps.campaign) for x in item["reason_details"]]
    rectified = row["rectified_problem_id"] is not None
    state = (LedgerState.CLEARED if row["cleared_on"] is not None
             else LedgerState.SUPERSEDED if row["superseded_by"] is not None
             else LedgerState.RECTIFIED if rectified else LedgerState.OPEN)
    item["state"], item["state_text"] = state.value, vocab.LEDGER_STATE.label(state.value)
    item["open"] = state in (LedgerState.OPEN, LedgerState.RECTIFIED)
    item["rectification"] = None if not rectified else {
        "problem_id": row["rectified_problem_id"], "seq_no": row["rectified_seq_no"],
        "verified_at": _plain(row["rectified_at"], deps),
        "verified_on_text": written_date(row["rectified_at"], deps.campaign.tz),
        "verified_by": row["rectified_by"], "verifier_role": row["rectified_verifier_role"],
        "conclusion": row["rectification_conclusion"],
        "verification_event_id": row["rectification_event_id"]}
    return item


async def _liaison_items(request: Request, actor: Actor, unit: str | None,
                         reveal: bool) -> tuple[str | None, list[dict[str, Any]]]:
    """附件1 rows in scope, phones masked; clear only for a revealing role, recorded first."""
    deps = _deps(request)
    _check_code("unit", unit, _vocabulary(deps)["unit"])
    unit = _scope(actor, unit)
    if reveal and actor.role not in REVEALING_ROLES:
        raise ForbiddenError(f"{actor.role.value} may not see liaison phones in clear",
                             zh="您的角色不能查看联络员的完整电话号码。")
    runtime = _runtime(request)
    rows = await q.liaisons(runtime.pool, unit=unit)
    items = [{"unit": row["unit"], "role": row["role"], "version": row["version"],
              "name": row["name"], "gender": row["gender"], "position": row["position"],
              "mobile": row["mobile_masked"], "office_phone": row["office_phone_masked"],
              "submitted_late": row["submitted_late"],
              "registered_at": _plain(row["registered_at"], deps), "revealed": False}
             for row in rows]
    if reveal:
        subjects = [row["subject_id"] for row in rows]
        fields = ["mobile", "office_phone"]
        # Recorded first: if the record cannot be written, nothing is revealed.
        correlation = correlation_of(request)
        await q.record_reveal(runtime.pool, actor=actor, what="liaison_phones", unit=unit,
                              subjects=subjects, fields=fields, correlation_id=correlation)
        log.info("personal_data_revealed", service="registry", what="liaison_phones",
                 actor=actor.id, role=actor.role.value, unit=unit, subjects=len(subjects),
                 fields=fields, correlation_id=str(correlation))
        ring = await deps.vault.keyring(subjects)
        for item, row in zip(items, rows, strict=True):
            item["mobile"] = ring.reveal(row["subject_id"], "mobile", row["mobile_sealed"])
            if row["office_phone_sealed"] is not None:
                item["office_phone"] = ring.reveal(row["subject_id"], "office_phone",
                                                   row["office_phone_sealed"])
            item["revealed"] = True
    return unit, items


_REVEAL = Query(False, description="show phones in clear (city_admin and the unit's own district "
                                   "roles; recorded)")


@router.get("/liaisons", response_model=a.LiaisonList,
            summary="责任领导和联络员 · Leaders and liaisons (附件1)")
async def liaisons(request: Request, actor: Actor = Depends(reader), unit: str | None = None,
                   reveal: bool = _REVEAL) -> dict[str, Any]:
    """附件1: each unit's responsible leader and liaison; phones masked unless revealed."""
    _, items = await _liaison_items(request, actor, unit, reveal)
    return {"items": items}


@router.get("/liaisons.xlsx", response_class=Response,
            summary="附件1 登记表 · Leaders and liaisons workbook (附件1)",
            responses=text_content(XLSX_MEDIA_TYPE, binary=True))
async def liaisons_xlsx(request: Request, actor: Actor = Depends(reader), unit: str | None = None,
                        reveal: bool = _REVEAL) -> Response:
    """附件1 责任领导和联络员登记表 as the notice lays it out, one printed page per unit; phones
    masked unless revealed (the same roles and record as the JSON list)."""
    scope, items = await _liaison_items(request, actor, unit, reveal)
    deps = _deps(request)
    units = [scope] if scope is not None else list(deps.campaign.unit_codes)
    content = liaison_workbook(items, units=units, campaign=deps.campaign,
                               printed_on=deps.campaign.local_date(_runtime(request).clock()))
    name = f"fujian1-liaisons-{scope}.xlsx" if scope else "fujian1-liaisons.xlsx"
    return Response(content, media_type=XLSX_MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/programmes", response_model=a.ProgrammePage,
            summary="适老化改造计划列表 · List adaptation programmes")
async def list_programmes(request: Request, actor: Actor = Depends(reader),
                          unit: str | None = None, limit: int = Query(100, ge=1, le=1000),
                          offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> dict[str, Any]:
    """Home-adaptation programmes with their household counts."""
    deps = _deps(request)
    _check_code("unit", unit, _vocabulary(deps)["unit"])
    page = await q.programmes(_runtime(request).pool, unit=_scope(actor, unit), limit=limit,
                              offset=offset)
    return _page([_row(r, deps) for r in page.rows], page.total, limit, offset)


@router.get("/programmes/{programme_id}/households", response_model=a.HouseholdPage,
            summary="改造户列表 · A programme's households (masked)")
async def list_households(programme_id: str, request: Request, actor: Actor = Depends(reader),
                          limit: int = Query(100, ge=1, le=1000),
                          offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> dict[str, Any]:
    """A programme's adapted households, masked: name `王*`, phone `138****0001`, no address."""
    runtime, deps = _runtime(request), _deps(request)
    programme = await q.programme(runtime.pool, programme_id)
    if programme is None:
        raise NotFoundError(f"adaptation programme {programme_id} is not registered",
                            zh="未找到该适老化改造计划。")
    authorize_read(actor, unit=programme["unit"])
    rows = await q.households(runtime.pool, programme_id, limit=limit, offset=offset)
    ring = await deps.vault.keyring([r["subject_id"] for r in rows])
    items = []
    for row in rows:
        subject = row["subject_id"]
        name = ring.open(subject, "name", row["name_sealed"])
        phone = ring.open(subject, "phone", row["phone_sealed"])
        items.append({
            "household_id": row["household_id"], "household_code": row["household_code"],
            "village": row["village"], "adaptation_year": row["adaptation_year"],
            "items": list(row["items"]), "acceptance_date": row["acceptance_date"].isoformat(),
            "name": ERASED if name is None else mask_name(name),
            "phone": (None if row["phone_sealed"] is None
                      else ERASED if phone is None else mask_phone(phone)),
        })
    return {"programme": _row(programme, deps), **_page(items, programme["households"], limit, offset)}
