"""A unit's due dates as an iCalendar file (RFC 5545), for a liaison's own calendar.

One all-day VEVENT per obligation on its due date. Its UID is the obligation's id (stable), so a
calendar that downloads the file again updates the event rather than adding a second one; an
extension moves DTSTART and raises SEQUENCE; a withdrawn item stays, CANCELLED.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from icalendar import Calendar
from icalendar import Event as VEvent

from services.notifier.domain.calendar import NOT_REMINDED_WHY, cn_date
from services.notifier.domain.messages import missing
from services.notifier.domain.obligations import ObligationState, ObligationStatus
from shared.campaign import Campaign

STATUS_TEXT = {ObligationStatus.OPEN: "未完成", ObligationStatus.FULFILLED: "已完成",
               ObligationStatus.CANCELLED: "已撤销", ObligationStatus.UNKNOWN: "未知"}


def uid_for(obligation_id: str, campaign: Campaign) -> str:
    return f"{obligation_id}@{campaign.id}.lookback"


def unit_calendar(states: list[ObligationState], campaign: Campaign, unit: str,
                  now: datetime) -> bytes:
    cal = Calendar()
    cal.add("prodid", "-//Lookback//回头看 notifier//ZH")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", f"回头看 · {campaign.unit(unit).name}")
    cal.add("x-wr-timezone", campaign.campaign.timezone)
    for state in states:
        if state.unit != unit or state.due_on is None or not state.opened:
            continue
        event = VEvent()
        event.add("uid", uid_for(state.obligation_id, campaign))
        event.add("dtstamp", now)
        event.add("summary", state.title)
        event.add("dtstart", state.due_on)
        event.add("dtend", state.due_on + timedelta(days=1))
        event.add("sequence", state.due_moves)
        event.add("status", "CANCELLED" if state.status is ObligationStatus.CANCELLED
                  else "CONFIRMED")
        event.add("transp", "TRANSPARENT")
        event.add("categories", [state.kind.value])
        lines = [f"截止：{cn_date(state.due_on)}{state.due_time.strftime('%H:%M')}",
                 f"状态：{STATUS_TEXT[state.status]}"]
        if state.status is ObligationStatus.OPEN:
            lines += [f"尚缺：{item}" for item in missing(state, campaign)]
        if state.kind in NOT_REMINDED_WHY:
            lines.append(NOT_REMINDED_WHY[state.kind])
        event.add("description", "\n".join(lines))
        cal.add_component(event)
    ical: bytes = cal.to_ical()
    return ical
