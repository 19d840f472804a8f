"""Spreadsheet cells that must stay text (formula injection) and pages set up to print."""
from __future__ import annotations

import io

import pytest
from openpyxl import Workbook, load_workbook

from shared.spreadsheets import append, csv_text, print_setup, put, wrapped_lines

pytestmark = pytest.mark.unit

HOSTILE = ["=HYPERLINK(\"http://x\",\"点我\")", "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]


def test_text_that_a_spreadsheet_would_compute_is_stored_as_quoted_text():
    workbook = Workbook()
    sheet = workbook.active
    row = append(sheet, [*HOSTILE, "普通文字", 42])
    put(sheet, 2, 1, "=1+1")
    buffer = io.BytesIO()
    workbook.save(buffer)
    cells = load_workbook(io.BytesIO(buffer.getvalue())).active
    stored = [(c.value, c.data_type, c.quotePrefix) for c in cells[row]]
    # (XML itself turns a stored CR into LF; what matters is that the cell is text.)
    assert stored[:len(HOSTILE)] == [(text.replace("\r", "\n"), "s", True) for text in HOSTILE]
    assert stored[-2:] == [("普通文字", "s", False), (42, "n", False)]
    assert (cells["A2"].value, cells["A2"].data_type) == ("=1+1", "s")
    assert csv_text("=1+1") == "'=1+1" and csv_text("名称") == "名称" and csv_text(3) == 3


def test_an_empty_row_keeps_its_place_and_the_next_row_follows_it():
    sheet = Workbook().active
    assert append(sheet, ["一"]) == 1
    assert append(sheet, []) == 2
    assert append(sheet, ["三"]) == 3


def test_print_setup_puts_the_sheet_on_a4_fitted_to_the_width_with_a_footer():
    sheet = Workbook().active
    print_setup(sheet, landscape=True, repeat_rows=(1, 2), footer="摘要 abc")
    assert sheet.page_setup.orientation == "landscape" and sheet.page_setup.paperSize == 9
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    assert (sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight) == (1, 0)
    assert sheet.print_title_rows == "$1:$2"
    assert "摘要 abc" in sheet.oddFooter.center.text and "&P" in sheet.oddFooter.center.text


def test_wrapped_lines_count_a_chinese_character_as_two():
    assert wrapped_lines("abcd", 5) == 1
    assert wrapped_lines("四个汉字", 5) == 2
    assert wrapped_lines("一\n二", 20) == 2
