"""What a reminder says: the facts its templates are filled with. Pure.

Every message names the unit, the obligation, the due date (written 2024年3月25日) and what is
still missing. It greets the recipient by role (联络员, 责任领导), never by name, and carries no
address or phone: the text itself is recorded in the reminder's stream.
"""
from __future__ import annotations

from typing import Any

from services.notifier.domain.calendar import PlannedReminder, cn_date
from services.notifier.domain.obligations import LIAISON_PARTS, PART_ITEM, ObligationState, PartStatus
from services.notifier.events import Audience, ObligationKind
from shared.campaign import Campaign

AUDIENCE_TITLE = {Audience.LIAISON: "联络员", Audience.LEADER: "责任领导"}
LIAISON_ROLE_TITLE = {"leader": "责任领导信息", "liaison": "联络员信息"}


def missing(state: ObligationState, campaign: Campaign) -> list[str]:
    """What the unit still has to do for this obligation, in words."""
    kind = state.kind
    returned = " (已退回，待重新报送)" if state.returned_parts() else ""
    if kind is ObligationKind.LIAISONS:
        done = set(state.done_parts())
        return [f"{LIAISON_ROLE_TITLE[role]}(附件1)" for role in LIAISON_PARTS if role not in done]
    if kind in (ObligationKind.MONTHLY_PROBLEM_LIST, ObligationKind.SELF_INSPECTION_REPORT):
        return [f"{state.title}{returned}"]
    if kind is ObligationKind.TYPICAL_CASE:
        counted = len(state.done_parts())
        return [f"典型案例或经验材料：已报送有效{counted}篇，至少需要{state.required}篇{returned}"]
    if kind is ObligationKind.PROBLEM:
        part = state.parts.get(PART_ITEM)
        step = ("销号申请已被退回，请整改后重新申请销号" if part and part.returned
                else "尚未申请销号")
        return [f"{state.title}：{step}"]
    return []


def message_context(state: ObligationState, reminder: PlannedReminder,
                    campaign: Campaign) -> dict[str, Any]:
    unit = campaign.unit(state.unit)
    days_left = None
    if reminder.offsets:
        days_left = campaign.working_days_between(reminder.at.date(), reminder.due_on)
    return {
        "campaign_name": campaign.campaign.name,
        "notice_number": campaign.campaign.notice_number,
        "issuer": campaign.campaign.issuer,
        "unit_name": unit.name,
        "audience_title": AUDIENCE_TITLE[reminder.audience],
        "kind": reminder.kind.value,
        "obligation_kind": state.kind.value,
        "title": state.title,
        "due_date": cn_date(reminder.due_on),
        "due_time": state.due_time.strftime("%H:%M"),
        "reminder_date": cn_date(reminder.at.date()),
        "days_left": days_left,
        "overdue_days": reminder.overdue_day,
        "missing": missing(state, campaign),
        "details": dict(state.details),
        "reminder_id": str(reminder.reminder_id),
        "open_parts": [k for k, p in state.parts.items() if p.status is PartStatus.OPEN],
    }
