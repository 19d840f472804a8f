"""The problem list as `.xlsx` in the layout of the notice's 附件2, made to print.

Sheet 1, 问题清单 (the form, A4 landscape, header row repeated on every page):

    row 1   <the campaign's title>, e.g. 鄂州市养老领域重点民生项目“回头看”问题清单   (merged A1:G1)
    row 2   填报单位：<unit name>                                                (merged A2:G2)
    row 3   序号 | 区域 | 项目名称 | 项目年份 | 存在的问题隐患 | 整改限期 | 责任人
    row 4…  one row per item, by 序号 (a unit with no items files a nil return: one row "无")
    last    填报人：… (A:C)   审核人：… (D:E)   日期：… (F:G)

The seven columns are the notice's, unchanged, and hold only what the notice asks. The 销号 state,
which the form has no column for, is on sheet 2, 销号情况 (序号, 区域, 项目名称, 整改限期, 销号状态,
是否逾期): the clerk files sheet 1 as the form and the bureau tracks sheet 2, in one file, so a
closed item is never mistaken for an open one and the form is never altered (docs/adr/0022).

The city-wide list (`export_city_problem_list`) is the same form for every unit at once: 填报单位 is
the bureau, rows by unit (the campaign's order) then 序号 (each unit's own number, never
renumbered), 区域 = the unit's area and the township.

Row heights are set from the text each row wraps to (LibreOffice and Excel do not grow a row that
openpyxl wrote), the widths let 「立行立改（2024年12月8日前）」 stand on one line, and every cell
filled from data goes through `shared.spreadsheets.put` (formula-like text is written as text):
the kernel's helpers, which every service's printed exports share.
No phone numbers or other contact details are written.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from io import BytesIO

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.worksheet.worksheet import Worksheet

from services.rectification.domain import (
    OPEN_STATUSES,
    STATUS_LABELS,
    ProblemStatus,
    RectificationRules,
    ReportState,
    zh_date,
    zh_deadline,
)
from services.rectification.events import ProblemListRow
from shared.spreadsheets import fit_row_heights, print_setup, put, set_widths

HEADERS = ("序号", "区域", "项目名称", "项目年份", "存在的问题隐患", "整改限期", "责任人")
COLUMN_WIDTHS = (6, 13, 26, 9, 40, 30, 14)
STATUS_HEADERS = ("序号", "区域", "项目名称", "整改限期", "销号状态", "是否逾期")
STATUS_WIDTHS = (6, 20, 40, 30, 14, 12)
NIL_RETURN = "无"
TITLE_ROW, UNIT_ROW, HEADER_ROW, FIRST_DATA_ROW = 1, 2, 3, 4
FORM_SHEET, STATUS_SHEET = "问题清单", "销号情况"

_FONT = "宋体"
_BODY_PT = 11
_THIN = Side(style="thin", color="000000")
_BOX = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)


@dataclass(frozen=True, slots=True)
class ListFooter:
    submitter: str = ""    # 填报人
    reviewer: str = ""     # 审核人
    day: date | None = None  # 日期


NO_FOOTER = ListFooter()


def chinese_date(day: date) -> str:
    return zh_date(day)


def deadline_text(row: ProblemListRow) -> str:
    """整改限期 as the form shows it: a date, or 立行立改 with the date it fell due."""
    return zh_deadline(row.deadline_kind, row.deadline)


def status_text(row: ProblemListRow) -> str:
    try:
        return STATUS_LABELS[ProblemStatus(row.status)]
    except ValueError:
        return row.status


def overdue_text(row: ProblemListRow, as_of: datetime | None,
                 rules: RectificationRules | None) -> str:
    """是否逾期 at `as_of` (the list's moment): open and past the last instant of its 整改限期."""
    if as_of is None or rules is None:
        return ""
    try:
        status = ProblemStatus(row.status)
    except ValueError:
        return ""
    return "已逾期" if status in OPEN_STATUSES and as_of > rules.due_at(row.deadline) else "否"


# ------------------------------------------------------------------------------------------
# Layout (the kernel's shared/spreadsheets.py: text stays text, pages, row heights)


def _pages(sheet: Worksheet) -> None:
    """A4 landscape, as wide as the page, the header row on every page, page numbers."""
    print_setup(sheet, landscape=True, repeat_rows=(HEADER_ROW, HEADER_ROW), margins_cm=1.0)
    sheet.freeze_panes = f"A{HEADER_ROW + 1}"


def _heading(sheet: Worksheet, row: int, text: str, columns: int, *, size: int, bold: bool,
             centred: bool, height: float) -> None:
    sheet.merge_cells(start_row=row, start_column=1, end_row=row, end_column=columns)
    cell = put(sheet, row, 1, text)
    cell.font = Font(name=_FONT, size=size, bold=bold)
    cell.alignment = Alignment(horizontal="center" if centred else "left", vertical="center")
    sheet.row_dimensions[row].height = height


def _table(sheet: Worksheet, headers: Sequence[str], widths: Sequence[float],
           body: Sequence[Sequence[object]], *, centred: Iterable[int]) -> int:
    """Header row and body rows from HEADER_ROW; the row after the last one written."""
    centred = set(centred)
    for col, header in enumerate(headers, start=1):
        cell = sheet.cell(HEADER_ROW, col, header)
        cell.font = Font(name=_FONT, size=12, bold=True)
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        cell.border = _BOX
    sheet.row_dimensions[HEADER_ROW].height = 24
    for offset, values in enumerate(body):
        row_no = FIRST_DATA_ROW + offset
        for col, value in enumerate(values, start=1):
            cell = put(sheet, row_no, col, value)
            cell.font = Font(name=_FONT, size=_BODY_PT)
            cell.border = _BOX
            cell.alignment = Alignment(horizontal="center" if col in centred else "left",
                                       vertical="center", wrap_text=True)
    set_widths(sheet, widths)
    end = FIRST_DATA_ROW + len(body)
    fit_row_heights(sheet, range(FIRST_DATA_ROW, end), point_size=_BODY_PT)
    return end


def _form(sheet: Worksheet, body: Sequence[Sequence[object]], *, title: str, filer: str,
          footer: ListFooter) -> None:
    """Sheet 1: the notice's 附件2, its seven columns and nothing else."""
    sheet.title = FORM_SHEET
    columns = len(HEADERS)
    _heading(sheet, TITLE_ROW, title, columns, size=16, bold=True, centred=True, height=36)
    _heading(sheet, UNIT_ROW, f"填报单位：{filer}", columns, size=12, bold=False, centred=False,
             height=22)
    end = _table(sheet, HEADERS, COLUMN_WIDTHS,
                 body or [(NIL_RETURN, "", "", "", "", "", "")], centred=(1, 4))
    footer_row = end + 1  # one blank row, as on the form
    parts = ((1, 3, f"填报人：{footer.submitter}"), (4, 5, f"审核人：{footer.reviewer}"),
             (6, 7, f"日期：{zh_date(footer.day) if footer.day else ''}"))
    for first, last, text in parts:
        sheet.merge_cells(start_row=footer_row, start_column=first, end_row=footer_row,
                          end_column=last)
        cell = put(sheet, footer_row, first, text)
        cell.font = Font(name=_FONT, size=12)
        cell.alignment = Alignment(horizontal="left", vertical="center")
    sheet.row_dimensions[footer_row].height = 22
    _pages(sheet)


def _status(sheet: Worksheet, body: Sequence[Sequence[object]], *, title: str, filer: str,
            as_of: datetime | None, rules: RectificationRules | None) -> None:
    """Sheet 2: where each item stands (the form has no column for it)."""
    sheet.title = STATUS_SHEET
    columns = len(STATUS_HEADERS)
    _heading(sheet, TITLE_ROW, f"{title}（销号情况）", columns, size=14, bold=True, centred=True,
             height=30)
    moment = (f"，截至{zh_date(rules.local_date(as_of))}" if as_of is not None and rules is not None
              else "")
    _heading(sheet, UNIT_ROW, f"填报单位：{filer}{moment}", columns, size=12, bold=False,
             centred=False, height=22)
    _table(sheet, STATUS_HEADERS, STATUS_WIDTHS, body or [(NIL_RETURN, "", "", "", "", "")],
           centred=(1, 5, 6))
    _pages(sheet)


def _save(workbook: Workbook) -> bytes:
    buffer = BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------
# Exports


def export_problem_list(rows: Iterable[ProblemListRow], *, unit_name: str, title: str,
                        footer: ListFooter = NO_FOOTER, as_of: datetime | None = None,
                        rules: RectificationRules | None = None) -> bytes:
    """Render a unit's rows (a frozen monthly snapshot or the live list) as an .xlsx workbook's
    bytes. `title`: the campaign's (config.problem_list_title); `as_of` and `rules`: the moment
    the 是否逾期 column is judged at (none given: left blank)."""
    ordered: Sequence[ProblemListRow] = sorted(rows, key=lambda r: r.seq_no)
    workbook = Workbook()
    _form(workbook.active, [
        (row.seq_no, row.township, row.project_name, row.project_year, row.description,
         deadline_text(row), row.responsible_person) for row in ordered],
        title=title, filer=unit_name, footer=footer)
    _status(workbook.create_sheet(), [
        (row.seq_no, row.township, row.project_name, deadline_text(row), status_text(row),
         overdue_text(row, as_of, rules)) for row in ordered],
        title=title, filer=unit_name, as_of=as_of, rules=rules)
    return _save(workbook)


def export_city_problem_list(units: Sequence[tuple[str, Sequence[ProblemListRow]]], *,
                             issuer: str, title: str, footer: ListFooter = NO_FOOTER,
                             as_of: datetime | None = None,
                             rules: RectificationRules | None = None) -> bytes:
    """Every unit's rows in one 附件2 for the bureau: `units` is (area name, rows) in the
    campaign's order; 区域 reads area + township; 序号 stays each unit's own."""
    entries = [(area, row) for area, rows in units for row in sorted(rows, key=lambda r: r.seq_no)]
    workbook = Workbook()
    _form(workbook.active, [
        (row.seq_no, f"{area}{row.township}", row.project_name, row.project_year,
         row.description, deadline_text(row), row.responsible_person) for area, row in entries],
        title=title, filer=issuer, footer=footer)
    _status(workbook.create_sheet(), [
        (row.seq_no, f"{area}{row.township}", row.project_name, deadline_text(row),
         status_text(row), overdue_text(row, as_of, rules)) for area, row in entries],
        title=title, filer=issuer, as_of=as_of, rules=rules)
    return _save(workbook)


def export_monthly_list(report: ReportState, *, unit_name: str, rules: RectificationRules,
                        title: str) -> bytes:
    """A submitted monthly list as filed: its frozen rows, 填报人 = the submitter, 审核人 = the
    reviewer once reviewed, 日期 = the local day of the submission; 销号情况 as it stood then."""
    if report.status is None or report.submitted_at is None:
        raise ValueError(f"report {report.report_id} has not been submitted")
    footer = ListFooter(submitter=report.submitter or "", reviewer=report.reviewer or "",
                        day=rules.local_date(report.submitted_at))
    return export_problem_list(report.rows, unit_name=unit_name, footer=footer, title=title,
                               as_of=report.submitted_at, rules=rules)
