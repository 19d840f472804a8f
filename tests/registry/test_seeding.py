"""The sample data goes in through the registry's own handlers: once into an empty registry, never
twice, and the running service's read models show it."""
from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from services.cli import app as lookback_cli
from services.registry import commands as c
from services.registry.seed import SEED_ACTOR, build_seed
from services.registry.seeding import seed_if_empty
from shared.campaign import load_campaign
from shared.settings import Settings
from tests.registry.support import projected, registry_client, registry_event_count
from tests.support.databases import fetchval

pytestmark = pytest.mark.integration


async def test_seed_if_empty_loads_the_sample_once_and_a_second_call_adds_nothing(database):
    plan = build_seed(load_campaign())
    facilities = len(plan.of_type(c.RegisterProject))
    settings = Settings(database_url=database)

    report = await seed_if_empty(settings)
    assert report is not None and report.commands == len(plan.commands)
    written = await registry_event_count(database)
    assert written == report.events > len(plan.commands)
    # The whole sample is one atomic append, all by the sample's own actor.
    assert await fetchval(database, "SELECT count(DISTINCT tx_id) FROM es.events") == 1
    actors = await fetchval(database, "SELECT array_agg(DISTINCT metadata->'actor'->>'id') FROM es.events")
    assert actors == [SEED_ACTOR.id]

    assert await seed_if_empty(settings) is None
    assert await registry_event_count(database) == written

    async with registry_client(database) as client:
        listed = await projected(client, "/projects?limit=1", lambda b: b["total"] == facilities)
        assert listed["total"] == facilities
        ledger = await projected(client, "/ledger?unit=huarong&include_cleared=true",
                                 lambda b: any(not e["open"] for e in b["items"]))
        assert any(e["cleared_by_assessor"] == "何某(示例)" for e in ledger["items"])
        liaisons = await projected(client, "/liaisons", lambda b: len(b["items"]) == 10, who="leader-1")
        assert all(item["mobile"].startswith("138****") for item in liaisons["items"])


def test_lookback_seed_loads_the_sample_into_an_empty_registry_only(database, monkeypatch):
    monkeypatch.setenv("LOOKBACK_DATABASE_URL", database)
    first = CliRunner().invoke(lookback_cli, ["seed"])
    assert first.exit_code == 0, first.output
    commands = len(build_seed(load_campaign()).commands)
    assert f"sample data loaded: {commands} commands" in first.output
    again = CliRunner().invoke(lookback_cli, ["seed"])
    assert again.exit_code == 0 and "already has data" in again.output


async def test_seeding_that_loses_a_race_reports_it_and_adds_nothing(database):
    """Two `lookback up` at once: both find the registry empty, only one sample goes in."""
    settings = Settings(database_url=database)
    reports = await asyncio.gather(seed_if_empty(settings), seed_if_empty(settings))
    assert sorted(r is None for r in reports) == [False, True]
    assert await fetchval(database, "SELECT count(DISTINCT tx_id) FROM es.events") == 1
