"""Command handling, the same short script everywhere: load the stream, decide, append.

`execute` folds the stream into state, asks the pure `decide` for events, and appends them with
the version it read as the expected version. A concurrent writer makes the append fail before
anything is written; we then reload and decide again, a bounded number of times.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Generic, Sequence, TypeVar

from shared.errors import ConcurrencyError
from shared.messages import Actor, Event, EventRegistry, new_event
from shared.store import NO_STREAM, Appended, EventStore

S = TypeVar("S")

CONCURRENCY_RETRIES = 3


@dataclass(frozen=True)
class Outcome(Generic[S]):
    state: S
    events: list[Event]
    appended: list[Appended]
    version: int


async def load(store: EventStore, registry: EventRegistry, stream_id: str,
               evolve: Callable[[S, Event], S], initial: S, *, conn: Any = None) -> tuple[S, int]:
    state, version = initial, 0
    for recorded in await store.read_stream(stream_id, conn=conn):
        state = evolve(state, registry.load_recorded(recorded))
        version = recorded.stream_version
    return state, version


async def execute(store: EventStore, registry: EventRegistry, stream_id: str, *,
                  evolve: Callable[[S, Event], S], initial: S,
                  decide: Callable[[S], Sequence[Event]], actor: Actor, now: datetime,
                  correlation_id: uuid.UUID | None = None, causation_id: uuid.UUID | None = None,
                  conn: Any = None) -> Outcome[S]:
    """Load → decide → append(expected version); retry on a concurrent change. Raises what
    `decide` raises (a DomainError) with nothing written."""
    for attempt in range(CONCURRENCY_RETRIES):
        state, version = await load(store, registry, stream_id, evolve, initial, conn=conn)
        events = list(decide(state))
        if not events:
            return Outcome(state, [], [], version)
        correlation = correlation_id or uuid.uuid4()
        batch = [new_event(stream_id, e, actor=actor, occurred_at=now, correlation_id=correlation,
                           causation_id=causation_id) for e in events]
        try:
            appended = await store.append(batch, {stream_id: version or NO_STREAM}, conn=conn)
        except ConcurrencyError:
            if attempt == CONCURRENCY_RETRIES - 1 or conn is not None:
                raise  # inside a caller's transaction a retry must come from the caller
            continue
        for event in events:
            state = evolve(state, event)
        return Outcome(state, events, appended, version + len(events))
    raise AssertionError("unreachable")
