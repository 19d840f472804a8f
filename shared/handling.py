"""Command handling, the same short script everywhere: load the stream(s), decide, append.

`execute` folds a stream into state, asks the pure `decide` for events, and appends them with the
version it read as the expected version. `execute_streams` does the same for a decision that
writes several streams (one atomic append, an expected version per stream). A concurrent writer
makes the append fail before anything is written; we then reload and decide again, a bounded
number of times (inside a caller's transaction, each attempt in its own savepoint).
"""
from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Generic, Mapping, Sequence, TypeVar

from shared.errors import ConcurrencyError
from shared.messages import Actor, Event, EventRegistry, new_event
from shared.store import Appended, EventStore

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
    `decide` raises (a DomainError) with nothing written. The one-stream case of
    `execute_streams`."""
    multi = await execute_streams(
        store, registry, [StreamSpec(stream_id, evolve, initial)],
        decide=lambda states: decide(states[stream_id]), route=lambda _event: stream_id,
        actor=actor, now=now, correlation_id=correlation_id, causation_id=causation_id, conn=conn)
    return Outcome(multi.states[stream_id], multi.events, multi.appended, multi.versions[stream_id])


# ------------------------------------------------------------------------------------------
# Several streams, one atomic append


@dataclass(frozen=True)
class StreamSpec:
    """A stream a decision reads and may write: its id and how to fold it."""

    stream_id: str
    evolve: Callable[[Any, Event], Any]
    initial: Any


@dataclass(frozen=True)
class MultiOutcome:
    states: dict[str, Any]          # every loaded stream's state, after the new events
    events: list[Event]
    appended: list[Appended]
    versions: dict[str, int]        # every loaded stream's version, after the new events

    def state(self, stream_id: str) -> Any:
        return self.states[stream_id]


EventIds = Callable[[int, Event], uuid.UUID]


async def execute_streams(store: EventStore, registry: EventRegistry,
                          streams: Sequence[StreamSpec], *,
                          decide: Callable[[Mapping[str, Any]], Sequence[Event]],
                          route: Callable[[Event], str], actor: Actor, now: datetime,
                          correlation_id: uuid.UUID | None = None,
                          causation_id: uuid.UUID | None = None, conn: Any = None,
                          event_ids: EventIds | None = None,
                          retries: int = CONCURRENCY_RETRIES) -> MultiOutcome:
    """Load every stream → decide → append all events atomically, each stream at the version read.

    `decide` gets {stream id: state}; every event it returns must belong to one of the loaded
    streams (a stream never written has version 0 = "no stream yet", so a new item's stream is
    created exactly once). `event_ids(i, event)` gives deterministic ids (reactions, deductions)
    so a repeated append is recognised by the store. Inside a caller's transaction (`conn`) each
    attempt runs in a savepoint, so a conflict rolls back only that attempt and the retry (READ
    COMMITTED: each statement sees the latest commits) can still succeed.
    """
    for attempt in range(retries):
        states: dict[str, Any] = {}
        versions: dict[str, int] = {}
        for spec in streams:
            states[spec.stream_id], versions[spec.stream_id] = await load(
                store, registry, spec.stream_id, spec.evolve, spec.initial, conn=conn)
        events = list(decide(states))
        if not events:
            return MultiOutcome(states, [], [], versions)
        correlation = correlation_id or uuid.uuid4()
        batch = []
        for i, event in enumerate(events):
            stream_id = route(event)
            if stream_id not in states:
                raise ValueError(f"{event.type_name} goes to {stream_id}, which was not loaded")
            batch.append(new_event(stream_id, event, actor=actor, occurred_at=now,
                                   correlation_id=correlation, causation_id=causation_id,
                                   event_id=event_ids(i, event) if event_ids else None))
        expected = {stream_id: versions[stream_id] for stream_id in {n.stream_id for n in batch}}
        try:
            if conn is not None:
                async with conn.transaction():
                    appended = await store.append(batch, expected, conn=conn)
            else:
                appended = await store.append(batch, expected)
        except ConcurrencyError:
            if attempt == retries - 1:
                raise
            await asyncio.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # de-synchronise racers
            continue
        spec_by_id = {spec.stream_id: spec for spec in streams}
        for new, event in zip(batch, events):
            states[new.stream_id] = spec_by_id[new.stream_id].evolve(states[new.stream_id], event)
            versions[new.stream_id] += 1
        return MultiOutcome(states, events, appended, versions)
    raise AssertionError("unreachable")
