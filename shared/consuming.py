"""Exactly-once effects for at-least-once deliveries, whatever the transport.

A consumer handles a delivery in ONE database transaction: insert `es.inbox(consumer, event_id)`,
run the handler (its appends and read-model rows go through the same connection), commit. A
duplicate finds the inbox row and does nothing. Errors are classified here, in one place:

- the delivery cannot be parsed, its type is unknown, or its payload fails validation: DEAD, the
  transport dead-letters it with the reason (nothing is silently dropped);
- the handler raises a DomainError: REJECTED, the inbox row commits (redelivery cannot help) and a
  `message_rejected` line is logged (a reaction's command logs its own `command_rejected` too);
- the database or broker is unavailable, or the handler fails unexpectedly: TransientError
  propagates, the transport retries with a bound and backoff, then dead-letters.
"""
from __future__ import annotations

import enum
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Generic, Mapping, TypeVar

import asyncpg
from pydantic import ValidationError

from shared.envelope import Delivery
from shared.errors import ConcurrencyError, DomainError, TransientError
from shared.logging import get_logger
from shared.messages import SYSTEM_ACTOR, Actor, Command, Event, EventContract, EventRegistry
from shared.pipeline import reaction_event_ids
from shared.store import PostgresEventStore

if TYPE_CHECKING:
    from shared.pipeline import CommandPipeline, CommandResult

D = TypeVar("D")

log = get_logger()
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Outcome(enum.StrEnum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    DEAD = "dead_lettered"


@dataclass(frozen=True)
class ConsumerRuntime(Generic[D]):
    """What every delivery of one service process shares: its store, deps and command pipeline."""

    service: str
    store: PostgresEventStore
    deps: D
    commands: "CommandPipeline[D] | None" = None


@dataclass
class HandlerContext(Generic[D]):
    """What a reaction or projection gets: the transaction's connection, the delivery, the time
    it is handled, and the service's deps; `run` sends a command through the service's pipeline
    inside this same transaction (a reaction's events commit with its inbox row)."""

    conn: asyncpg.Connection
    delivery: Delivery
    now: datetime
    runtime: ConsumerRuntime[D]

    @property
    def deps(self) -> D:
        return self.runtime.deps

    @property
    def store(self) -> PostgresEventStore:
        return self.runtime.store

    @property
    def correlation_id(self) -> uuid.UUID:
        return self.delivery.correlation_id or self.delivery.event_id

    @property
    def causation_id(self) -> uuid.UUID:
        return self.delivery.event_id

    async def run(self, command: Command, *, actor: Actor = SYSTEM_ACTOR) -> "CommandResult":
        """A reaction is a command: through the pipeline, as the system, caused by this event,
        with event ids derived from it (a redelivery appends nothing new)."""
        if self.runtime.commands is None:
            raise RuntimeError(f"{self.runtime.service} has no command pipeline")
        return await self.runtime.commands.run(
            command, actor=actor, now=self.now, correlation_id=self.correlation_id,
            causation_id=self.causation_id, conn=self.conn,
            event_ids=reaction_event_ids(self.runtime.service, self.causation_id))


Reaction = Callable[[HandlerContext[Any], Any], Awaitable[None]]


@dataclass
class ConsumerSpec:
    """A named consumer of one producer's events: which types, and what to do with each.

    `source` is the producer's published contract (its `events.py`): the kernel learns the
    producer's name and stream categories from it, never from a list of services of its own.
    """

    name: str                      # queue name without prefix, e.g. "rectification.on-registry"
    source: EventContract
    reactions: Mapping[type[Event], Reaction]
    registry: EventRegistry = field(default_factory=EventRegistry)

    def __post_init__(self) -> None:
        unknown = [cls.type_name for cls in self.reactions if cls not in self.source.events]
        if unknown:
            raise ValueError(f"{self.name}: {', '.join(unknown)} not in {self.source.service}'s contract")
        self.registry.register(*self.reactions)
        self._by_type = {cls.type_name: fn for cls, fn in self.reactions.items()}

    @property
    def producer(self) -> str:
        return self.source.service

    @property
    def categories(self) -> tuple[str, ...]:
        return self.source.categories

    @property
    def event_types(self) -> list[str]:
        return sorted(self._by_type)

    def reaction_for(self, event_type: str) -> Reaction | None:
        return self._by_type.get(event_type)


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reason: str = ""


_TRANSIENT_DB = (OSError, asyncpg.exceptions.ConnectionDoesNotExistError,
                 asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.InterfaceError,
                 asyncpg.exceptions.SerializationError, asyncpg.exceptions.DeadlockDetectedError,
                 asyncpg.exceptions.QueryCanceledError)


def decode(spec: ConsumerSpec, delivery: Delivery) -> tuple[Reaction, Event] | Result:
    reaction = spec.reaction_for(delivery.event_type)
    if reaction is None:
        return Result(Outcome.DEAD, f"unknown event type {delivery.event_type!r} for {spec.name}")
    try:
        # A consumer is a tolerant reader: fields added by a newer producer are ignored.
        event = spec.registry.load(delivery.event_type, delivery.schema_version, delivery.payload,
                                   tolerant=True)
    except ValidationError as exc:
        # Field paths and messages only: pydantic's own text quotes the input values, and a
        # payload may carry personal data that must not reach the logs or the DLQ headers.
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(payload)'}: {e['msg']}"
                             for e in exc.errors(include_input=False, include_url=False))
        return Result(Outcome.DEAD, f"invalid {delivery.event_type} payload: {_short(problems)}")
    except (KeyError, ValueError) as exc:
        return Result(Outcome.DEAD, f"invalid {delivery.event_type} payload: {_short(exc)}")
    return reaction, event


