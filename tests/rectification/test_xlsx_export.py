"""The 附件2 layout, read back with openpyxl (golden cells, merged title, footer, the status sheet,
print setup, row heights, formulas written as text)."""
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
from shared.spreadsheets import wrapped_lines

from .support import CONFIG, RULES, Desk, at, reporter, reviewer

pytestmark = pytest.mark.unit

TITLE = CONFIG.problem_list_title


def row(seq_no: int, *, status: str = "in_rectification", kind=e.DeadlineKind.DATE,
        deadline: date = date(2024, 5, 7), project_name: str | None = None,
        description: str = "未开展助餐服务，专业养老服务不足3项") -> e.ProblemListRow:
    return e.ProblemListRow(
        problem_id=uuid.UUID(int=seq_no), seq_no=seq_no, township="凤凰街道",
        project_name=project_name or f"凤凰街道社区居家养老服务中心{seq_no}(示例)", project_year=2021,
        description=description, deadline=deadline, deadline_kind=kind,
        responsible_person="张某(示例)", status=status)


def read(data: bytes, sheet: str | None = None):
    workbook = load_workbook(BytesIO(data))
    return workbook[sheet] if sheet else workbook.active


def test_the_title_comes_from_the_campaign_file():
    assert TITLE == "鄂州市养老领域重点民生项目“回头看”问题清单"
    data = CONFIG.campaign.model_dump()
    data["campaign"]["name"] = "黄石市养老领域重点民生项目“回头看”活动"
    from services.rectification.config import rectification_config
    from shared.campaign import parse_campaign
    assert rectification_config(parse_campaign(data)).problem_list_title == \
        "黄石市养老领域重点民生项目“回头看”问题清单"
    assert not hasattr(x, "DEFAULT_TITLE")  # no city's title is written into the code


def test_the_export_has_the_notices_title_unit_headers_rows_and_footer():
    rows = [row(3, kind=e.DeadlineKind.IMMEDIATE, deadline=date(2024, 3, 17)), row(1, status="closed"),
            row(4, status="reopened")]
    data = x.export_problem_list(rows, unit_name="鄂城区民政局", title=TITLE,
                                 footer=x.ListFooter(submitter="李某(示例)", reviewer="王某(示例)",
                                                     day=date(2024, 3, 25)))
    assert data[:2] == b"PK"  # a zip container, as .xlsx is
    sheet = read(data, x.FORM_SHEET)
    assert sheet["A1"].value == "鄂州市养老领域重点民生项目“回头看”问题清单"
    merged = {str(r) for r in sheet.merged_cells.ranges}
    assert {"A1:G1", "A2:G2"} <= merged
    assert sheet["A2"].value == "填报单位：鄂城区民政局"
    assert [cell.value for cell in sheet[3]] == ["序号", "区域", "项目名称", "项目年份",
                                                 "存在的问题隐患", "整改限期", "责任人"]
    # The notice's seven columns hold only what the notice asks: no status in 整改限期.
    assert [cell.value for cell in sheet[4]] == [
        1, "凤凰街道", "凤凰街道社区居家养老服务中心1(示例)", 2021, "未开展助餐服务，专业养老服务不足3项",
        "2024年5月7日", "张某(示例)"]
    assert sheet["A5"].value == 3 and sheet["F5"].value == "立行立改（2024年3月17日前）"
    assert sheet["A6"].value == 4 and sheet["F6"].value == "2024年5月7日"
    assert sheet.max_column == 7
    assert sheet["A7"].value is None  # the blank row before the footer
    assert (sheet["A8"].value, sheet["D8"].value, sheet["F8"].value) == (
        "填报人：李某(示例)", "审核人：王某(示例)", "日期：2024年3月25日")
    assert {"A8:C8", "D8:E8", "F8:G8"} <= merged
    assert sheet.max_row == 8
    assert sheet.column_dimensions["E"].width == x.COLUMN_WIDTHS[4]
    assert sheet["A1"].font.bold and sheet["E4"].alignment.wrap_text


def test_the_status_of_each_item_is_on_its_own_sheet_in_chinese():
    rows = [row(1, status="closed"), row(2, deadline=date(2024, 3, 20)), row(3, status="reopened"),
            row(4, status="close_out_requested")]
    data = x.export_problem_list(rows, unit_name="鄂城区民政局", title=TITLE, as_of=at(2024, 3, 25),
                                 rules=RULES)
    status = read(data, x.STATUS_SHEET)
    assert [cell.value for cell in status[3]] == list(x.STATUS_HEADERS)
    assert [(status.cell(r, 1).value, status.cell(r, 5).value, status.cell(r, 6).value)
            for r in range(4, 8)] == [(1, "已销号", "否"), (2, "整改中", "已逾期"), (3, "已反弹", "否"),
                                      (4, "已申请销号", "否")]
    assert status["A2"].value == "填报单位：鄂城区民政局，截至2024年3月25日"


