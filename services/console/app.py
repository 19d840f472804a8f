"""The console's composition root: its own process (`lookback serve console`), or one of the
apps of `lookback up`.

It is not built by the kernel's service shell: it has no events, no consumers and no bearer
callers; people reach it with a browser and a session cookie. Its `SPEC` still declares it to the
system (its database role and migrations, an empty event contract), so provisioning gives it a
login role and the migrations make its tables. Resources (its pool, the HTTP client to the
services) are made in the lifespan, never at import.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from services.console import pages
from services.console.accounts import Accounts
from services.console.backend import Backend, ServiceRefused
from services.console.config import ConsoleSettings
from services.console.evidence import EvidenceStore, FolderEvidenceStore
from services.console.labels import Labels
from services.console.state import ConsoleState
from services.console.web import CsrfRefused, NotSignedIn, Person, make_environment, render
from shared.assertions import signer_from_settings
from shared.campaign import load_campaign
from shared.http import Edge, EdgePolicy, Scope
from shared.logging import get_logger
from shared.messages import EventContract
from shared.provisioning import service_role
from shared.service import ServiceSpec
from shared.settings import Settings
from shared.store import create_pool
from shared.telemetry import instrument

log = get_logger()

CONTRACT = EventContract(service="console", categories=(), events=())
SPEC: ServiceSpec[None] = ServiceSpec(
    contract=CONTRACT, description="Lookback console (控制台): the web application people use",
    migrations=Path(__file__).with_name("sql"))

STATIC = Path(__file__).with_name("static")
# The largest form is a 销号 request or a visit with a few photos; a plain form is small.
UPLOAD_PATHS = ("/problems/", "/inspection/", "/reports/")
MAX_FILES = 8

# No script, style, font or image from anywhere but here (the "no internet needed" is
# also what keeps a page from leaking who looks at what). Charts are SVG images of our own.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; font-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from another site (`Sec-Fetch-Site`) or
    another origin (`Origin`); a client that sends neither (a script, an old browser) passes on to
    the session's CSRF token."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null" and request.headers.get("sec-fetch-site") is None:
        return True
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


def _refuse_anyone(_: str | None) -> Any:  # every console path is reached with a session instead
    raise AssertionError("the console's edge authenticates no bearer token")


def _signed_in(scope: Scope) -> str | None:
    """The signed-in person's account id for the access line (the session cookie, never)."""
    person = scope.get("state", {}).get("person")
    return person.account.account_id if isinstance(person, Person) else None


def create_app(settings: Settings | None = None, *, console: ConsoleSettings | None = None,
               service_urls: Mapping[str, str] | None = None,
               evidence: EvidenceStore | None = None, pool: asyncpg.Pool | None = None,
               transport: httpx.AsyncBaseTransport | None = None, **_: Any) -> FastAPI:
    settings = settings or Settings()
    console = console or ConsoleSettings()
    campaign = load_campaign(settings.campaign_file)
    labels = Labels(campaign)
    state = ConsoleState(
        settings=settings, console=console, campaign=campaign, labels=labels,
        templates=make_environment(labels, campaign.tz),
        evidence=evidence or FolderEvidenceStore(console.evidence_dir
                                                 or settings.data_dir / "evidence"))
    urls = dict(console.service_urls())
    urls.update(service_urls or {})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.database_url is None:
            raise RuntimeError("no database URL: run through `lookback up` for the embedded mode")
        role = service_role(CONTRACT.service)
        state.pool = pool or await create_pool(settings.database_url, role=role,
                                               password=settings.database_password(role),
                                               max_size=min(settings.db_pool_size, 5))
        state.accounts = Accounts(state.pool, console)
        signer = signer_from_settings(settings, issuer=console.issuer)
        if signer is None:
            log.warning("console_cannot_sign", reason="no LOOKBACK_ASSERTION_SIGNING_KEY: "
                        "pages that read or change the services will answer 503")
        state.backend = Backend(urls, signer, timeout=console.service_timeout, transport=transport)
        log.info("service_started", service="console", services=urls)
        try:
            yield
        finally:
            if state.vocabulary_task is not None:
                state.vocabulary_task.cancel()
            await state.backend.close()
            if pool is None:
                await asyncio.wait_for(state.pool.close(), 15)
            log.info("service_stopped", service="console")

    app = FastAPI(title="Lookback console", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.console = state
    app.add_middleware(Edge, policy=lambda: EdgePolicy(
        authenticate=_refuse_anyone, public_prefixes=("/",), default_body_limit=64 * 1024,
        body_limits={p: MAX_FILES * console.evidence_max_bytes + 64 * 1024
                     for p in UPLOAD_PATHS}))

    # Outermost: the correlation id of every answer (passed on to the services the console calls,
    # so a person's click and the events it causes share it) and one access line per request.
    instrument(app, service="console", registry=None, actor_of=_signed_in)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        if request.method == "POST" and not same_origin(request):
            # Another site's form (sign-in included, which has no session to hold a CSRF token
            # yet): the browser says where the request came from, and we refuse it.
            log.warning("console_cross_site_post", path=request.url.path)
            return Response("跨站提交已被拒绝", status_code=403, media_type="text/plain; charset=utf-8",
                            headers=SECURITY_HEADERS)
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path.startswith("/static/"):
            response.headers["cache-control"] = "public, max-age=3600"
        else:
            response.headers.setdefault("cache-control", "no-store")
        return response

    @app.exception_handler(NotSignedIn)
    async def _sign_in_first(request: Request, exc: NotSignedIn) -> Response:
        from urllib.parse import quote

        return Response(status_code=303, headers={"location": f"/login?next={quote(exc.next_path)}"})

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, exc: CsrfRefused) -> HTMLResponse:
        log.warning("console_csrf_refused", path=request.url.path)
        return render(request, "error.html", status_code=403, title="表单已失效",
                      message="表单已过期或不是从本系统提交的，请返回页面刷新后重新提交。")

    @app.exception_handler(ServiceRefused)
    async def _refused(request: Request, exc: ServiceRefused) -> HTMLResponse:
        titles = {401: "身份校验未通过", 403: "无权访问", 404: "未找到", 503: "服务暂不可用"}
        person = getattr(request.state, "person", None)
        return render(request, "error.html", person=person, status_code=exc.status,
                      title=titles.get(exc.status, "请求未被受理"), message=exc.explain())

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "alive", "service": "console"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            assert state.pool is not None
            await asyncio.wait_for(state.pool.fetchval("SELECT 1"), 2.0)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["signing_key"] = "ok" if state.backend and state.backend.signer else "missing"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            return Response(status_code=404)
        return FileResponse(path)

    for router in pages.ROUTERS:
        app.include_router(router)
    return app