async def handle_in_transaction(conn: asyncpg.Connection, spec: ConsumerSpec, delivery: Delivery, *,
                                runtime: ConsumerRuntime[Any], now: datetime) -> Result:
    """Run inside the caller's transaction; the caller commits (with its position, if any)."""
    decoded = decode(spec, delivery)
    if isinstance(decoded, Result):
        return decoded
    reaction, event = decoded
    first = await conn.fetchval(
        "INSERT INTO es.inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
        spec.name, delivery.event_id)
    if not first:
        return Result(Outcome.DUPLICATE)
    ctx = HandlerContext(conn=conn, delivery=delivery, now=now, runtime=runtime)
    try:
        # A savepoint, so a rejection keeps the inbox row but none of the reaction's writes.
        async with conn.transaction():
            await reaction(ctx, event)
    except DomainError as exc:
        return Result(Outcome.REJECTED, f"{exc.code}: {exc}")
    return Result(Outcome.HANDLED)


async def handle(pool: asyncpg.Pool, spec: ConsumerSpec, delivery: Delivery, *,
                 runtime: ConsumerRuntime[Any], clock: Clock = utc_now,
                 on_transaction: Callable[[float], None] | None = None) -> Result:
    """Handle one delivery exactly once in effect. Raises TransientError when a retry may help.

    `on_transaction` learns how long the transaction was open (a long one holds back the
    cluster-wide sequencing horizon, so every service's events wait for it)."""
    try:
        async with pool.acquire() as conn:
            began = time.perf_counter()
            try:
                async with conn.transaction():
                    result = await handle_in_transaction(conn, spec, delivery, runtime=runtime,
                                                         now=clock())
            finally:
                if on_transaction is not None:
                    on_transaction(time.perf_counter() - began)
    except _TRANSIENT_DB as exc:
        raise TransientError(f"database unavailable: {_short(exc)}") from exc
    except ConcurrencyError as exc:  # the pipeline's own quick retries lost the race every time
        raise TransientError(f"version conflict: {_short(exc)}") from exc
    except TransientError:
        raise
    except Exception as exc:  # a bug or an unforeseen failure: retried, then dead-lettered
        raise TransientError(f"handler failed: {_short(exc)}") from exc
    log_outcome(runtime.service, spec.name, delivery, result)
    return result


def log_outcome(service: str, consumer: str, delivery: Delivery, result: Result) -> None:
    fields = dict(service=service, consumer=consumer, event_id=str(delivery.event_id),
                  event_type=delivery.event_type, correlation_id=str(delivery.correlation_id or ""),
                  outcome=result.outcome.value)
    if result.outcome is Outcome.REJECTED:
        log.warning("message_rejected", reason=result.reason, **fields)
    elif result.outcome is Outcome.DEAD:
        log.error("message_dead_lettered", reason=result.reason, **fields)
    else:
        log.info("message_handled", **fields)


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return text[:500]
