"""Reports, the 附件2 download, progress and the score board through the API (real tokens, real
PostgreSQL, local transport), with the Ezhou 2024 campaign file's rules."""
from __future__ import annotations

import asyncio
import uuid
from io import BytesIO

import pytest
from openpyxl import load_workbook

from tests.faults import eventually

from .api_support import (Clock, auth, close, known_projects, other_services, post, problem,
                          rectification, register, request_close_out, start, verify)
from .support import UNITS, at

pytestmark = pytest.mark.integration

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def sheet_of(content: bytes):
    assert content[:2] == b"PK"
    return load_workbook(BytesIO(content)).active


def rows_of(sheet) -> list[list]:
    return [[cell.value for cell in row] for row in sheet.iter_rows(min_row=4)]


async def submit_list(api, unit: str, month: str, *, who: str | None = None) -> dict:
    return await post(api, "/reports/monthly-list/submit", who or f"rep-{unit}",
                      {"unit": unit, "month": month})


async def test_the_monthly_list_snapshot_and_the_live_list_download_in_the_attachment_2_layout(
        database, tmp_path):
    clock = Clock(at(2024, 3, 12))
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        p1, p2 = await others.project("echeng", 1), await others.project("echeng", 2, year=2023)
        await known_projects(api, p1, p2)
        first = await register(api, "rep-echeng", p1, description="未开展助餐服务(示例)")
        await register(api, "rep-echeng", p2, deadline=None, description="消防通道堵塞(示例)")
        await start(api, "rep-echeng", first["problem_id"])
        clock.set(2024, 3, 20)
        await close(api, first["problem_id"], "rep-echeng", "rev-echeng")

        clock.set(2024, 3, 25, 16)
        report = await submit_list(api, "echeng", "2024-03")
        assert report["status"] == "submitted" and report["late"] is False
        report_id = report["report_id"]
        assert report_id == "echeng-monthly_list-2024-03"
        # The reporter cannot approve his own list; the unit's reviewer can.
        await post(api, "/reports/review", "rep-echeng", {"report_id": report_id, "approved": True},
                   expect=403)
        await post(api, "/reports/review", "rev-huarong", {"report_id": report_id, "approved": True},
                   expect=403)
        reviewed = await post(api, "/reports/review", "rev-echeng",
                              {"report_id": report_id, "approved": True})
        assert reviewed["status"] == "reviewed" and reviewed["reviewer"] == "鄂城审核人(示例)"

        clock.set(2024, 3, 27)
        later = await register(api, "rep-echeng", p1, description="台账不全(示例)", deadline="2024-04-30")

        response = await api.get(f"/reports/{report_id}/xlsx", headers=auth("rev-echeng"))
        assert response.status_code == 200 and response.headers["content-type"] == XLSX
        sheet = sheet_of(response.content)
        assert sheet["A1"].value == "鄂州市养老领域重点民生项目“回头看”问题清单"
        assert sheet["A2"].value == "填报单位：鄂城区民政局"
        assert [c.value for c in sheet[3]] == ["序号", "区域", "项目名称", "项目年份",
                                               "存在的问题隐患", "整改限期", "责任人"]
        assert rows_of(sheet) == [
            [1, "凤凰街道", "凤凰街道幸福食堂1(示例)", 2022, "未开展助餐服务(示例)",
             "2024年5月7日", "张某(示例)"],
            [2, "凤凰街道", "凤凰街道幸福食堂2(示例)", 2023, "消防通道堵塞(示例)",
             "立行立改（2024年3月19日前）", "张某(示例)"],
            [None] * 7,
            ["填报人：鄂城填报人(示例)", None, None, "审核人：鄂城审核人(示例)", None,
             "日期：2024年3月25日", None],
        ]
        # The status is on its own sheet, as it stood when the list was filed.
        status = load_workbook(BytesIO(response.content))["销号情况"]
        assert [(r[0], r[4], r[5]) for r in rows_of(status)] == [(1, "已销号", "否"), (2, "已登记", "已逾期")]
        # The snapshot is frozen; the live list has the item registered after it.
        await problem(api, later["problem_id"])
        response = await api.get("/problem-list.xlsx?unit=echeng", headers=auth("rep-echeng"))
        assert response.status_code == 200
        live = rows_of(sheet_of(response.content))
        assert [row[0] for row in live[:3]] == [1, 2, 3]
        assert live[2][4:6] == ["台账不全(示例)", "2024年4月30日"]
        assert live[-1][5] == "日期：2024年3月27日"
        # Scoping: another unit's district roles may not download it; the city may.
        assert (await api.get(f"/reports/{report_id}/xlsx",
                              headers=auth("rep-huarong"))).status_code == 403
        assert (await api.get(f"/reports/{report_id}/xlsx", headers=auth("leader"))).status_code == 200
        missing = await api.get("/reports/huarong-monthly_list-2024-03/xlsx", headers=auth("admin"))
        assert missing.status_code == 404


