"""Waiting for eventually consistent state: poll with a deadline, fail with what was last seen."""
from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

T = TypeVar("T")


async def eventually(predicate: Callable[[], T | Awaitable[T]], *, timeout: float = 20.0,
                     interval: float = 0.05, what: str = "") -> T:
    """Poll an async or sync predicate until it returns a truthy value, and return that value.

    The timeout is a deadline for a hang, not a speed requirement: it is generous on purpose
    (a loaded machine is slow, and slow is not wrong)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        polled = predicate()
        result = cast(T, await polled if inspect.isawaitable(polled) else polled)
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}; "
                                 f"last={result!r}")
        await asyncio.sleep(interval)
