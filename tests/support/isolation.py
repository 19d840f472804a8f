"""Guards of the test setup itself: unit tests never reach the servers, every test says its level.

A unit test runs with connections to PostgreSQL's and RabbitMQ's ports refused (and recorded, so a
refusal some code catches and swallows still fails the test). The level markers are checked when
tests are collected: exactly one of unit / integration / e2e, and no unit test asks for a
fixture that needs a server.
"""
from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from tests.support.databases import ADMIN_DSN
from tests.support.services import AMQP_URL

LEVELS = ("unit", "integration", "e2e")
# Fixtures that create databases or broker names: only integration and e2e tests may use them.
SERVER_FIXTURES = frozenset({"template_db", "database", "pg_pool", "pg_store", "unique_prefix"})
SERVER_PORTS = frozenset(urlsplit(url).port or default
                         for url, default in ((ADMIN_DSN, 5432), (AMQP_URL, 5672)))


class ServerTouched(RuntimeError):
    """A unit test tried to connect to PostgreSQL or RabbitMQ."""


def _port(address: Any) -> int | None:
    if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[1], int):
        return address[1]
    return None


@contextmanager
def servers_unreachable() -> Iterator[list[str]]:
    """While inside, a socket connection to a server port raises `ServerTouched`; the attempts
    are listed in the yielded list (for a check after the test, whatever caught the error)."""
    attempts: list[str] = []
    original_connect, original_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(address: Any) -> None:
        if _port(address) in SERVER_PORTS:
            attempts.append(repr(address))
            raise ServerTouched(f"a unit test connected to {address!r}: mark it integration")

    def connect(self: socket.socket, address: Any) -> None:
        refuse(address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        refuse(address)
        return original_connect_ex(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]  # undone in the finally below
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    try:
        yield attempts
    finally:
        socket.socket.connect, socket.socket.connect_ex = original_connect, original_connect_ex  # type: ignore[method-assign]


def marker_problems(nodeid: str, markers: Iterable[str], fixtures: Iterable[str]) -> list[str]:
    """What is wrong with a collected test's level: none or several levels, or a unit test that
    asks for a server."""
    levels = sorted(set(markers) & set(LEVELS))
    if len(levels) != 1:
        return [f"{nodeid}: needs exactly one of the markers {', '.join(LEVELS)} "
                f"(has {', '.join(levels) or 'none'})"]
    servers = sorted(SERVER_FIXTURES & set(fixtures))
    if levels == ["unit"] and servers:
        return [f"{nodeid}: a unit test uses {', '.join(servers)}, which need a server: "
                "mark it integration"]
    return []
