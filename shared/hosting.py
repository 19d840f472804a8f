"""Hosting service processes: the embedded database, migrations, the bus topology, local secrets
and serving several ASGI apps in one event loop. Generic: which services make up the system is
the application's business (services/system.py), never the kernel's."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import uvicorn

from shared.auth import hash_token, new_token
from shared.consuming import ConsumerSpec
from shared.logging import get_logger, is_json
from shared.messages import Role
from shared.migrations import migrate
from shared.personal_data import MasterKey
from shared.settings import Settings
from shared.signing import generate_private_key, private_key_to_text, public_key_to_text

log = get_logger()


async def declare_bus(amqp_url: str, prefix: str, producers: Sequence[str],
                      consumers: Sequence[tuple[str, ConsumerSpec]]) -> None:
    """Declare the whole topology as an administrator, before any service starts: every
    producer's events exchange, every consumer queue and its bindings (RabbitMQ only).

    A service may declare only its own objects (docs/adr/0009); doing all of them here first
    means the order in which processes start can never make an event miss a queue that did not
    exist yet. `consumers` pairs each consumer with the service that owns it.
    """
    from faststream.rabbit import RabbitBroker

    from shared.topology import Names, declare_consumer_queues, events_exchange

    names = Names(prefix)
    broker = RabbitBroker(amqp_url, logger=None)
    await broker.connect()
    try:
        for producer in producers:
            await broker.declare_exchange(events_exchange(names, producer))
        await declare_consumer_queues(broker, names, list(consumers), declare_exchanges=True)
    finally:
        await broker.stop()


def start_embedded_database(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL whose data survives restarts in `data_dir`;
    return its administrator's DSN (provisioning and migrations use it, services never do)."""
    try:
        from pgserver.postgres_server import get_server  # only the embedded mode needs it
    except ImportError:
        raise SystemExit("the embedded default needs PostgreSQL in a wheel: pip install "
                         "'lookback[embedded]', or set LOOKBACK_DATABASE_URL") from None

    pgdata = (data_dir / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")  # stops when we exit
    return server.get_uri()


async def migrate_database(dsn: str, folders: Sequence[Path]) -> list[str]:
    """Apply the kernel's migrations and those of `folders` (each service's SQL)."""
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn, *folders)
    finally:
        await conn.close()


@dataclass(frozen=True)
class DemoPrincipal:
    id: str
    name: str
    role: Role
    unit: str | None = None


