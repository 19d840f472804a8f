"""The clock port: a simulated clock moves forward only and wakes its sleepers; both clocks
return at the moment, when woken, or after `at_most` real seconds."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from shared.clock import CampaignClock, MovableClock, SimulatedClock, SystemClock, clock_from_setting
from shared.settings import Settings

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


# ----- the campaign clock and the LOOKBACK_CLOCK setting (docs/adr/0018) --------------------------

def test_a_campaign_clock_reads_its_moment_at_its_anchor_and_runs_in_real_time():
    anchor = datetime.now(UTC) - timedelta(minutes=5)
    clock = CampaignClock(START, anchor=anchor)
    elapsed = clock() - START
    assert timedelta(minutes=5) <= elapsed < timedelta(minutes=6)
    assert clock.anchor == (START.astimezone(UTC), anchor)


def test_a_campaign_clock_moves_forward_only_and_runs_on_from_there():
    clock = CampaignClock(START)
    later = START + timedelta(days=40)
    clock.set(later)
    assert timedelta(0) <= clock() - later < timedelta(seconds=5)
    with pytest.raises(ValueError):
        clock.set(START + timedelta(days=1))
    assert clock() >= later


async def test_a_sleeper_on_a_campaign_clock_wakes_when_the_clock_jumps_past_its_moment():
    clock = CampaignClock(START)
    sleeper = asyncio.create_task(clock.sleep_until(START + timedelta(days=2)))
    await asyncio.sleep(0.01)
    assert not sleeper.done()
    clock.set(START + timedelta(days=3))
    await asyncio.wait_for(sleeper, 5)


@pytest.mark.parametrize(("setting", "kind", "reads"), [
    ("real", SystemClock, None),
    ("simulated:2024-03-05T10:30:00+08:00", SimulatedClock, "2024-03-05T02:30:00+00:00"),
    ("campaign:2024-04-15T09:00:00+08:00", CampaignClock, "2024-04-15T01:00:00+00:00"),
    (" campaign:2024-04-15T01:00:00Z ", CampaignClock, "2024-04-15T01:00:00+00:00"),
])
def test_the_clock_setting_names_the_clock_and_its_moment(setting, kind, reads):
    clock = clock_from_setting(setting)
    assert isinstance(clock, kind)
    if reads is not None:
        assert abs(clock() - datetime.fromisoformat(reads)) < timedelta(seconds=5)
    assert isinstance(clock, MovableClock) == (kind is not SystemClock)


@pytest.mark.parametrize(("setting", "says"), [
    ("wall", "expected real | simulated:"),
    ("real:2024-04-15T09:00:00+08:00", "expected real"),
    ("campaign:", "expected real"),
    ("campaign:2024-04-15T09:00:00", "no UTC offset"),
    ("simulated:15 April 2024", "not an ISO 8601 instant"),
])
def test_a_bad_clock_setting_is_refused_with_the_valid_forms(setting, says):
    with pytest.raises(ValueError, match=says):
        clock_from_setting(setting)
    with pytest.raises(ValidationError, match=says):
        Settings(clock=setting)


def test_the_clock_setting_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("LOOKBACK_CLOCK", "simulated:2024-05-08T09:00:00+08:00")
    assert Settings().clock == "simulated:2024-05-08T09:00:00+08:00"
    assert Settings(_env_file=None).model_fields_set >= {"clock"}
    monkeypatch.delenv("LOOKBACK_CLOCK")
    assert Settings().clock == "real" and "clock" not in Settings().model_fields_set
