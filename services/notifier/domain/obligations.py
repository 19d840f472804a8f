"""Obligations: what a unit has to do by when, as far as the notifier has learned. Pure.

An obligation is a campaign deadline of a unit (the campaign file lists them for every unit, so
they exist without any event), a problem item's 整改限期, or a scheduled inspection visit. Its
stream, `notice-<obligation_id>`, records each upstream fact that changed it.

Facts arrive at least once and, with several consumers on one queue, not always in order. Each
fact names its place in its upstream stream (`source.stream_version`), and a fact older than the
one that last set the same thing changes nothing: each *part* (a report, a 附件1 role, the item,
the visit) and the due date keep the upstream version that last set them. So a close-out that
overtakes its item's registration still wins, and a late redelivery never undoes a newer fact.

`armed_since` is when the obligation last became open (opened, returned, or its due date moved).
A reminder whose moment came before that is never sent late: it was cancelled by the fulfilment,
or belonged to a schedule that no longer applies.
"""
from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from services.notifier import commands as c
from services.notifier import events as e
from services.notifier.events import ObligationKind
from shared.campaign import Campaign, DeadlineKind
from shared.errors import DomainError, TransientError
from shared.messages import Event
from shared.pipeline import StreamSpec

END_OF_DAY = time(23, 59, 59)
PART_ITEM = "item"
PART_VISIT = "visit"
_OPENED_PART = {ObligationKind.PROBLEM: PART_ITEM, ObligationKind.VISIT: PART_VISIT}
# 附件1 needs both people: the obligation is met when both roles are registered.
LIAISON_PARTS = ("leader", "liaison")


class UnknownObligationError(DomainError):
    code = "unknown_obligation"


class NotYetKnownError(TransientError):
    """A fact about something the notifier has not heard of yet (a return that overtook its
    submission): retried until the earlier fact has arrived."""

    code = "not_yet_known"