async def test_a_returned_list_is_resubmitted_and_lateness_is_kept_from_the_first_submission(
        database, tmp_path):
    clock = Clock(at(2024, 3, 26, 9))
    async with rectification(database, tmp_path, clock) as api:
        first = await submit_list(api, "huarong", "2024-03")
        assert first["late"] is True and first["version"] == 1
        await post(api, "/reports/monthly-list/return", "rev-huarong",
                   {"unit": "huarong", "month": "2024-03", "comment": "缺少整改时限"}, expect=403)
        returned = await post(api, "/reports/monthly-list/return", "admin",
                              {"unit": "huarong", "month": "2024-03", "comment": "缺少整改时限"})
        assert returned["status"] == "returned"
        again = await submit_list(api, "huarong", "2024-03")
        assert (again["version"], again["status"], again["late"]) == (2, "submitted", True)
        case_id = str(uuid.uuid4())
        case = await post(api, "/reports/typical-case/submit", "rep-huarong", {
            "unit": "huarong", "case_id": case_id, "title": "引进专业运营机构(示例)", "text": "……"})
        assert case["report_id"] == f"huarong-typical_case-{case_id}"
        si = await post(api, "/reports/self-inspection/submit", "rep-huarong",
                        {"unit": "huarong", "text": "自查报告(示例)"})
        assert si["late"] is False
        await post(api, "/reports/self-inspection/submit", "rev-huarong",
                   {"unit": "huarong", "text": "x"}, expect=403)  # the 填报人 submits

        async def three() -> list | None:
            body = (await api.get("/reports?unit=huarong", headers=auth("rep-huarong"))).json()
            return body["reports"] if len(body["reports"]) == 3 else None

        reports = await eventually(three, what="three huarong reports")
        assert {r["kind"] for r in reports} == {"monthly_list", "typical_case",
                                                "self_inspection_report"}


