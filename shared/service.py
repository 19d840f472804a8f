"""The service shell: one function turns a ServiceSpec into a runnable process (an ASGI app).

Every service looks alike: its consumers (RabbitMQ or local), its projections (always tailing its
own sequenced events), its relay (RabbitMQ mode), a sequencer candidate (one is elected across all
processes), and an HTTP API with /healthz, /readyz, /metrics, OpenAPI at /docs and the AsyncAPI
document at /asyncapi (try-it-out off). Resources are created in the lifespan, never at import.

/docs is Swagger UI served by this process from an installed package (`fastapi-offline` ships
its files), never from a CDN: on an intranet with no internet a CDN page is blank.

It stays one module past 400 lines on purpose: the composition root, the order in which its parts
start and stop (docs/adr/0011: stop taking work first, all within the graceful timeout) and the
operational routes that report on those parts are one story, read together.
"""
from __future__ import annotations

import asyncio
import functools
import re
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared import topology
from shared.api_contract import (
    AsyncApiDocument,
    Liveness,
    Readiness,
    VocabularyAnswer,
    include,
    install_openapi,
)
from shared.api_docs import SWAGGER_ASSETS, install_swagger_ui
from shared.assertions import verifier_from_settings
from shared.asyncapi import asyncapi_page, document
from shared.audit_http import router as audit_router
from shared.auth import TokenStore
from shared.campaign import load_campaign
from shared.clock import MovableClock, clock_from_setting
from shared.consistency import ConsistencyTokens, ReadFence, remember
from shared.consuming import Clock, ConsumerRuntime, ConsumerSpec
from shared.deadletters import measure_depth as measure_dead_letter_depth
from shared.errors import (
    MESSAGES_ZH,
    DomainError,
    ForbiddenError,
    LookbackError,
    NotFoundError,
    UnauthenticatedError,
    ValidationFailed,
)
from shared.health import Sampler, Watched, pool_load
from shared.http import Edge, EdgePolicy
from shared.logging import get_logger
from shared.messages import Actor, Command, EventContract, Role
from shared.metrics import Metrics
from shared.pipeline import CommandPipeline, CommandResult, CommandTable
from shared.provisioning import OPERATOR, SEQUENCER, service_role
from shared.sequencer import Sequencer
from shared.settings import Settings
from shared.signing import CheckpointSigner, load_private_key
from shared.store import PostgresEventStore, create_pool, login_dsn
from shared.telemetry import correlation_of, instrument
from shared.transport import LedgerWaker, LocalTransport, RabbitTransport, Relay
from shared.vocabulary import Vocabulary
from shared.witness import WitnessShipper, targets_from_text

log = get_logger()
D = TypeVar("D")


@dataclass(frozen=True)
class ServiceSpec(Generic[D]):
    """What makes a service itself; everything else is the shell.

    - `contract`: its name, the stream categories it alone writes, its events (events.py);
    - `commands`: its command table (handlers.py), run by the kernel's pipeline;
    - `router`: its HTTP routes (api.py); `consumers`: what it consumes from other services
      over the bus; `projections`: read models of its own events (always tailing the ledger);
    - `build_deps(settings, pool)`: its typed dependencies (campaign rules, key vault, …);
    - `background`: long-running loops of its own (a periodic check), started and stopped with
      the process; `migrations`: the folder of its SQL (roles, categories, read models);
    - `vocabulary(deps)`: every code it speaks with its Chinese label (shared/vocabulary.py),
      served at `GET /vocabulary`.
    """

    contract: EventContract
    description: str
    commands: CommandTable = field(default_factory=dict)
    router: APIRouter | None = None
    consumers: Sequence[ConsumerSpec] = ()
    projections: Sequence[ConsumerSpec] = ()
    build_deps: Callable[[Settings, asyncpg.Pool], D] | None = None
    background: Sequence[Callable[[Runtime[D]], Coroutine[Any, Any, None]]] = ()
    migrations: Path | None = None
    # Larger bodies than the edge's 1 MiB default, by path prefix (an import workbook).
    body_limits: Mapping[str, int] = field(default_factory=dict)
    # Paths anyone may call without a token (the public results page); everything else needs one.
    public_paths: frozenset[str] = frozenset()
    vocabulary: Callable[[D], Vocabulary] | None = None
    version: str = "0.1.0"

    @property
    def name(self) -> str:
        return self.contract.service


