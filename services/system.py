"""The whole system: which services make up Lookback and how they run together.

This is the application layer above the services and the kernel: the kernel (`shared/`) hosts
any service it is given and knows none by name; each service declares itself (`app.SPEC`: its
contract, commands, consumers, migrations); this module lists them, runs them one per process
(`lookback serve`) or all in one (`lookback up`), and loads the registry's sample data.
"""
from __future__ import annotations

import asyncio
import importlib
import os
from pathlib import Path
from typing import Any

from services.audit_labels import EVENT_LABELS
from shared.campaign import load_campaign
from shared.hosting import (
    DemoPrincipal,
    declare_bus,
    ensure_local_secrets,
    migrate_database,
    print_listening,
    serve_apps,
    start_embedded_database,
)
from shared.logging import configure_logging, get_logger
from shared.messages import Role
from shared.replay import Exempt, ReplayReport, replay
from shared.service import ServiceSpec
from shared.settings import Settings

log = get_logger()

SERVICE_NAMES = ("registry", "rectification", "inspection", "notifier")
DEFAULT_PORTS = {"registry": 8701, "rectification": 8702, "inspection": 8703, "notifier": 8704}


def spec(name: str) -> ServiceSpec[Any]:
    """A service's declaration, `services.<name>.app.SPEC`."""
    if name not in SERVICE_NAMES:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICE_NAMES)}")
    declared: ServiceSpec[Any] = importlib.import_module(f"services.{name}.app").SPEC
    return declared


def specs() -> list[ServiceSpec[Any]]:
    return [spec(name) for name in SERVICE_NAMES]


# What `lookback audit replay` leaves out, because it does not derive from the log (each with
# the reason the replay report prints).
REPLAY_EXEMPT = (
    Exempt("registry.personal_data_access", None,
           "an access log written when a person reads personal data in clear, not by events"),
    Exempt("rectification.ledger_links", frozenset({"received_at"}),
           "the time the reaction ran, which the log does not hold"),
)


async def replay_read_models(settings: Settings, *, keep: bool = False) -> ReplayReport:
    """Rebuild every service's read models from the log alone and compare (shared/replay.py)."""
    assert settings.database_url is not None
    return await replay(settings.database_url, specs(), settings, exempt=REPLAY_EXEMPT, keep=keep,
                        migration_folders=migration_folders())


def migration_folders() -> list[Path]:
    """Every service's SQL, after the kernel's (shared/sql): roles, categories, read models."""
    return [s.migrations for s in specs() if s.migrations is not None]


def service_app(name: str, settings: Settings, **kwargs: Any) -> Any:
    """The service's ASGI app from its one composition root, `services.<name>.app.create_app`."""
    spec(name)
    app = importlib.import_module(f"services.{name}.app").create_app(settings, **kwargs)
    # /audit/history speaks of events by their Chinese names, in the campaign's time zone.
    app.state.history_labels = EVENT_LABELS
    app.state.history_zone = load_campaign(settings.campaign_file).tz
    return app


def all_consumers() -> list[tuple[str, Any]]:
    return [(s.name, consumer) for s in specs() for consumer in s.consumers]


def demo_principals() -> list[DemoPrincipal]:
    """One demo principal per role, and a reporter and reviewer per unit of the campaign file."""
    principals = [DemoPrincipal("admin", "市局管理员(示例)", Role.CITY_ADMIN),
                  DemoPrincipal("inspector", "专班检查员(示例)", Role.INSPECTOR),
                  DemoPrincipal("leader", "分管领导(示例)", Role.LEADER),
                  DemoPrincipal("auditor", "审计员(示例)", Role.AUDITOR)]
    for unit in load_campaign().units:
        principals.append(DemoPrincipal(f"reporter-{unit.code}", f"{unit.area_name}填报人(示例)",
                                        Role.DISTRICT_REPORTER, unit.code))
        principals.append(DemoPrincipal(f"reviewer-{unit.code}", f"{unit.area_name}审核人(示例)",
                                        Role.DISTRICT_REVIEWER, unit.code))
    return principals


async def migrate(dsn: str) -> list[str]:
    return await migrate_database(dsn, migration_folders())


async def seed_if_empty(settings: Settings) -> Any:
    """Load the registry's sample data once, into an empty store."""
    from services.registry.seeding import seed_if_empty as seed_registry

    return await seed_registry(settings)


async def up(settings: Settings, *, port_base: int | None = None, seed: bool = True) -> None:
    """All services in one process: embedded PostgreSQL and the local transport by default."""
    configure_logging(json=settings.log_json, level=settings.log_level)
    if settings.embedded:
        dsn = await asyncio.to_thread(start_embedded_database, settings.data_dir)
        settings = settings.model_copy(update={"database_url": dsn})
        settings = ensure_local_secrets(settings, demo_principals())
        log.info("embedded_database", data_dir=str(settings.data_dir))
    assert settings.database_url is not None
    applied = await migrate(settings.database_url)
    if applied:
        log.info("migrations_applied", names=applied)
    await declare_bus(settings, all_consumers())
    if seed:
        await seed_if_empty(settings)
    ports = {name: (port_base + i if port_base is not None else DEFAULT_PORTS[name])
             for i, name in enumerate(SERVICE_NAMES)}
    # One sequencer candidate is enough in one process (the lock elects one across processes).
    apps = {name: service_app(name, settings.model_copy(
        update={"run_sequencer": settings.run_sequencer and name == SERVICE_NAMES[0]}))
        for name in SERVICE_NAMES}
    await serve_apps(apps, settings, ports, on_ready=lambda ls: print_listening(ls, settings))


async def serve(name: str, settings: Settings) -> None:
    """One service process against PostgreSQL and RabbitMQ."""
    configure_logging(json=settings.log_json, level=settings.log_level)
    if settings.database_url is None:
        raise SystemExit("lookback serve needs LOOKBACK_DATABASE_URL (use `lookback up` to run "
                         "everything on the embedded default)")
    if os.environ.get("LOOKBACK_MIGRATE_ON_START", "true").lower() == "true":
        await migrate(settings.database_url)
    await declare_bus(settings, all_consumers())
    port = settings.http_port or DEFAULT_PORTS[name]
    app = service_app(name, settings)
    await serve_apps({name: app}, settings, {name: port},
                     on_ready=lambda ls: print_listening(ls, settings))