def ensure_local_secrets(settings: Settings, principals: Sequence[DemoPrincipal]) -> Settings:
    """Embedded mode only: a checkpoint signing key, the personal-data master key, the key pair of
    identity assertions (the console's) and demo tokens, kept under the data folder (never in the
    repository). Printed paths tell the newcomer where they are."""
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
    if settings.pii_master_key is None and settings.pii_master_key_file is None:
        master_file = keys / "pii-master.key"
        if not master_file.exists():
            keys.mkdir(parents=True, exist_ok=True)
            fd = os.open(master_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(MasterKey.generate_text())
        updates["pii_master_key_file"] = master_file
    if (settings.assertion_signing_key is None and settings.assertion_signing_key_file is None
            and settings.assertion_public_key is None and settings.assertion_public_key_file is None):
        # The front end signs who is signed in; every process of this machine trusts it.
        signing_file, public_file = keys / "assertion.key", keys / "assertion.pub"
        if not signing_file.exists():
            keys.mkdir(parents=True, exist_ok=True)
            key = generate_private_key()
            fd = os.open(signing_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(private_key_to_text(key))
            public_file.write_text(public_key_to_text(key.public_key()), encoding="utf-8")
        updates.update(assertion_signing_key_file=signing_file, assertion_public_key_file=public_file)
    if settings.tokens_file is None and settings.tokens_json is None:
        tokens_file = settings.data_dir / "tokens.json"
        if not tokens_file.exists():
            write_demo_tokens(settings.data_dir, principals)
        updates["tokens_file"] = tokens_file
    return settings.model_copy(update=updates)


def ensure_passwords(secrets_dir: Path, names: Sequence[str]) -> dict[str, str]:
    """A random password per secret name (`<role>.db.password`, `<user>.amqp.password`), made once
    and kept in `secrets_dir` (mode 0600), for deployments that generate their own secrets."""
    secrets_dir.mkdir(parents=True, exist_ok=True)
    secrets_dir.chmod(0o700)
    passwords = {}
    for name in names:
        path = secrets_dir / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(24))
        passwords[name] = path.read_text(encoding="utf-8").strip()
    return passwords


def write_demo_tokens(data_dir: Path, principals: Sequence[DemoPrincipal]) -> Path:
    """One token per principal: hashed in tokens.json, in clear in demo-tokens.txt (mode 0600)
    for the person trying the system out."""
    data_dir.mkdir(parents=True, exist_ok=True)
    hashed, clear = {}, []
    for pid, name, role, unit in ((p.id, p.name, p.role, p.unit) for p in principals):
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


# Exit status when a second signal cut the graceful stop short (as a shell reports SIGTERM).
EXIT_FORCED = 143


@contextlib.contextmanager
def _signals_stay_ours() -> Iterator[None]:
    """In place of uvicorn's `capture_signals`: leaves the process's signal handlers alone."""
    yield


async def serve_apps(apps: dict[str, Any], settings: Settings, ports: dict[str, int],
                     on_ready: Any = None) -> None:
    """Run several ASGI apps in this event loop until SIGINT/SIGTERM.

    The first signal starts a graceful stop: each app stops taking work and finishes or gives
    back what it holds within `graceful_timeout` (the deadline is handed to its lifespan as
    `app.state.shutdown_deadline`); past it, and a little for closing, the process ends anyway.
    A second signal ends it at once: nothing acknowledged is lost (unacknowledged messages go
    back to their queues, open transactions roll back)."""
    servers = []
    # Open HTTP requests get a moment; the rest of the budget is the consumers'. (uvicorn
    # annotates the grace in whole seconds, and waits it out as a float timeout.)
    grace = min(2.0, settings.graceful_timeout / 4)
    for name, app in apps.items():
        config = uvicorn.Config(app, host=settings.http_host, port=ports[name], log_config=None,
                                access_log=False, lifespan="on",
                                timeout_graceful_shutdown=grace)  # type: ignore[arg-type]
        servers.append((name, uvicorn.Server(config)))
    for _, server in servers:
        # The signals are ours (below), not each uvicorn server's: uvicorn would take them over
        # while it serves and raise them again after its own stop, which here would read as a
        # second signal.
        server.capture_signals = _signals_stay_ours  # type: ignore[method-assign]  # on purpose
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            log.warning("shutdown_forced", signals=signals)
            os._exit(EXIT_FORCED)
        deadline = loop.time() + settings.graceful_timeout
        for app in apps.values():
            state = getattr(app, "state", None)
            if state is not None:
                state.shutdown_deadline = deadline
        log.info("shutdown_started", graceful_timeout=settings.graceful_timeout)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
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
    _, late = await asyncio.wait(tasks, timeout=settings.graceful_timeout + 5.0)
    announcer.cancel()
    if late:  # a stop that overran its budget: say so, and end anyway
        log.error("shutdown_overran", graceful_timeout=settings.graceful_timeout,
                  still_running=[t.get_name() for t in late])
        os._exit(EXIT_FORCED)
    for task in tasks:
        if task.done() and not task.cancelled() and (error := task.exception()) is not None:
            raise error


def print_listening(listening: list[Listening], settings: Settings) -> None:
    """Where each app listens: a table for a person's terminal, or with JSON logs one
    `listening` line; then the READY line scripts wait for (JSON too when JSON is on)."""
    addresses = {i.service: f"{i.host}:{i.port}" for i in listening}
    demo = settings.tokens_file.parent / "demo-tokens.txt" if settings.tokens_file else None
    demo = demo if demo is not None and demo.exists() else None
    if is_json(settings.log_json):
        log.info("listening", services={n: f"http://{a}" for n, a in addresses.items()},
                 api_docs={n: f"http://{a}/docs" for n, a in addresses.items()},
                 demo_tokens=str(demo) if demo else None,
                 checkpoints=str(settings.resolved_checkpoint_dir()))
        print(json.dumps({"event": "ready", "level": "info", "listening": addresses,
                          "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")}),
              flush=True)
        return
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
    if demo is not None:
        console.print(f"Demo bearer tokens: {demo}")
    console.print(f"Checkpoints are written to {settings.resolved_checkpoint_dir()}")
    # One plain line that scripts (and the end-to-end test) can wait for.
    print(f"READY {' '.join(f'{n}={a}' for n, a in addresses.items())}", flush=True)


def ready_addresses(line: str) -> dict[str, str] | None:
    """The addresses a READY line announces (plain or JSON), or None for any other line."""
    if line.startswith("READY "):
        return dict(part.split("=", 1) for part in line.split()[1:])
    if line.startswith("{") and '"ready"' in line:
        try:
            data = json.loads(line)
        except ValueError:
            return None
        if isinstance(data, dict) and data.get("event") == "ready":
            return {str(k): str(v) for k, v in data.get("listening", {}).items()}
    return None