@dataclass
class Runtime(Generic[D]):
    """The service's resources, reachable from routes as `request.app.state.runtime`."""

    spec: ServiceSpec[D]
    settings: Settings
    pool: asyncpg.Pool
    store: PostgresEventStore
    metrics: Metrics
    tokens: TokenStore
    clock: Clock
    deps: D
    commands: CommandPipeline[D]
    transport: RabbitTransport | LocalTransport | None = None
    projections: LocalTransport | None = None
    relay: Relay | None = None
    sequencer: Any = None
    waker: LedgerWaker | None = None
    consumer_pool: asyncpg.Pool | None = None
    background_pool: asyncpg.Pool | None = None
    sampler: Sampler | None = None
    shutting_down: bool = False
    # Set with `shutting_down`: a background loop that sleeps until a moment awaits this too, so
    # it stops at once instead of being waited for and cancelled.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def authenticate(self, request: Request) -> Actor:
        """The caller; the edge (shared/http.py) authenticated it before the body was read."""
        actor = getattr(request.state, "actor", None)
        if isinstance(actor, Actor):
            return actor
        return self.tokens.authenticate(request.headers.get("authorization"))

    @property
    def read_fence(self) -> ReadFence:
        """What a read waits for to see a caller's own write (shared/consistency.py)."""
        return ReadFence(service=self.spec.name, projections=self.spec.projections,
                         consumers=self.spec.consumers)

    async def run(self, command: Command, actor: Actor, request: Request | None = None
                  ) -> CommandResult:
        """A command from the HTTP edge: now, the caller's correlation id, the pipeline; the
        answer carries the command's consistency token (X-Lookback-Token)."""
        result = await self.commands.run(
            command, actor=actor, now=self.clock(),
            correlation_id=correlation_of(request) if request is not None else None)
        if request is not None:
            remember(request, result)
        return result


def runtime_of(request: Request) -> Runtime[Any]:
    runtime: Runtime[Any] = request.app.state.runtime
    return runtime


def default_sequencer(settings: Settings, metrics: Metrics | None = None) -> Sequencer:
    """A sequencer candidate; the advisory lock elects one across every process of the system."""
    assert settings.database_url is not None
    checkpoint_dir = settings.resolved_checkpoint_dir()
    checkpoint_dir.mkdir(parents=True, exist_ok=True)  # an auditor can point at it from the start
    targets = targets_from_text(settings.witness, settings.data_dir / "witness")
    witness = WitnessShipper(settings.database_url, targets, role=SEQUENCER,
                             password=settings.database_password(SEQUENCER),
                             gauge=metrics.witnessed_tree_size if metrics else None
                             ) if targets else None
    return Sequencer(settings.database_url, signer=load_signer(settings),
                     password=settings.database_password(SEQUENCER),
                     checkpoint_dir=checkpoint_dir,
                     checkpoint_every_events=settings.checkpoint_every_events,
                     checkpoint_every_seconds=settings.checkpoint_every_seconds,
                     role=SEQUENCER, poll_interval=settings.sequencer_poll_interval,
                     witness=witness)


def load_signer(settings: Settings) -> CheckpointSigner | None:
    """The checkpoint signing key from settings; None (unsigned checkpoints) is logged loudly."""
    text = settings.signing_key
    if text is None and settings.signing_key_file is not None:
        text = settings.signing_key_file.read_text(encoding="utf-8")
    if text is None:
        log.warning("checkpoints_unsigned", reason="no LOOKBACK_SIGNING_KEY configured")
        return None
    return CheckpointSigner(load_private_key(text.strip()))


