"""The clock port: what time it is, and a sleep until a moment that the clock itself can cut short.

A service that acts at moments (send a reminder at 09:00 on a working day) must neither poll nor
sleep through a change: `sleep_until(moment, wake=…)` returns at the moment, when `wake` is set
(something changed what the next moment is), or after `at_most` real seconds, whichever is first.

- `SystemClock`: the wall clock (UTC). Long sleeps are cut into naps of at most an hour, so a
  wall-clock change (NTP, a suspended machine) delays a moment by an hour at worst.
- `SimulatedClock`: a clock that stands still until told to move (forward only). Moving it wakes
  every sleeper, which re-checks its moment against the new time: tests and demos run a whole
  campaign in seconds with the same code that runs in production.
- `CampaignClock`: a chosen campaign moment that then runs in real time (the embedded default
  shows a campaign in the middle of its work, not one that ended years ago); it can be moved
  forward like a simulated one.

`clock_from_setting` reads the `LOOKBACK_CLOCK` setting: `real`, `simulated:<ISO instant>` or
`campaign:<ISO instant>` (docs/adr/0018).

Both are callables returning an aware UTC datetime, so either can be passed wherever the kernel
takes a plain `Callable[[], datetime]` clock (the service shell, the pipeline, the consumers).
"""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

MAX_NAP_SECONDS = 3600.0


class Clock(Protocol):
    def __call__(self) -> datetime:
        """Now, aware, in UTC."""

    async def sleep_until(self, moment: datetime | None, *, wake: asyncio.Event | None = None,
                          at_most: float | None = None) -> None:
        """Return at `moment` (None: never), when `wake` is set, or after `at_most` seconds of
        real time, whichever comes first. Does not clear `wake`."""


async def _first_of(events: list[asyncio.Event], timeout: float | None) -> None:
    if not events:
        events = [asyncio.Event()]   # nothing can wake us: only the timeout ends the wait
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("clock moments must be timezone-aware")
    return moment.astimezone(UTC)


@runtime_checkable
class MovableClock(Clock, Protocol):
    def set(self, moment: datetime) -> datetime:
        """Move forward to `moment` (never back) and wake every sleeper."""


class SystemClock:
    """The wall clock."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, moment: datetime | None, *, wake: asyncio.Event | None = None,
                          at_most: float | None = None) -> None:
        await _nap_until(self, moment, wake=wake, at_most=at_most, moved=None)


class SimulatedClock:
    """A clock that moves only when told to, and only forward."""

    def __init__(self, start: datetime) -> None:
        self._now = _aware(start)
        self._sleepers: set[asyncio.Event] = set()

    def __call__(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> datetime:
        """Move to `moment` (never back: what happened cannot un-happen) and wake every sleeper."""
        moment = _aware(moment)
        if moment < self._now:
            raise ValueError(f"a simulated clock only moves forward: {moment.isoformat()} is "
                             f"before {self._now.isoformat()}")
        self._now = moment
        for sleeper in list(self._sleepers):
            sleeper.set()
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        return self.set(self._now + delta)

    async def sleep_until(self, moment: datetime | None, *, wake: asyncio.Event | None = None,
                          at_most: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        deadline = None if at_most is None else loop.time() + at_most
        moved = asyncio.Event()
        self._sleepers.add(moved)
        try:
            while moment is None or self._now < _aware(moment):
                if wake is not None and wake.is_set():
                    return
                left = None if deadline is None else deadline - loop.time()
                if left is not None and left <= 0:
                    return
                moved.clear()
                await _first_of([moved, *([wake] if wake is not None else [])], left)
        finally:
            self._sleepers.discard(moved)


class CampaignClock:
    """A campaign moment that runs in real time from `anchor` (a real instant; default: now):
    at `anchor` it reads `start`. `set` moves it forward and it runs on from there."""

    def __init__(self, start: datetime, *, anchor: datetime | None = None) -> None:
        self._start = _aware(start)
        self._anchor = _aware(anchor) if anchor is not None else datetime.now(UTC)
        self._sleepers: set[asyncio.Event] = set()

    def __call__(self) -> datetime:
        return self._start + (datetime.now(UTC) - self._anchor)

    @property
    def anchor(self) -> tuple[datetime, datetime]:
        """(campaign moment, real instant at which the clock read it): enough to resume it."""
        return self._start, self._anchor

    def set(self, moment: datetime) -> datetime:
        moment = _aware(moment)
        now = self()
        if moment < now:
            raise ValueError(f"the campaign clock only moves forward: {moment.isoformat()} is "
                             f"before {now.isoformat()}")
        self._start, self._anchor = moment, datetime.now(UTC)
        for sleeper in list(self._sleepers):
            sleeper.set()
        return moment

    async def sleep_until(self, moment: datetime | None, *, wake: asyncio.Event | None = None,
                          at_most: float | None = None) -> None:
        moved = asyncio.Event()
        self._sleepers.add(moved)
        try:
            await _nap_until(self, moment, wake=wake, at_most=at_most, moved=moved)
        finally:
            self._sleepers.discard(moved)


async def _nap_until(clock: Clock, moment: datetime | None, *, wake: asyncio.Event | None,
                     at_most: float | None, moved: asyncio.Event | None) -> None:
    """Sleep on a clock that runs in real time until it reads `moment`, `wake` is set or
    `at_most` seconds passed; in naps of at most MAX_NAP_SECONDS, so a clock that is `moved`
    (or the wall clock, stepped by NTP) is read again soon."""
    loop = asyncio.get_running_loop()
    deadline = None if at_most is None else loop.time() + at_most
    while True:
        if wake is not None and wake.is_set():
            return
        budget = MAX_NAP_SECONDS
        if moment is not None:
            remaining = (_aware(moment) - clock()).total_seconds()
            if remaining <= 0:
                return
            budget = min(budget, remaining)
        if deadline is not None:
            left = deadline - loop.time()
            if left <= 0:
                return
            budget = min(budget, left)
        if moved is not None:
            moved.clear()
        await _first_of([e for e in (moved, wake) if e is not None], budget)


CLOCK_SETTING_HELP = ("real | simulated:<ISO instant> (stands still, moved by POST /clock) | "
                      "campaign:<ISO instant> (runs in real time from there)")


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with its offset (a moment without one is ambiguous: refused)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 instant (e.g. 2024-04-15T09:00:00+08:00)"
                         ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset (e.g. 2024-04-15T09:00:00+08:00)")
    return moment.astimezone(UTC)


def check_clock_setting(text: str) -> str:
    """The setting as given, if it is valid; else ValueError naming the valid forms."""
    kind, _, moment = text.strip().partition(":")
    if kind == "real" and not moment:
        return text.strip()
    if kind in ("simulated", "campaign") and moment:
        parse_instant(moment)
        return text.strip()
    raise ValueError(f"clock setting {text!r}: expected {CLOCK_SETTING_HELP}")


def clock_from_setting(text: str, *, anchor: datetime | None = None) -> Clock:
    """The clock `LOOKBACK_CLOCK` names; `anchor`: when a campaign clock read its moment."""
    kind, _, moment = check_clock_setting(text).partition(":")
    if kind == "real":
        return SystemClock()
    if kind == "simulated":
        return SimulatedClock(parse_instant(moment))
    return CampaignClock(parse_instant(moment), anchor=anchor)
