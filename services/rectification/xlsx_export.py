"""The problem list as `.xlsx` in the layout of the notice's 附件2 (鄂州民政文〔2024〕19号).

    row 1   鄂州市养老领域重点民生项目“回头看”问题清单          (merged A1:G1)
    row 2   填报单位：<unit name>                                  (merged A2:G2)
    row 3   序号 | 区域 | 项目名称 | 项目年份 | 存在的问题隐患 | 整改限期 | 责任人
    row 4…  one row per item, by 序号 (a unit with no items files a nil return: one row "无")
    last    填报人：… (A:C)   审核人：… (D:E)   日期：… (F:G)

The seven columns are the notice's, unchanged. The 销号 state, which the form has no column for,
is appended to the 整改限期 cell ("（已销号）", "（已反弹）") so a closed item is never mistaken for
an open one. No phone numbers or other contact details are written.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from io import BytesIO

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter

from services.rectification.domain import RectificationRules, ReportState
from services.rectification.events import DeadlineKind, ProblemListRow

DEFAULT_TITLE = "鄂州市养老领域重点民生项目“回头看”问题清单"
HEADERS = ("序号", "区域", "项目名称", "项目年份", "存在的问题隐患", "整改限期", "责任人")
COLUMN_WIDTHS = (7, 14, 28, 10, 46, 18, 12)
NIL_RETURN = "无"
TITLE_ROW, UNIT_ROW, HEADER_ROW, FIRST_DATA_ROW = 1, 2, 3, 4

_STATUS_MARK = {"closed": "（已销号）", "reopened": "（已反弹）"}
_FONT = "宋体"
_THIN = Side(style="thin", color="000000")
_BOX = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)


@dataclass(frozen=True, slots=True)
class ListFooter:
    submitter: str = ""    # 填报人
    reviewer: str = ""     # 审核人
    day: date | None = None  # 日期


def chinese_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def deadline_text(row: ProblemListRow) -> str:
    """整改限期 as the form shows it: a date, or 立行立改 with the date it fell due."""
    if row.deadline_kind is DeadlineKind.IMMEDIATE:
        text = f"立行立改（{chinese_date(row.deadline)}前）"
    else:
        text = chinese_date(row.deadline)
    return text + _STATUS_MARK.get(row.status, "")


NO_FOOTER = ListFooter()


def export_problem_list(rows: Iterable[ProblemListRow], *, unit_name: str,
                        footer: ListFooter = NO_FOOTER, title: str = DEFAULT_TITLE,
                        sheet_title: str = "问题清单") -> bytes:
    """Render rows (a frozen monthly snapshot or the live list) as an .xlsx workbook's bytes."""
    ordered: Sequence[ProblemListRow] = sorted(rows, key=lambda r: r.seq_no)
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = sheet_title
    last_col = get_column_letter(len(HEADERS))

    sheet.merge_cells(f"A{TITLE_ROW}:{last_col}{TITLE_ROW}")
    title_cell = sheet.cell(TITLE_ROW, 1, title)
    title_cell.font = Font(name=_FONT, size=16, bold=True)
    title_cell.alignment = Alignment(horizontal="center", vertical="center")
    sheet.row_dimensions[TITLE_ROW].height = 36

    sheet.merge_cells(f"A{UNIT_ROW}:{last_col}{UNIT_ROW}")
    unit_cell = sheet.cell(UNIT_ROW, 1, f"填报单位：{unit_name}")
    unit_cell.font = Font(name=_FONT, size=12)
    unit_cell.alignment = Alignment(horizontal="left", vertical="center")

    for col, header in enumerate(HEADERS, start=1):
        cell = sheet.cell(HEADER_ROW, col, header)
        cell.font = Font(name=_FONT, size=12, bold=True)
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        cell.border = _BOX

    body: list[tuple[object, ...]] = [
        (row.seq_no, row.township, row.project_name, row.project_year, row.description,
         deadline_text(row), row.responsible_person)
        for row in ordered
    ] or [(NIL_RETURN, "", "", "", "", "", "")]
    for offset, values in enumerate(body):
        row_no = FIRST_DATA_ROW + offset
        for col, value in enumerate(values, start=1):
            cell = sheet.cell(row_no, col, value)
            cell.font = Font(name=_FONT, size=11)
            cell.border = _BOX
            centred = col in (1, 4)
            cell.alignment = Alignment(horizontal="center" if centred else "left",
                                       vertical="center", wrap_text=True)

    footer_row = FIRST_DATA_ROW + len(body) + 1  # one blank row, as on the form
    parts = ((1, 3, f"填报人：{footer.submitter}"), (4, 5, f"审核人：{footer.reviewer}"),
             (6, 7, f"日期：{chinese_date(footer.day) if footer.day else ''}"))
    for first, last, text in parts:
        sheet.merge_cells(start_row=footer_row, start_column=first, end_row=footer_row,
                          end_column=last)
        cell = sheet.cell(footer_row, first, text)
        cell.font = Font(name=_FONT, size=12)
        cell.alignment = Alignment(horizontal="left", vertical="center")

    for col, width in enumerate(COLUMN_WIDTHS, start=1):
        sheet.column_dimensions[get_column_letter(col)].width = width
    sheet.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.freeze_panes = f"A{FIRST_DATA_ROW}"

    buffer = BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def export_monthly_list(report: ReportState, *, unit_name: str,
                        rules: RectificationRules) -> bytes:
    """A submitted monthly list as filed: its frozen rows, 填报人 = the submitter, 审核人 = the
    reviewer once reviewed, 日期 = the local day of the submission."""
    if report.status is None or report.submitted_at is None:
        raise ValueError(f"report {report.report_id} has not been submitted")
    footer = ListFooter(submitter=report.submitter or "", reviewer=report.reviewer or "",
                        day=rules.local_date(report.submitted_at))
    return export_problem_list(report.rows, unit_name=unit_name, footer=footer)
