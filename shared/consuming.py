"""Exactly-once effects for at-least-once deliveries, whatever the transport.

A consumer handles a delivery in ONE database transaction: insert `es.inbox(consumer, event_id)`,
run the handler (its appends and read-model rows go through the same connection), commit. A
duplicate finds the inbox row and does nothing. Errors are classified here, in one place:

- the delivery cannot be parsed, its type is unknown, or its payload fails validation: DEAD, the
  transport dead-letters it with the reason (nothing is silently dropped);
- the handler raises a DomainError: REJECTED, the inbox row commits (redelivery cannot help) and a
  `command_rejected` line is logged;
- the database or broker is unavailable, or the handler fails unexpectedly: TransientError
  propagates, the transport retries with a bound and backoff, then dead-letters.
"""
from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Mapping

import asyncpg
from pydantic import ValidationError

from shared.envelope import Delivery
from shared.errors import DomainError, TransientError
from shared.logging import get_logger
from shared.messages import SYSTEM_ACTOR, Actor, Event, EventRegistry, NewEvent
from shared.store import Appended, PostgresEventStore

log = get_logger()
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Outcome(enum.StrEnum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    DEAD = "dead_lettered"


@dataclass
class HandlerContext:
    """What a reaction gets: the transaction's connection and the means to append in it."""

    conn: asyncpg.Connection
    store: PostgresEventStore
    delivery: Delivery
    now: datetime
    deps: Any = None
    actor: Actor = SYSTEM_ACTOR

    async def append(self, events: list[NewEvent], expected: Mapping[str, int] | None = None
                     ) -> list[Appended]:
        return await self.store.append(events, expected, conn=self.conn)

    @property
    def correlation_id(self) -> uuid.UUID:
        return self.delivery.correlation_id or self.delivery.event_id

    @property
    def causation_id(self) -> uuid.UUID:
        return self.delivery.event_id


Reaction = Callable[[HandlerContext, Event], Awaitable[None]]


@dataclass
class ConsumerSpec:
    """A named consumer of one producer's events: which types, and what to do with each."""

    name: str                      # queue name without prefix, e.g. "rectification.on-registry"
    producer: str                  # the producing service, e.g. "registry"
    reactions: dict[type[Event], Reaction]
    registry: EventRegistry = field(default_factory=EventRegistry)

    def __post_init__(self) -> None:
        self.registry.register(*self.reactions)
        self._by_type = {cls.type_name: fn for cls, fn in self.reactions.items()}

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
        event = spec.registry.load(delivery.event_type, delivery.schema_version, delivery.payload)
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
                                store: PostgresEventStore, now: datetime, deps: Any) -> Result:
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
    ctx = HandlerContext(conn=conn, store=store, delivery=delivery, now=now, deps=deps)
    try:
        # A savepoint, so a rejection keeps the inbox row but none of the reaction's writes.
        async with conn.transaction():
            await reaction(ctx, event)
    except DomainError as exc:
        return Result(Outcome.REJECTED, f"{exc.code}: {exc}")
    return Result(Outcome.HANDLED)


async def handle(pool: asyncpg.Pool, spec: ConsumerSpec, delivery: Delivery, *,
                 store: PostgresEventStore, clock: Clock = utc_now, deps: Any = None,
                 service: str = "") -> Result:
    """Handle one delivery exactly once in effect. Raises TransientError when a retry may help."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            result = await handle_in_transaction(conn, spec, delivery, store=store, now=clock(),
                                                 deps=deps)
    except _TRANSIENT_DB as exc:
        raise TransientError(f"database unavailable: {_short(exc)}") from exc
    except TransientError:
        raise
    except Exception as exc:  # a bug or an unforeseen failure: retried, then dead-lettered
        raise TransientError(f"handler failed: {_short(exc)}") from exc
    log_outcome(service, spec.name, delivery, result)
    return result


def log_outcome(service: str, consumer: str, delivery: Delivery, result: Result) -> None:
    fields = dict(service=service, consumer=consumer, event_id=str(delivery.event_id),
                  event_type=delivery.event_type, correlation_id=str(delivery.correlation_id or ""),
                  outcome=result.outcome.value)
    if result.outcome is Outcome.REJECTED:
        log.warning("command_rejected", reason=result.reason, **fields)
    elif result.outcome is Outcome.DEAD:
        log.error("message_dead_lettered", reason=result.reason, **fields)
    else:
        log.info("message_handled", **fields)


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return text[:500]
