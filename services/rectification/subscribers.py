"""What the rectification service does about other services' events (their `events.py` only): it
reacts, by running a command through its own pipeline (`ctx.run`, as the system actor, in the
consumer's transaction). The view of the registry's projects is a projection (projections.py).

- "rectification.on-registry": each LedgerEntryAdded opens an automatic item (source = ledger)
  unless one is still open for the same project and reason (`OpenLedgerItem`);
- "rectification.on-inspection": each FindingRecorded opens a city-found item (`OpenFindingItem`).

Exactly once under redelivery, twice over: the inbox row (shared/consuming.py) makes a duplicate
delivery a no-op, and the item's id derives from the registry's entry id / the finding id
(`domain.ledger_problem_id`, `finding_problem_id`), so even a second registration attempt is
recognised by the domain and by the store (event ids derived from the causing event, expected
NO_STREAM).
"""
from __future__ import annotations

from services.inspection.events import CONTRACT as INSPECTION_CONTRACT
from services.inspection.events import FindingRecorded
from services.rectification import commands as c
from services.rectification import domain as d
from services.rectification.config import RectificationConfig
from services.registry.events import CONTRACT as REGISTRY_CONTRACT
from services.registry.events import LedgerEntryAdded
from shared.consuming import ConsumerSpec, HandlerContext

Context = HandlerContext[RectificationConfig]


async def on_ledger_entry_added(ctx: Context, event: LedgerEntryAdded) -> None:
    result = await ctx.run(c.OpenLedgerItem(
        entry_id=event.entry_id, project_id=event.project_id, project_name=event.project_name,
        project_year=event.project_year, unit=event.unit, township=event.township,
        reason=event.reason, reason_details=event.reason_details))
    # Which item the entry opened, or which open item kept it from opening one. Written here, in
    # this reaction's transaction, and read by the next entry's decision (`ledger_item_ids`), so
    # "is one still open?" never waits for a projection: a blocked entry records no event of ours.
    ledger_items: tuple[d.ProblemState, ...] = result.inputs
    blocked_by = d.blocking_ledger_items(ledger_items, project_id=event.project_id,
                                         reason=event.reason)
    await ctx.conn.execute(
        """INSERT INTO rectification.ledger_links (entry_id, project_id, reason, problem_id,
                   blocked_by, received_at)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (entry_id) DO NOTHING""",
        event.entry_id, event.project_id, event.reason,
        None if blocked_by else d.ledger_problem_id(event.entry_id), blocked_by, ctx.now)


async def on_finding_recorded(ctx: Context, event: FindingRecorded) -> None:
    text = event.text
    if event.household_code:
        text = f"{text}（改造户编号 {event.household_code}）"  # a code, never a name or address
    await ctx.run(c.OpenFindingItem(
        finding_id=event.finding_id, project_id=event.project_id, unit=event.unit,
        project_name=event.project_name, township=event.township,
        project_year=event.project_year, text=text, deadline=event.deadline))


CONSUMERS = [
    ConsumerSpec(name="rectification.on-registry", source=REGISTRY_CONTRACT, reactions={
        LedgerEntryAdded: on_ledger_entry_added,
    }),
    ConsumerSpec(name="rectification.on-inspection", source=INSPECTION_CONTRACT, reactions={
        FindingRecorded: on_finding_recorded,
    }),
]
