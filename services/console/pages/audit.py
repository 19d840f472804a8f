"""审计: the latest signed checkpoint, the export to download, and how anyone verifies both
offline. Auditors and the city bureau only (the service says so; others get its 403)."""
from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.backend import ServiceRefused
from services.console.pages.common import Who
from services.console.web import render
from shared.signing import parse_note

router = APIRouter()


@router.get("/audit", response_class=HTMLResponse)
async def audit(request: Request, who: Who) -> HTMLResponse:
    try:
        answer = await who.caller.get("registry", "/audit/checkpoints/latest")
    except ServiceRefused as exc:
        if exc.code != "no_checkpoint":
            raise
        answer = None
    checkpoint = None
    if answer is not None:
        parts = parse_note(answer["note"])  # shown, not trusted: the verifier checks the signature
        checkpoint = {"origin": parts.origin, "tree_size": parts.tree_size,
                      "root_hash": parts.root_hash.hex(), "key_id": parts.key_id,
                      "note": answer["note"]}
    return render(request, "audit.html", person=who, checkpoint=checkpoint)


@router.get("/audit/export.jsonl")
async def export(who: Who) -> Response:
    try:
        response = await who.caller.download("registry", "/audit/export")
    except ServiceRefused as exc:
        if exc.status in (404, 405):
            raise ServiceRefused(404, "本系统版本尚未提供在线导出，请用命令 lookback audit export") from None
        raise
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(response.content, media_type="application/x-ndjson",
                    headers={"Content-Disposition": f'attachment; filename="lookback-audit-{stamp}.jsonl"'})
