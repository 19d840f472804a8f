"""The HTTP edge every service process puts in front of its routes, before anything is parsed.

Hostile input is refused here, cheaply and in a fixed order (docs/adr/0009):

1. NUL and C0 control characters in the path or the query string: 422 naming the part.
2. Authentication before the body is read: a route that is not public answers 401 to a missing or
   unknown bearer token without reading a byte of the body or validating anything, so an
   anonymous caller learns no field names and costs no memory.
3. A body limit enforced while reading, chunked bodies included: a declared `Content-Length` over
   the limit is refused at once (413); an undeclared body is counted as it arrives and refused
   the moment it passes the limit. The limit is per path prefix (an import may be larger than a
   JSON command).

Control characters inside JSON strings are refused by the message models themselves
(`shared.messages.Record`), which name the field.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, MutableMapping

from shared.errors import MESSAGES_ZH, UnauthenticatedError
from shared.messages import Actor

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_BODY_LIMIT = 1024 * 1024  # 1 MiB: the largest JSON command is far below that
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # C0 but TAB, LF, CR; NUL included
_CONTROL_ESCAPED = re.compile(rb"%(?:0[0-8bBcCeEfF]|1[0-9a-fA-F])")


class BodyTooLarge(Exception):
    pass


@dataclass(frozen=True)
class EdgePolicy:
    """Which paths need no token, and how large a body each path prefix may send."""

    authenticate: Callable[[str | None], Actor]
    public_paths: frozenset[str] = frozenset()
    public_prefixes: tuple[str, ...] = ()
    body_limits: Mapping[str, int] = field(default_factory=dict)  # path prefix -> bytes
    default_body_limit: int = DEFAULT_BODY_LIMIT

    def is_public(self, path: str) -> bool:
        return path in self.public_paths or path.startswith(self.public_prefixes)

    def body_limit(self, path: str) -> int:
        matches = [prefix for prefix in self.body_limits if path.startswith(prefix)]
        return self.body_limits[max(matches, key=len)] if matches else self.default_body_limit


def contains_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


class Edge:
    """Pure ASGI middleware applying an `EdgePolicy` (see the module comment)."""

    def __init__(self, app: ASGIApp, policy: Callable[[], EdgePolicy | None]) -> None:
        self.app, self.policy = app, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy()
        if policy is None:  # not started yet: nothing to check against
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        query: bytes = scope.get("query_string", b"")
        if contains_control(path) or _CONTROL_ESCAPED.search(scope.get("raw_path", b"") or b""):
            await _answer(send, 422, "invalid_request",
                          [{"field": "path", "reason": "contains a control character"}])
            return
        if _CONTROL_ESCAPED.search(query) or contains_control(query.decode("latin-1")):
            await _answer(send, 422, "invalid_request",
                          [{"field": "query", "reason": "contains a control character"}])
            return
        if not policy.is_public(path):
            try:
                actor = policy.authenticate(_header(scope, b"authorization"))
            except UnauthenticatedError as exc:
                await _answer(send, 401, exc.code, str(exc), {"www-authenticate": "Bearer"})
                return
            scope.setdefault("state", {})["actor"] = actor
        limit = policy.body_limit(path)
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _answer(send, 413, "too_large", f"the body may have at most {limit} bytes")
            return
        await self._bounded(scope, receive, send, limit)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            if not started:
                await _answer(send, 413, "too_large", f"the body may have at most {limit} bytes")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            text: str = value.decode("latin-1")
            return text
    return None


async def _answer(send: Send, status: int, code: str, detail: Any,
                  headers: Mapping[str, str] | None = None) -> None:
    body = json.dumps({"error": code, "message": MESSAGES_ZH.get(status, MESSAGES_ZH[500]),
                       "detail": detail}, ensure_ascii=False).encode()
    raw_headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
