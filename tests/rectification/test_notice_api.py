"""Issue 12 through the API (real tokens, real PostgreSQL, local transport): the four-eyes dead
end, a refund after an extension, the board that explains itself, Chinese and local time in
every answer, codes the API accepts named in its 422s, /problems by project a page at a time,
the city-wide 问题清单 and 责任人 from the unit's 附件1."""
from __future__ import annotations

import uuid
from datetime import UTC
from io import BytesIO

import pytest
from openpyxl import load_workbook

from tests.faults import eventually

from .api_support import (
    Clock,
    auth,
    known_projects,
    ledger_entry,
    other_services,
    post,
    problem,
    rectification,
    register,
    request_close_out,
    start,
    verify,
)
from .support import at

pytestmark = pytest.mark.integration


def utc(*args: int) -> Clock:
    """A service clock in UTC, as production's is: answers must still be local (+08:00)."""
    return Clock(at(*args).astimezone(UTC))


def set_utc(clock: Clock, *args: int) -> None:
    clock.now = at(*args).astimezone(UTC)


async def test_a_units_only_reviewer_asks_for_close_out_and_the_city_bureau_decides(database, tmp_path):
    clock = utc(2024, 3, 12)
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        project = await others.project("huarong")
        await known_projects(api, project)
        item = await register(api, "rev-huarong", project)          # huarong's only reviewer
        pid = item["problem_id"]
        await start(api, "rev-huarong", pid)
        asked = await request_close_out(api, "rev-huarong", pid)
        assert asked["close_out_requester_role"] == "district_reviewer"
        assert asked["deciders"] == "本单位审核人申请的销号，由市民政局（管理员）或本单位其他审核人核验"
        refused = await api.post("/problems/verify", headers=auth("rev-huarong"),
                                 json={"problem_id": pid, "conclusion": "合格"})
        assert refused.status_code == 409
        body = refused.json()
        assert body["error"] == "four_eyes"
        assert body["message"] == ("不能核验自己申请的销号：本单位审核人申请的销号，"
                                   "由市民政局（管理员）或本单位其他审核人核验。")
        await verify(api, "inspector", pid, expect=403)
        closed = await verify(api, "admin", pid)
        assert (closed["status"], closed["status_label"], closed["verifier_role"]) == (
            "closed", "已销号", "city_admin")


async def test_an_extension_approved_after_a_deduction_refunds_it_and_the_board_says_why(
        database, tmp_path):
    clock = utc(2024, 3, 5)
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        await others.liaisons("echeng", at(2024, 3, 5))
        await post(api, "/reports/work-plan/submit", "rep-echeng",
                   {"unit": "echeng", "text": "工作计划(示例)"})
        project = await others.project("echeng")
        await known_projects(api, project)
        set_utc(clock, 2024, 3, 10)
        pid = (await register(api, "rep-echeng", project))["problem_id"]
        await start(api, "rep-echeng", pid)
        for month, day in (("2024-03", (2024, 3, 20)), ("2024-04", (2024, 4, 20))):
            set_utc(clock, *day)
            await post(api, "/reports/monthly-list/submit", "rep-echeng",
                       {"unit": "echeng", "month": month})
        set_utc(clock, 2024, 5, 6)
        await post(api, "/reports/self-inspection/submit", "rep-echeng",
                   {"unit": "echeng", "text": "自查报告(示例)"})
        await post(api, "/problems/request-extension", "rep-echeng", {
            "problem_id": pid, "new_deadline": "2024-05-20", "reason": "运营机构招标中(示例)"})

        set_utc(clock, 2024, 5, 8)
        checked = await post(api, "/scores/check", "admin", {})
        mine = [d for d in checked["deducted"] if d["unit"] == "echeng"]
        assert [(d["rule_id"], d["trigger_ref"]) for d in mine] == [
            ("item_open_at_rectification_deadline", f"{pid}@2024-05-07")]
        assert mine[0]["rule"] == "2024年5月7日仍未销号的问题,每项扣0.5分"
        assert mine[0]["problem_id"] == pid

        set_utc(clock, 2024, 5, 9)
        await post(api, "/problems/decide-extension", "rev-echeng",
                   {"problem_id": pid, "approved": True, "reason": "同意(示例)"})
        checked = await post(api, "/scores/check", "admin", {})
        [refund] = [r for r in checked["refunded"] if r["unit"] == "echeng"]
        assert refund["reason"] == ("序号1（凤凰街道幸福食堂1(示例)）的整改限期经批准延至2024年5月20日，"
                                    "退还该项扣分")
        assert (await post(api, "/scores/check", "admin", {}))["refunded"] == []   # once only

        async def refunded() -> dict | None:
            score = (await api.get("/scores/echeng", headers=auth("rep-echeng"))).json()
            return score if score["deductions"] and score["deductions"][0]["refunded"] else None

        score = await eventually(refunded, what="the refund in the read model")
        assert score["deducted"] == "0"
        [deduction] = score["deductions"]
        assert deduction["recorded_at"].endswith("+08:00")
        assert deduction["refunded"]["recorded_at"].endswith("+08:00")

        board = (await api.get("/scores/board", headers=auth("leader"))).json()
        assert board["order"].startswith("按得分（100分减去扣分，退还的扣分不计）从高到低排名")
        assert board["as_of"] == "2024-05-09T10:00:00+08:00"
        echeng = next(row for row in board["board"] if row["unit"] == "echeng")
        assert (echeng["score"], echeng["closure_rate"], echeng["closure_text"]) == (
            "100", "0/1", "0/1（0.0%）")
        [explained] = echeng["deductions"]
        assert explained["rule"] == "2024年5月7日仍未销号的问题,每项扣0.5分"
        assert explained["refunded"]["reason"].startswith("序号1")
        linkong = next(row for row in board["board"] if row["unit"] == "linkong")
        assert {d["rule"] for d in linkong["deductions"]} == {
            "每迟报(或逾期未报)一项材料(联络员信息、工作计划、月度问题清单、自查报告)扣1分"}
        assert {d.get("deadline_name") for d in linkong["deductions"]} == {
            "上报责任领导和联络员信息(附件1)", "上报工作计划", "3月问题整改清单(附件2)",
            "4月问题整改清单(附件2)", "上报自查报告"}


