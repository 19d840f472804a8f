"""The campaign-scale bench (bench/city_bench.py) works: its plan is the city it claims, and at a
tiny scale its whole run — four `lookback serve` processes driven over HTTP, the notifier's clock
walked through the campaign — leaves every effect in place and yields every figure it reports.
Nothing here is timed: the figures themselves are the bench's."""
from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import date

import pytest

from bench.city_bench import FULL, IDLE_EVERY, plan_city, run_city
from tests.support.services import SMALL_POOLS

UNITS = {"echeng", "huarong", "liangzihu", "gedian", "linkong"}


@pytest.mark.unit
def test_the_full_scale_is_ten_times_ezhou_spread_over_every_unit_and_township():
    plan = plan_city(1.0)
    assert (len(plan.projects), plan.households, plan.items) == (
        FULL["projects"], FULL["households"], FULL["items"])
    assert plan.ledger_items == FULL["projects"] // IDLE_EVERY
    assert set(plan.units) == UNITS
    assert {p.unit for p in plan.projects} == UNITS
    assert Counter(unit for unit, _ in plan.self_items).keys() == UNITS
    # every registered item names one of its own unit's projects
    assert all(plan.projects[i].unit == unit for unit, i in plan.self_items)
    # one programme per unit, township and year
    assert len({(p.unit, p.township, p.year) for p in plan.programmes}) == len(plan.programmes)
    tenth = plan_city(0.1)
    assert (len(tenth.projects), tenth.households, tenth.items) == (300, 1500, 1000)


@pytest.mark.unit
@pytest.mark.parametrize("scale", [0, -1])
def test_a_scale_that_is_not_positive_is_refused(scale):
    with pytest.raises(ValueError, match="--scale"):
        plan_city(scale)


@pytest.mark.e2e
@pytest.mark.timeout(400)
async def test_at_a_tiny_scale_every_item_closes_and_every_figure_is_there(
        database, unique_prefix, tmp_path):
    plan = plan_city(0.002)
    plan = dataclasses.replace(plan, programmes=plan.programmes[:3])
    observed, commands, processes = await run_city(plan, database, unique_prefix + ".", tmp_path,
                                                   concurrency=4, catch_up_timeout=240,
                                                   # past 03-25: the March list nobody submits
                                                   # is reminded whatever else was done in time
                                                   clock_end=date(2024, 3, 27),
                                                   **{k: str(v) for k, v in SMALL_POOLS.items()})
    counts = observed.counts
    assert counts["closed"] == counts["items"] == plan.items == 20
    assert counts["entries_rectified"] == plan.ledger_items == 1
    assert counts["registry_items"] == plan.items
    assert counts["inspection_households"] == counts["registry_households"] == plan.households
    assert counts["obligations_met"] == plan.items
    assert counts["sequenced"] == counts["events"] == observed.events > 0
    assert counts["reminders_sent"] > 0 and observed.mails > 0   # the campaign's reminders went out
    assert len(commands.latencies["verify"]) == plan.items
    assert len(commands.latencies["return"]) == 1 + 2   # every tenth ledger and registered item
    assert observed.event_latency["n"] > 0 and observed.event_latency["p99"] > 0
    assert set(observed.rss) == {"registry", "rectification", "inspection", "notifier"}
    assert all(observed.rss[name] for name in observed.rss)
    assert all(p.proc is not None and p.proc.poll() is not None for p in processes.values())