def _error(status: int, code: str, detail: Any, headers: dict[str, str] | None = None, *,
           message: str | None = None) -> JSONResponse:
    """The one error body: a machine code, a Chinese message a person can act on, the detail."""
    body = {"error": code, "message": message or MESSAGES_ZH.get(status, MESSAGES_ZH[500]),
            "detail": detail}
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Errors become HTTP answers here, in one place: each error class carries its status and
    code (shared/errors.py), so a rule has one status wherever it is broken."""

    @app.exception_handler(LookbackError)
    async def _lookback(_: Request, exc: LookbackError) -> JSONResponse:
        if isinstance(exc, ValidationFailed):
            return _error(exc.status, exc.code, [p.as_dict() for p in exc.problems],
                          message=exc.message_zh)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, UnauthenticatedError) else \
            getattr(exc, "http_headers", None)
        return _error(exc.status, exc.code, str(exc), headers, message=exc.message_zh)

    @app.exception_handler(Exception)
    async def _500(request: Request, exc: Exception) -> JSONResponse:
        # Through structlog (and its masking), never plain stderr; the message is left out: it
        # may quote input (a name, a phone), and the type and frames are what a fix needs.
        frames = traceback.extract_tb(exc.__traceback__)[-5:]
        log.error("unhandled_error", method=request.method, path=request.url.path,
                  error_type=type(exc).__name__,
                  frames=[f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames])
        return _error(500, "internal_error", "an unexpected error; it is logged")

    @app.exception_handler(RequestValidationError)
    async def _422(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [_field_problem(e) for e in exc.errors()]
        return _error(422, "invalid_request", fields)


def _field_problem(error: Mapping[str, Any]) -> dict[str, Any]:
    """One refused field; a value outside an enum or literal also names the valid codes."""
    problem: dict[str, Any] = {
        "field": ".".join(str(p) for p in error.get("loc", ()) if p != "body"),
        "reason": error.get("msg", "")}
    expected = (error.get("ctx") or {}).get("expected")
    if error.get("type") in ("enum", "literal_error") and isinstance(expected, str):
        problem["valid"] = re.findall(r"'([^']*)'", expected)
    return problem


def asyncapi_of(spec: ServiceSpec[Any], settings: Settings) -> dict[str, Any]:
    """The service's AsyncAPI document, for the deployment `settings` describe."""
    return document(service=spec.name, version=spec.version, description=spec.description,
                    contract=spec.contract, consumers=spec.consumers,
                    names=topology.Names(settings.bus_prefix),
                    deployment=settings.deployment_name, amqp_url=settings.amqp_url)