async def test_every_moment_in_an_answer_is_in_the_campaigns_time_zone(database, tmp_path):
    clock = utc(2024, 3, 12, 9, 30)
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        project = await others.project("echeng")
        await known_projects(api, project)
        pid = (await register(api, "rep-echeng", project))["problem_id"]
        started = await start(api, "rep-echeng", pid)
        assert started["registered_at"] == "2024-03-12T09:30:00+08:00"
        assert (started["deadline"], started["deadline_text"]) == ("2024-05-07", "2024年5月7日")
        body = await problem(api, pid, version=2)
        assert body["registered_at"] == "2024-03-12T09:30:00+08:00"
        assert {h["occurred_at"][-6:] for h in body["history"]} == {"+08:00"}
        assert body["history"][0]["payload"]["registered_at"] == "2024-03-12T09:30:00+08:00"
        report = await post(api, "/reports/monthly-list/submit", "rep-echeng",
                            {"unit": "echeng", "month": "2024-03"})
        assert (report["submitted_at"], report["due"]) == (
            "2024-03-12T09:30:00+08:00", "2024-03-25T23:59:59+08:00")
        listed = (await api.get("/problems", headers=auth("admin"))).json()
        assert listed["as_of"] == "2024-03-12T09:30:00+08:00"
        assert (await api.get("/progress", headers=auth("admin"))).json()["as_of"].endswith("+08:00")


async def test_errors_say_in_chinese_what_to_do_and_422s_name_the_valid_codes(database, tmp_path):
    clock = utc(2024, 3, 12)
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        project = await others.project("echeng")
        await known_projects(api, project)
        unknown = await api.post("/problems/register", headers=auth("rep-echeng"), json={
            "problem_id": str(uuid.uuid4()), "project_id": "p-nowhere", "description": "x",
            "deadline": "2024-05-07"})
        assert unknown.status_code == 404
        assert unknown.json()["message"] == (
            "未找到该项目：问题须登记在项目库中已有的项目下，请先核对项目编号。")
        pid = (await register(api, "rep-echeng", project))["problem_id"]
        early = await api.post("/problems/request-close-out", headers=auth("rep-echeng"), json={
            "problem_id": pid, "evidence_text": "照片", "attachment_hashes": ["0" * 64]})
        assert early.status_code == 409
        assert early.json()["message"] == "该问题当前为「已登记」，不能申请销号，请刷新后按当前状态办理。"
        other_unit = await api.post("/problems/start", headers=auth("rep-huarong"),
                                    json={"problem_id": pid, "plan": "x"})
        assert other_unit.status_code == 403
        assert other_unit.json()["message"] == "区级账号只能办理本单位的事项。"
        leader = await api.post("/problems/start", headers=auth("leader"),
                                json={"problem_id": pid, "plan": "x"})
        assert leader.status_code == 403

        bad_unit = await api.get("/problems?unit=wuhan", headers=auth("admin"))
        assert bad_unit.status_code == 422
        body = bad_unit.json()
        assert "echeng, huarong, liangzihu, gedian, linkong" in body["detail"][0]["reason"]
        assert "鄂城区民政局（echeng）" in body["message"]
        bad_status = await api.get("/problems?status=done", headers=auth("admin"))
        assert bad_status.status_code == 422
        assert "'in_rectification'" in bad_status.text and "'close_out_requested'" in bad_status.text
        bad_source = await api.get("/problems?source=rumour", headers=auth("admin"))
        assert bad_source.status_code == 422 and "'self_inspection'" in bad_source.text


