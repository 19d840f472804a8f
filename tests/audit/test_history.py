"""`lookback audit history` and /audit/history: one project's or problem item's events across
services, in order, who, when and what, in Chinese, personal data masked."""
from __future__ import annotations

import asyncio
import json
from datetime import UTC

import pytest
from typer.testing import CliRunner

from services.audit_labels import EVENT_LABELS
from services.cli import app as lookback
from services.system import service_app, specs
from shared.history import entry
from tests.audit.campaign import campaign
from tests.registry import support as reg
from tests.shared.test_bus import running

integration = pytest.mark.integration


async def cli(database: str, *args: str):
    return await asyncio.to_thread(CliRunner().invoke, lookback, ["audit", "history", *args],
                                   env={"LOOKBACK_DATABASE_URL": database})


@integration
async def test_a_projects_history_spans_the_services_in_ledger_order(database, tmp_path):
    async with campaign(database, tmp_path) as world:
        result = await cli(database, world.listed_project, "--json")
        assert result.exit_code == 0, result.output
        events = json.loads(result.stdout)
        types = [e["event_type"] for e in events]
        assert types[:2] == ["registry.ProjectRegistered", "registry.LedgerEntryAdded"]
        assert "rectification.ProblemRegistered" in types   # the automatic item, in another service
        assert "inspection.FrameFrozen" in types            # the frame that listed it
        positions = [e["position"] for e in events]
        assert positions == sorted(positions)
        first = events[0]
        assert first["label"] == "登记项目" and first["actor"] == {"name": "鄂城填报人(示例)",
                                                                 "role": "区级填报人"}
        assert first["at"] == "2024-04-10 10:00"  # the campaign's time zone
        text = await cli(database, world.ledger_problem)
        assert text.exit_code == 0
        lines = text.stdout.splitlines()
        assert any("登记问题" in line and f"problem-{world.ledger_problem}" in line for line in lines)

        app = service_app("registry", reg.registry_settings(database, data_dir=tmp_path / "r2",
                                                            run_sequencer=False),
                          clock=lambda: reg.NOW)
        async with running(app) as client:
            served = await client.get(f"/audit/history/{world.listed_project}",
                                      headers=reg.as_("auditor"))
            assert served.status_code == 200
            assert [e["event_type"] for e in served.json()["events"]] == types
            refused = await client.get(f"/audit/history/{world.listed_project}",
                                       headers=reg.as_("echeng-reporter"))
            assert refused.status_code == 403


@pytest.mark.unit
def test_personal_data_in_a_payload_is_masked_and_sealed_fields_never_shown():
    row = {"global_position": 7, "stream_id": "liaison-echeng", "stream_version": 1,
           "event_type": "registry.LiaisonRegistered",
           "payload": {"unit": "echeng", "mobile": "13812341234", "name_sealed": "pii1.abc",
                       "address": "pii1.def", "email": "a@b.cn", "households": [{"n": 1}] * 3},
           "metadata": {"actor": {"id": "u", "name": "填报人", "role": "district_reporter"},
                        "occurred_at": "2024-03-04T08:00:00+00:00"}}
    shown = entry(row, EVENT_LABELS, UTC)
    assert shown.changes == {"unit": "echeng", "mobile": "138****1234", "name_sealed": "已加密",
                             "address": "已加密", "email": "（不显示）", "households": "3项"}
    assert shown.text().startswith("#7 2024-03-04 08:00 填报人（区级填报人）登记联络员")
    assert "13812341234" not in shown.text()


@pytest.mark.unit
def test_every_event_type_of_every_service_has_a_chinese_label():
    types = {e.type_name for s in specs() for e in s.contract.events}
    assert types - set(EVENT_LABELS) == set()
