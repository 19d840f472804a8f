"""Least privilege in the database, probed as an attacker holding one service's connection would
(issue 10, findings 1 and 3): the session cannot become anyone else, cannot switch off the
append-only triggers, cannot read the personal-data keys, cannot write another service's streams,
and cannot touch another service's bookkeeping. Each attempt is refused and changes nothing."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import asyncpg
import pytest

from services.registry.events import LedgerEntryAdded, OperatingStatus
from shared.errors import StreamPermissionError
from shared.messages import SYSTEM_ACTOR, new_event
from shared.store import PostgresEventStore, create_pool

pytestmark = pytest.mark.integration

SERVICES = ("registry", "rectification", "inspection", "notifier")


async def session(database: str, service: str) -> asyncpg.Pool:
    """A pool opened exactly as the service's process opens it."""
    return await create_pool(database, role=f"lookback_{service}", max_size=1)


def forged_ledger_entry() -> object:
    return new_event("project-forged", LedgerEntryAdded(
        entry_id="e-forged", project_id="forged", project_type="canteen",
        project_name="不存在的食堂(伪造)", project_year=2022, unit="echeng", township="凤凰街道",
        village=None, provincial_key=False, reason="not_operating", reason_details=(),
        status=OperatingStatus.NOT_OPERATING, listed_on=datetime(2024, 3, 8).date()),
        actor=SYSTEM_ACTOR, occurred_at=datetime(2024, 3, 8, tzinfo=timezone.utc))


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_session_cannot_become_another_role_or_disable_the_triggers(
        database, service):
    pool = await session(database, service)
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT current_user") == f"lookback_{service}"
            assert not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            await conn.execute("SET ROLE NONE")  # back to the session user: itself, nobody else
            assert await conn.fetchval("SELECT current_user") == f"lookback_{service}"
            for other in ("postgres", "lookback_migrator", "lookback_sequencer", "lookback_registry"):
                if other == f"lookback_{service}":
                    continue
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(f'SET ROLE "{other}"')
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("SET session_replication_role = replica")
            for statement in ("UPDATE es.events SET payload = '{}'", "DELETE FROM es.ledger",
                              "TRUNCATE es.checkpoints"):
                with pytest.raises(asyncpg.PostgresError):
                    await conn.execute(statement)
    finally:
        await pool.close()


@pytest.mark.parametrize("service", [s for s in SERVICES if s != "registry"])
async def test_only_the_registry_reads_the_personal_data_keys(database, service):
    pool = await session(database, service)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pool.fetch("SELECT * FROM pii.subject_keys")
    finally:
        await pool.close()


@pytest.mark.parametrize("service", [s for s in SERVICES if s != "registry"])
async def test_a_forged_registry_event_from_another_service_is_refused_and_nothing_appended(
        database, service):
    pool = await session(database, service)
    try:
        with pytest.raises(StreamPermissionError):
            await PostgresEventStore(pool).append([forged_ledger_entry()])
        assert await pool.fetchval("SELECT count(*) FROM es.events") == 0
    finally:
        await pool.close()


async def test_a_service_cannot_touch_another_services_bookkeeping(database):
    registry, inspection = await session(database, "registry"), await session(database, "inspection")
    try:
        await registry.execute("INSERT INTO es.positions (name, global_position) VALUES "
                               "('relay:registry', 7), ('local:registry.projection-projects', 7)")
        # Moving the registry's relay or projection position: the rows are invisible, so no row
        # changes; creating them afresh is refused outright.
        moved = await inspection.execute("UPDATE es.positions SET global_position = 1000")
        assert moved == "UPDATE 0"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await inspection.execute("INSERT INTO es.positions (name, global_position) "
                                     "VALUES ('relay:rectification', 1000)")
        # Pre-marking another consumer's events as handled, or dead-lettering for it: refused.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await inspection.execute("INSERT INTO es.inbox (consumer, event_id) "
                                     "VALUES ('rectification.on-registry', $1)", uuid.uuid4())
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await inspection.execute(
                "INSERT INTO es.dead_letters (consumer, event_id, event_type, reason) "
                "VALUES ('rectification.on-inspection', $1, 'x', 'forged')", uuid.uuid4())
        # Its own bookkeeping works as before.
        await inspection.execute("INSERT INTO es.inbox (consumer, event_id) "
                                 "VALUES ('inspection.on-registry', $1)", uuid.uuid4())
        positions = await registry.fetch("SELECT name, global_position FROM es.positions ORDER BY name")
        assert [(r["name"], r["global_position"]) for r in positions] == [
            ("local:registry.projection-projects", 7), ("relay:registry", 7)]
    finally:
        await registry.close()
        await inspection.close()
