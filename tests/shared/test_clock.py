"""The clock port: a simulated clock moves forward only and wakes its sleepers; both clocks
return at the moment, when woken, or after `at_most` real seconds."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.clock import SimulatedClock, SystemClock

pytestmark = pytest.mark.unit

START = datetime(2024, 3, 4, 0, 0, tzinfo=timezone(timedelta(hours=8)))


async def test_a_sleeper_on_a_simulated_clock_wakes_only_when_its_moment_comes():
    clock = SimulatedClock(START)
    sleeper = asyncio.create_task(clock.sleep_until(START + timedelta(hours=9)))
    await asyncio.sleep(0.01)
    clock.advance(timedelta(hours=8))            # not yet: it sleeps on
    await asyncio.sleep(0.01)
    assert not sleeper.done()
    clock.set(START + timedelta(days=1))         # jumps past the moment
    await asyncio.wait_for(sleeper, 5)
    assert clock() == START + timedelta(days=1) and clock().tzinfo == UTC


async def test_a_simulated_clock_never_moves_back():
    clock = SimulatedClock(START)
    with pytest.raises(ValueError):
        clock.set(START - timedelta(seconds=1))
    with pytest.raises(ValueError):
        clock.set(datetime(2024, 3, 5))          # naive: which zone?
    assert clock() == START


async def test_sleeps_end_when_woken_or_after_at_most_real_seconds():
    for clock in (SimulatedClock(START), SystemClock()):
        wake = asyncio.Event()
        sleeper = asyncio.create_task(clock.sleep_until(None, wake=wake))
        await asyncio.sleep(0.01)
        assert not sleeper.done()
        wake.set()
        await asyncio.wait_for(sleeper, 5)
        await asyncio.wait_for(clock.sleep_until(None, at_most=0.01), 5)


async def test_the_system_clock_returns_at_a_moment_already_past_at_once():
    clock = SystemClock()
    await asyncio.wait_for(clock.sleep_until(clock() - timedelta(seconds=1)), 1)
    await asyncio.wait_for(clock.sleep_until(clock() + timedelta(milliseconds=20)), 5)
