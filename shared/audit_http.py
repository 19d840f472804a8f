"""Read-only audit routes every service process serves, for auditors and the city administrator.

`/audit/checkpoints/latest`, `/audit/proofs/inclusion/{position}`, `/audit/proofs/consistency`
return the documents of shared/audit_proofs.py; `/audit/history/{subject}` the person-readable
history of shared/history.py; `/audit/export` the whole log as `lookback audit export` writes it
(docs/audit-format.md), for an auditor with a browser. They read only the kernel's tables (`es.*`),
through the service's own pool (every service role may read them), so any service can answer and
none is special.
"""
from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from shared.api_contract import errors, text_content
from shared.audit_db import export_database
from shared.audit_proofs import consistency_document, inclusion_document, latest_checkpoint
from shared.errors import ForbiddenError
from shared.history import history
from shared.messages import Actor, Role

AUDIT_ROLES = frozenset({Role.AUDITOR, Role.CITY_ADMIN})

router = APIRouter(prefix="/audit", tags=["audit"])


class Checkpoint(BaseModel):
    tree_size: int
    note: str = Field(description="the signed note (docs/audit-format.md §5); 签名的检查点")


class AuditLedgerEntry(BaseModel):
    event_id: uuid.UUID
    event_type: str
    global_position: int
    metadata_hash: str
    payload_hash: str
    stream_id: str
    stream_version: int


class InclusionProof(BaseModel):
    kind: str = Field(examples=["inclusion"])
    position: int
    tree_size: int
    ledger_entry: AuditLedgerEntry
    leaf_hash: str
    proof: list[str] = Field(description="hex hashes, RFC 9162 §2.1.3")
    checkpoint: str


class ConsistencyProof(BaseModel):
    kind: str = Field(examples=["consistency"])
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str] = Field(description="hex hashes, RFC 9162 §2.1.4")
    first_checkpoint: str | None
    second_checkpoint: str | None


class HistoryActor(BaseModel):
    name: str
    role: str


class HistoryEvent(BaseModel):
    position: int
    stream_id: str
    stream_version: int
    event_type: str
    label: str = Field(description="what happened, in Chinese; 事件名称")
    at: str
    actor: HistoryActor
    changes: dict[str, str] = Field(description="changed fields, personal data masked")
    text: str = Field(description="the whole line as a person reads it; 可读文本")


class SubjectHistory(BaseModel):
    subject: str
    events: list[HistoryEvent]


def _auditor(request: Request) -> Actor:
    actor: Actor = request.app.state.runtime.authenticate(request)
    if actor.role not in AUDIT_ROLES:
        raise ForbiddenError(f"role {actor.role.value} may not read the audit trail "
                             "(auditor, city_admin)")
    return actor


@router.get("/checkpoints/latest", response_model=Checkpoint, summary="最新检查点 · Latest checkpoint",
            responses=errors(404))
async def latest(request: Request) -> dict[str, Any]:
    """The newest signed checkpoint: tree size and the signed note (docs/audit-format.md §5).
    最新签名检查点。"""
    _auditor(request)
    async with request.app.state.runtime.pool.acquire() as conn:
        return await latest_checkpoint(conn)


@router.get("/proofs/inclusion/{position}", response_model=InclusionProof,
            summary="包含证明 · Inclusion proof")
async def inclusion(request: Request, position: int,
                    tree_size: int | None = Query(None, ge=1)) -> dict[str, Any]:
    """An RFC 9162 inclusion proof of the entry at `position` against a signed checkpoint.
    某条记录在已签名账本中的包含证明。"""
    _auditor(request)
    async with request.app.state.runtime.pool.acquire() as conn:
        return await inclusion_document(conn, position, tree_size)


@router.get("/proofs/consistency", response_model=ConsistencyProof,
            summary="一致性证明 · Consistency proof", responses=errors(404))
async def consistency(request: Request, first: int = Query(..., ge=0),
                      second: int = Query(..., ge=0)) -> dict[str, Any]:
    """An RFC 9162 consistency proof: the tree of `first` entries is a prefix of `second`'s.
    账本前后两个规模之间的一致性证明。"""
    _auditor(request)
    async with request.app.state.runtime.pool.acquire() as conn:
        return await consistency_document(conn, first, second)


@router.get("/history/{subject}", response_model=SubjectHistory,
            summary="对象的全部历史 · History of a subject")
async def subject_history(request: Request, subject: str,
                          limit: int = Query(1000, ge=1, le=10000)) -> dict[str, Any]:
    """Every event of or about one subject (project, problem item, draw…), in order, in Chinese,
    with personal data masked (shared/history.py). 某对象的全部事件（中文，个人信息已遮蔽）。"""
    _auditor(request)
    state = request.app.state
    async with state.runtime.pool.acquire() as conn:
        entries = await history(conn, subject, labels=getattr(state, "history_labels", {}),
                                limit=limit, **({"zone": state.history_zone}
                                                if hasattr(state, "history_zone") else {}))
    return {"subject": subject, "events": [e.as_dict() for e in entries]}


@router.get("/export", response_class=StreamingResponse, summary="导出全部账本 · Export the log",
            responses=text_content("application/x-ndjson", binary=True))
async def export(request: Request) -> StreamingResponse:
    """The whole log (checkpoints, then every ledger entry with its event) from one consistent
    snapshot, as JSON Lines: what `lookback audit verify` checks offline.
    以 JSON Lines 导出完整账本，供离线核验。"""
    _auditor(request)
    # Spooled: a small log stays in memory, a large one goes to a temporary file, never both.
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    async with request.app.state.runtime.pool.acquire() as conn:
        await export_database(conn, spool)
    spool.seek(0)

    def chunks() -> Iterator[bytes]:
        try:
            while block := spool.read(256 * 1024):
                yield block
        finally:
            spool.close()

    return StreamingResponse(chunks(), media_type="application/x-ndjson",
                             headers={"Content-Disposition":
                                      'attachment; filename="lookback-audit.jsonl"'})