def create_service_app(spec: ServiceSpec[Any], settings: Settings | None = None, *,
                       pool: asyncpg.Pool | None = None, clock: Clock | None = None,
                       tokens: TokenStore | None = None,
                       sequencer_factory: Callable[[Settings], Any] | None = None) -> FastAPI:
    """The one composition root of a service process (each service's `create_app` calls it)."""
    settings = settings or Settings()
    clock = clock or clock_from_setting(settings.clock)
    tokens = tokens or TokenStore.from_sources(file=settings.tokens_file,
                                               inline_json=settings.tokens_json,
                                               assertions=verifier_from_settings(settings))
    metrics = Metrics(spec.name)
    names = topology.Names(settings.bus_prefix)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.database_url is None:
            raise RuntimeError("no database URL: run through `lookback up` for the embedded mode")
        own_pool = pool is None
        role = service_role(spec.name)
        password = settings.database_password(role)

        async def role_pool(kind: str, max_size: int, min_size: int = 0) -> asyncpg.Pool:
            assert settings.database_url is not None
            return await create_pool(settings.database_url, role=role, password=password,
                                     min_size=min_size, max_size=max_size,
                                     server_settings={"application_name": f"lookback:{role}:{kind}"})

        # Separate pools (docs/adr/0011): a backlog in the consumers cannot take the read
        # side's connections, nor the relay's, and the other way round.
        the_pool = pool or await role_pool("api", settings.db_pool_size, min_size=1)
        consumer_pool = await role_pool("consumers", settings.consumer_pool_size)
        background_pool = await role_pool("background", settings.background_pool_size)
        store = PostgresEventStore(the_pool)
        deps = spec.build_deps(settings, the_pool) if spec.build_deps else None
        commands = CommandPipeline(service=spec.name, table=spec.commands,
                                   events=spec.contract.registry(), store=store, deps=deps,
                                   metrics=metrics.pipeline, clock=clock)
        runtime = Runtime(spec=spec, settings=settings, pool=the_pool, store=store,
                          metrics=metrics, tokens=tokens, clock=clock, deps=deps,
                          commands=commands, consumer_pool=consumer_pool,
                          background_pool=background_pool)
        consumer_runtime = ConsumerRuntime(service=spec.name, store=store, deps=deps,
                                           commands=commands)
        app.state.runtime = runtime
        runtime.waker = LedgerWaker(background_pool)
        await runtime.waker.start()
        if settings.amqp_url is None:  # the local transport
            runtime.transport = LocalTransport(service=spec.name, pool=consumer_pool,
                                               runtime=consumer_runtime, metrics=metrics,
                                               clock=clock, poll_interval=settings.poll_interval,
                                               waker=runtime.waker)
        else:
            # Its own broker user, never the URL's (an administrator's, in development).
            amqp_url = login_dsn(settings.amqp_url, role, settings.broker_password(role))
            runtime.transport = RabbitTransport(
                service=spec.name, amqp_url=amqp_url, names=names, pool=consumer_pool,
                # The producer's user; or the operator's, putting a dead letter back (`lookback
                # dlq replay`): either way the event must match the producer's ledger.
                publishers=lambda producer: frozenset({service_role(producer), OPERATOR}),
                runtime=consumer_runtime, metrics=metrics, clock=clock,
                publish_timeout=settings.publish_timeout,
                graceful_timeout=settings.graceful_timeout, retry_delays=settings.retry_delays,
                prefetch=settings.consumer_prefetch, concurrency=settings.consumer_concurrency)
            if spec.contract.categories:
                runtime.relay = Relay(service=spec.name, categories=spec.contract.categories,
                                      pool=background_pool, publish=runtime.transport.publish,
                                      metrics=metrics, poll_interval=settings.poll_interval,
                                      waker=runtime.waker, deployment=settings.deployment_name)
        for consumer in spec.consumers:
            runtime.transport.add_consumer(consumer)
        runtime.projections = LocalTransport(service=spec.name, pool=background_pool,
                                             runtime=consumer_runtime, metrics=metrics,
                                             clock=clock, poll_interval=settings.poll_interval,
                                             waker=runtime.waker)
        for projection in spec.projections:
            runtime.projections.add_consumer(projection)
        runtime.sampler = _sampler(settings, role, password, metrics, runtime)
        sequencer_stop = asyncio.Event()
        if settings.run_sequencer:
            runtime.sequencer = (sequencer_factory(settings) if sequencer_factory
                                 else default_sequencer(settings, metrics))
            runtime.tasks.append(asyncio.create_task(runtime.sequencer.run(sequencer_stop),
                                                     name="sequencer"))
        await runtime.projections.start()
        await runtime.transport.start()
        if runtime.relay is not None:
            runtime.tasks.append(asyncio.create_task(runtime.relay.run(), name="relay"))
        for loop in spec.background:
            runtime.tasks.append(asyncio.create_task(loop(runtime),
                                                     name=f"{spec.name}:{loop.__name__}"))
        runtime.tasks.append(asyncio.create_task(runtime.sampler.run(), name="metrics"))
        for task in runtime.tasks:
            task.add_done_callback(_report_task_end)
        log.info("service_started", service=spec.name,
                 transport="local" if settings.local_transport else "rabbitmq")
        try:
            yield
        finally:
            await _shut_down(app, runtime, sequencer_stop,
                             pools=[p for p in (the_pool if own_pool else None, consumer_pool,
                                                background_pool) if p is not None])

    docs = settings.docs_access != "off"
    app = FastAPI(title=f"Lookback {spec.name}", description=spec.description,
                  version=spec.version, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json" if docs else None,
                  # operation ids are the routes' names: a generated client's functions read well
                  generate_unique_id_function=lambda route: route.name)
    install_error_handlers(app)
    install_openapi(app)
    public = {"/healthz", "/readyz", *spec.public_paths}
    if settings.docs_access == "public":
        public |= {"/docs", "/docs/oauth2-redirect", "/openapi.json", "/asyncapi", "/asyncapi.json"}
    if settings.metrics_access == "public":
        public.add("/metrics")
    app.add_middleware(ConsistencyTokens)
    app.add_middleware(Edge, policy=lambda: EdgePolicy(
        authenticate=tokens.authenticate, public_paths=frozenset(public),
        public_prefixes=(SWAGGER_ASSETS,), body_limits=spec.body_limits))
    instrument(app, service=spec.name, registry=metrics.registry)
    app.state.spec = spec
    app.state.settings = settings

    def is_public(path: str) -> bool:
        return path in public or path.startswith(SWAGGER_ASSETS)

    # The routes every service serves; those not public require the bearer token (api_contract).
    kernel = APIRouter()

    @kernel.get("/healthz", tags=["operations"], response_model=Liveness,
                summary="存活检查 · Liveness")
    async def healthz() -> dict[str, str]:
        """The process is alive (nothing more). 进程存活（仅此而已）。"""
        return {"status": "alive", "service": spec.name}

    @kernel.get("/readyz", tags=["operations"], response_model=Readiness,
                summary="就绪检查 · Readiness",
                responses={503: {"model": Readiness, "description": "Not ready. 未就绪。"}})
    async def readyz(request: Request) -> JSONResponse:
        """Ready when the database answers, the broker is connected and consumers attached.

        Busy is not down: the database is probed on the metrics sampler's own connection, never
        through a pool that consumers may have filled; `busy` and `pools` say how loaded it is.
        数据库可用、消息总线已连接且消费者已就位时为就绪。"""
        runtime: Runtime[Any] = request.app.state.runtime
        checks: dict[str, str] = {}
        if runtime.shutting_down:
            checks["process"] = "shutting down"
        checks["database"] = (await runtime.sampler.probe() if runtime.sampler is not None
                              else "missing")
        for label, part in (("transport", runtime.transport), ("projections", runtime.projections)):
            ok, why = await part.ready() if part is not None else (False, "missing")
            checks[label] = "ok" if ok else why
        for task in runtime.tasks:
            if task.done() and not runtime.shutting_down:
                checks[task.get_name()] = "stopped"  # a relay or sequencer that died is not ready
        ready = all(v == "ok" for v in checks.values())
        pools, busy = pool_load({"api": runtime.pool, "consumers": runtime.consumer_pool,
                                 "background": runtime.background_pool})
        return JSONResponse({"ready": ready, "busy": busy, "checks": checks, "pools": pools},
                            status_code=200 if ready else 503)

    if settings.metrics_access != "off":
        @kernel.get("/metrics", tags=["operations"], response_class=PlainTextResponse,
                    summary="运行指标 · Prometheus metrics")
        async def metrics_endpoint() -> PlainTextResponse:
            """Prometheus text exposition of what this process measures. 本进程的运行指标。"""
            # Only what the loops and the sampler already measured: a scrape queries nothing.
            return PlainTextResponse(generate_latest(metrics.registry).decode(),
                                     media_type=CONTENT_TYPE_LATEST)

    if spec.vocabulary is not None:
        describe = spec.vocabulary

        @kernel.get("/vocabulary", tags=["vocabulary"], response_model=VocabularyAnswer,
                    response_model_exclude_unset=True, summary="代码与中文名称 · Vocabulary")
        async def vocabulary(request: Request) -> dict[str, Any]:
            """Every code this service speaks with its Chinese label (and the other words the
            bulk import accepts for it): statuses, units, types, services, checklist items, ….
            本服务使用的全部代码及其中文名称。"""
            runtime: Runtime[Any] = request.app.state.runtime
            runtime.authenticate(request)
            return describe(runtime.deps).as_dict()

    if docs:
        asyncapi_document = functools.cache(lambda: asyncapi_of(spec, settings))

        @kernel.get("/asyncapi.json", tags=["operations"], response_model=AsyncApiDocument,
                    summary="AsyncAPI 文档 · AsyncAPI document")
        async def asyncapi_json() -> JSONResponse:
            """This service's AsyncAPI 3.1 document: what it publishes and consumes on RabbitMQ,
            with the CloudEvents headers, queue bindings and arguments, dead-letter path and
            archive. 本服务在消息总线上发布与消费的消息、队列绑定、死信路径与归档。"""
            return JSONResponse(asyncapi_document())

        @kernel.get("/asyncapi", include_in_schema=False, response_class=HTMLResponse)
        async def asyncapi_html() -> HTMLResponse:
            return HTMLResponse(asyncapi_page(asyncapi_document()))

    _add_clock_routes(kernel, clock, settings)
    include(app, kernel, public=is_public)
    # read-only proofs and history for auditors, on every service
    include(app, audit_router, public=is_public)
    if spec.router is not None:
        include(app, spec.router, public=is_public)
    if docs:
        install_swagger_ui(app)
    return app


class ClockMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    now: AwareDatetime


class ClockReading(BaseModel):
    now: str = Field(examples=["2024-04-15T09:00:00+08:00"])
    simulated: bool = Field(description="a simulated or campaign clock, not the wall clock")


def _add_clock_routes(router: APIRouter, clock: Clock, settings: Settings) -> None:
    """GET /clock: the service's time; POST /clock: move a simulated or campaign clock forward
    (city_admin; a service on the real clock answers 404, moving back 409). A demo or a test
    driving several processes moves each one's clock through this route (docs/adr/0018)."""
    zone = load_campaign(settings.campaign_file).tz

    def view(now: datetime) -> dict[str, Any]:
        return {"now": now.astimezone(zone).isoformat(), "simulated": isinstance(clock, MovableClock)}

    @router.get("/clock", tags=["clock"], response_model=ClockReading,
                summary="当前时间 · The service's clock")
    async def read_clock(request: Request) -> dict[str, Any]:
        """The service's now, in the campaign's offset, and whether its clock can be moved.
        本服务的当前时间（活动时钟或模拟时钟可拨动）。"""
        request.app.state.runtime.authenticate(request)
        return view(clock())

    @router.post("/clock", tags=["clock"], response_model=ClockReading,
                 summary="拨动活动时钟 · Move the campaign or simulated clock")
    async def move_clock(body: ClockMove, request: Request) -> dict[str, Any]:
        """Move a simulated or campaign clock forward (LOOKBACK_CLOCK; city_admin). A service on
        the real clock answers 404; moving back is refused (409). 将模拟时钟向前拨动。"""
        actor = request.app.state.runtime.authenticate(request)
        if actor.role is not Role.CITY_ADMIN:
            raise ForbiddenError(f"{actor.role.value} may not move the clock (only city_admin)")
        if not isinstance(clock, MovableClock):
            raise NotFoundError("this service runs on the real clock")
        try:
            return view(clock.set(body.now))
        except ValueError as exc:
            raise DomainError(str(exc), code="clock_backwards") from None


