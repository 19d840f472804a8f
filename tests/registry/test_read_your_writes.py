"""Read-your-writes for the acting user (shared/consistency.py, ADR 0013), on the registry: the
ledger right after an assessment, the project list right after a registration. The sequencer is
made slow on purpose (it polls every half second), so a read that did not wait would see the
projections behind; a read sent with the command's token waits for them, within a bound."""
from __future__ import annotations

import uuid

import pytest

from tests.registry.support import as_, project_body, registry_client

pytestmark = pytest.mark.integration

SLOW_SEQUENCER = {"sequencer_poll_interval": 0.5}
ASSESSMENT = {"claimed_status": "not_operating", "assessor": "评估员(示例)",
              "assessed_on": "2024-04-09", "evidence": "现场无人值守(示例)"}


async def test_the_ledger_right_after_an_assessment_shows_it_to_the_assessor(database):
    async with registry_client(database, **SLOW_SEQUENCER) as client:
        created = await client.post("/projects", json=project_body(), headers=as_("echeng-reporter"))
        assert created.status_code == 201, created.text
        project_id = created.json()["project_id"]
        registered = created.headers["X-Lookback-Token"]

        listed = await client.get("/projects", headers={**as_("echeng-reporter"),
                                                        "X-Lookback-After": registered})
        assert listed.status_code == 200, listed.text
        assert [p["project_id"] for p in listed.json()["items"]] == [project_id]

        assessed = await client.post(f"/projects/{project_id}/assessments",
                                     json={"project_id": project_id, **ASSESSMENT},
                                     headers=as_("echeng-reporter"))
        assert assessed.status_code == 201, assessed.text
        token = assessed.headers["X-Lookback-Token"]
        assert token != registered

        ledger = await client.get("/ledger", headers={**as_("echeng-reporter"),
                                                      "X-Lookback-After": token})
        assert ledger.status_code == 200, ledger.text
        [entry] = ledger.json()["items"]
        assert (entry["project_id"], entry["state"], entry["reason"]) == (
            project_id, "open", "not_operating")
        # The same token as a query parameter (a link a browser follows) works alike.
        again = await client.get("/ledger", params={"lookback_after": token},
                                 headers=as_("admin"))
        assert [e["project_id"] for e in again.json()["items"]] == [project_id]


async def test_a_command_that_records_nothing_gives_no_token(database):
    async with registry_client(database) as client:
        body = project_body(on_duplicate="skip_if_identical")
        first = await client.post("/projects", json=body, headers=as_("admin"))
        assert first.status_code == 201 and "X-Lookback-Token" in first.headers
        second = await client.post("/projects", json=body, headers=as_("admin"))
        assert second.status_code == 200, second.text
        assert "X-Lookback-Token" not in second.headers


async def test_a_write_not_visible_in_time_is_a_503_with_retry_after_and_a_chinese_message(database):
    # No sequencer at all: the event is committed but never sequenced, so never projected.
    async with registry_client(database, run_sequencer=False, read_your_writes_wait=0.3) as client:
        created = await client.post("/projects", json=project_body(), headers=as_("admin"))
        assert created.status_code == 201, created.text
        answer = await client.get("/projects", headers={
            **as_("admin"), "X-Lookback-After": created.headers["X-Lookback-Token"]})
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "1"
        body = answer.json()
        assert body["error"] == "not_yet_consistent"
        assert "稍候" in body["message"]
        assert "the ledger has not sequenced the events yet" in body["detail"]


@pytest.mark.parametrize("token", ["not-a-token", str(uuid.uuid4())])
async def test_a_malformed_or_unknown_token_is_a_422(database, token):
    async with registry_client(database) as client:
        answer = await client.get("/ledger", headers={**as_("admin"), "X-Lookback-After": token})
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert body["error"] == "validation_failed"
        assert body["detail"][0]["field"] == "X-Lookback-After"
        assert "令牌" in body["message"]
