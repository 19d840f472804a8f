"""What the notifier does with other services' events (their `events.py` only): each fact that
opens, moves, fulfils, returns or cancels an obligation becomes one command, run through the
pipeline in the delivery's transaction (so its notice commits with the inbox row).

- "notifier.on-registry": a unit's 附件1 leader or liaison registered (part of the liaisons
  deadline; both are needed).
- "notifier.on-rectification": a problem item's 整改限期 (registered, extended), its close-out
  requested (the unit's part is done), returned (re-armed), verified, or the item withdrawn; a
  monthly list, the self-inspection report, a typical case submitted, returned or sent back by
  the reviewer. A 反弹 registers a new item (`reopened_from`), which re-arms through its own
  registration.
- "notifier.on-inspection": a visit scheduled (announced to the unit), a visit recorded.

Each command carries where its fact sits in its upstream stream, so a redelivered or overtaken
fact decides nothing (domain/obligations.py). Events of units the campaign does not list are
rejected by the domain (recorded in the inbox, logged, never retried).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.inspection import events as insp
from services.notifier import commands as c
from services.notifier.domain import obligations as ob
from services.notifier.events import ObligationKind, SourceRef
from services.notifier.handlers import NotifierDeps
from services.rectification import events as rect
from services.registry import events as reg
from shared.campaign import DeadlineKind
from shared.consuming import ConsumerSpec, HandlerContext

Context = HandlerContext[NotifierDeps]
MAX_DESCRIPTION = 120


def _source(ctx: Context) -> SourceRef:
    d = ctx.delivery
    return SourceRef(event_type=d.event_type, event_id=d.event_id, stream_id=d.stream_id,
                     stream_version=d.stream_version)


def _at(ctx: Context) -> Any:
    return ctx.delivery.occurred_at or ctx.now


def _deadlines(ctx: Context, unit: str, kind: DeadlineKind, period: str | None = None
               ) -> list[str]:
    return [ob.deadline_obligation_id(unit, code)
            for code in ob.deadlines_for(ctx.deps.campaign, kind, period=period)]


async def _fulfil(ctx: Context, obligation_ids: Iterable[str], unit: str, part: str,
                  how: str) -> None:
    ids = tuple(obligation_ids)
    if ids:
        await ctx.run(c.RecordFulfilment(obligation_ids=ids, unit=unit, part=part, at=_at(ctx),
                                         how=how, source=_source(ctx)))


async def _return(ctx: Context, candidates: list[str], unit: str, part: str, reason: str) -> None:
    if candidates:
        await ctx.run(c.RecordReturn(candidates=tuple(candidates), unit=unit, part=part,
                                     at=_at(ctx), reason=reason, source=_source(ctx)))


# ----- registry -----------------------------------------------------------------------------------


async def on_liaison_registered(ctx: Context, event: reg.LiaisonRegistered) -> None:
    await _fulfil(ctx, _deadlines(ctx, event.unit, DeadlineKind.LIAISONS), event.unit,
                  event.role.value, f"附件1{'责任领导' if event.role.value == 'leader' else '联络员'}"
                  f"已报送(第{event.version}版)")


# ----- rectification: problem items ----------------------------------------------------------------


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DESCRIPTION else text[:MAX_DESCRIPTION - 1] + "…"


async def on_problem_registered(ctx: Context, event: rect.ProblemRegistered) -> None:
    label = "反弹问题整改" if event.reopened_from else "问题整改"
    details = {"seq_no": str(event.seq_no), "project_name": event.project_name,
               "township": event.township, "description": _short(event.description),
               "source": event.source.value, "deadline_kind": event.deadline_kind.value}
    if event.reopened_from:
        details["reopened_from"] = str(event.reopened_from)
    await ctx.run(c.OpenObligation(
        obligation_id=ob.problem_obligation_id(event.problem_id), unit=event.unit,
        kind=ObligationKind.PROBLEM, title=f"{label}(序号{event.seq_no} {event.project_name})",
        due_on=event.deadline, at=event.registered_at, details=details, source=_source(ctx)))


async def on_extension_decided(ctx: Context, event: rect.ExtensionDecided) -> None:
    await ctx.run(c.MoveDueDate(
        obligation_id=ob.problem_obligation_id(event.problem_id), unit=event.unit,
        due_on=event.deadline, at=_at(ctx), source=_source(ctx),
        reason="延期申请已批准" if event.approved else "延期申请未批准"))


async def on_close_out_requested(ctx: Context, event: rect.CloseOutRequested) -> None:
    await _fulfil(ctx, [ob.problem_obligation_id(event.problem_id)], event.unit, ob.PART_ITEM,
                  "已申请销号，待验收")


async def on_close_out_verified(ctx: Context, event: rect.CloseOutVerified) -> None:
    await _fulfil(ctx, [ob.problem_obligation_id(event.problem_id)], event.unit, ob.PART_ITEM,
                  "已销号")


async def on_close_out_returned(ctx: Context, event: rect.CloseOutReturned) -> None:
    await _return(ctx, [ob.problem_obligation_id(event.problem_id)], event.unit, ob.PART_ITEM,
                  f"销号申请被退回：{_short(event.reason)}")


async def on_problem_withdrawn(ctx: Context, event: rect.ProblemWithdrawn) -> None:
    await ctx.run(c.CancelObligation(
        obligation_id=ob.problem_obligation_id(event.problem_id), unit=event.unit,
        part=ob.PART_ITEM, at=_at(ctx), reason=f"问题已撤销：{_short(event.reason)}",
        source=_source(ctx)))


# ----- rectification: reports ---------------------------------------------------------------------

_REPORT_DEADLINE = {rect.ReportKind.MONTHLY_LIST: DeadlineKind.MONTHLY_PROBLEM_LIST,
                    rect.ReportKind.SELF_INSPECTION_REPORT: DeadlineKind.SELF_INSPECTION_REPORT,
                    rect.ReportKind.TYPICAL_CASE: DeadlineKind.TYPICAL_CASE}


async def on_monthly_list_submitted(ctx: Context, event: rect.MonthlyListSubmitted) -> None:
    await _fulfil(ctx, _deadlines(ctx, event.unit, DeadlineKind.MONTHLY_PROBLEM_LIST, event.month),
                  event.unit, event.report_id, f"{event.month}问题整改清单已报送(第{event.version}版)")


async def on_monthly_list_returned(ctx: Context, event: rect.MonthlyListReturned) -> None:
    await _return(ctx, _deadlines(ctx, event.unit, DeadlineKind.MONTHLY_PROBLEM_LIST, event.month),
                  event.unit, event.report_id, f"市局退回：{_short(event.comment)}")


async def on_self_inspection_report_submitted(ctx: Context,
                                              event: rect.SelfInspectionReportSubmitted) -> None:
    await _fulfil(ctx, _deadlines(ctx, event.unit, DeadlineKind.SELF_INSPECTION_REPORT),
                  event.unit, event.report_id, f"自查报告已报送(第{event.version}版)")


async def on_typical_case_submitted(ctx: Context, event: rect.TypicalCaseSubmitted) -> None:
    await _fulfil(ctx, _deadlines(ctx, event.unit, DeadlineKind.TYPICAL_CASE), event.unit,
                  event.report_id, f"典型案例已报送(第{event.version}版)")


async def on_report_reviewed(ctx: Context, event: rect.ReportReviewed) -> None:
    """Sent back by the unit's reviewer: the report no longer counts. A review names the report,
    not its month: the obligation that recorded the report takes the return. Rectification
    accepts only the months the campaign file lists, and both read the same file, so a review
    of a list no obligation has recorded yet has overtaken its submission (competing consumers):
    it is retried until the submission is in (NotYetKnownError)."""
    if event.approved:
        return
    await _return(ctx, _deadlines(ctx, event.unit, _REPORT_DEADLINE[event.kind]), event.unit,
                  event.report_id, f"审核退回：{_short(event.comment)}")


# ----- inspection ---------------------------------------------------------------------------------


async def on_visit_scheduled(ctx: Context, event: insp.VisitScheduled) -> None:
    campaign = ctx.deps.campaign
    kind_name = (campaign.project_type(event.project_type).name
                 if campaign.has_project_type(event.project_type) else event.project_type)
    target = (f"改造户{event.target_id}" if event.target_kind is insp.TargetKind.HOUSEHOLD
              else kind_name)
    await ctx.run(c.OpenObligation(
        obligation_id=ob.visit_obligation_id(event.visit_id), unit=event.unit,
        kind=ObligationKind.VISIT, title=f"市级实地检查({target})", due_on=event.scheduled_for,
        at=_at(ctx), source=_source(ctx),
        details={"draw_id": event.draw_id, "target_kind": event.target_kind.value,
                 "target_id": event.target_id, "project_type": event.project_type}))


async def on_visit_recorded(ctx: Context, event: insp.VisitRecorded) -> None:
    await _fulfil(ctx, [ob.visit_obligation_id(event.visit_id)], event.unit, ob.PART_VISIT,
                  f"已检查({event.visited_on.isoformat()})")


CONSUMERS = [
    ConsumerSpec(name="notifier.on-registry", source=reg.CONTRACT, reactions={
        reg.LiaisonRegistered: on_liaison_registered,
    }),
    ConsumerSpec(name="notifier.on-rectification", source=rect.CONTRACT, reactions={
        rect.ProblemRegistered: on_problem_registered,
        rect.ExtensionDecided: on_extension_decided,
        rect.CloseOutRequested: on_close_out_requested,
        rect.CloseOutVerified: on_close_out_verified,
        rect.CloseOutReturned: on_close_out_returned,
        rect.ProblemWithdrawn: on_problem_withdrawn,
        rect.MonthlyListSubmitted: on_monthly_list_submitted,
        rect.MonthlyListReturned: on_monthly_list_returned,
        rect.SelfInspectionReportSubmitted: on_self_inspection_report_submitted,
        rect.TypicalCaseSubmitted: on_typical_case_submitted,
        rect.ReportReviewed: on_report_reviewed,
    }),
    ConsumerSpec(name="notifier.on-inspection", source=insp.CONTRACT, reactions={
        insp.VisitScheduled: on_visit_scheduled,
        insp.VisitRecorded: on_visit_recorded,
    }),
]
