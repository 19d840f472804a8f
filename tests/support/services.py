"""Running a service app inside a test: settings sized for tests, the app's lifespan, an HTTP
client over ASGI, and the clean-up of a test's RabbitMQ names."""
from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from aiormq.exceptions import AMQPError
from fastapi import FastAPI

from shared.personal_data import MasterKey
from shared.settings import Settings
from shared.topology import Names
from tests.support.actors import TOKENS_JSON

AMQP_URL = os.environ.get("LOOKBACK_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
# The registry's personal-data keys are wrapped by a master key held outside the database: one
# per test run (tests/conftest.py hands it to the services through the environment).
TEST_MASTER_KEY = MasterKey.generate_text()

# A service app in a test serves one client at a time. Its pools (docs/adr/0011): the read side
# and commands; the consumers' transactions (one per handler running at once, so as many as the
# handlers); the relay, projections and the ledger waker's standing connection. With the
# sequencer's and the metrics sampler's own connections, a service holds at most ten, and
# far fewer at once (pools open connections as needed; see DATABASE_CONNECTION_LIMIT).
SERVICE_POOL_SIZE = 3
SMALL_POOLS = {"db_pool_size": SERVICE_POOL_SIZE, "consumer_pool_size": 3, "consumer_concurrency": 3,
               "background_pool_size": 2}


def child_env(*, broker: bool = True, **lookback: str) -> dict[str, str]:
    """The environment of a `lookback` child process: this one's without its LOOKBACK_* settings
    (a developer's own must not leak in) but, for a process on the broker, with the folder of
    the broker users' passwords; then `lookback` (settings by their full names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKBACK_")}
    if broker and "LOOKBACK_SECRETS_DIR" in os.environ:
        env["LOOKBACK_SECRETS_DIR"] = os.environ["LOOKBACK_SECRETS_DIR"]
    env.update(lookback)
    return env


def small_pools_env() -> dict[str, str]:
    """The same sizes for a service in a child process (`lookback serve`, `lookback up`)."""
    return {f"LOOKBACK_{name.upper()}": str(size) for name, size in SMALL_POOLS.items()}


def service_settings(dsn: str, data_dir: Path | None = None, *, amqp_url: str | None = None,
                     prefix: str = "", **extra: Any) -> Settings:
    """Settings for a service in a test: every test actor's token, a small pool, fast polls and
    short timeouts, files under `data_dir` (a new temporary folder if none is given)."""
    values: dict[str, Any] = {
        "database_url": dsn, "amqp_url": amqp_url, "bus_prefix": prefix, "tokens_json": TOKENS_JSON,
        "data_dir": data_dir or Path(tempfile.mkdtemp(prefix="lookback-test-")),
        **SMALL_POOLS, "poll_interval": 0.02, "publish_timeout": 3.0,
        "graceful_timeout": 5.0}
    values.update(extra)
    return Settings(**values)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app started (its lifespan: pool, consumers, relay, sequencer) and a client for it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def delete_bus_objects(prefix: str, *, services: Iterable[str],
                             consumers: Iterable[str] = ()) -> None:
    """Delete what these services and consumers declared under `prefix` (exchanges, archives,
    dead-letter queues, consumer queues); names never declared are passed over."""
    names = Names(prefix)
    services = list(services)
    queues = [names.queue(consumer) for consumer in consumers]
    queues += [q for service in services for q in (names.archive_queue(service), names.dlq(service))]
    exchanges = [x for service in services for x in (names.events_exchange(service), names.dlx(service))]
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            try:
                await channel.queue_delete(queue)
            except AMQPError:  # not declared by this test: the broker closes the channel
                channel = await connection.channel()
        for exchange in exchanges:
            try:
                await channel.exchange_delete(exchange)
            except AMQPError:
                channel = await connection.channel()