async def test_the_score_board_through_the_api_matches_the_hand_computed_example(database, tmp_path):
    """Rules of the Ezhou 2024 campaign file: late report 1, item open at 05-07 0.5 (cap 5),
    rebound 1, no typical case by 05-31 2; plus discretionary deductions.

    echeng:    its item closed 05-06, every report on time                     → 100
    gedian:    item closed, rebounded (−1), successor closed; reports on time  → 99, 销号率 1/2
    liangzihu: no items; lists and report on time, no typical case (−2)        → 98, 销号率 n/a
    huarong:   March list late (−1), one item open at 05-07 (−0.5),
               discretionary −0.5                                              → 98, 销号率 1/2
    linkong:   nothing at all: 附件1, work plan, 3 reports missing (−5), no typical case (−2) → 93
    Ties (liangzihu, huarong at 98) go to the higher 销号率; none to close counts as 100%.
    Every unit but linkong files 附件1 (with the registry) and its work plan on 03-05.
    """
    clock = Clock(at(2024, 3, 5))
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        for unit in ("echeng", "huarong", "liangzihu", "gedian"):
            await others.liaisons(unit, at(2024, 3, 5))
            plan = await post(api, "/reports/work-plan/submit", f"rep-{unit}",
                              {"unit": unit, "text": "工作计划(示例)"})
            assert (plan["report_id"], plan["late"]) == (f"{unit}-work_plan", False)
        clock.set(2024, 3, 10)
        projects = {unit: await others.project(unit) for unit in ("echeng", "huarong", "gedian")}
        await known_projects(api, *projects.values())
        e1 = (await register(api, "rep-echeng", projects["echeng"]))["problem_id"]
        h1 = (await register(api, "rep-huarong", projects["huarong"]))["problem_id"]
        h2 = (await register(api, "rep-huarong", projects["huarong"]))["problem_id"]
        g1 = (await register(api, "rep-gedian", projects["gedian"]))["problem_id"]
        clock.set(2024, 3, 11)
        for who, pid in (("rep-echeng", e1), ("rep-huarong", h1), ("rep-huarong", h2),
                         ("rep-gedian", g1)):
            await start(api, who, pid)

        clock.set(2024, 3, 20)
        for unit in ("echeng", "liangzihu", "gedian"):
            await submit_list(api, unit, "2024-03")
        clock.set(2024, 3, 26, 9)
        assert (await submit_list(api, "huarong", "2024-03"))["late"] is True

        clock.set(2024, 4, 1)
        await close(api, g1, "rep-gedian", "rev-gedian")
        await close(api, h1, "rep-huarong", "rev-huarong")
        clock.set(2024, 4, 20)
        for unit in ("echeng", "huarong", "liangzihu", "gedian"):
            await submit_list(api, unit, "2024-04")
        clock.set(2024, 4, 22)
        g2 = str(uuid.uuid4())
        reopened = await post(api, "/problems/reopen", "inspector", {
            "problem_id": g1, "new_problem_id": g2, "reason": "复查发现问题反弹(示例)"}, expect=201)
        assert reopened["original"]["status"] == "reopened"
        assert (reopened["problem"]["seq_no"], reopened["problem"]["source"]) == (2, "city")
        await start(api, "rep-gedian", g2)
        await request_close_out(api, "rep-gedian", g2)
        await verify(api, "rev-gedian", g2, expect=403)   # the city found it again: an inspector
        await verify(api, "inspector2", g2)

        clock.set(2024, 5, 6)
        await close(api, e1, "rep-echeng", "rev-echeng")
        for unit in ("echeng", "huarong", "liangzihu", "gedian"):
            await post(api, "/reports/self-inspection/submit", f"rep-{unit}",
                       {"unit": unit, "text": "自查报告(示例)"})
        clock.set(2024, 5, 20)
        for unit in ("echeng", "huarong", "gedian"):
            await post(api, "/reports/typical-case/submit", f"rep-{unit}", {
                "unit": unit, "case_id": str(uuid.uuid4()), "title": "案例(示例)", "text": "……"})

        clock.set(2024, 6, 1)
        await post(api, "/scores/check", "rev-echeng", {}, expect=403)
        decided = (await post(api, "/scores/check", "admin", {}))["deducted"]
        assert sorted((d["unit"], d["rule_id"], d["trigger_ref"], d["points"]) for d in decided) == sorted([
            ("huarong", "late_submission", "huarong-monthly_list-2024-03", "1"),
            ("huarong", "item_open_at_rectification_deadline", f"{h2}@2024-05-07", "0.5"),
            ("gedian", "item_reopened", f"{g1}@reopened", "1"),
            ("liangzihu", "missing_typical_case", "liangzihu-typical_case@2024-05-31", "2"),
            ("linkong", "late_submission", "linkong-liaisons@2024-03-06", "1"),
            ("linkong", "late_submission", "linkong-work_plan", "1"),
            ("linkong", "late_submission", "linkong-monthly_list-2024-03", "1"),
            ("linkong", "late_submission", "linkong-monthly_list-2024-04", "1"),
            ("linkong", "late_submission", "linkong-self_inspection_report", "1"),
            ("linkong", "missing_typical_case", "linkong-typical_case@2024-05-31", "2"),
        ])
        assert (await post(api, "/scores/check", "admin", {}))["deducted"] == []  # once only
        deduction = {"unit": "huarong", "deduction_id": str(uuid.uuid4()), "points": "0.5",
                     "reason": "整改工作进度滞后(示例)"}
        await post(api, "/scores/deduct", "inspector", deduction, expect=403)
        for _ in range(2):  # a retried request deducts once
            score = await post(api, "/scores/deduct", "admin", deduction)
        assert score["deducted"] == "2"
        reasons = {d["trigger_ref"]: d["reason"] for d in decided}
        assert reasons["linkong-work_plan"] == (
            "每迟报(或逾期未报)一项材料(联络员信息、工作计划、月度问题清单、自查报告)扣1分："
            "上报工作计划截至报送期限2024年3月6日未报送")
        assert reasons[f"{g1}@reopened"] == (
            "已销号问题反弹,每项扣1分：序号1（葛店镇幸福食堂1(示例)）销号后反弹")

        expected = [
            {"rank": 1, "unit": "echeng", "score": "100", "closure_rate": "1/1"},
            {"rank": 2, "unit": "gedian", "score": "99", "closure_rate": "1/2"},
            {"rank": 3, "unit": "liangzihu", "score": "98", "closure_rate": None},
            {"rank": 4, "unit": "huarong", "score": "98", "closure_rate": "1/2"},
            {"rank": 5, "unit": "linkong", "score": "93", "closure_rate": None},
        ]

        async def all_deductions_projected() -> bool:
            scores = [(await api.get(f"/scores/{u}", headers=auth("admin"))).json() for u in UNITS]
            return sum(len(score["deductions"]) for score in scores) == 11

        await eventually(all_deductions_projected, what="eleven deductions in the read model")
        await problem(api, e1, version=4)  # the items' projection is a consumer of its own
        rows = (await api.get("/scores/board", headers=auth("leader"))).json()["board"]
        assert [{k: row[k] for k in ("rank", "unit", "score", "closure_rate")} for row in rows] == expected
        assert rows[0]["unit_name"] == "鄂城区民政局" and rows[3]["deducted"] == "2"

        progress = (await api.get("/progress", headers=auth("admin"))).json()["units"]
        by_unit = {p["unit"]: p for p in progress}
        assert [p["unit"] for p in progress] == list(UNITS)
        assert (by_unit["huarong"]["open"], by_unit["huarong"]["overdue"],
                by_unit["huarong"]["late_reports"], by_unit["huarong"]["light"]) == (1, 1, 1, "red")
        assert by_unit["gedian"]["reopened"] == 1 and by_unit["gedian"]["closure_percent"] == "50.0"
        assert by_unit["linkong"]["missing_reports"] == 6
        mine = (await api.get("/progress", headers=auth("rep-gedian"))).json()["units"]
        assert [p["unit"] for p in mine] == ["gedian"]


async def test_the_background_check_deducts_each_missing_list_exactly_once(database, tmp_path):
    clock = Clock(at(2024, 3, 26, 9))
    async with rectification(database, tmp_path, clock, score_check_interval=0.05) as api:
        await submit_list(api, "echeng", "2024-03")   # late, the others missing (and every 附件1
        # and work plan: none was filed)

        async def all_five() -> dict | None:
            scores = {u: (await api.get(f"/scores/{u}", headers=auth("admin"))).json()
                      for u in UNITS}
            return scores if all(len(s["deductions"]) == 3 for s in scores.values()) else None

        scores = await eventually(all_five, what="three deductions for every unit")
        await asyncio.sleep(0.4)  # several more checks run meanwhile
        for unit in UNITS:
            deductions = (await api.get(f"/scores/{unit}", headers=auth("admin"))).json()["deductions"]
            assert sorted((d["rule_id"], d["trigger_ref"]) for d in deductions) == [
                ("late_submission", f"{unit}-liaisons@2024-03-06"),
                ("late_submission", f"{unit}-monthly_list-2024-03"),
                ("late_submission", f"{unit}-work_plan")]
        assert scores["echeng"]["deducted"] == "3"
