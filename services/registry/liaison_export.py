"""附件1 责任领导和联络员登记表 as the notice lays it out, one printed A4 page per reporting unit.

The notice's form: the title on two lines, 填报单位, then a table whose rows are 责任领导 and 联络员
and whose columns are 姓名, 性别, 职务, 办公电话, 手机号码. A unit that has not filed yet gets the
empty form (what it still has to fill in). Phones arrive masked (`138****0001`) unless the caller
may and did ask to reveal them; the sheet says which, so a printed copy with clear numbers is
recognisable as one. Names and positions are officials' (the notice prints them); every cell goes
through shared/spreadsheets.py, so a name typed as `=…` stays text.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side

from services.registry import vocabulary as vocab
from services.registry.events import LiaisonRole
from shared.campaign import Campaign
from shared.spreadsheets import append, fit_row_heights, print_setup, put, set_widths
from shared.times import written_date

COLUMNS = ("", "姓名", "性别", "职务", "办公电话", "手机号码")
WIDTHS = (12, 14, 7, 26, 17, 17)
FONT = "宋体"
_THIN = Side(style="thin")
_BOX = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_CENTRE = Alignment(horizontal="center", vertical="center", wrap_text=True)


def title_lines(campaign: Campaign) -> tuple[str, str]:
    """The notice's two title lines: the campaign's name split after its closing quote mark."""
    name = campaign.campaign.name                      # 鄂州市养老领域重点民生项目“回头看”活动
    head, quote, rest = name.rpartition("”")
    if not quote:
        return name, "责任领导和联络员登记表"
    return head + quote, f"{rest}责任领导和联络员登记表"


def liaison_workbook(items: Sequence[Mapping[str, Any]], *, units: Sequence[str],
                     campaign: Campaign, printed_on: date) -> bytes:
    """One sheet per unit, in the order given; `items` are the rows of GET /liaisons."""
    workbook = Workbook()
    workbook.remove(workbook.active)
    for unit in units:
        mine = {item["role"]: item for item in items if item["unit"] == unit}
        _unit_sheet(workbook, unit, mine, campaign, printed_on)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _unit_sheet(workbook: Workbook, unit: str, rows: Mapping[str, Mapping[str, Any]],
                campaign: Campaign, printed_on: date) -> None:
    reporting = campaign.unit(unit)
    sheet = workbook.create_sheet(title=reporting.area_name[:31])
    set_widths(sheet, WIDTHS)
    last = len(COLUMNS)

    append(sheet, ["附件1"])
    sheet["A1"].font = Font(name="黑体", size=12)
    first, second = title_lines(campaign)
    append(sheet, [f"{first}\n{second}"])
    sheet.merge_cells(start_row=2, start_column=1, end_row=2, end_column=last)
    sheet["A2"].font = Font(name=FONT, size=18, bold=True)
    sheet["A2"].alignment = _CENTRE
    sheet.row_dimensions[2].height = 60
    append(sheet, [])
    append(sheet, [f"填报单位：{reporting.name}"])
    sheet.merge_cells(start_row=4, start_column=1, end_row=4, end_column=last)
    sheet["A4"].font = Font(name=FONT, size=12)
    sheet.row_dimensions[4].height = 24

    header = append(sheet, list(COLUMNS))
    for role in (LiaisonRole.LEADER, LiaisonRole.LIAISON):
        row = rows.get(role.value)
        values = [vocab.LIAISON_ROLE.label(role.value)]
        if row is None:
            values += [""] * (last - 1)
        else:
            values += [row["name"], vocab.GENDER.label(row["gender"]), row["position"],
                       row["office_phone"] or "", row["mobile"]]
        append(sheet, values)
    table_end = sheet.max_row
    for line in range(header, table_end + 1):
        for column in range(1, last + 1):
            cell = sheet.cell(row=line, column=column)
            cell.border, cell.alignment = _BOX, _CENTRE
            cell.font = Font(name=FONT, size=12, bold=line == header or column == 1)
    fit_row_heights(sheet, range(header + 1, table_end + 1), point_size=12)
    for line in range(header, table_end + 1):
        sheet.row_dimensions[line].height = max(sheet.row_dimensions[line].height or 0, 36)

    append(sheet, [])
    notes = [_phones_note(rows.values())]
    late = [vocab.LIAISON_ROLE.label(role) for role, row in sorted(rows.items())
            if row.get("submitted_late")]
    deadline = campaign.deadlines_of_kind("liaisons")
    if late and deadline:
        notes.append(f"{'、'.join(late)}信息晚于报送时限（{written_date(deadline[0].due_on)}前）报送。")
    if not rows:
        notes.append("本单位尚未报送，请填写后报送。")
    notes.append(f"导出日期：{written_date(printed_on)}")
    for note in notes:
        line = append(sheet, [note])
        sheet.merge_cells(start_row=line, start_column=1, end_row=line, end_column=last)
        put(sheet, line, 1, note).font = Font(name=FONT, size=10)
        sheet.cell(row=line, column=1).alignment = Alignment(wrap_text=True, vertical="top")
    print_setup(sheet, landscape=False, footer=f"{reporting.name}  附件1")


def _phones_note(rows: Any) -> str:
    if any(row.get("revealed") for row in rows):
        return "本表含完整电话号码（个人信息），仅供工作联系使用，请妥善保管，勿外传。"
    return "电话号码已隐去中间四位；有权限的人员可导出完整号码（每次导出均有记录）。"
