"""The command pipeline: the one way every service turns a command into events.

A service declares its commands once, as a table from command type to a `Handler` (handlers.py):
the streams the decision reads and may write, an optional `prepare` for what it needs besides
them (a read-model lookup, personal-data keys), and the pure `decide`. The kernel runs every
command of every service the same way:

1. **authorize**: readers (leader, auditor) send no commands; the handler's `roles`, when given,
   narrow who may send this one. Unit checks need the state, so the pure `decide` makes them.
2. **prepare**, **load**, **decide**, **append**, in ONE transaction on one connection (a
   savepoint inside a caller's transaction, e.g. a consumer's, so a reaction's writes commit with
   its inbox row): every stream is folded, `decide` returns events or raises a named error, and
   all events are appended atomically with each stream's version as read.
3. **retry** a version conflict (someone wrote a stream between our read and our append): the
   attempt is rolled back and decided again from fresh state, a bounded number of times.
4. **envelope**: actor, correlation and causation ids, the event ids (deterministic for
   reactions, so a redelivered event appends nothing new).
5. **log and count**: one `command_handled` or `command_rejected` line with the same keys for
   every service, and `lookback_commands_total{service,command,outcome}`.

No service writes a retry loop or an `isinstance` dispatch of its own.
"""
from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import asyncpg
from prometheus_client import Counter, Histogram

from shared.errors import ConcurrencyError, DomainError, ForbiddenError, LookbackError, TransientError
from shared.logging import get_logger
from shared.messages import Actor, Command, Event, EventRegistry, Role, deterministic_id, new_event
from shared.store import NO_STREAM, Appended, Connection, PostgresEventStore

log = get_logger()

S = TypeVar("S")
C = TypeVar("C", bound=Command)
I = TypeVar("I")  # noqa: E741 - the prepared inputs, as in "C, I, D"
D = TypeVar("D")

# Each round of a race on one stream has exactly one winner, so n writers racing need up to n
# rounds. The hottest streams (a unit's 序号 counter) see a handful of writers at once (people and
# two subscribers); five rounds cover that, and a longer race is answered 409 rather than waited
# out. The jittered pause de-synchronises racers that would otherwise collide again.
CONCURRENCY_RETRIES = 5


@dataclass(frozen=True)
class StreamSpec(Generic[S]):
    """A stream a decision reads and may write: its id, how to fold it, its empty state.

    `at_version`, when given, makes the stream's state a function of its head version alone:
    the pipeline reads that one number instead of folding every event, so deciding on a stream
    that only grows (a counter) costs the same at its ten-thousandth event as at its first. Such
    a stream is hot by nature (every decision writes it), so the head is read with a row lock held
    to the end of the transaction: concurrent writers queue for a moment instead of racing,
    losing and retrying. The append still expects the version read (docs/adr/0011).
    """

    stream_id: str
    evolve: Callable[[S, Event], S]
    initial: S
    at_version: Callable[[S, int], S] | None = None


@dataclass(frozen=True)
class Decision(Generic[C, I, D]):
    """What a pure `decide` gets: the command, the folded states, the prepared inputs, who, when,
    and the service's deps (for its configuration: the campaign's rules; never for I/O)."""

    command: C
    states: Mapping[str, Any]
    inputs: I
    actor: Actor
    now: datetime
    deps: D

    def state(self, spec: StreamSpec[S] | str) -> Any:
        return self.states[spec if isinstance(spec, str) else spec.stream_id]

    @property
    def only_state(self) -> Any:
        """The state of the one stream a single-stream command reads."""
        if len(self.states) != 1:
            raise ValueError(f"the decision read {len(self.states)} streams, not one")
        return next(iter(self.states.values()))


