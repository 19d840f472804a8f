"""The whole system: which services make up Lookback and how they run together.

This is the application layer above the services and the kernel: the kernel (`shared/`) hosts
any service it is given and knows none by name; each service declares itself (`app.SPEC`: its
contract, commands, consumers, migrations); this module lists them, runs them one per process
(`lookback serve`) or all in one (`lookback up`), and loads the registry's sample data.
"""
from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from services.audit_labels import EVENT_LABELS
from shared.campaign import load_campaign
from shared.clock import CampaignClock, Clock, clock_from_setting, parse_instant
from shared.hosting import (
    DemoPrincipal,
    declare_bus,
    ensure_local_secrets,
    ensure_passwords,
    migrate_database,
    print_listening,
    serve_apps,
    start_embedded_database,
)
from shared.logging import configure_logging, get_logger, is_json
from shared.messages import EventContract, Role
from shared.provisioning import (
    AUDITOR,
    MIGRATOR,
    OPERATOR,
    SEQUENCER,
    BrokerPlan,
    DatabasePlan,
    provision_broker,
    provision_database,
    service_role,
)
from shared.replay import Exempt, ReplayReport, replay
from shared.service import ServiceSpec
from shared.settings import Settings
from shared.store import login_dsn

log = get_logger()

# The console (the web application people use) comes first: `lookback up` prints its address
# first, on the port before the services'. It has no events and no bus user (docs/adr/0014).
BACKEND_SERVICES = ("registry", "rectification", "inspection", "notifier")
SERVICE_NAMES = ("console", *BACKEND_SERVICES)
DEFAULT_PORTS = {"console": 8700, "registry": 8701, "rectification": 8702, "inspection": 8703,
                 "notifier": 8704}
# In one process one sequencer candidate is enough (the lock elects one across processes).
SEQUENCER_HOST = "registry"


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
    Exempt("notifier.contacts", None,
           "the contact directory: addresses kept out of the log on purpose, to be erasable"),
    *(Exempt(f"console.{table}", None, "the console's accounts, sessions and uploads: how people "
             "reach the system, not facts of the log")
      for table in ("accounts", "sessions", "sign_in_failures", "evidence_files",
                    "evidence_uploads")),
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
    page_clock = None
    if name == "console":  # people's pages: no tokens of a service's to take; the campaign's
        # "today" on its pages is the services' clock (sessions keep the real time)
        page_clock = kwargs.get("clock") or clock_from_setting(settings.clock)
        kwargs = {k: v for k, v in kwargs.items() if k == "service_urls"}
    else:
        kwargs.pop("service_urls", None)
    app = importlib.import_module(f"services.{name}.app").create_app(settings, **kwargs)
    if page_clock is not None:
        app.state.clock = page_clock
    # /audit/history speaks of events by their Chinese names, in the campaign's time zone.
    app.state.history_labels = EVENT_LABELS
    app.state.history_zone = load_campaign(settings.campaign_file).tz
    return app


def contracts() -> list[EventContract]:
    """Every service's published contract (docs/events/schemas is generated from these)."""
    return [s.contract for s in specs()]


EVENT_SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "events" / "schemas"


def demo_accounts() -> list[DemoPrincipal]:
    """The console's demo accounts: the same people as the demo tokens."""
    return demo_principals()


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


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


EMBEDDED_DATABASE = "lookback"


def login_roles() -> list[str]:
    return [MIGRATOR, *(service_role(name) for name in SERVICE_NAMES), SEQUENCER, AUDITOR, OPERATOR]


async def migrate(settings: Settings) -> list[str]:
    """Apply the migrations as the migration role (a separate, one-off step)."""
    assert settings.database_url is not None
    dsn = login_dsn(settings.database_url, MIGRATOR, settings.database_password(MIGRATOR))
    return await migrate_database(dsn, migration_folders())


