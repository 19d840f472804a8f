"""What the registry does about rectification's events (its `events.py` only): the 台账 learns of
a verified 销号 (DOMAIN.md §4).

One consumer, "registry.on-rectification", so the events arrive in the order rectification
recorded them (an item is registered before it is verified):

- ProblemRegistered: remembered in `registry.rectification_items` (a view of rectification's
  events, written in this reaction's transaction): which project, and for an item opened from a
  台账 entry, or a 反弹 of one, the entry it stands for. CloseOutVerified names only the item.
- CloseOutVerified of such an item: `MarkLedgerEntryRectified` through the registry's pipeline
  (as the system, caused by the verifying event) → LedgerEntryRectified (整改完成). The project
  stays on the ledger until its next assessment (domain/projects.py).
- ProblemReopened (反弹) of such an item: `ReopenLedgerRectification` takes the mark back.

Exactly once: the inbox row makes a redelivery a no-op, and the reaction's event ids derive from
the causing event. A verification of an item this view has not seen is retried (TransientError),
then dead-lettered with the reason: the registration always comes first on the one queue, so that
means an event was lost, which must be seen, not skipped.
"""
from __future__ import annotations

from services.rectification.events import CONTRACT as RECTIFICATION_CONTRACT
from services.rectification.events import CloseOutVerified, ProblemRegistered, ProblemReopened, ProblemSource
from services.registry import commands as c
from services.registry.handlers import RegistryDeps
from shared.consuming import ConsumerSpec, HandlerContext
from shared.errors import TransientError

Context = HandlerContext[RegistryDeps]
ON_RECTIFICATION = "registry.on-rectification"


async def on_problem_registered(ctx: Context, event: ProblemRegistered) -> None:
    entry_id = event.source_ref if event.source is ProblemSource.LEDGER else None
    reason = event.ledger_reason
    if event.reopened_from is not None:  # a 反弹 stands for what the original stood for
        original = await ctx.conn.fetchrow(
            "SELECT entry_id, ledger_reason FROM registry.rectification_items WHERE problem_id = $1",
            event.reopened_from)
        if original is not None and original["entry_id"] is not None:
            entry_id, reason = original["entry_id"], reason or original["ledger_reason"]
    await ctx.conn.execute(
        """INSERT INTO registry.rectification_items (problem_id, unit, project_id, source,
                   entry_id, ledger_reason, seq_no, reopened_from, registered_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (problem_id) DO NOTHING""",
        event.problem_id, event.unit, event.project_id, event.source.value, entry_id, reason,
        event.seq_no, event.reopened_from, event.registered_at)


async def _ledger_item(ctx: Context, problem_id: object) -> dict[str, object] | None:
    """The item as this view knows it; None when it is not a 台账 item."""
    row = await ctx.conn.fetchrow(
        "SELECT * FROM registry.rectification_items WHERE problem_id = $1", problem_id)
    if row is None:
        raise TransientError(f"problem item {problem_id} is not in the registry's view yet")
    return dict(row) if row["entry_id"] is not None else None


async def on_close_out_verified(ctx: Context, event: CloseOutVerified) -> None:
    item = await _ledger_item(ctx, event.problem_id)
    if item is None:
        return
    await ctx.run(c.MarkLedgerEntryRectified(
        project_id=str(item["project_id"]), entry_id=str(item["entry_id"]),
        ledger_reason=item["ledger_reason"], problem_id=str(event.problem_id),  # type: ignore[arg-type]
        seq_no=item["seq_no"], verified_by=event.verified_by,  # type: ignore[arg-type]
        verifier_role=event.verifier_role, conclusion=event.conclusion,
        verified_at=event.verified_at, verification_event_id=str(ctx.causation_id)))


async def on_problem_reopened(ctx: Context, event: ProblemReopened) -> None:
    item = await _ledger_item(ctx, event.problem_id)
    if item is None:
        return
    await ctx.run(c.ReopenLedgerRectification(
        project_id=str(item["project_id"]), entry_id=str(item["entry_id"]),
        problem_id=str(event.problem_id), new_problem_id=str(event.new_problem_id),
        reason=event.reason, reopening_event_id=str(ctx.causation_id)))


CONSUMERS = [
    ConsumerSpec(name=ON_RECTIFICATION, source=RECTIFICATION_CONTRACT, reactions={
        ProblemRegistered: on_problem_registered,
        CloseOutVerified: on_close_out_verified,
        ProblemReopened: on_problem_reopened,
    }),
]
