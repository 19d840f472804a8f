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
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from shared.audit_db import export_database
from shared.audit_proofs import consistency_document, inclusion_document, latest_checkpoint
from shared.errors import ForbiddenError
from shared.history import history
from shared.messages import Actor, Role

AUDIT_ROLES = frozenset({Role.AUDITOR, Role.CITY_ADMIN})

router = APIRouter(prefix="/audit", tags=["audit"])


def _auditor(request: Request) -> Actor:
    actor: Actor = request.app.state.runtime.authenticate(request)
    if actor.role not in AUDIT_ROLES:
        raise ForbiddenError(f"role {actor.role.value} may not read the audit trail "
                             "(auditor, city_admin)")
    return actor


@router.get("/checkpoints/latest")
async def latest(request: Request) -> dict[str, Any]:
    """The newest signed checkpoint: tree size and the signed note (docs/audit-format.md §5)."""
    _auditor(request)
    async with request.app.state.runtime.pool.acquire() as conn:
        return await latest_checkpoint(conn)


@router.get("/proofs/inclusion/{position}")
async def inclusion(request: Request, position: int,
                    tree_size: int | None = Query(None, ge=1)) -> dict[str, Any]:
    """An RFC 9162 inclusion proof of the entry at `position` against a signed checkpoint."""
    _auditor(request)
    async with request.app.state.runtime.pool.acquire() as conn:
        return await inclusion_document(conn, position, tree_size)


@router.get("/proofs/consistency")
async def consistency(request: Request, first: int = Query(..., ge=0),
                      second: int = Query(..., ge=0)) -> dict[str, Any]:
    """An RFC 9162 consistency proof: the tree of `first` entries is a prefix of `second`'s."""
    _auditor(request)
    async with request.app.state.runtime.pool.acquire() as conn:
        return await consistency_document(conn, first, second)


@router.get("/history/{subject}")
async def subject_history(request: Request, subject: str,
                          limit: int = Query(1000, ge=1, le=10000)) -> dict[str, Any]:
    """Every event of or about one subject (project, problem item, draw…), in order, in Chinese,
    with personal data masked (shared/history.py)."""
    _auditor(request)
    state = request.app.state
    async with state.runtime.pool.acquire() as conn:
        entries = await history(conn, subject, labels=getattr(state, "history_labels", {}),
                                limit=limit, **({"zone": state.history_zone}
                                                if hasattr(state, "history_zone") else {}))
    return {"subject": subject, "events": [e.as_dict() for e in entries]}


@router.get("/export", response_class=StreamingResponse)
async def export(request: Request) -> StreamingResponse:
    """The whole log (checkpoints, then every ledger entry with its event) from one consistent
    snapshot, as JSON Lines: what `lookback audit verify` checks offline."""
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
