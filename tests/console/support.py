"""The whole system in this test's event loop, on real sockets: the four services on the real
PostgreSQL (local transport, or RabbitMQ) and the console in front of them, with the console's
key trusted by every service, the registry's sample loaded, and one account per role and unit.

Served by uvicorn on port 0 so that a real browser can reach the console; the console reaches
the services over HTTP exactly as in production.
"""
from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

from services.console.accounts import Accounts, check_account
from services.console.app import create_app as create_console
from services.console.config import ConsoleSettings
from services.system import SERVICE_NAMES, all_consumers, demo_accounts, seed_if_empty, service_app
from shared.campaign import load_campaign
from shared.hosting import declare_bus
from shared.settings import Settings
from shared.signing import generate_private_key, private_key_to_text, public_key_to_text
from tests.support.services import AMQP_URL, SMALL_POOLS

PASSWORD = "correct horse battery"   # every test account's (never a real one)
BACKEND = [name for name in SERVICE_NAMES if name != "console"]


@dataclass
class System:
    console_url: str
    service_urls: dict[str, str]
    settings: Settings
    accounts: Accounts
    clock: Callable[[], datetime] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@asynccontextmanager
async def serving(apps: dict[str, Any], sockets: dict[str, socket.socket]) -> AsyncIterator[None]:
    servers = []
    for name, app in apps.items():
        server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False,
                                               lifespan="on"))
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        servers.append((server, asyncio.create_task(server.serve(sockets=[sockets[name]]))))
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while not all(s.started for s, _ in servers):
            failed = [t for _, t in servers if t.done()]
            if failed:
                failed[0].result()
                raise AssertionError("a server stopped while starting")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("the servers did not start within a minute")
            await asyncio.sleep(0.05)
        yield
    finally:
        for server, _ in servers:
            server.should_exit = True
        await asyncio.gather(*(t for _, t in servers), return_exceptions=True)
        for sock in sockets.values():
            sock.close()


def system_settings(dsn: str, tmp: Path, **more: Any) -> Settings:
    key = generate_private_key()
    return Settings(database_url=dsn, data_dir=tmp, checkpoint_dir=tmp / "checkpoints",
                    signing_key=private_key_to_text(generate_private_key()),
                    assertion_signing_key=private_key_to_text(key),
                    assertion_public_key=public_key_to_text(key.public_key()),
                    tokens_json="{}", poll_interval=0.02, publish_timeout=3.0,
                    graceful_timeout=5.0, checkpoint_every_events=20,
                    checkpoint_every_seconds=1.0, **{**SMALL_POOLS, **more})


@asynccontextmanager
async def running_system(dsn: str, tmp: Path, *, clock: Callable[[], datetime] | None = None,
                         service_kwargs: dict[str, dict[str, Any]] | None = None,
                         **more: Any) -> AsyncIterator[System]:
    settings = system_settings(dsn, tmp, **more)
    if settings.amqp_url is not None:  # as provisioning: every queue before any relay publishes
        await declare_bus(AMQP_URL, settings.bus_prefix, BACKEND, all_consumers())
    await seed_if_empty(settings)
    sockets = {name: _bound_socket() for name in SERVICE_NAMES}
    urls = {name: f"http://127.0.0.1:{sock.getsockname()[1]}" for name, sock in sockets.items()}
    kwargs = {"clock": clock} if clock is not None else {}
    apps = {name: service_app(name, settings.model_copy(
        update={"run_sequencer": name == "registry"}),
        **{**kwargs, **(service_kwargs or {}).get(name, {})}) for name in BACKEND}
    console = create_console(settings, console=ConsoleSettings(evidence_dir=tmp / "evidence"),
                             service_urls={n: urls[n] for n in BACKEND})
    apps["console"] = console
    async with serving(apps, sockets):
        accounts = console.state.console.accounts
        campaign = load_campaign()
        now = datetime.now(UTC)
        for p in demo_accounts():
            await accounts.add(check_account(p.id, p.name, p.role.value, p.unit, PASSWORD,
                                             campaign), PASSWORD, now)
        yield System(urls["console"], {n: urls[n] for n in BACKEND}, settings, accounts, clock)
