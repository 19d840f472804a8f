"""问题清单: the items with filters, an item's page with its history and the actions the person
may take, registering an item, and evidence files (upload with the 销号 request, view).

Which buttons a page shows is a courtesy to the person (the actions their role could take); the
rectification service decides every one when it is sent, and its refusal is shown as it said it.
"""
from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData, UploadFile

from services.audit_labels import EVENT_LABELS
from services.console.backend import ServiceRefused
from services.console.evidence import HASH, KINDS, EvidenceRefused, check_file
from services.console.pages.common import Who, checked_form, now, state_of, text
from services.console.pages.home import awaiting_me
from services.console.web import Person, render, see_other
from shared.messages import Role

router = APIRouter()

OPEN = ("registered", "in_rectification", "close_out_requested")
DONE_MESSAGES = {
    "registered": "问题已登记。", "start": "已开始整改。", "request-close-out": "销号申请已提交，等待核验。",
    "verify": "已核验销号。", "return": "已退回销号申请。", "request-extension": "延期申请已提交。",
    "decide-extension": "延期申请已处理。", "reopen": "已重新打开（反弹），并登记为新问题。",
    "withdraw": "问题已撤销。",
}


PAGE = 100


@router.get("/problems", response_class=HTMLResponse)
async def problems(request: Request, who: Who, unit: str | None = None, status: str | None = None,
                   overdue: str | None = None, source: str | None = None,
                   page: int = 1) -> HTMLResponse:
    page = max(page, 1)
    body = await who.caller.get("rectification", "/problems", {
        "unit": unit, "status": status, "source": source, "limit": PAGE,
        "offset": (page - 1) * PAGE, "overdue": {"yes": "true", "no": "false"}.get(overdue or "")})
    total = int(body.get("total", len(body["items"])))
    return render(request, "problems.html", person=who, items=body["items"], total=total,
                  page=page, pages=max(1, -(-total // PAGE)), as_of=body.get("as_of"),
                  filters={"unit": unit or "", "status": status or "", "overdue": overdue or "",
                           "source": source or ""})


def actions_for(item: dict[str, Any], who: Person) -> list[str]:
    """The actions this person's role could take on the item in its state (the service decides)."""
    status, mine = item.get("status"), who.account.account_id
    if not who.commands:
        return []
    worker = who.is_district or who.role is Role.CITY_ADMIN
    judge = who.role is Role.CITY_ADMIN or (
        who.role is Role.INSPECTOR if item.get("source") == "city"
        else who.role is Role.DISTRICT_REVIEWER)
    actions = []
    if status == "registered" and worker:
        actions.append("start")
    if status == "in_rectification" and worker:
        actions.append("request-close-out")
    if awaiting_me(item, who):
        actions += ["verify", "return"]
    if status in OPEN and worker and not item.get("pending_extension"):
        actions.append("request-extension")
    pending = item.get("pending_extension") or {}
    if pending and judge and pending.get("requested_by") != mine:
        actions.append("decide-extension")
    if status == "closed" and who.role in (Role.CITY_ADMIN, Role.INSPECTOR, Role.DISTRICT_REVIEWER):
        actions.append("reopen")
    if status in ("registered", "in_rectification") and judge and item.get("registered_by") != mine:
        actions.append("withdraw")
    return actions


async def reuse_of(who: Person, item: dict[str, Any]) -> list[dict[str, Any]]:
    """For each attachment of the item: the other items it was also filed for (纸面销号 warning)."""
    flagged = set(item.get("flagged_hashes") or ())
    found = []
    for content_hash in item.get("evidence_hashes") or ():
        filed = (await who.caller.get("rectification", f"/evidence/{content_hash}"))["filed_for"]
        others = [f for f in filed if str(f.get("problem_id")) != str(item.get("problem_id"))]
        if others or content_hash in flagged:
            found.append({"hash": content_hash, "others": others})
    return found


@router.get("/problems/new", response_class=HTMLResponse)
async def new_problem_form(request: Request, who: Who) -> HTMLResponse:
    projects = (await who.caller.get("rectification", "/projects"))["projects"]
    return render(request, "problem_new.html", person=who, projects=projects,
                  new_id=str(uuid.uuid4()), error=None, values={})


@router.post("/problems/new")
async def register(request: Request, who: Who) -> Response:
    form = await checked_form(request, who)
    body: dict[str, Any] = {
        "problem_id": text(form, "problem_id"), "project_id": text(form, "project_id"),
        "description": text(form, "description"),
        "deadline_kind": text(form, "deadline_kind") or "date",
        "responsible_person": text(form, "responsible_person"), "source": "self_inspection"}
    if body["deadline_kind"] == "date":
        body["deadline"] = text(form, "deadline") or None
    try:
        item = await who.caller.post("rectification", "/problems/register", body)
    except ServiceRefused as exc:
        if exc.status in (401, 403, 404):
            raise
        projects = (await who.caller.get("rectification", "/projects"))["projects"]
        return render(request, "problem_new.html", person=who, projects=projects, status_code=exc.status,
                      new_id=body["problem_id"], error=exc.explain(), values=body)
    await who.caller.settle("rectification", f"/problems/{item['problem_id']}", same_as(item))
    return see_other(f"/problems/{item['problem_id']}?done=registered")


@router.get("/problems/{problem_id}", response_class=HTMLResponse)
async def problem(request: Request, who: Who, problem_id: uuid.UUID,
                  done: str | None = None) -> HTMLResponse:
    return await problem_page(request, who, problem_id, done=done)


async def problem_page(request: Request, who: Person, problem_id: uuid.UUID, *,
                       done: str | None = None, error: str | None = None,
                       status_code: int = 200) -> HTMLResponse:
    item = await who.caller.get("rectification", f"/problems/{problem_id}")
    history = [{**entry, "label": EVENT_LABELS.get(entry.get("event_type", ""),
                                                   entry.get("event_type"))}
               for entry in item.get("history", [])]
    actions = actions_for(item, who)
    reuse = await reuse_of(who, item) if item.get("evidence_hashes") else []
    return render(request, "problem.html", person=who, item=item, history=history,
                  actions=actions, reuse=reuse, done=DONE_MESSAGES.get(done or ""), error=error,
                  new_id=str(uuid.uuid4()), status_code=status_code,
                  max_mb=state_of(request).console.evidence_max_bytes // (1024 * 1024),
                  kinds="、".join(KINDS.values()))


async def store_uploads(request: Request, who: Person, form: FormData, field: str) -> list[str]:
    """Each uploaded file of `field` checked (size, type by its bytes), stored by its SHA-256 and
    recorded as uploaded by this person; their hashes, in order."""
    state = state_of(request)
    assert state.pool is not None
    hashes = []
    for upload in form.getlist(field):
        if not isinstance(upload, UploadFile) or not upload.filename:
            continue
        content = await upload.read(state.console.evidence_max_bytes + 1)
        try:
            content_hash, media_type = check_file(content, state.console.evidence_max_bytes)
        except EvidenceRefused as exc:
            raise EvidenceRefused(f"{upload.filename}：{exc}") from None
        state.evidence.put(content_hash, content)
        async with state.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO console.evidence_files (content_hash, media_type, size_bytes,
                                                      first_uploaded_at)
                   VALUES ($1, $2, $3, $4) ON CONFLICT (content_hash) DO NOTHING""",
                content_hash, media_type, len(content), now())
            await conn.execute(
                """INSERT INTO console.evidence_uploads (content_hash, account_id, unit, filename,
                                                        uploaded_at)
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
                content_hash, who.account.account_id, who.unit, upload.filename[:200], now())
        if content_hash not in hashes:
            hashes.append(content_hash)
    return hashes


def _command(action: str, problem_id: str, form: FormData) -> dict[str, Any]:
    body: dict[str, Any] = {"problem_id": problem_id}
    if action == "start":
        body["plan"] = text(form, "plan")
        if text(form, "responsible_person"):
            body["responsible_person"] = text(form, "responsible_person")
    elif action == "verify":
        body["conclusion"] = text(form, "conclusion")
    elif action in ("return", "withdraw"):
        body["reason"] = text(form, "reason")
    elif action == "request-extension":
        body.update(new_deadline=text(form, "new_deadline") or None, reason=text(form, "reason"))
    elif action == "decide-extension":
        body.update(approved=text(form, "approved") == "yes", reason=text(form, "reason"))
    elif action == "reopen":
        body.update(new_problem_id=text(form, "new_problem_id"), reason=text(form, "reason"))
    return body


ACTIONS = ("start", "request-close-out", "verify", "return", "request-extension",
           "decide-extension", "reopen", "withdraw")


@router.post("/problems/{problem_id}/{action}")
async def act(request: Request, who: Who, problem_id: uuid.UUID, action: str) -> Response:
    if action not in ACTIONS:
        return Response(status_code=404)
    form = await checked_form(request, who)
    body = _command(action, str(problem_id), form)
    try:
        if action == "request-close-out":
            body.update(evidence_text=text(form, "evidence_text"),
                        attachment_hashes=await store_uploads(request, who, form, "files"))
        result = await who.caller.post("rectification", f"/problems/{action}", body)
    except EvidenceRefused as exc:
        return await problem_page(request, who, problem_id, error=str(exc), status_code=422)
    except ServiceRefused as exc:
        if exc.status in (401, 404):
            raise
        return await problem_page(request, who, problem_id, error=exc.explain(),
                                  status_code=exc.status)
    if action == "reopen" and isinstance(result, dict) and result.get("problem"):
        new_id = result["problem"]["problem_id"]
        await who.caller.settle("rectification", f"/problems/{new_id}", lambda item: True)
        return see_other(f"/problems/{new_id}?done=reopen")
    await who.caller.settle("rectification", f"/problems/{problem_id}", same_as(result))
    return see_other(f"/problems/{problem_id}?done={action}")


SETTLED_FIELDS = ("status", "evidence_hashes", "pending_extension", "plan", "times_returned",
                  "deadline", "extensions_granted")


def same_as(result: Any) -> Any:
    """The read model shows what the command's answer said the item became."""
    def ready(item: Any) -> bool:
        return not isinstance(result, dict) or all(
            item.get(key) == result.get(key) for key in SETTLED_FIELDS if key in result)
    return ready


@router.get("/evidence/{content_hash}")
async def evidence(request: Request, who: Who, content_hash: str) -> Response:
    """A file, to those who may see it: its uploader, anyone the rectification service shows an
    item it was filed for, and the city-wide roles, who read every unit (DOMAIN.md §1)."""
    state = state_of(request)
    assert state.pool is not None
    if not HASH.match(content_hash):
        return Response(status_code=404)
    row = await state.pool.fetchrow(
        """SELECT f.media_type, EXISTS (SELECT 1 FROM console.evidence_uploads u
                                         WHERE u.content_hash = f.content_hash
                                           AND u.account_id = $2) AS mine
             FROM console.evidence_files f WHERE f.content_hash = $1""",
        content_hash, who.account.account_id)
    if row is None:
        return render(request, "error.html", person=who, status_code=404, title="未找到",
                      message="没有这个佐证文件。")
    allowed = row["mine"] or not who.is_district
    if not allowed:
        filed = (await who.caller.get("rectification", f"/evidence/{content_hash}"))["filed_for"]
        allowed = bool(filed)
    if not allowed:
        return render(request, "error.html", person=who, status_code=403, title="无权访问",
                      message="这个佐证文件不属于您所在单位的问题。")
    content = state.evidence.get(content_hash)
    if content is None:
        return render(request, "error.html", person=who, status_code=404, title="未找到",
                      message="佐证文件的内容不在存储中。")
    return Response(content, media_type=row["media_type"],
                    headers={"Content-Disposition": f'inline; filename="{content_hash[:16]}"',
                             "Cache-Control": "private, no-store"})
