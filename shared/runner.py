"""Running the system: one service per process (`lookback serve`), or all four in one process
(`lookback up`), on PostgreSQL + RabbitMQ when configured, else on the embedded default
(pgserver's real PostgreSQL in a local folder, and the local transport)."""
from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import uvicorn

from shared.auth import hash_token, new_token
from shared.logging import configure_logging, get_logger
from shared.messages import Role
from shared.migrations import migrate
from shared.service_migrations import all_migration_folders
from shared.settings import Settings
from shared.signing import generate_private_key, private_key_to_text, public_key_to_text

log = get_logger()

SERVICES = ("registry", "rectification", "inspection", "notifier")
DEFAULT_PORTS = {"registry": 8701, "rectification": 8702, "inspection": 8703, "notifier": 8704}
UNITS = ("echeng", "huarong", "liangzihu", "gedian", "linkong")


def service_app(name: str, settings: Settings, **kwargs: Any) -> Any:
    """The service's ASGI app from its one composition root, `services.<name>.app.create_app`."""
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
    module = importlib.import_module(f"services.{name}.app")
    return module.create_app(settings, **kwargs)


async def declare_bus(settings: Settings) -> None:
    """Declare every service's consumer queues before any relay publishes (RabbitMQ mode only).

    Each service declares its own queues too; doing all of them here first means the order in
    which processes start can never make an event miss a queue that did not exist yet.
    """
    if settings.amqp_url is None:
        return
    from faststream.rabbit import RabbitBroker

    from shared.topology import Names, declare_consumer_queues

    consumers = []
    for name in SERVICES:
        spec = importlib.import_module(f"services.{name}.app").SPEC
        consumers.extend((name, consumer) for consumer in spec.consumers)
    broker = RabbitBroker(settings.amqp_url, logger=None)
    await broker.connect()
    try:
        await declare_consumer_queues(broker, Names(settings.bus_prefix), consumers)
    finally:
        await broker.stop()


