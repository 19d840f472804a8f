"""Fixtures shared by every level: a migrated template database cloned per test, RabbitMQ names."""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from contextlib import asynccontextmanager
from typing import AsyncIterator

import asyncpg
import pytest

from services.system import SERVICE_NAMES, migration_folders
from shared.migrations import migrate
from shared.personal_data import MasterKey
from shared.provisioning import (AUDITOR, MIGRATOR, OPERATOR, SEQUENCER, provision_roles,
                                 service_role)
from shared.store import PostgresEventStore, create_pool

ADMIN_DSN = os.environ.get("LOOKBACK_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("LOOKBACK_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
_TEMPLATE = f"lookback_tpl_{os.getpid()}"
# The API documents and metrics are behind a token by default (a deployment's setting); most tests
# read them as the embedded default serves them, openly. Tests of the default set it themselves.
os.environ.setdefault("LOOKBACK_DOCS_ACCESS", "public")
os.environ.setdefault("LOOKBACK_METRICS_ACCESS", "public")
# The registry's personal-data keys are wrapped by a master key held outside the database.
TEST_MASTER_KEY = MasterKey.generate_text()
os.environ.setdefault("LOOKBACK_PII_MASTER_KEY", TEST_MASTER_KEY)

# The test-only example services' role and category (tests/example_services.py).
EXAMPLE_SQL = Path(__file__).with_name("example_sql")


def dsn_for(database: str, user: str = "postgres") -> str:
    base = ADMIN_DSN.rsplit("/", 1)[0]
    scheme, rest = base.split("://", 1)
    host = rest.split("@", 1)[-1]
    return f"{scheme}://{user}@{host}/{database}"


# Every login role the system and the test-only example services use (roles are cluster-wide).
TEST_SERVICES = (*SERVICE_NAMES, "example", "exampleconsumer")
LOGIN_ROLES = (MIGRATOR, *(service_role(s) for s in TEST_SERVICES), SEQUENCER, AUDITOR, OPERATOR)


@pytest.fixture(scope="session")
async def template_db() -> AsyncIterator[str]:
    """Provision the roles, then migrate once per run, as the migration role, into a template;
    each test clones it (fast, and isolated)."""
    await provision_roles(ADMIN_DSN, LOGIN_ROLES)
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{_TEMPLATE}" OWNER {MIGRATOR}')
        superuser = await asyncpg.connect(dsn_for(_TEMPLATE))
        try:
            await superuser.execute(f"GRANT CREATE ON SCHEMA public TO {MIGRATOR}")
        finally:
            await superuser.close()
        conn = await asyncpg.connect(dsn_for(_TEMPLATE, user=MIGRATOR))
        try:
            await migrate(conn, *migration_folders(), EXAMPLE_SQL)
        finally:
            await conn.close()
        yield _TEMPLATE
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def fresh_database(template: str) -> AsyncIterator[str]:
    """A fresh, migrated database cloned from the template; dropped afterwards."""
    name = f"lookback_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        yield dsn_for(name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def database(template_db: str) -> AsyncIterator[str]:
    async with fresh_database(template_db) as dsn:
        yield dsn


@pytest.fixture
async def pg_pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database, max_size=10)
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), 10)


@pytest.fixture
async def pg_store(pg_pool: asyncpg.Pool) -> PostgresEventStore:
    return PostgresEventStore(pg_pool)


_PREFIXES_HANDED_OUT: set[str] = set()


@pytest.fixture
def unique_prefix() -> str:
    """A name prefix for RabbitMQ exchanges and queues that no other test uses."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    _PREFIXES_HANDED_OUT.add(prefix)
    return prefix


_TEST_PREFIX = re.compile(r"^t[0-9a-f]{10}")


@pytest.fixture(scope="session", autouse=True)
async def remove_test_bus_objects() -> AsyncIterator[None]:
    """After the run, delete every queue and exchange a test created under its unique prefix."""
    yield
    if shutil.which("rabbitmqctl") is None:
        return
    import aio_pika

    names = {}
    for kind in ("queues", "exchanges"):
        listed = subprocess.run(["rabbitmqctl", "-q", f"list_{kind}", "name"], capture_output=True,
                                text=True, timeout=60).stdout.split()
        # Only this run's: another run on the same broker may be using its own right now.
        names[kind] = [n for n in listed
                       if _TEST_PREFIX.match(n) and n[:11] in _PREFIXES_HANDED_OUT]
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for queue in names["queues"]:
            await channel.queue_delete(queue)
        for exchange in names["exchanges"]:
            await channel.exchange_delete(exchange)
