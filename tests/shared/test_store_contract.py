"""One contract suite for every EventStore implementation: in memory and PostgreSQL alike."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from tests.faults import eventually

from shared.errors import ConcurrencyError, IdempotencyConflictError
from shared.messages import Actor, NewEvent, Role
from shared.store import (ANY, EXISTS, NO_STREAM, InMemoryEventStore, PostgresEventStore,
                          create_pool)
from tests.conftest import fresh_database

ACTOR = Actor(id="u1", name="测试员(示例)", role=Role.CITY_ADMIN)


def make_event(stream_id: str, n: int = 0, event_id: uuid.UUID | None = None) -> NewEvent:
    event_id = event_id or uuid.uuid4()
    return NewEvent(
        stream_id=stream_id, event_id=event_id, event_type="example.Happened", schema_version=1,
        payload={"n": n, "text": "鄂城区"},
        metadata={"event_id": str(event_id), "event_type": "example.Happened", "schema_version": 1,
                  "correlation_id": str(event_id), "causation_id": None,
                  "actor": ACTOR.model_dump(mode="json"),
                  "occurred_at": datetime(2024, 3, 4, tzinfo=timezone.utc).isoformat()})


@pytest.fixture(params=["memory", "postgres"])
async def store(request, template_db):
    if request.param == "memory":
        yield InMemoryEventStore()
        return
    async with fresh_database(template_db) as dsn:
        pool = await create_pool(dsn)
        try:
            yield PostgresEventStore(pool)
        finally:
            await pool.close()


def sid() -> str:
    return f"example-{uuid.uuid4()}"


async def test_appends_and_reads_a_stream_in_order(store):
    s = sid()
    appended = await store.append([make_event(s, 1), make_event(s, 2)], {s: NO_STREAM})
    assert [a.stream_version for a in appended] == [1, 2]
    events = await store.read_stream(s)
    assert [e.payload["n"] for e in events] == [1, 2]
    assert events[0].payload["text"] == "鄂城区"
    assert await store.stream_version(s) == 2


async def test_expected_version_mismatch_raises_and_writes_nothing(store):
    s = sid()
    await store.append([make_event(s)], {s: NO_STREAM})
    for wrong in (NO_STREAM, 2, 5):
        with pytest.raises(ConcurrencyError):
            await store.append([make_event(s)], {s: wrong})
    assert await store.stream_version(s) == 1
    fresh = sid()
    with pytest.raises(ConcurrencyError):
        await store.append([make_event(fresh)], {fresh: EXISTS})
    await store.append([make_event(s)], {s: 1})
    await store.append([make_event(s)], {s: EXISTS})
    await store.append([make_event(s)], {s: ANY})
    assert await store.stream_version(s) == 4


async def test_multi_stream_append_is_atomic(store):
    a, b = sid(), sid()
    await store.append([make_event(b)], {b: NO_STREAM})
    with pytest.raises(ConcurrencyError):
        await store.append([make_event(a), make_event(b)], {a: NO_STREAM, b: NO_STREAM})
    assert await store.read_stream(a) == []
    assert await store.stream_version(b) == 1
    done = await store.append([make_event(a), make_event(b), make_event(a)], {a: NO_STREAM, b: 1})
    assert [(x.stream_id, x.stream_version) for x in done] == [(a, 1), (b, 2), (a, 2)]


async def test_retrying_the_same_ids_returns_the_original_positions(store):
    s = sid()
    first = [make_event(s, 1), make_event(s, 2)]
    original = await store.append(first, {s: NO_STREAM})
    again = await store.append(first, {s: NO_STREAM})
    assert again == original
    assert await store.stream_version(s) == 2
    any_again = await store.append(first)
    assert any_again == original


async def test_partial_overlap_of_ids_raises(store):
    s = sid()
    e1, e2 = make_event(s, 1), make_event(s, 2)
    await store.append([e1], {s: NO_STREAM})
    with pytest.raises(IdempotencyConflictError):
        await store.append([e1, e2], {s: NO_STREAM})
    assert await store.stream_version(s) == 1


async def test_same_ids_at_other_positions_is_a_conflict(store):
    s = sid()
    e1 = make_event(s, 1)
    await store.append([make_event(s, 0)], {s: NO_STREAM})
    await store.append([e1], {s: 1})
    with pytest.raises(IdempotencyConflictError):
        await store.append([e1], {s: NO_STREAM})
    other = sid()
    with pytest.raises(IdempotencyConflictError):
        await store.append([make_event(other, event_id=e1.event_id)])
    # the exact-version path (no id probe when the version matches) refuses it all the same
    with pytest.raises(IdempotencyConflictError):
        await store.append([make_event(other, event_id=e1.event_id)], {other: NO_STREAM})
    assert await store.stream_version(other) == 0


async def test_floats_are_refused_before_anything_is_written(store):
    s = sid()
    bad = make_event(s)
    bad.payload["amount"] = 1.5
    with pytest.raises(ValueError):
        await store.append([bad])
    assert await store.stream_version(s) == 0


async def test_committed_order_reads_every_event_once_in_pages(store):
    streams = [sid() for _ in range(3)]
    for i in range(7):
        await store.append([make_event(streams[i % 3], i)])
    seen, cursor = [], (0, 0)

    async def read_what_is_committed() -> bool:
        # The horizon is cluster-wide: a transaction of other work on the same server holds it
        # back for a while (never losing an event), so read until all seven have passed it.
        nonlocal cursor
        while page := await store.read_committed(cursor, limit=3):
            seen.extend(e.payload["n"] for e in page)
            cursor = (page[-1].tx_id, page[-1].tx_seq)
        return len(seen) >= 7

    await eventually(read_what_is_committed, timeout=60, what="seven committed events")
    assert sorted(seen) == list(range(7)) and len(seen) == 7