async def provision(settings: Settings, admin_dsn: str, *, generate_passwords: bool = False,
                    broker_admin_url: str | None = None) -> list[str]:
    """Create or correct the database, its login roles and (given a broker) the broker's vhost,
    users and permissions, idempotently; with `generate_passwords`, make missing passwords in
    the secrets folder first. Returns what was done, in words (never a password)."""
    if settings.database_url is None:
        raise ValueError("provisioning needs LOOKBACK_DATABASE_URL (which database to provision)")
    roles = login_roles()
    if generate_passwords:
        if settings.secrets_dir is None:
            raise ValueError("generating passwords needs LOOKBACK_SECRETS_DIR")
        ensure_passwords(settings.secrets_dir, [f"{role}.db.password" for role in roles])
    passwords = {role: p for role in roles if (p := settings.database_password(role)) is not None}
    database = urlsplit(settings.database_url).path.lstrip("/") or "postgres"
    done = await provision_database(admin_dsn, DatabasePlan(database, SERVICE_NAMES, passwords))
    if broker_admin_url is not None and settings.amqp_url is not None:
        users = [*(service_role(name) for name in BACKEND_SERVICES), OPERATOR]
        if generate_passwords:
            assert settings.secrets_dir is not None
            ensure_passwords(settings.secrets_dir, [f"{user}.amqp.password" for user in users])
        broker_passwords = {u: p for u in users if (p := settings.broker_password(u)) is not None}
        admin = urlsplit(broker_admin_url)
        amqp = urlsplit(settings.amqp_url)
        vhost = unquote(amqp.path.lstrip("/")) or "/"
        done += await provision_broker(
            f"{admin.scheme}://{admin.hostname}:{admin.port or 15672}", admin.username or "",
            unquote(admin.password or ""),
            BrokerPlan(vhost, BACKEND_SERVICES, broker_passwords, prefix=settings.bus_prefix))
        # The whole topology, declared by the administrator: a service may declare only its own
        # objects, and no event may be published before the queues that should receive it exist.
        admin_amqp = urlunsplit((amqp.scheme, f"{admin.netloc.rpartition('@')[0]}@"
                                 f"{amqp.netloc.rpartition('@')[2]}", amqp.path, amqp.query, ""))
        await declare_bus(admin_amqp, settings.bus_prefix, BACKEND_SERVICES, all_consumers())
        done.append(f"exchanges and queues of {', '.join(BACKEND_SERVICES)} on {vhost}")
    return done


async def seed_if_empty(settings: Settings, *, liaisons: bool = True) -> Any:
    """Load the registry's sample data once, into an empty store (`liaisons=False`: without
    附件1, which the campaign's play files)."""
    from services.registry.seeding import seed_if_empty as seed_registry

    return await seed_registry(settings, liaisons=liaisons)


async def prepare_embedded(settings: Settings) -> Settings:
    """The embedded default: start (or reuse) PostgreSQL in the data folder and provision it.

    The newcomer's machine: the API documents and metrics are open to read; every login role
    gets a generated password in the data folder; the services never use the administrator.
    """
    admin = await asyncio.to_thread(start_embedded_database, settings.data_dir)
    settings = settings.model_copy(update={
        "database_url": _with_database(admin, EMBEDDED_DATABASE), "docs_access": "public",
        "metrics_access": "public",
        "secrets_dir": settings.secrets_dir or settings.data_dir / "secrets"})
    settings = ensure_local_secrets(settings, demo_principals())
    await provision(settings, admin, generate_passwords=True)
    log.info("embedded_database", data_dir=str(settings.data_dir))
    return settings


# The embedded default's clock (docs/adr/0018): the sample registry is dated 2024, so a newcomer
# sees the campaign in the middle of its work, running on in real time from that morning.
EMBEDDED_CLOCK = "campaign:2024-04-15T09:00:00+08:00"
CAMPAIGN_CLOCK_FILE = "campaign-clock.json"


def one_process_apps(settings: Settings, ports: dict[str, int], clock: Clock
                     ) -> tuple[dict[str, Any], dict[str, str]]:
    """The console and the four services in one process, on one clock, and their addresses."""
    urls = {name: f"http://{_loopback(settings.http_host)}:{port}" for name, port in ports.items()}
    apps = {name: service_app(name, settings.model_copy(
        update={"run_sequencer": settings.run_sequencer and name == SEQUENCER_HOST}),
        service_urls=urls, clock=clock) for name in SERVICE_NAMES}
    return apps, urls


def campaign_clock(settings: Settings, *, fresh: bool) -> CampaignClock:
    """The campaign clock of `settings.clock`, resumed where it left off in the data folder (a
    restart goes on from the moment it had reached, not back to the configured morning). A fresh
    store starts it at the play's first day: the weeks before the moment are played first."""
    from services.demo.scenario import START

    kind, _, moment = settings.clock.partition(":")
    assert kind == "campaign"
    target = parse_instant(moment)
    saved = settings.data_dir / CAMPAIGN_CLOCK_FILE
    if fresh and target > START:
        return CampaignClock(START)
    if saved.exists():
        record = json.loads(saved.read_text(encoding="utf-8"))
        if record.get("setting") == settings.clock:
            return CampaignClock(parse_instant(record["campaign"]), anchor=parse_instant(record["real"]))
    return CampaignClock(target)


def save_campaign_clock(settings: Settings, clock: CampaignClock) -> None:
    campaign, real = clock.anchor
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / CAMPAIGN_CLOCK_FILE).write_text(json.dumps(
        {"setting": settings.clock, "campaign": campaign.isoformat(), "real": real.isoformat()}),
        encoding="utf-8")


