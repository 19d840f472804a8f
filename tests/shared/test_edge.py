"""The HTTP edge (shared/http.py) in front of every service: authentication before the body,
bodies bounded while they are read (chunked ones too), control characters refused before routing.
Driven at the ASGI level with a counting `receive`, so "the body was not read" is measured."""
from __future__ import annotations

import json
from typing import Any

import pytest

from shared.errors import UnauthenticatedError
from shared.http import Edge, EdgePolicy
from shared.messages import Actor, Role

pytestmark = pytest.mark.unit

ADMIN = Actor(id="admin-1", name="市局管理员(示例)", role=Role.CITY_ADMIN)
CHUNK = b"x" * 65536


def authenticate(header: str | None) -> Actor:
    if header != "Bearer good":
        raise UnauthenticatedError("missing bearer token" if header is None else "invalid bearer token")
    return ADMIN


POLICY = EdgePolicy(authenticate=authenticate, public_paths=frozenset({"/healthz"}),
                    body_limits={"/imports": 10 * len(CHUNK)}, default_body_limit=2 * len(CHUNK))


class Call:
    """One request through the edge to an app that reads the whole body and echoes its size."""

    def __init__(self, chunks: int, headers: dict[str, str], path: str = "/things",
                 query: bytes = b"") -> None:
        self.chunks, self.pulled, self.sent = chunks, 0, []
        self.reached_app = False
        self.scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(),
                      "query_string": query,
                      "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}

    async def receive(self) -> dict[str, Any]:
        self.pulled += 1
        more = self.pulled < self.chunks
        return {"type": "http.request", "body": CHUNK if self.pulled <= self.chunks else b"",
                "more_body": more}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        self.reached_app = True
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})

    async def run(self) -> tuple[int, Any]:
        await Edge(self.app, lambda: POLICY)(self.scope, self.receive, self.send)
        status = self.sent[0]["status"]
        body = b"".join(m.get("body", b"") for m in self.sent[1:])
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode()


async def test_an_anonymous_caller_is_refused_before_a_byte_of_its_body_is_read():
    call = Call(chunks=5000, headers={})  # ~300 MB if it were read
    status, body = await call.run()
    assert status == 401 and body["error"] == "unauthenticated"
    assert call.pulled == 0 and not call.reached_app


async def test_a_declared_length_over_the_limit_is_refused_at_once():
    call = Call(chunks=3, headers={"authorization": "Bearer good",
                                   "content-length": str(3 * len(CHUNK))})
    status, body = await call.run()
    assert status == 413 and body["error"] == "too_large"
    assert call.pulled == 0


async def test_a_chunked_body_is_cut_off_as_soon_as_it_passes_the_limit():
    call = Call(chunks=5000, headers={"authorization": "Bearer good"})  # no Content-Length
    status, body = await call.run()
    assert status == 413 and body["error"] == "too_large"
    assert call.pulled == 3  # two chunks fit the default limit; the third one passed it


async def test_a_path_with_a_larger_limit_takes_a_larger_body():
    call = Call(chunks=8, headers={"authorization": "Bearer good"}, path="/imports")
    status, body = await call.run()
    assert (status, body) == (200, 8 * len(CHUNK))


async def test_public_paths_need_no_token():
    call = Call(chunks=1, headers={}, path="/healthz")
    status, _ = await call.run()
    assert status == 200


@pytest.mark.parametrize("path,query", [("/things/a\x00b", b""), ("/things", b"unit=ech%00eng"),
                                        ("/things", b"unit=ech%15eng")])
async def test_nul_and_control_characters_in_path_or_query_are_refused_before_routing(path, query):
    call = Call(chunks=1, headers={"authorization": "Bearer good"}, path=path, query=query)
    status, body = await call.run()
    assert status == 422 and body["detail"][0]["field"] in ("path", "query")
    assert not call.reached_app
