"""Rectification joins the kernel's read-your-writes and vocabulary (shared/consistency.py,
shared/vocabulary.py): the person who just registered an item sees it in the list at once, and
every code rectification speaks has its Chinese label at /vocabulary."""
from __future__ import annotations

import pytest

from .api_support import Clock, auth, known_projects, other_services, rectification
from .support import at

pytestmark = pytest.mark.integration


async def test_the_list_right_after_a_registration_shows_the_new_item(database, tmp_path):
    # The sequencer polls every half second: a read that did not wait would see the list behind.
    async with other_services(database) as others, rectification(
            database, tmp_path, Clock(at(2024, 3, 12)), sequencer_poll_interval=0.5) as api:
        project_id = await others.project("echeng")
        await known_projects(api, project_id)
        for n in range(3):  # each read follows its own write at once, every time
            created = await api.post("/problems/register", headers=auth("rep-echeng"), json={
                "problem_id": f"00000000-0000-4000-8000-00000000000{n}", "project_id": project_id,
                "description": f"未开展助餐服务(示例){n}", "deadline": "2024-05-07",
                "source": "self_inspection"})
            assert created.status_code == 201, created.text
            token = created.headers["X-Lookback-Token"]
            listed = await api.get("/problems", headers={**auth("rep-echeng"),
                                                          "X-Lookback-After": token})
            assert listed.status_code == 200, listed.text
            assert len(listed.json()["items"]) == n + 1
        bad = await api.get("/problems", headers={**auth("rep-echeng"), "X-Lookback-After": "x"})
        assert bad.status_code == 422


async def test_the_vocabulary_names_statuses_sources_reports_and_deduction_rules_in_chinese(
        database, tmp_path):
    async with rectification(database, tmp_path, Clock(at(2024, 3, 12))) as api:
        answer = await api.get("/vocabulary", headers=auth("rep-echeng"))
        assert answer.status_code == 200, answer.text
        sets = {s["kind"]: {t["code"]: t["label"] for t in s["terms"]} for s in answer.json()["sets"]}
        assert sets["problem_status"]["closed"] == "已销号"
        assert sets["problem_source"]["ledger"] == "台账"
        assert sets["report_kind"]["work_plan"] == "工作计划"
        assert "item_reopened" in sets["deduction_rule"]
        assert sets["unit"]["echeng"] == "鄂城区民政局"


async def test_a_phone_or_id_number_in_a_description_is_refused_and_nothing_is_written(
        database, tmp_path):
    async with other_services(database) as others, rectification(database, tmp_path,
                                                                 Clock(at(2024, 3, 12))) as api:
        project_id = await others.project("echeng")
        await known_projects(api, project_id)
        refused = await api.post("/problems/register", headers=auth("rep-echeng"), json={
            "problem_id": "00000000-0000-4000-8000-0000000000aa", "project_id": project_id,
            "description": "独居老人王某某(示例)电话13812345678无人照看", "deadline": "2024-05-07",
            "source": "self_inspection"})
        assert refused.status_code == 422, refused.text
        assert [d["field"] for d in refused.json()["detail"]] == ["description"]
        assert "13812345678" not in refused.text
        listed = await api.get("/problems", headers=auth("admin"))
        assert listed.json()["items"] == []
