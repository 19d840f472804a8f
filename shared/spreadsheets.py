"""Writing text people typed into spreadsheets people open: never as a live formula.

A project named `=HYPERLINK("http://…","点击")` or `+cmd|…` becomes, in an export opened in Excel or
LibreOffice, a formula that runs (CSV/formula injection, OWASP). Every cell an export fills from
data goes through `put`: text that starts like a formula (`= + - @`, TAB, CR) is stored as a string
(openpyxl would otherwise store `=…` as a formula) and styled `quotePrefix`, which is how Excel and
LibreOffice mark "this is text, even when edited". The text itself is left exactly as typed.
"""
from __future__ import annotations

from typing import Any

from openpyxl.cell.cell import Cell
from openpyxl.worksheet.worksheet import Worksheet

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def looks_like_formula(value: object) -> bool:
    """Whether a spreadsheet program could take this text for a formula (or a DDE call)."""
    return isinstance(value, str) and value.startswith(FORMULA_PREFIXES)


def as_text(cell: Cell) -> Cell:
    """Make a cell holding formula-like text a plain string cell, marked as text."""
    if looks_like_formula(cell.value):
        cell.data_type = "s"
        cell.quotePrefix = True
    return cell


def put(sheet: Worksheet, row: int, column: int, value: Any) -> Cell:
    """`sheet.cell(row, column, value)`, except that formula-like text is written as text."""
    cell = sheet.cell(row, column)
    cell.value = value
    return as_text(cell)
