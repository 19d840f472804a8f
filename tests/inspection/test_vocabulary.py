"""Chinese everywhere a person reads, on the inspection service: its vocabulary (checklist items
and answers, outcomes, rules …), refusals in Chinese that name what would be right, and every
instant in the campaign's offset whether it comes from the stream or a read model."""
from __future__ import annotations

import pytest

from services.inspection.domain.checklists import DEFAULT_CHECKLISTS
from tests.faults import eventually
from tests.inspection import support as s
from tests.inspection.support import DRAW_ID, INSPECTOR

pytestmark = pytest.mark.integration


@pytest.fixture
async def service(database, tmp_path):
    clock = s.Clock(s.FROZEN_AT)
    await s.append_registry_events(database, s.registry_world())
    async with s.inspection_service(database, tmp_path, clock) as client:
        await eventually(lambda: s.view_has(client, s.PROJECT_COUNT), what="the registry view")
        yield client, clock


async def test_the_vocabulary_lists_checklists_answers_outcomes_and_rules_in_chinese(service):
    client, _ = service
    answer = await client.get("/vocabulary", headers=s.auth("tok-echeng-reporter"))
    assert answer.status_code == 200, answer.text
    labels = {k["kind"]: {t["code"]: t["label"] for t in k["terms"]} for k in answer.json()["sets"]}
    for items in DEFAULT_CHECKLISTS.values():
        for code, label in items.items():
            assert labels["checklist_item"][code] == label
    assert labels["checklist_answer"] == {"yes": "是", "no": "否", "not_applicable": "不适用"}
    assert labels["visit_outcome"]["unable_to_enter"] == "无法入户"
    assert labels["unable_reason"]["refused"] == "拒绝入户"
    assert labels["project_type"]["canteen"] == "幸福食堂"
    assert labels["draw_stage"]["drawn"] == "已抽取"
    assert set(labels["sampling_rule"]) == {"R1", "R2", "R3"}


async def test_instants_from_the_stream_and_from_read_models_carry_the_same_offset(service):
    client, clock = service
    summary = await s.drawn(client, clock)
    row = await eventually(lambda: _drawn_row(client), what="the drawn draw in the read model")
    for field in ("frozen_at", "committed_at", "revealed_at", "drawn_at"):
        assert summary[field].endswith("+08:00"), summary[field]
        assert row[field] == summary[field], field
    assert summary["entropy_not_before"] == "2024-05-08T21:30:00+08:00"


async def _drawn_row(client):
    rows = (await client.get("/draws", headers=INSPECTOR)).json()
    row = next((d for d in rows if d["draw_id"] == DRAW_ID), None)
    return row if row is not None and row.get("drawn_at") else None


async def test_refusals_are_in_chinese_and_name_the_valid_choices(service):
    client, clock = service
    await s.drawn(client, clock)
    unknown_unit = await client.get(f"/draws/{DRAW_ID}/picks", params={"unit": "wuhan"},
                                    headers=INSPECTOR)
    assert unknown_unit.status_code == 422, unknown_unit.text
    assert unknown_unit.json()["detail"][0]["valid"] == s.UNITS
    assert "echeng（鄂城区民政局）" in unknown_unit.json()["message"]

    outsider = await client.post("/draws", headers=s.auth("tok-leader"),
                                 json={"draw_id": "other", "title": "(示例)"})
    assert outsider.status_code == 403 and "您的角色" in outsider.json()["message"]

    await client.post(f"/draws/{DRAW_ID}/visits", headers=INSPECTOR, json={
        "draw_id": DRAW_ID, "visit_id": "v-1", "target_kind": "project",
        "target_id": "EC-COMPLEX-1", "scheduled_for": "2024-05-10", "inspector_ids": ["insp-1"]})
    wrong = await client.post(f"/draws/{DRAW_ID}/visits/v-1/record", headers=INSPECTOR, json={
        "draw_id": DRAW_ID, "visit_id": "v-1", "outcome": "passed", "visited_on": "2024-05-10",
        "inspector_ids": ["insp-1"], "checklist": {"meal_assistance": "maybe"}})
    assert wrong.status_code == 409, wrong.text
    message = wrong.json()["message"]
    assert message.startswith("检查表与项目类型不符")
    assert "未回答：提供3项以上专业养老服务" in message
    assert "services_three_plus（提供3项以上专业养老服务）" in message