async def test_problems_filter_by_project_and_come_a_bounded_page_at_a_time(database, tmp_path):
    clock = utc(2024, 3, 12)
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        p1, p2 = await others.project("echeng", 1), await others.project("echeng", 2)
        await known_projects(api, p1, p2)
        ids = [(await register(api, "rep-echeng", p))["problem_id"] for p in (p1, p2, p1, p1)]
        await problem(api, ids[-1])

        async def page(**query) -> dict:
            response = await api.get("/problems", params=query, headers=auth("admin"))
            assert response.status_code == 200, response.text
            return response.json()

        of_p1 = await page(project_id=p1)
        assert (of_p1["total"], [i["seq_no"] for i in of_p1["items"]]) == (3, [1, 3, 4])
        second = await page(project_id=p1, limit=1, offset=1)
        assert (second["total"], second["limit"], second["offset"]) == (3, 1, 1)
        assert [i["problem_id"] for i in second["items"]] == [ids[2]]
        assert (await page(limit=2, offset=4))["items"] == []
        for query in ("limit=0", "limit=1001", "offset=-1", "offset=1000001"):
            response = await api.get(f"/problems?{query}", headers=auth("admin"))
            assert response.status_code == 422, query


async def test_the_city_bureau_downloads_one_list_of_every_unit_with_each_units_leader_as_responsible(
        database, tmp_path):
    clock = utc(2024, 3, 12)
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        await others.liaisons("huarong", at(2024, 3, 5), leader="赵某(示例)")
        p_echeng, p_huarong = await others.project("echeng"), await others.project("huarong")
        await known_projects(api, p_echeng, p_huarong)
        await register(api, "rep-echeng", p_echeng, description="=HYPERLINK(\"http://x\",\"点\")")
        entry = ledger_entry(p_huarong, "huarong", "entry-1", reason="not_operating")
        entry = entry.model_copy(update={"reason_details": ("not_operating",
                                                            "assessed_underperforming")})
        await others.append(others.registry, f"project-{p_huarong}", entry)

        async def ledger_item() -> dict | None:
            found = (await api.get("/problems?unit=huarong", headers=auth("admin"))).json()["items"]
            return found[0] if found else None

        item = await eventually(ledger_item, what="the ledger item")
        assert item["description"] == "列入台账：项目未投入运营（经评估运营不佳）"
        assert (item["responsible_person"], item["responsible_person_effective"]) == ("", "赵某(示例)")

        response = await api.get("/problem-list.xlsx", headers=auth("admin"))
        assert response.status_code == 200
        workbook = load_workbook(BytesIO(response.content))
        form = workbook["问题清单"]
        assert form["A2"].value == "填报单位：鄂州市民政局"
        rows = [[c.value for c in row] for row in form.iter_rows(min_row=4, max_row=5)]
        assert [(r[0], r[1], r[6]) for r in rows] == [(1, "鄂城区凤凰街道", "张某(示例)"),
                                                       (1, "华容区华容镇", "赵某(示例)")]
        assert form["E4"].value.startswith("=HYPERLINK") and form["E4"].data_type == "s"
        assert form["E4"].quotePrefix
        assert "not_operating" not in str(rows) and "assessed_underperforming" not in str(rows)
        mine = await api.get("/problem-list.xlsx", headers=auth("rep-huarong"))
        assert load_workbook(BytesIO(mine.content))["问题清单"]["A2"].value == "填报单位：华容区民政局"
        assert (await api.get("/problem-list.xlsx?unit=echeng",
                              headers=auth("rep-huarong"))).status_code == 403
