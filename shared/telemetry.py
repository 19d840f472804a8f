"""What a service process tells about its HTTP side: a correlation id on every request and
response, one access-log line per request, and metrics of requests and of the process.

- **Correlation id.** The caller's `X-Correlation-ID` when it is a UUID, else a new one; it is
  answered in the same header on every response (errors included: the 401 of the edge, the 500
  of an unhandled error), bound to every log line of the request, and carried by the command a
  request sends into its events' metadata (`correlation_of`).
- **Access log.** One `http_request` line per request, through structlog: method, the route's
  path TEMPLATE (`/projects/{project_id}`, never the raw path, which may carry an id or a name,
  and never the query string, which may carry a name), status, duration, the actor's id (never a
  token or a cookie) and the correlation id.
- **Metrics.** prometheus-fastapi-instrumentator counts requests and times them by method,
  status and route template (an unknown path counts as `none`, so a scanner cannot blow up the
  label set); prometheus_client's process, platform and garbage-collector collectors describe
  the process. All of
  it in the service's own registry, the one its `/metrics` serves.

The request middleware wraps the whole application, outside Starlette's error middleware: that
is the only place that sees the 500 an unhandled error becomes, so that answer carries the
header and is logged like any other (docs/adr/0017).
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar

import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator.routing import get_route_name
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection

from shared.http import ASGIApp, Message, Receive, Scope, Send
from shared.logging import get_logger

log = get_logger()

CORRELATION_HEADER = "X-Correlation-ID"
UNMATCHED = "none"  # the instrumentator's label for a path no route has

_current: ContextVar[uuid.UUID | None] = ContextVar("lookback_correlation_id", default=None)


def current_correlation_id() -> uuid.UUID | None:
    """The correlation id of the request being handled in this context, if any."""
    return _current.get()


def correlation_of(connection: HTTPConnection) -> uuid.UUID:
    """The request's correlation id (the one its response answers with)."""
    found = connection.scope.get("state", {}).get("correlation_id")
    return found if isinstance(found, uuid.UUID) else parse_correlation_id(
        connection.headers.get(CORRELATION_HEADER))


def parse_correlation_id(raw: str | None) -> uuid.UUID:
    """The caller's id if it is a UUID, else a new one: a free-text header would let a caller
    write what it likes into our logs and events."""
    try:
        return uuid.UUID(raw) if raw and len(raw) <= 64 else uuid.uuid4()
    except ValueError:
        return uuid.uuid4()


def actor_id_of(scope: Scope) -> str | None:
    """Who called, as the edge authenticated them: an id, never the token."""
    actor = scope.get("state", {}).get("actor")
    actor_id = getattr(actor, "id", None)
    return actor_id if isinstance(actor_id, str) else None


class RequestTelemetry:
    """Pure ASGI middleware: the correlation id in and out, and one access-log line."""

    def __init__(self, app: ASGIApp, *, service: str,
                 actor_of: Callable[[Scope], str | None] = actor_id_of) -> None:
        self.app, self.service, self.actor_of = app, service, actor_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation = parse_correlation_id(_header(scope, b"x-correlation-id"))
        scope.setdefault("state", {})["correlation_id"] = correlation
        status: int | None = None
        started = time.perf_counter()

        async def answering(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[CORRELATION_HEADER] = str(correlation)
            await send(message)

        token = _current.set(correlation)
        try:
            with structlog.contextvars.bound_contextvars(correlation_id=str(correlation)):
                try:
                    await self.app(scope, receive, answering)
                finally:
                    self._log(scope, status, started)
        finally:
            _current.reset(token)

    def _log(self, scope: Scope, status: int | None, started: float) -> None:
        route = get_route_name(HTTPConnection(scope), should_include_root_path=False)
        log.info("http_request", service=self.service, method=scope.get("method"),
                 path=route or UNMATCHED, status=status if status is not None else 500,
                 duration_ms=round((time.perf_counter() - started) * 1000, 2),
                 actor=self.actor_of(scope))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            text: str = value.decode("latin-1")
            return text
    return None


def instrument(app: FastAPI, *, service: str, registry: CollectorRegistry | None,
               actor_of: Callable[[Scope], str | None] = actor_id_of) -> None:
    """Give `app` its request telemetry (see the module comment); call it after the app's own
    middleware is added, so the request metrics count what the edge refuses too. With no
    registry (a process that serves no /metrics), only the correlation id and the access log."""
    if registry is not None:
        Instrumentator(should_group_status_codes=False, should_group_untemplated=True,
                       registry=registry).instrument(app)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    build = app.build_middleware_stack

    def outermost() -> ASGIApp:
        return RequestTelemetry(build(), service=service, actor_of=actor_of)

    # Outside Starlette's ServerErrorMiddleware, which answers an unhandled error with a 500 of
    # its own and past every middleware added with `add_middleware`.
    app.build_middleware_stack = outermost  # type: ignore[method-assign]  # the one wrapping hook


def forward_correlation(headers: dict[str, str]) -> dict[str, str]:
    """`headers` plus the current request's correlation id, for a call to another service."""
    correlation = current_correlation_id()
    if correlation is not None:
        headers[CORRELATION_HEADER] = str(correlation)
    return headers