def start_embedded_database(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL whose data survives restarts in `data_dir`."""
    import pgserver  # imported here: only the embedded mode needs it

    pgdata = (data_dir / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")  # stops when we exit
    return server.get_uri()


async def migrate_database(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn, *all_migration_folders())
    finally:
        await conn.close()


def ensure_local_secrets(settings: Settings) -> Settings:
    """Embedded mode only: a checkpoint signing key and demo tokens, kept under the data folder
    (never in the repository). Printed paths tell the newcomer where they are."""
    keys = settings.data_dir / "keys"
    updates: dict[str, Any] = {}
    if settings.signing_key is None and settings.signing_key_file is None:
        key_file = keys / "checkpoint.key"
        if not key_file.exists():
            keys.mkdir(parents=True, exist_ok=True)
            key = generate_private_key()
            key_file.write_text(private_key_to_text(key), encoding="utf-8")
            key_file.chmod(0o600)
            (keys / "checkpoint.pub").write_text(public_key_to_text(key.public_key()), encoding="utf-8")
        updates["signing_key_file"] = key_file
    if settings.tokens_file is None and settings.tokens_json is None:
        tokens_file = settings.data_dir / "tokens.json"
        if not tokens_file.exists():
            write_demo_tokens(settings.data_dir)
        updates["tokens_file"] = tokens_file
    return settings.model_copy(update=updates)


def write_demo_tokens(data_dir: Path) -> Path:
    """One token per role (and per unit for district roles): hashed in tokens.json, in clear in
    demo-tokens.txt (mode 0600) for the person trying the system out."""
    data_dir.mkdir(parents=True, exist_ok=True)
    principals = [("admin", "市局管理员(示例)", Role.CITY_ADMIN, None),
                  ("inspector", "专班检查员(示例)", Role.INSPECTOR, None),
                  ("leader", "分管领导(示例)", Role.LEADER, None),
                  ("auditor", "审计员(示例)", Role.AUDITOR, None)]
    for unit in UNITS:
        principals.append((f"reporter-{unit}", f"{unit}填报人(示例)", Role.DISTRICT_REPORTER, unit))
        principals.append((f"reviewer-{unit}", f"{unit}审核人(示例)", Role.DISTRICT_REVIEWER, unit))
    hashed, clear = {}, []
    for pid, name, role, unit in principals:
        token = new_token()
        hashed[hash_token(token)] = {"id": pid, "name": name, "role": role.value, "unit": unit}
        clear.append(f"{pid}\t{role.value}\t{unit or '-'}\t{token}")
    (data_dir / "tokens.json").write_text(json.dumps(hashed, ensure_ascii=False, indent=1), encoding="utf-8")
    demo = data_dir / "demo-tokens.txt"
    demo.write_text("# id\trole\tunit\ttoken (demo only; delete for real use)\n" + "\n".join(clear) + "\n",
                    encoding="utf-8")
    demo.chmod(0o600)
    return demo


@dataclass
class Listening:
    service: str
    host: str
    port: int


async def serve_apps(apps: dict[str, Any], settings: Settings, ports: dict[str, int],
                     on_ready: Any = None) -> None:
    """Run several ASGI apps in this event loop until SIGINT/SIGTERM; graceful shutdown."""
    servers = []
    for name, app in apps.items():
        config = uvicorn.Config(app, host=settings.http_host, port=ports[name], log_config=None,
                                access_log=False, lifespan="on")
        servers.append((name, uvicorn.Server(config)))
    for _, server in servers:
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(server.serve(), name=name) for name, server in servers]

    async def announce() -> None:
        while not all(server.started for _, server in servers):
            if any(t.done() for t in tasks):
                return
            await asyncio.sleep(0.05)
        listening = [Listening(n, settings.http_host, s.servers[0].sockets[0].getsockname()[1])
                     for n, s in servers]
        if on_ready is not None:
            on_ready(listening)

    announcer = asyncio.create_task(announce())
    done_or_stop = asyncio.create_task(stop.wait())
    await asyncio.wait([*tasks, done_or_stop], return_when=asyncio.FIRST_COMPLETED)
    for _, server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    announcer.cancel()
    for task in tasks:
        if task.done() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


def print_listening(listening: list[Listening], settings: Settings) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Lookback (回头看) is running")
    table.add_column("service")
    table.add_column("listens on")
    table.add_column("API docs")
    for item in listening:
        base = f"http://{item.host}:{item.port}"
        table.add_row(item.service, base, f"{base}/docs")
    console = Console(stderr=True, soft_wrap=True)
    console.print(table)
    if settings.tokens_file is not None:
        demo = settings.tokens_file.parent / "demo-tokens.txt"
        if demo.exists():
            console.print(f"Demo bearer tokens: {demo}")
    console.print(f"Checkpoints are written to {settings.resolved_checkpoint_dir()}")
    # One plain line that scripts (and the end-to-end test) can wait for.
    print(f"READY {' '.join(f'{i.service}={i.host}:{i.port}' for i in listening)}", flush=True)


async def up(settings: Settings, *, port_base: int | None = None, seed: bool = True) -> None:
    configure_logging(json=settings.log_json, level=settings.log_level)
    if settings.embedded:
        dsn = await asyncio.to_thread(start_embedded_database, settings.data_dir)
        settings = settings.model_copy(update={"database_url": dsn})
        settings = ensure_local_secrets(settings)
        log.info("embedded_database", data_dir=str(settings.data_dir))
    applied = await migrate_database(settings.database_url)  # type: ignore[arg-type]
    if applied:
        log.info("migrations_applied", names=applied)
    await declare_bus(settings)
    if seed:
        await seed_if_empty(settings)
    ports = {name: (port_base + i if port_base is not None else DEFAULT_PORTS[name])
             for i, name in enumerate(SERVICES)}
    apps = {name: service_app(name, settings.model_copy(
        update={"run_sequencer": settings.run_sequencer and name == "registry"}))
        for name in SERVICES}
    await serve_apps(apps, settings, ports, on_ready=lambda l: print_listening(l, settings))


async def seed_if_empty(settings: Settings) -> None:
    """Load the sample data once, into an empty store (the registry's `seed` command)."""
    try:
        seeding = importlib.import_module("services.registry.seeding")
    except ModuleNotFoundError:
        return
    await seeding.seed_if_empty(settings)


async def serve(name: str, settings: Settings) -> None:
    configure_logging(json=settings.log_json, level=settings.log_level)
    if settings.database_url is None:
        raise SystemExit("lookback serve needs LOOKBACK_DATABASE_URL (use `lookback up` to run "
                         "everything on the embedded default)")
    if os.environ.get("LOOKBACK_MIGRATE_ON_START", "true").lower() == "true":
        await migrate_database(settings.database_url)
    await declare_bus(settings)
    port = settings.http_port or DEFAULT_PORTS[name]
    app = service_app(name, settings)
    await serve_apps({name: app}, settings, {name: port},
                     on_ready=lambda l: print_listening(l, settings))
