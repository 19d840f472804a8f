"""Running untrusted work (parsing an uploaded workbook) in a child process with hard limits.

A hostile file can be small and still cost minutes of CPU or gigabytes of memory (a declared
`A1:XFD1048576`, one huge shared string, 200,000 rows). Parsing it on the event loop stops health
checks, projections and the relay with it. Here the work runs in a forked child with an address
space limit and a CPU limit, and the parent waits off the event loop with a wall-clock bound; a
child past any bound is killed and the caller gets a clear `IsolatedWorkRefused`.

The forkserver start method keeps this cheap: the server process imports the modules named in
`preload` once, and each job is a fresh fork of it (nothing of the service's own state, no
inherited sockets or event loop).
"""
from __future__ import annotations

import asyncio
import multiprocessing
import resource
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Callable, Sequence, TypeVar

T = TypeVar("T")

_context = multiprocessing.get_context("forkserver")


@dataclass(frozen=True)
class Limits:
    seconds: float = 30.0          # wall clock, as the caller waits
    cpu_seconds: int = 30          # CPU time of the child (RLIMIT_CPU)
    memory_bytes: int = 512 * 1024 * 1024  # address space of the child (RLIMIT_AS)


class IsolatedWorkRefused(Exception):
    """The work went past a limit (`reason` says which) or failed in the child."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def preload(modules: Sequence[str]) -> None:
    """Modules the fork server imports once (call before the first `run_isolated`)."""
    _context.set_forkserver_preload(list(modules))


async def run_isolated(function: Callable[..., T], *args: Any, limits: Limits = Limits(),
                       **kwargs: Any) -> T:
    """`function(*args, **kwargs)` in a child process within `limits`; its result (pickled
    back). `function` and its arguments must pickle (a module-level function, plain data)."""
    receive, send = _context.Pipe(duplex=False)
    child = _context.Process(target=_child, args=(send, function, args, kwargs, limits),
                             daemon=True)
    child.start()
    send.close()
    try:
        outcome = await asyncio.to_thread(_wait, receive, child, limits.seconds)
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        await asyncio.to_thread(child.join, 5)
    kind, value = outcome
    if kind == "ok":
        result: T = value
        return result
    raise IsolatedWorkRefused(kind, value)


def _wait(receive: Connection, child: Any, seconds: float) -> tuple[str, Any]:
    if receive.poll(seconds):
        try:
            outcome: tuple[str, Any] = receive.recv()
            return outcome
        except EOFError:
            pass  # the child died without a word: below
    else:
        child.kill()
        return "timeout", f"took longer than {seconds:g} s"
    child.join(5)
    # A child killed by RLIMIT_CPU dies of SIGXCPU; one out of memory may die before it can say so.
    return "killed", f"the worker stopped (exit code {child.exitcode})"


def _child(send: Connection, function: Callable[..., Any], args: tuple[Any, ...],
           kwargs: dict[str, Any], limits: Limits) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
    try:
        result = function(*args, **kwargs)
    except MemoryError:
        send.send(("memory", f"needed more than {limits.memory_bytes // (1024 * 1024)} MiB"))
    except Exception as exc:  # reported to the caller, never raised in a process nobody watches
        send.send(("failed", type(exc).__name__))
    else:
        send.send(("ok", result))
    finally:
        send.close()