def _sampler(settings: Settings, role: str, password: str | None, metrics: Metrics,
             runtime: Runtime[Any]) -> Sampler:
    """What this process measures: its relay, its broker consumers and its projections."""
    assert settings.database_url is not None
    watched = []
    transport = runtime.transport
    for spec in runtime.spec.consumers:
        if isinstance(transport, RabbitTransport):
            positions = transport.positions

            def remember(position: int, name: str = spec.name,
                         positions: dict[str, int] = positions) -> None:
                positions[name] = max(positions.get(name, 0), position)

            def position(name: str = spec.name, p: dict[str, int] = positions) -> int | None:
                return p.get(name)

            watched.append(Watched(spec.name, spec.categories, tuple(spec.event_types),
                                   position=position, inbox_consumer=spec.name,
                                   remember=remember))
        else:
            watched.append(Watched(spec.name, spec.categories, tuple(spec.event_types),
                                   position_key=f"local:{spec.name}"))
    for spec in runtime.spec.projections:
        watched.append(Watched(spec.name, spec.categories, tuple(spec.event_types),
                               position_key=f"local:{spec.name}"))
    relay = None
    if runtime.relay is not None:
        the_relay = runtime.relay
        relay = Watched("relay", tuple(the_relay.categories), position=lambda: the_relay.position,
                        position_key=the_relay.name)
    async def dead_letter_depth(conn: asyncpg.Connection) -> None:
        await measure_dead_letter_depth(runtime, metrics.dead_letters, conn=conn)

    return Sampler(dsn=settings.database_url, role=role, password=password, metrics=metrics,
                   relay=relay, watched=watched, extras=[dead_letter_depth],
                   interval=settings.metrics_interval)


