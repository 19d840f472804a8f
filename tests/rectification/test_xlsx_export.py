"""The 附件2 layout, read back with openpyxl (golden cells, merged title, footer)."""
from __future__ import annotations

import uuid
from datetime import date
from io import BytesIO

import pytest
from openpyxl import load_workbook

from services.rectification import commands as c
from services.rectification import domain as d
from services.rectification import events as e
from services.rectification import xlsx_export as x

from .support import RULES, Desk, at, reporter, reviewer

pytestmark = pytest.mark.unit


def row(seq_no: int, *, status: str = "in_rectification", kind=e.DeadlineKind.DATE,
        deadline: date = date(2024, 5, 7)) -> e.ProblemListRow:
    return e.ProblemListRow(
        problem_id=uuid.UUID(int=seq_no), seq_no=seq_no, township="凤凰街道",
        project_name=f"凤凰街道社区居家养老服务中心{seq_no}(示例)", project_year=2021,
        description="未开展助餐服务，专业养老服务不足3项", deadline=deadline, deadline_kind=kind,
        responsible_person="张某(示例)", status=status)


def read(data: bytes):
    workbook = load_workbook(BytesIO(data))
    return workbook.active


def test_the_export_has_the_notices_title_unit_headers_rows_and_footer():
    rows = [row(3, kind=e.DeadlineKind.IMMEDIATE, deadline=date(2024, 3, 17)), row(1, status="closed"),
            row(4, status="reopened")]
    data = x.export_problem_list(rows, unit_name="鄂城区民政局",
                                 footer=x.ListFooter(submitter="李某(示例)", reviewer="王某(示例)",
                                                     day=date(2024, 3, 25)))
    assert data[:2] == b"PK"  # a zip container, as .xlsx is
    sheet = read(data)
    assert sheet["A1"].value == "鄂州市养老领域重点民生项目“回头看”问题清单"
    merged = {str(r) for r in sheet.merged_cells.ranges}
    assert {"A1:G1", "A2:G2"} <= merged
    assert sheet["A2"].value == "填报单位：鄂城区民政局"
    assert [cell.value for cell in sheet[3]] == ["序号", "区域", "项目名称", "项目年份",
                                                 "存在的问题隐患", "整改限期", "责任人"]
    assert [cell.value for cell in sheet[4]] == [
        1, "凤凰街道", "凤凰街道社区居家养老服务中心1(示例)", 2021, "未开展助餐服务，专业养老服务不足3项",
        "2024年5月7日（已销号）", "张某(示例)"]
    assert sheet["A5"].value == 3 and sheet["F5"].value == "立行立改（2024年3月17日前）"
    assert sheet["A6"].value == 4 and sheet["F6"].value == "2024年5月7日（已反弹）"
    assert sheet["A7"].value is None  # the blank row before the footer
    assert (sheet["A8"].value, sheet["D8"].value, sheet["F8"].value) == (
        "填报人：李某(示例)", "审核人：王某(示例)", "日期：2024年3月25日")
    assert {"A8:C8", "D8:E8", "F8:G8"} <= merged
    assert sheet.max_row == 8
    assert sheet.column_dimensions["E"].width == x.COLUMN_WIDTHS[4]
    assert sheet["A1"].font.bold and sheet["E4"].alignment.wrap_text


def test_a_unit_without_items_files_a_nil_return():
    sheet = read(x.export_problem_list([], unit_name="临空经济区社会事务局"))
    assert sheet["A4"].value == "无"
    assert sheet["A6"].value == "填报人：" and sheet["F6"].value == "日期："


def test_a_submitted_monthly_list_exports_as_filed_with_its_submitter_and_reviewer():
    desk = Desk()
    desk.register(reporter("gedian"), at(2024, 3, 10))
    report = d.new_report(d.monthly_list_report_id("gedian", "2024-03"), e.ReportKind.MONTHLY_LIST,
                          "gedian", "2024-03")
    report = d.fold_report(report, d.decide_submit_monthly_list(
        report, c.SubmitMonthlyList(unit="gedian", month="2024-03"),
        rows=d.problem_list_rows(desk.items(), unit="gedian"), actor=reporter("gedian"),
        now=at(2024, 3, 25, 23, 30), rules=RULES))
    report = d.fold_report(report, d.decide_review_report(
        report, c.ReviewReport(report_id=report.report_id, approved=True), actor=reviewer("gedian"),
        now=at(2024, 3, 26)))
    sheet = read(x.export_monthly_list(report, unit_name="葛店经济开发区城乡融合发展局", rules=RULES))
    assert sheet["A2"].value == "填报单位：葛店经济开发区城乡融合发展局"
    assert sheet["A4"].value == 1 and sheet["B4"].value == "葛店镇"
    assert sheet["A6"].value == f"填报人：{reporter('gedian').name}"
    assert sheet["D6"].value == f"审核人：{reviewer('gedian').name}"
    assert sheet["F6"].value == "日期：2024年3月25日"


def test_an_unsubmitted_list_has_nothing_to_export():
    report = d.new_report("x", e.ReportKind.MONTHLY_LIST, "gedian", "2024-03")
    with pytest.raises(ValueError):
        x.export_monthly_list(report, unit_name="葛店经济开发区城乡融合发展局", rules=RULES)
