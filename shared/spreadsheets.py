"""Spreadsheets people print: text that stays text, and pages that come out of the printer whole.

Every export a clerk prints (附件1, 附件2, the 抽查名单) is written with these helpers:

- **Text stays text** (formula injection, OWASP "CSV injection"): a cell whose text starts with
  `=`, `+`, `-`, `@`, TAB or CR would be read, or on the next edit turned, into a formula by Excel
  or LibreOffice. `put`/`append` write such text as a string cell with the quote prefix set
  (Excel's leading `'`), so the file shows exactly what was typed and never computes it; the
  content itself is unchanged (a verifier comparing it with the record finds the same text).
  `csv_text` does the same for CSV, where only a leading `'` can say "text".
- **Pages**: `print_setup` puts a sheet on A4 in the orientation asked, scaled to the page
  width (never a column on a page of its own), with the header rows repeated on every page and a
  footer (page numbers, and whatever must be on every sheet of paper: a digest, a title).
- **Row heights**: LibreOffice and Excel keep a row at its default height unless told, so wrapped
  text overlaps the next row when printed. `fit_row_heights` sets each row's height from the
  longest wrapped cell, counting a CJK character as two narrow ones.
"""
from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from openpyxl.cell.cell import Cell
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def is_formula_like(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_TRIGGERS)


def put(sheet: Worksheet, row: int, column: int, value: Any) -> Cell:
    """Write one cell; text that a spreadsheet would compute is kept as text."""
    cell: Cell = sheet.cell(row=row, column=column)
    cell.value = value
    if is_formula_like(value):
        cell.data_type = "s"   # openpyxl made "=…" a formula: make it a string again
        cell.quotePrefix = True
    return cell


def append(sheet: Worksheet, values: Sequence[Any]) -> int:
    """Append a row (after the last one appended) with `put`; returns its row number. An empty
    row counts too (it leaves a blank line), which `max_row` would not see."""
    sheet.append(list(values))
    row: int = sheet._current_row  # openpyxl's own append counter (max_row skips empty rows)
    for column, value in enumerate(values, start=1):
        if is_formula_like(value):
            put(sheet, row, column, value)
    return row


def csv_text(value: Any) -> Any:
    """A CSV field that a spreadsheet will not compute: formula-like text gets a leading `'`."""
    return f"'{value}" if is_formula_like(value) else value


# ----- pages ---------------------------------------------------------------------------------------


def print_setup(sheet: Worksheet, *, landscape: bool, repeat_rows: tuple[int, int] | None = None,
                footer: str | None = None, header: str | None = None,
                margins_cm: float = 1.5) -> None:
    """A4, the given orientation, fitted to the page width (as many pages down as it needs),
    centred, header rows repeated on every page, and a footer with the page number."""
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.orientation = "landscape" if landscape else "portrait"
    sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0      # 0: as many pages as the rows need
    sheet.print_options.horizontalCentered = True
    inches = margins_cm / 2.54
    sheet.page_margins.left = sheet.page_margins.right = inches
    sheet.page_margins.top = sheet.page_margins.bottom = inches + 0.2
    sheet.page_margins.header = sheet.page_margins.footer = 0.3
    if repeat_rows is not None:
        sheet.print_title_rows = f"{repeat_rows[0]}:{repeat_rows[1]}"
    page = "第 &P 页，共 &N 页"
    sheet.oddFooter.center.text = f"{footer}    {page}" if footer else page
    sheet.oddFooter.center.size = 8
    sheet.evenFooter.center.text = sheet.oddFooter.center.text
    if header:
        sheet.oddHeader.center.text = header
        sheet.oddHeader.center.size = 8
        sheet.evenHeader.center.text = header


def set_widths(sheet: Worksheet, widths: Sequence[float]) -> None:
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width


# ----- row heights ---------------------------------------------------------------------------------


def text_width(text: str) -> int:
    """Width in narrow characters: a CJK (wide or full-width) character counts two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def wrapped_lines(text: str, width: float) -> int:
    """How many lines `text` takes in a column `width` characters wide (Excel's unit)."""
    usable = max(width - 1.0, 1.0)  # a cell's padding
    return sum(max(1, math.ceil(text_width(line) / usable)) for line in str(text).split("\n"))


def fit_row_heights(sheet: Worksheet, rows: Iterable[int], *, point_size: float = 11,
                    merged_widths: Mapping[tuple[int, int], float] | None = None) -> None:
    """Set each row's height to its tallest wrapped cell. `merged_widths` gives the width of a
    cell that spans several columns, by (row, column) of its top-left cell."""
    line = point_size * 1.32
    for row in rows:
        lines = 1
        for cell in sheet[row]:
            if cell.value is None or cell.value == "":
                continue
            width = (merged_widths or {}).get((row, cell.column))
            if width is None:
                width = sheet.column_dimensions[get_column_letter(cell.column)].width or 8.43
            lines = max(lines, wrapped_lines(str(cell.value), width))
        sheet.row_dimensions[row].height = round(lines * line + 3, 1)