# Of the graceful timeout, what is kept back for closing connections after the work is done.
CLOSE_RESERVE = 2.0


async def _shut_down(app: FastAPI, runtime: Runtime[Any], sequencer_stop: asyncio.Event, *,
                     pools: Sequence[asyncpg.Pool]) -> None:
    """Stop taking work first, finish or give back what is held, close; all within the graceful
    timeout, counted from when the stop began (`app.state.shutdown_deadline`, set by the
    process's signal handler; else from now)."""
    loop = asyncio.get_running_loop()
    runtime.shutting_down = True
    runtime.stopping.set()
    settings = runtime.settings
    deadline = getattr(app.state, "shutdown_deadline", None) or loop.time() + settings.graceful_timeout
    reserve = min(CLOSE_RESERVE, settings.graceful_timeout / 4)

    def left(keep: float = reserve) -> float:
        return max(deadline - loop.time() - keep, 0.1)

    if runtime.relay is not None:
        runtime.relay.stop()
    sequencer_stop.set()
    if runtime.sampler is not None:
        runtime.sampler.stop()
    parts = [part.stop(left()) for part in (runtime.transport, runtime.projections)
             if part is not None]
    await asyncio.gather(*parts, _finish(runtime.tasks, left()), return_exceptions=True)
    if runtime.waker is not None:
        await runtime.waker.stop()
    if runtime.sampler is not None:
        await runtime.sampler.close()
    for pool in pools:
        try:
            await asyncio.wait_for(pool.close(), left(0.0))
        except Exception:  # a connection still busy past the deadline: cut it
            pool.terminate()
    log.info("service_stopped", service=runtime.spec.name,
             overran=round(max(loop.time() - deadline, 0.0), 3))


async def _finish(tasks: Sequence[asyncio.Task[Any]], timeout: float) -> None:
    """Let the loops end by themselves within `timeout`; cancel the rest."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=1.0)


def _report_task_end(task: asyncio.Task[Any]) -> None:
    """A background loop should only end at shutdown; if it died, say so at once."""
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.error("background_task_failed", task=task.get_name(), error=f"{type(exc).__name__}: {exc}")