@dataclass
class Preparation(Generic[C, D]):
    """What `prepare` gets: the command, who and when, the service's deps, and the transaction's
    connection (to read read models or fetch keys inside the command's transaction). `include`
    adds a stream found only now (a 反弹 learns the original item's unit, then writes that unit's
    counter) to the decision: it is folded here and appended at the version read."""

    command: C
    actor: Actor
    now: datetime
    deps: D
    conn: Connection
    states: dict[str, Any]
    _pipeline: CommandPipeline[Any]
    _specs: dict[str, StreamSpec[Any]] = field(default_factory=dict)
    _versions: dict[str, int] = field(default_factory=dict)

    async def include(self, spec: StreamSpec[S]) -> S:
        if spec.stream_id not in self.states:
            state, version = await self._pipeline.load(spec, self.conn)
            self.states[spec.stream_id] = state
            self._specs[spec.stream_id] = spec
            self._versions[spec.stream_id] = version
        result: S = self.states[spec.stream_id]
        return result


def _no_inputs(_: Preparation[Any, Any]) -> Awaitable[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


@dataclass(frozen=True)
class Handler(Generic[C, I, D]):
    """One row of a service's command table.

    - `streams(command, deps)`: the streams the decision reads and may write;
    - `decide(decision)`: pure; returns the events, or raises a DomainError / ForbiddenError;
    - `prepare(preparation)`: optional, async, inside the transaction, runs after the streams are
      loaded (it sees their states); returns the `inputs` of the decision;
    - `route(event)`: the stream an event goes to (default: the one stream the command names);
    - `roles`: who may send the command at all (default: every role that may command);
    - `event_id(event)`: a deterministic id for events whose identity is their content (a
      deduction per rule and occurrence), so a repeated decision appends nothing new.
    """

    streams: Callable[[C, D], Sequence[StreamSpec[Any]]]
    decide: Callable[[Decision[C, I, D]], Sequence[Event]]
    prepare: Callable[[Preparation[C, D]], Awaitable[I]] | None = None
    route: Callable[[Event], str] | None = None
    roles: frozenset[Role] | None = None
    event_id: Callable[[Event], uuid.UUID] | None = None


CommandTable = Mapping[type[Command], Handler[Any, Any, Any]]


@dataclass(frozen=True)
class CommandResult:
    """What a command did: the states after it, its events and where they went."""

    command: Command
    states: Mapping[str, Any]
    versions: Mapping[str, int]
    events: tuple[Event, ...]
    appended: tuple[Appended, ...]
    inputs: Any
    correlation_id: uuid.UUID

    @property
    def changed(self) -> bool:
        return bool(self.events)

    def state(self, spec: StreamSpec[S] | str) -> Any:
        return self.states[spec if isinstance(spec, str) else spec.stream_id]

    def version(self, spec: StreamSpec[Any] | str) -> int:
        return self.versions[spec if isinstance(spec, str) else spec.stream_id]

    def events_of(self, kind: type[Event]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


class CommandMetrics:
    """The pipeline's counters, registered in the service's own metrics registry."""

    def __init__(self, registry: Any) -> None:
        self.commands = Counter("lookback_commands_total", "Commands handled, by outcome",
                                ["service", "command", "outcome"], registry=registry)
        self.duration = Histogram("lookback_command_duration_seconds",
                                  "Time to handle a command, retries included",
                                  ["service", "command"], registry=registry)


def reaction_event_id(service: str, causation_id: uuid.UUID, index: int) -> uuid.UUID:
    """The id of a reaction's `index`th event, derived from the event it reacts to: a redelivery
    decides the same events under the same ids, which the store recognises as a retry."""
    return deterministic_id(service, "reaction", str(causation_id), str(index))


def reaction_event_ids(service: str, causation_id: uuid.UUID) -> Callable[[int, Event], uuid.UUID]:
    """`reaction_event_id` as the pipeline asks for event ids (by index and event)."""
    return lambda i, _event: reaction_event_id(service, causation_id, i)


class CommandPipeline(Generic[D]):
    """Runs a service's commands; one per service process, built by the service shell."""

    def __init__(self, *, service: str, table: CommandTable, events: EventRegistry,
                 store: PostgresEventStore, deps: D, metrics: CommandMetrics | None = None,
                 clock: Callable[[], datetime] | None = None,
                 retries: int = CONCURRENCY_RETRIES) -> None:
        self.service, self.table, self.events, self.store = service, table, events, store
        self.deps, self.metrics, self.retries = deps, metrics, retries
        self.clock = clock

    def handler(self, command: Command) -> Handler[Any, Any, D]:
        try:
            return self.table[type(command)]
        except KeyError:
            raise TypeError(f"{self.service} has no handler for {type(command).__name__}") from None

    async def load(self, spec: StreamSpec[S], conn: Any = None) -> tuple[S, int]:
        """Fold one stream: its state and version (0 when it does not exist yet); for a spec
        with `at_version`, read the head version only."""
        if spec.at_version is not None:
            version = await self.store.stream_version(spec.stream_id, conn=conn, lock=True)
            return spec.at_version(spec.initial, version), version
        state, version = spec.initial, 0
        for recorded in await self.store.read_stream(spec.stream_id, conn=conn):
            state = spec.evolve(state, self.events.load_recorded(recorded))
            version = recorded.stream_version
        return state, version

    async def run(self, command: Command, *, actor: Actor, now: datetime | None = None,
                  correlation_id: uuid.UUID | None = None, causation_id: uuid.UUID | None = None,
                  conn: Connection | None = None,
                  event_ids: Callable[[int, Event], uuid.UUID] | None = None) -> CommandResult:
        """Authorize, prepare, load, decide, append (retrying conflicts); log and count.

        With `conn`, everything happens in a savepoint of the caller's transaction (a consumer's
        reaction commits with its inbox row); without, in a transaction of our own.
        """
        name = type(command).__name__
        handler = self.handler(command)
        if now is None:
            if self.clock is None:
                raise ValueError("no clock: pass `now`")
            now = self.clock()
        correlation = correlation_id or uuid.uuid4()
        started = time.perf_counter()
        fields: dict[str, Any] = dict(service=self.service, command=name, actor=actor.id,
                                      actor_role=actor.role.value,
                                      correlation_id=str(correlation),
                                      causation_id=str(causation_id) if causation_id else None)
        try:
            authorize(actor, handler, name)
            result, attempts = await self._attempts(
                command, handler, actor=actor, now=now, correlation=correlation,
                causation_id=causation_id, conn=conn, event_ids=event_ids)
        except (DomainError, ForbiddenError) as exc:
            outcome = "forbidden" if isinstance(exc, ForbiddenError) else "rejected"
            self._count(name, outcome, started)
            log.info("command_rejected", outcome=outcome, error=exc.code, reason=str(exc)[:500],
                     **fields)
            raise
        except ConcurrencyError as exc:
            self._count(name, "conflict", started)
            log.warning("command_rejected", outcome="conflict", error=exc.code,
                        reason=str(exc)[:500], **fields)
            raise
        except (LookbackError, asyncpg.PostgresError, OSError) as exc:
            self._count(name, "failed", started)
            log.warning("command_failed", outcome="failed",
                        error=getattr(exc, "code", type(exc).__name__), reason=str(exc)[:300],
                        **fields)
            raise
        outcome = "accepted" if result.changed else "unchanged"
        self._count(name, outcome, started)
        log.info("command_handled", outcome=outcome, attempts=attempts,
                 streams=sorted({a.stream_id for a in result.appended}),
                 events=[event.type_name for event in result.events], **fields)
        return result

    def _count(self, name: str, outcome: str, started: float) -> None:
        if self.metrics is not None:
            self.metrics.commands.labels(self.service, name, outcome).inc()
            self.metrics.duration.labels(self.service, name).observe(time.perf_counter() - started)

    @asynccontextmanager
    async def _connection(self, conn: Connection | None) -> AsyncIterator[Connection]:
        if conn is not None:
            yield conn
            return
        try:
            async with self.store.pool.acquire() as acquired:
                yield acquired
        except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError,
                asyncpg.exceptions.CannotConnectNowError) as exc:
            raise TransientError(f"database unavailable: {exc}") from exc

    async def _attempts(self, command: Command, handler: Handler[Any, Any, D], *, actor: Actor,
                        now: datetime, correlation: uuid.UUID, causation_id: uuid.UUID | None,
                        conn: Connection | None,
                        event_ids: Callable[[int, Event], uuid.UUID] | None
                        ) -> tuple[CommandResult, int]:
        async with self._connection(conn) as connection:
            for attempt in range(1, self.retries + 1):
                try:
                    # A transaction of our own, or a savepoint in the caller's: a conflict or a
                    # rejection rolls back only this attempt (keys fetched, rows read).
                    async with connection.transaction():
                        result = await self._attempt(
                            command, handler, connection, actor=actor, now=now,
                            correlation=correlation, causation_id=causation_id,
                            event_ids=event_ids)
                    return result, attempt
                except ConcurrencyError:
                    if attempt == self.retries:
                        raise
                    await asyncio.sleep(random.uniform(0, 0.01 * attempt))
        raise AssertionError("unreachable")

    async def _attempt(self, command: Command, handler: Handler[Any, Any, D],
                       conn: Connection, *, actor: Actor, now: datetime,
                       correlation: uuid.UUID, causation_id: uuid.UUID | None,
                       event_ids: Callable[[int, Event], uuid.UUID] | None) -> CommandResult:
        specs = {spec.stream_id: spec for spec in handler.streams(command, self.deps)}
        states: dict[str, Any] = {}
        versions: dict[str, int] = {}
        for stream_id, spec in specs.items():
            states[stream_id], versions[stream_id] = await self.load(spec, conn)
        preparation: Preparation[Any, D] = Preparation(
            command=command, actor=actor, now=now, deps=self.deps, conn=conn, states=states,
            _pipeline=self)
        inputs = await (handler.prepare or _no_inputs)(preparation)
        specs.update(preparation._specs)
        versions.update(preparation._versions)
        events = list(handler.decide(Decision(command=command, states=dict(states),
                                              inputs=inputs, actor=actor, now=now,
                                              deps=self.deps)))
        if not events:
            return CommandResult(command, states, versions, (), (), inputs, correlation)
        batch = []
        for i, event in enumerate(events):
            stream_id = self._route(handler, event, specs)
            event_id = (handler.event_id(event) if handler.event_id is not None
                        else event_ids(i, event) if event_ids is not None else None)
            batch.append(new_event(stream_id, event, actor=actor, occurred_at=now,
                                   correlation_id=correlation, causation_id=causation_id,
                                   event_id=event_id))
        expected = {new.stream_id: versions[new.stream_id] or NO_STREAM for new in batch}
        appended = await self.store.append(batch, expected, conn=conn)
        for new, event in zip(batch, events, strict=True):
            states[new.stream_id] = specs[new.stream_id].evolve(states[new.stream_id], event)
            versions[new.stream_id] += 1
        return CommandResult(command, states, versions, tuple(events), tuple(appended), inputs,
                             correlation)

    @staticmethod
    def _route(handler: Handler[Any, Any, Any], event: Event,
               specs: Mapping[str, StreamSpec[Any]]) -> str:
        if handler.route is not None:
            stream_id = handler.route(event)
        elif len(specs) == 1:
            stream_id = next(iter(specs))
        else:
            raise ValueError(f"{event.type_name}: the handler reads several streams and names no "
                             "route for its events")
        if stream_id not in specs:
            raise ValueError(f"{event.type_name} goes to {stream_id}, which the decision did not load")
        return stream_id


def authorize(actor: Actor, handler: Handler[Any, Any, Any], command: str) -> None:
    """Readers send no commands; the handler's roles, when given, narrow who sends this one."""
    if not actor.role.may_command:
        raise ForbiddenError(f"role {actor.role.value} sends no commands")
    if handler.roles is not None and actor.role not in handler.roles:
        allowed = ", ".join(sorted(role.value for role in handler.roles))
        raise ForbiddenError(f"role {actor.role.value} may not {command} (allowed: {allowed})")