def test_the_widths_hold_an_immediate_deadline_on_one_line():
    text = x.deadline_text(row(1, kind=e.DeadlineKind.IMMEDIATE, deadline=date(2024, 12, 8)))
    assert text == "立行立改（2024年12月8日前）"
    assert wrapped_lines(text, x.COLUMN_WIDTHS[5]) == 1


def test_every_row_is_as_tall_as_its_wrapped_text():
    long = "未开展助餐服务，专业养老服务不足3项；" * 6
    data = x.export_problem_list([row(1), row(2, description=long)], unit_name="鄂城区民政局",
                                 title=TITLE)
    sheet = read(data, x.FORM_SHEET)
    short_height, long_height = sheet.row_dimensions[4].height, sheet.row_dimensions[5].height
    assert short_height is not None and long_height is not None
    lines = wrapped_lines(long, x.COLUMN_WIDTHS[4])
    assert lines >= 4
    assert long_height >= lines * 14 > short_height


def test_both_sheets_print_a4_landscape_as_wide_as_the_page_with_the_header_repeated():
    data = x.export_problem_list([row(1)], unit_name="鄂城区民政局", title=TITLE)
    for name in (x.FORM_SHEET, x.STATUS_SHEET):
        sheet = read(data, name)
        assert sheet.page_setup.orientation == "landscape"
        assert str(sheet.page_setup.paperSize) == sheet.PAPERSIZE_A4
        assert (sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight) == (1, 0)
        assert sheet.sheet_properties.pageSetUpPr.fitToPage
        assert sheet.print_title_rows.replace("$", "") == "3:3"


@pytest.mark.parametrize("typed", ['=HYPERLINK("http://evil.example","点击")', "+1+cmd|' /C calc'!A0",
                                   "-2+3", "@SUM(A1:A2)", "\t=1+1", "\r=1+1"])
def test_text_that_looks_like_a_formula_is_written_as_text(typed):
    data = x.export_problem_list([row(1, project_name=typed, description=typed)],
                                 unit_name="鄂城区民政局", title=TITLE)
    for name in (x.FORM_SHEET, x.STATUS_SHEET):
        sheet = read(data, name)
        cell = sheet["C4"]
        # (XML reads a CR back as LF: the text is otherwise kept exactly as typed)
        assert cell.value == typed.replace("\r", "\n") and cell.data_type == "s" and cell.quotePrefix
    assert read(data, x.FORM_SHEET)["E4"].data_type == "s"


def test_the_city_wide_list_has_every_unit_by_unit_then_seq_no():
    data = x.export_city_problem_list(
        [("鄂城区", [row(2), row(1)]), ("华容区", []), ("梁子湖区", [row(1, status="closed")])],
        issuer="鄂州市民政局", title=TITLE, footer=x.ListFooter(day=date(2024, 4, 1)))
    sheet = read(data, x.FORM_SHEET)
    assert sheet["A2"].value == "填报单位：鄂州市民政局"
    assert [(sheet.cell(r, 1).value, sheet.cell(r, 2).value) for r in range(4, 7)] == [
        (1, "鄂城区凤凰街道"), (2, "鄂城区凤凰街道"), (1, "梁子湖区凤凰街道")]
    assert sheet["F8"].value == "日期：2024年4月1日"
    assert read(data, x.STATUS_SHEET)["E6"].value == "已销号"


def test_a_unit_without_items_files_a_nil_return():
    sheet = read(x.export_problem_list([], unit_name="临空经济区社会事务局", title=TITLE))
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
    data = x.export_monthly_list(report, unit_name="葛店经济开发区城乡融合发展局", rules=RULES,
                                 title=TITLE)
    sheet = read(data)
    assert sheet["A2"].value == "填报单位：葛店经济开发区城乡融合发展局"
    assert sheet["A4"].value == 1 and sheet["B4"].value == "葛店镇"
    assert sheet["A6"].value == f"填报人：{reporter('gedian').name}"
    assert sheet["D6"].value == f"审核人：{reviewer('gedian').name}"
    assert sheet["F6"].value == "日期：2024年3月25日"
    assert read(data, x.STATUS_SHEET)["E4"].value == "已登记"


def test_an_item_nobody_named_a_responsible_person_for_shows_the_units_leader():
    desk = Desk()
    pid = desk.register(reporter("gedian"), at(2024, 3, 10))
    unnamed = d.evolve(desk.problem(pid), e.RectificationStarted(
        problem_id=pid, unit="gedian", plan="方案", responsible_person="", started_by="x"))
    [listed] = d.problem_list_rows([unnamed], unit="gedian", responsible_leader="王某(示例)")
    assert listed.responsible_person == "王某(示例)"
    [named] = d.problem_list_rows([desk.problem(pid)], unit="gedian", responsible_leader="王某(示例)")
    assert named.responsible_person == "责任人(示例)"


def test_an_unsubmitted_list_has_nothing_to_export():
    report = d.new_report("x", e.ReportKind.MONTHLY_LIST, "gedian", "2024-03")
    with pytest.raises(ValueError):
        x.export_monthly_list(report, unit_name="葛店经济开发区城乡融合发展局", rules=RULES, title=TITLE)