class _State(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PartStatus(StrEnum):
    OPEN = "open"            # to do (or done and returned)
    DONE = "done"
    CANCELLED = "cancelled"


class Part(_State):
    status: PartStatus
    version: int             # the upstream stream version of the fact that set it
    at: datetime
    note: str = ""
    returned: bool = False   # done once, then sent back (退回)


class ObligationStatus(StrEnum):
    UNKNOWN = "unknown"      # a fact arrived before the item or visit itself
    OPEN = "open"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"


class ObligationState(_State):
    """One obligation, folded from its stream (and, for a campaign deadline, the campaign file)."""

    obligation_id: str
    kind: ObligationKind
    unit: str = ""
    deadline_code: str | None = None
    title: str = ""
    opened: bool = False
    opened_at: datetime | None = None
    due_on: date | None = None
    due_time: time = END_OF_DAY
    due_version: int = 0
    due_moves: int = 0
    required: int = 1
    parts: dict[str, Part] = {}
    armed_since: datetime | None = None
    details: dict[str, str] = {}

    @property
    def status(self) -> ObligationStatus:
        if not self.opened:
            return ObligationStatus.UNKNOWN
        if any(part.status is PartStatus.CANCELLED for part in self.parts.values()):
            return ObligationStatus.CANCELLED
        done = sum(part.status is PartStatus.DONE for part in self.parts.values())
        return ObligationStatus.FULFILLED if done >= self.required else ObligationStatus.OPEN

    @property
    def is_open(self) -> bool:
        return self.status is ObligationStatus.OPEN

    def done_parts(self) -> list[str]:
        return sorted(key for key, part in self.parts.items() if part.status is PartStatus.DONE)

    def returned_parts(self) -> list[str]:
        """Parts that were done and are open again (退回)."""
        return sorted(key for key, part in self.parts.items()
                      if part.status is PartStatus.OPEN and part.returned)

    def has_part(self, part: str) -> bool:
        return part in self.parts


# ----- ids and streams -------------------------------------------------------------------------


def deadline_obligation_id(unit: str, deadline_code: str) -> str:
    return f"deadline:{unit}:{deadline_code}"


def problem_obligation_id(problem_id: object) -> str:
    return f"problem:{problem_id}"


def visit_obligation_id(visit_id: str) -> str:
    return f"visit:{visit_id}"


def initial_state(obligation_id: str, campaign: Campaign) -> ObligationState:
    """The state before any event: a campaign deadline from the campaign file (open, due as the
    file says); an item or a visit not known yet."""
    prefix, _, rest = obligation_id.partition(":")
    if prefix == "deadline":
        unit, _, code = rest.partition(":")
        if not campaign.has_unit(unit):
            raise UnknownObligationError(f"unknown unit {unit!r} in obligation {obligation_id}")
        try:
            deadline = campaign.deadline(code)
        except KeyError:
            raise UnknownObligationError(f"the campaign has no deadline {code!r}") from None
        kind = ObligationKind(deadline.kind.value)
        required = (len(LIAISON_PARTS) if kind is ObligationKind.LIAISONS
                    else deadline.min_count if kind is ObligationKind.TYPICAL_CASE else 1)
        return ObligationState(obligation_id=obligation_id, kind=kind, unit=unit,
                               deadline_code=code, title=deadline.name, opened=True,
                               due_on=deadline.due_on, due_time=deadline.due_time,
                               required=required)
    if prefix == "problem" and rest:
        return ObligationState(obligation_id=obligation_id, kind=ObligationKind.PROBLEM)
    if prefix == "visit" and rest:
        return ObligationState(obligation_id=obligation_id, kind=ObligationKind.VISIT)
    raise UnknownObligationError(f"not an obligation id: {obligation_id!r}")


def obligation_spec(obligation_id: str, campaign: Campaign) -> StreamSpec[ObligationState]:
    return StreamSpec(e.notice_stream(obligation_id), evolve_obligation,
                      initial_state(obligation_id, campaign))


def campaign_obligations(campaign: Campaign) -> list[ObligationState]:
    """Every campaign deadline of every unit, as the campaign file alone says it is."""
    return [initial_state(deadline_obligation_id(unit, deadline.code), campaign)
            for unit in campaign.unit_codes for deadline in campaign.deadlines]


def deadlines_for(campaign: Campaign, kind: DeadlineKind, *, period: str | None = None
                  ) -> list[str]:
    """Codes of the campaign's deadlines of a kind (a monthly list: of that month)."""
    return [d.code for d in campaign.deadlines_of_kind(kind)
            if period is None or d.period == period]


# ----- fold ------------------------------------------------------------------------------------


def _newer(state: ObligationState, part: str, version: int) -> bool:
    current = state.parts.get(part)
    return current is None or current.version < version


def _with_part(state: ObligationState, part: str, value: Part) -> dict[str, Part]:
    return {**state.parts, part: value}


def evolve_obligation(state: ObligationState, event: Event) -> ObligationState:
    before = state.status
    changes: dict[str, Any] = {}
    match event:
        case e.ObligationOpened():
            version = event.source.stream_version
            changes.update(opened=True, unit=event.unit, title=event.title,
                           opened_at=event.opened_at, details=dict(event.details))
            if state.due_version < version:
                changes.update(due_on=event.due_on, due_version=version)
            part = _OPENED_PART.get(state.kind, PART_ITEM)
            if _newer(state, part, version):
                changes["parts"] = _with_part(state, part, Part(
                    status=PartStatus.OPEN, version=version, at=event.opened_at, note="opened"))
        case e.DueDateMoved():
            if state.due_version < event.source.stream_version:
                moved = event.due_on != state.due_on
                changes.update(due_on=event.due_on, due_version=event.source.stream_version,
                               due_moves=state.due_moves + int(moved))
                if moved and state.is_open:
                    changes["armed_since"] = event.moved_at
        case e.ObligationFulfilled() | e.ObligationReturned() | e.ObligationCancelled():
            status, at, note = _part_change(event)
            if _newer(state, event.part, event.source.stream_version):
                changes["parts"] = _with_part(state, event.part, Part(
                    status=status, version=event.source.stream_version, at=at, note=note,
                    returned=isinstance(event, e.ObligationReturned)))
            if not state.unit:
                changes["unit"] = event.unit
        case _:
            raise TypeError(f"not an obligation event: {type(event).__name__}")
    after = state.model_copy(update=changes)
    if after.status is ObligationStatus.OPEN and before is not ObligationStatus.OPEN:
        after = after.model_copy(update={"armed_since": _moment_of(event)})
    return after


def _part_change(event: e.ObligationFulfilled | e.ObligationReturned | e.ObligationCancelled
                 ) -> tuple[PartStatus, datetime, str]:
    if isinstance(event, e.ObligationFulfilled):
        return PartStatus.DONE, event.fulfilled_at, event.how
    if isinstance(event, e.ObligationReturned):
        return PartStatus.OPEN, event.returned_at, event.reason
    return PartStatus.CANCELLED, event.cancelled_at, event.reason


def _moment_of(event: Event) -> datetime:
    for name in ("opened_at", "returned_at", "moved_at", "fulfilled_at", "cancelled_at"):
        moment = getattr(event, name, None)
        if isinstance(moment, datetime):
            return moment
    raise TypeError(f"{type(event).__name__} has no moment")


def fold(state: ObligationState, events: list[Event]) -> ObligationState:
    for event in events:
        state = evolve_obligation(state, event)
    return state


# ----- decisions (each upstream fact, recorded once, stale ones ignored) ------------------------


def _check_unit(cmd_unit: str, campaign: Campaign) -> None:
    if not campaign.has_unit(cmd_unit):
        raise DomainError(f"unit {cmd_unit!r} is not a reporting unit of campaign {campaign.id}",
                          code="unknown_unit")


def decide_open(state: ObligationState, cmd: c.OpenObligation, *, campaign: Campaign
                ) -> list[Event]:
    _check_unit(cmd.unit, campaign)
    if state.kind is not cmd.kind or cmd.kind not in _OPENED_PART:
        raise UnknownObligationError(f"{cmd.obligation_id} cannot be opened as a {cmd.kind}")
    version = cmd.source.stream_version
    part = _OPENED_PART[cmd.kind]
    if state.opened and state.due_version >= version and not _newer(state, part, version):
        return []
    return [e.ObligationOpened(obligation_id=cmd.obligation_id, unit=cmd.unit, kind=cmd.kind,
                               title=cmd.title, due_on=cmd.due_on, opened_at=cmd.at,
                               details=cmd.details, source=cmd.source)]


def decide_move_due(state: ObligationState, cmd: c.MoveDueDate, *, campaign: Campaign
                    ) -> list[Event]:
    _check_unit(cmd.unit, campaign)
    if state.due_version >= cmd.source.stream_version or state.due_on == cmd.due_on:
        return []
    return [e.DueDateMoved(obligation_id=cmd.obligation_id, unit=cmd.unit, due_on=cmd.due_on,
                           moved_at=cmd.at, reason=cmd.reason, source=cmd.source)]


def decide_fulfil(states: dict[str, ObligationState], cmd: c.RecordFulfilment, *,
                  campaign: Campaign) -> list[Event]:
    _check_unit(cmd.unit, campaign)
    return [e.ObligationFulfilled(obligation_id=oid, unit=cmd.unit, part=cmd.part,
                                  fulfilled_at=cmd.at, how=cmd.how, source=cmd.source)
            for oid in dict.fromkeys(cmd.obligation_ids)
            if _newer(states[oid], cmd.part, cmd.source.stream_version)]


def decide_cancel(state: ObligationState, cmd: c.CancelObligation, *, campaign: Campaign
                  ) -> list[Event]:
    _check_unit(cmd.unit, campaign)
    if not _newer(state, cmd.part, cmd.source.stream_version):
        return []
    return [e.ObligationCancelled(obligation_id=cmd.obligation_id, unit=cmd.unit, part=cmd.part,
                                  cancelled_at=cmd.at, reason=cmd.reason, source=cmd.source)]


def decide_return(states: dict[str, ObligationState], cmd: c.RecordReturn, *,
                  campaign: Campaign) -> list[Event]:
    """A return names the part (a report id); which obligation holds it is known for sure only
    when there is one candidate. Among several (a unit's monthly lists), the one that recorded
    the part's submission; if none has yet, the submission is still on its way: retry."""
    _check_unit(cmd.unit, campaign)
    if len(cmd.candidates) == 1:
        target = cmd.candidates[0]
    else:
        holding = [oid for oid in cmd.candidates if states[oid].has_part(cmd.part)]
        if not holding:
            raise NotYetKnownError(f"no obligation has recorded {cmd.part!r} yet")
        target = holding[0]
    if not _newer(states[target], cmd.part, cmd.source.stream_version):
        return []
    return [e.ObligationReturned(obligation_id=target, unit=cmd.unit, part=cmd.part,
                                 returned_at=cmd.at, reason=cmd.reason, source=cmd.source)]


def due_at(state: ObligationState, campaign: Campaign) -> datetime | None:
    """The last moment it is on time, in the campaign's time zone."""
    if state.due_on is None:
        return None
    return campaign.local_datetime(state.due_on, state.due_time)
