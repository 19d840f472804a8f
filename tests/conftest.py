"""Fixtures shared by every level: a migrated template database cloned per test, RabbitMQ names,
and the guards of the setup (levels, unit tests off the servers). Helpers live in tests/support."""
from __future__ import annotations

import asyncio
import atexit
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from services.system import SERVICE_NAMES, migration_folders
from shared.migrations import migrate
from shared.provisioning import AUDITOR, MIGRATOR, OPERATOR, SEQUENCER, provision_roles, service_role
from shared.store import PostgresEventStore, create_pool
from tests.support.broker import declare_exchanges, provision_test_broker, secrets_dir
from tests.support.databases import ADMIN_DSN, admin_execute, dsn_for, fresh_database
from tests.support.isolation import marker_problems, servers_unreachable
from tests.support.services import AMQP_URL, TEST_MASTER_KEY

_TEMPLATE = f"lookback_tpl_{os.getpid()}"
# The API documents and metrics are behind a token by default (a deployment's setting); most tests
# read them as the embedded default serves them, openly. Tests of the default set it themselves.
os.environ.setdefault("LOOKBACK_DOCS_ACCESS", "public")
os.environ.setdefault("LOOKBACK_METRICS_ACCESS", "public")
# The registry's personal-data keys are wrapped by a master key held outside the database.
os.environ.setdefault("LOOKBACK_PII_MASTER_KEY", TEST_MASTER_KEY)

# The test-only example services' role and category (tests/example_services.py).
EXAMPLE_SQL = Path(__file__).with_name("example_sql")

# Every login role the system and the test-only example services use (roles are cluster-wide).
TEST_SERVICES = (*SERVICE_NAMES, "example", "exampleconsumer")
LOGIN_ROLES = (MIGRATOR, *(service_role(s) for s in TEST_SERVICES), SEQUENCER, AUDITOR, OPERATOR)

# Services log in to the broker as their own users (tests/support/broker.py), whose passwords
# they read from here, as from the folder `lookback provision` fills.
BROKER_SECRETS = secrets_dir(TEST_SERVICES)
os.environ["LOOKBACK_SECRETS_DIR"] = str(BROKER_SECRETS)
atexit.register(shutil.rmtree, BROKER_SECRETS, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test says its level, and a unit test asks for no server (`-m unit` needs none)."""
    problems = [problem for item in items
                for problem in marker_problems(item.nodeid, (m.name for m in item.iter_markers()),
                                               getattr(item, "fixturenames", ()))]
    if problems:
        raise pytest.UsageError("tests without a proper level:\n" + "\n".join(problems))


_SERVER_ATTEMPTS = pytest.StashKey[list[str]]()


@pytest.fixture(autouse=True)
def unit_tests_stay_off_the_servers(request: pytest.FixtureRequest) -> Iterator[None]:
    """A unit test runs with the servers' ports refused; what it tried is kept for its report."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    with servers_unreachable() as attempts:
        request.node.stash[_SERVER_ATTEMPTS] = attempts
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A unit test that tried to reach a server fails, even if the refusal was caught and hidden."""
    report = yield
    attempts = item.stash.get(_SERVER_ATTEMPTS, [])
    if call.when == "call" and attempts and report.passed:
        report.outcome = "failed"
        report.longrepr = f"this unit test tried to reach a server: {attempts} (mark it integration)"
    return report


@pytest.fixture(scope="session")
async def template_db() -> AsyncIterator[str]:
    """Provision the roles, then migrate once per run, as the migration role, into a template;
    each test clones it (fast, and isolated)."""
    await provision_roles(ADMIN_DSN, LOGIN_ROLES)
    try:
        await admin_execute(f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)')
        await admin_execute(f'CREATE DATABASE "{_TEMPLATE}" OWNER {MIGRATOR}')
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
        await admin_execute(f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)')


@pytest.fixture
async def database(template_db: str) -> AsyncIterator[str]:
    async with fresh_database(template_db) as dsn:
        yield dsn


@pytest.fixture
async def pg_pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database, max_size=3)
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), 10)


@pytest.fixture
async def pg_store(pg_pool: asyncpg.Pool) -> PostgresEventStore:
    return PostgresEventStore(pg_pool)


_PREFIXES_HANDED_OUT: set[str] = set()


@pytest.fixture(scope="session")
async def test_broker_users() -> None:
    """Every service's broker user and the operator's, once per run (services never log in to
    the broker as `guest`, docs/adr/0009)."""
    await provision_test_broker(TEST_SERVICES)


@pytest.fixture
async def unique_prefix(test_broker_users: None) -> str:
    """A name prefix for RabbitMQ exchanges and queues that no other test uses, with every
    service's events exchange declared under it (with or without a dot), as provisioning does."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    _PREFIXES_HANDED_OUT.add(prefix)
    await declare_exchanges(prefix, TEST_SERVICES)
    await declare_exchanges(prefix + ".", TEST_SERVICES)
    return prefix


_TEST_PREFIX = re.compile(r"^t[0-9a-f]{10}")


@pytest.fixture(scope="session", autouse=True)
async def remove_test_bus_objects() -> AsyncIterator[None]:
    """After the run, delete every queue and exchange a test created under its unique prefix."""
    yield
    if not _PREFIXES_HANDED_OUT or shutil.which("rabbitmqctl") is None:
        return  # no test asked for broker names (a unit-only run never reaches the broker)
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
