"""Read-your-writes on the inspection service (ADR 0013): the picks right after the reveal, the
visits right after scheduling one. The sequencer polls every half second on purpose, so the read
models lag the command; a read sent with the command's token waits for them."""
from __future__ import annotations

import pytest

from tests.faults import eventually
from tests.inspection import support as s
from tests.inspection.support import DRAW_ID, INSPECTOR

pytestmark = pytest.mark.integration


@pytest.fixture
async def slow_service(database, tmp_path):
    clock = s.Clock(s.FROZEN_AT)
    await s.append_registry_events(database, s.registry_world())
    async with s.inspection_service(database, tmp_path, clock, sequencer_poll_interval=0.5) as client:
        await eventually(lambda: s.view_has(client, s.PROJECT_COUNT), what="the registry view")
        yield client, clock


async def test_the_picks_right_after_the_reveal_are_there_for_the_inspector(slow_service):
    client, clock = slow_service
    clock.now = s.FROZEN_AT
    frozen = await client.post("/draws", headers=INSPECTOR,
                               json={"draw_id": DRAW_ID, "title": "2024年回头看市级抽查(示例)"})
    assert frozen.status_code == 201, frozen.text
    draws = await client.get("/draws", headers={**INSPECTOR,
                                                "X-Lookback-After": frozen.headers["X-Lookback-Token"]})
    assert [d["draw_id"] for d in draws.json()] == [DRAW_ID]
    committed = await client.post(f"/draws/{DRAW_ID}/entropy-commitment", headers=INSPECTOR, json={
        "draw_id": DRAW_ID, "statement": "中国福利彩票3D 2024-05-08 开奖号码",
        "not_before": s.ENTROPY_KNOWN_AT.isoformat()})
    assert committed.status_code == 200, committed.text
    clock.now = s.DRAWN_AT
    revealed = await client.post(f"/draws/{DRAW_ID}/entropy-reveal", headers=INSPECTOR,
                                 json={"draw_id": DRAW_ID, "entropy": s.ENTROPY})
    assert revealed.status_code == 200, revealed.text
    summary = revealed.json()

    picks = await client.get(f"/draws/{DRAW_ID}/picks", params={"unit": "echeng"},
                             headers={**INSPECTOR, "X-Lookback-After": revealed.headers["X-Lookback-Token"]})
    assert picks.status_code == 200, picks.text
    [echeng] = picks.json()["units"]
    listed = {p["target_id"] for p in echeng["picks"] if p["in_sample"]}
    expected = {pid for stratum in summary["strata"] if stratum["unit"] == "echeng"
                for pid in stratum.get("picks", [])}
    assert expected and listed == expected

    scheduled = await client.post(f"/draws/{DRAW_ID}/visits", headers=INSPECTOR, json={
        "draw_id": DRAW_ID, "visit_id": "v-1", "target_kind": "project",
        "target_id": "EC-COMPLEX-1", "scheduled_for": "2024-05-10", "inspector_ids": ["insp-1"]})
    assert scheduled.status_code == 201, scheduled.text
    visits = await client.get(f"/draws/{DRAW_ID}/visits", headers={
        **INSPECTOR, "X-Lookback-After": scheduled.headers["X-Lookback-Token"]})
    assert [v["visit_id"] for v in visits.json()] == ["v-1"]
