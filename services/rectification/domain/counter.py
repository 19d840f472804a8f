"""The 序号 counter of a unit (stream `unit-<code>`): the numbers of the unit's problem list. Pure."""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from services.rectification import events as e
from shared.messages import Event


@dataclass(frozen=True, slots=True)
class UnitSequenceState:
    """The 序号 counter of one unit, folded from its stream `unit-<code>`.

    Design: the stream holds one SeqNoAllocated per item. Registering appends SeqNoAllocated to
    `unit-<code>` (expected version = the version read) and ProblemRegistered to
    `problem-<id>` (expected NO_STREAM) in ONE atomic multi-stream append. Two registrations racing
    in one unit: one gets ConcurrencyError and retries with the next number, so a number is never
    handed out twice; numbers come only from here and nothing ever takes one back (a withdrawn
    item keeps its 序号), so they are never reused or renumbered. The number equals the stream's
    version (the stream holds allocations only), so allocating reads the head version alone
    (`sequence_at_version`, docs/adr/0011): its cost does not grow with the unit's history. The
    explicit event still says in the log which item got which number; `allocations` (every item
    of the unit) is there only when the whole stream was folded (`unit_spec`), for the readers
    that need the unit's items.
    """

    unit: str
    last_seq_no: int = 0
    allocations: Mapping[uuid.UUID, int] = field(default_factory=dict)


def evolve_sequence(state: UnitSequenceState, event: Event) -> UnitSequenceState:
    if not isinstance(event, e.SeqNoAllocated):
        raise TypeError(f"not a sequence event: {type(event).__name__}")
    return replace(state, last_seq_no=max(state.last_seq_no, event.seq_no),
                   allocations={**state.allocations, event.problem_id: event.seq_no})


def sequence_at_version(state: UnitSequenceState, version: int) -> UnitSequenceState:
    """The counter from its stream's head version alone: one SeqNoAllocated per version."""
    return replace(state, last_seq_no=version)