async def play_until_campaign_day(settings: Settings, urls: dict[str, str],
                                  clock: CampaignClock) -> None:
    """A fresh embedded store on a campaign clock: play the campaign (services/demo) from its
    first day up to the clock's moment, so the console opens on a campaign at work."""
    from services.demo.scenario import Endpoints, play, read_demo_tokens

    target = parse_instant(settings.clock.partition(":")[2])
    tokens = read_demo_tokens((settings.tokens_file or settings.data_dir / "tokens.json").parent
                              / "demo-tokens.txt")
    log.info("campaign_prelude_started", until=target.isoformat())
    if not is_json(settings.log_json):
        print(f"首次启动：正在演练活动前期的工作，直到活动时钟的 "
              f"{target.astimezone(load_campaign(settings.campaign_file).tz):%Y-%m-%d %H:%M}"
              f"（约一两分钟）……", flush=True)
    await play(Endpoints(urls["registry"], urls["rectification"], urls["inspection"],
                         urls["notifier"], tokens), until=target)
    save_campaign_clock(settings, clock)
    log.info("campaign_prelude_finished", now=clock().isoformat())


async def up(settings: Settings, *, port_base: int | None = None, seed: bool = True) -> None:
    """All services in one process: embedded PostgreSQL and the local transport by default.

    The embedded default runs on a campaign clock (EMBEDDED_CLOCK unless LOOKBACK_CLOCK is set);
    on a fresh store the campaign is played up to that moment before READY is printed."""
    configure_logging(json=settings.log_json, level=settings.log_level)
    if settings.embedded:
        if "clock" not in settings.model_fields_set:
            settings = settings.model_copy(update={"clock": EMBEDDED_CLOCK})
        settings = await prepare_embedded(settings)
    else:  # all services in one process is for trying things: keys made locally if not given
        settings = ensure_local_secrets(settings, demo_principals())
    assert settings.database_url is not None
    applied = await migrate(settings)
    if applied:
        log.info("migrations_applied", names=applied)
    if settings.amqp_url is not None:  # trying things: the URL's user is an administrator
        await declare_bus(settings.amqp_url, settings.bus_prefix, BACKEND_SERVICES, all_consumers())
    on_campaign_clock = settings.clock.startswith("campaign:")
    # On a campaign clock the play files 附件1 (one unit late), so the sample leaves it out.
    fresh = seed and await seed_if_empty(settings, liaisons=not on_campaign_clock) is not None
    clock: Clock
    if on_campaign_clock:
        clock = campaign_clock(settings, fresh=fresh)
        prelude = fresh and clock() < parse_instant(settings.clock.partition(":")[2])
        if not prelude:
            save_campaign_clock(settings, clock)
    else:
        clock, prelude = clock_from_setting(settings.clock), False
    from services.console.cli import ensure_demo_accounts, print_sign_in

    demo_file = await ensure_demo_accounts(settings, demo_accounts()) if seed else None
    ports = {name: (port_base + i if port_base is not None else DEFAULT_PORTS[name])
             for i, name in enumerate(SERVICE_NAMES)}
    apps, urls = one_process_apps(settings, ports, clock)
    stop = asyncio.Event()
    background: set[asyncio.Task[None]] = set()
    failed: list[Exception] = []

    def announce(listening: Any) -> None:
        print_sign_in(urls["console"], demo_file, json=is_json(settings.log_json))
        print_listening(listening, settings)

    async def prelude_then_announce(listening: Any) -> None:
        assert isinstance(clock, CampaignClock)
        try:
            await play_until_campaign_day(settings, urls, clock)
        except Exception as exc:
            log.error("campaign_prelude_failed", error=f"{type(exc).__name__}: {exc}"[:1000])
            failed.append(exc)
            stop.set()
            return
        announce(listening)

    def ready(listening: Any) -> None:
        if not prelude:
            announce(listening)
            return
        task = asyncio.get_running_loop().create_task(prelude_then_announce(listening))
        background.add(task)
        task.add_done_callback(background.discard)

    await serve_apps(apps, settings, ports, on_ready=ready, stop=stop)
    if failed:
        raise SystemExit(f"playing the campaign up to {settings.clock} failed: {failed[0]}; "
                         f"start again with an empty data folder ({settings.data_dir})")


async def serve(name: str, settings: Settings) -> None:
    """One service process against PostgreSQL and RabbitMQ. Migrations are a separate step
    (`lookback migrate`, as the migration role): a service's role may not change the schema; so
    is the broker's topology (`lookback provision`): a service's user may declare only its own."""
    configure_logging(json=settings.log_json, level=settings.log_level)
    if settings.database_url is None:  # a log line, so that it is JSON like every other
        log.error("cannot_start", service=name,
                  reason="lookback serve needs LOOKBACK_DATABASE_URL (use `lookback up` to run "
                         "everything on the embedded default)")
        raise SystemExit(1)
    port = settings.http_port or DEFAULT_PORTS[name]
    app = service_app(name, settings)
    await serve_apps({name: app}, settings, {name: port},
                     on_ready=lambda ls: print_listening(ls, settings))


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))
