"""Reading a bulk import of projects and adapted households from .xlsx or CSV, all or nothing.

A workbook has a sheet `projects` (项目) and/or a sheet `households` (改造户); CSV comes as one
file per sheet. Headers may be Chinese, English or both (the template writes "填报单位\\nunit").

`parse_xlsx` / `parse_csv` turn the file into one `ImportRegistry` command or, if any row is bad,
into every bad row with its row number and reason (nothing partial). Deciding it against the
registry's state is deciding.py's part. The template workbook is built here too.

Ids derive from content (unit + type + name; unit + township + year + household code), and the
commands ask to skip identical records, so importing the same file twice adds nothing.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Iterable, Iterator, Mapping, Sequence

from pydantic import SecretStr

from services.registry import commands as c
from services.registry import domain as d
from services.registry import events as e
from services.registry import vocabulary as vocab
from services.registry.events import OperatingStatus, OperatorKind
from shared.campaign import Campaign, ProjectKind
from shared.errors import FieldProblem, ValidationFailed
from shared.vocabulary import Terms

PROJECTS = "projects"
HOUSEHOLDS = "households"
MAX_ROWS_PER_SHEET = 20_000
# A workbook is a zip: what it unpacks to is checked before anything is parsed (a 2 kB file can
# declare a million rows or hold one enormous string). Far above any real import of ours.
MAX_UNPACKED_BYTES = 64 * 1024 * 1024
MAX_COLUMNS = 64          # columns read per row; the sheets have fewer than 20
MAX_CELL_CHARACTERS = 2000
MAX_ECHOED_CHARACTERS = 40  # how much of a bad cell an error quotes back
MAX_ROW_ERRORS = 200  # reported per import: enough to fix a file, never an answer as big as it
_SHEET_NAMES = {PROJECTS: ("projects", "项目", "项目清单"), HOUSEHOLDS: ("households", "改造户", "适老化改造户")}


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    zh: str
    required: bool = True
    personal: bool = False  # never echoed back in an error message

    @property
    def header(self) -> str:
        return f"{self.zh}\n{self.key}"


PROJECT_COLUMNS: tuple[Column, ...] = (
    Column("unit", "填报单位"),
    Column("project_type", "项目类型"),
    Column("name", "项目名称"),
    Column("township", "乡镇(街道)"),
    Column("village", "村(社区)", required=False),
    Column("project_year", "项目年份"),
    Column("provincial_key", "申报省级重点民生实事项目", required=False),
    Column("operator_kind", "运营主体类型"),
    Column("operator_name", "运营主体名称", required=False),
    Column("contract_start", "合同开始日期", required=False),
    Column("contract_end", "合同结束日期", required=False),
    Column("services", "开展的养老服务", required=False),
    Column("status", "运营状态"),
)

HOUSEHOLD_COLUMNS: tuple[Column, ...] = (
    Column("unit", "填报单位"),
    Column("township", "乡镇(街道)"),
    Column("village", "村(社区)"),
    Column("household_code", "户编号"),
    Column("adaptation_year", "改造年份"),
    Column("items", "改造项目"),
    Column("acceptance_date", "验收日期"),
    Column("name", "姓名", personal=True),
    Column("address", "地址", personal=True),
    Column("phone", "联系电话", required=False, personal=True),
)

_COLUMNS = {PROJECTS: PROJECT_COLUMNS, HOUSEHOLDS: HOUSEHOLD_COLUMNS}

# The words a cell may hold for a code: the code, its Chinese label, the other accepted words, all
# from one place (events.py's labels, via vocabulary.py), as `(code, label, *aliases)`.
def _words(terms: Terms, enum: type[StrEnum], *, leave_out: tuple[Any, ...] = ()
           ) -> dict[Any, tuple[str, ...]]:
    return {enum(t.code): (t.code, t.label, *t.aliases) for t in terms.terms
            if enum(t.code) not in leave_out}


# A project is registered operating, underperforming or not operating; retired comes later.
_STATUS_WORDS = _words(vocab.STATUS, OperatingStatus, leave_out=(OperatingStatus.RETIRED,))
_OPERATOR_WORDS = _words(vocab.OPERATOR_KIND, OperatorKind)
_YES = ("是", "yes", "y", "true", "1", "√", "✓", "省级")
_NO = ("否", "no", "n", "false", "0", "", "×")
_LIST_SEPARATORS = re.compile(r"[、,，;；/|\n]+")


# ----- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowError:
    """One reason a row was refused. `row` is the spreadsheet row (the header is row 1)."""

    sheet: str
    row: int
    column: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"sheet": self.sheet, "row": self.row, "column": self.column, "reason": self.reason}


ImportItem = c.ImportItem
ImportPlan = c.ImportRegistry  # what parsing produces: the import as one command


@dataclass(frozen=True, slots=True)
class ImportRejected:
    errors: tuple[RowError, ...]


ImportResult = ImportPlan | ImportRejected


class ImportRefused(ValidationFailed):
    """The import as a whole was refused: nothing is written. `errors` name sheet, row, column."""

    code = "import_refused"

    def __init__(self, errors: Iterable[RowError]) -> None:
        self.errors: tuple[RowError, ...] = tuple(errors)
        super().__init__([FieldProblem(f"{err.sheet}[{err.row}].{err.column}", err.reason) for err in self.errors])


# ----- cell parsing -----------------------------------------------------------------------------


def _norm(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value).strip()


def _quoted(value: Any) -> str:
    """A bad cell as an error quotes it: short, so no error body grows with the input."""
    text = value if isinstance(value, str) else str(value)
    shown = text[:MAX_ECHOED_CHARACTERS] + ("…" if len(text) > MAX_ECHOED_CHARACTERS else "")
    return repr(shown)


class _CellError(ValueError):
    pass


def _year(value: Any) -> int:
    if isinstance(value, bool):
        raise _CellError("is not a year")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = _text(value).removesuffix("年").strip()
    if not re.fullmatch(r"\d{4}", text):
        raise _CellError(f"{_quoted(_text(value))} is not a year like 2022")
    return int(text)


_EXCEL_EPOCH = date(1899, 12, 30)


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 20000 <= value <= 80000:
        return _EXCEL_EPOCH + timedelta(days=int(value))  # a date cell formatted as a number
    text = _text(value)
    match = re.fullmatch(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?", text)
    if not match:
        raise _CellError(f"{_quoted(text)} is not a date like 2023-06-30")
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError as exc:
        raise _CellError(f"{_quoted(text)} is not a real date") from exc


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _norm(_text(value))
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise _CellError(f"{_quoted(_text(value))} is not 是 or 否")


def _word(value: Any, words: Mapping[Any, tuple[str, ...]], what: str) -> Any:
    text = _norm(_text(value))
    for result, spellings in words.items():
        if text in {_norm(s) for s in spellings}:
            return result
    choices = "、".join(spellings[1] for spellings in words.values())
    raise _CellError(f"{_quoted(_text(value))} is not a known {what} ({choices})")


def _split(value: Any) -> list[str]:
    return [part.strip() for part in _LIST_SEPARATORS.split(_text(value)) if part.strip()]


# ----- reading files ----------------------------------------------------------------------------


def _match_headers(header_row: Sequence[Any], columns: Sequence[Column]) -> tuple[dict[str, int], list[str]]:
    """Column key → index, and the keys of required columns that are missing."""
    positions: dict[str, int] = {}
    for index, cell in enumerate(header_row):
        text = _norm(_text(cell))
        if not text:
            continue
        for column in columns:
            zh, en = _norm(column.zh), _norm(column.key)
            if text in (zh, en, zh + en, f"{zh}({en})", f"{zh}/{en}", en + zh):
                positions.setdefault(column.key, index)
                break
    missing = [column.key for column in columns if column.required and column.key not in positions]
    return positions, missing


def _rows(raw_rows: Iterable[Sequence[Any]], sheet: str, errors: list[RowError]
          ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, {column key: cell}) for each non-empty data row."""
    iterator = iter(raw_rows)
    header = next(iterator, None)
    columns = _COLUMNS[sheet]
    if header is None:
        errors.append(RowError(sheet, 1, "", "the sheet is empty: the first row must hold the headers"))
        return
    positions, missing = _match_headers(header, columns)
    for key in missing:
        zh = next(col.zh for col in columns if col.key == key)
        errors.append(RowError(sheet, 1, key, f"column {zh} ({key}) is missing"))
    if missing:
        return
    for number, raw in enumerate(iterator, start=2):
        if number - 1 > MAX_ROWS_PER_SHEET:
            errors.append(RowError(sheet, number, "", f"more than {MAX_ROWS_PER_SHEET} rows; split the file"))
            return
        if all(_text(cell) == "" for cell in raw):
            continue
        row = {key: (raw[index] if index < len(raw) else None) for key, index in positions.items()}
        too_long = [key for key, cell in row.items()
                    if isinstance(cell, str) and len(cell) > MAX_CELL_CHARACTERS]
        if too_long:
            errors.extend(RowError(sheet, number, key, f"more than {MAX_CELL_CHARACTERS} characters")
                          for key in too_long)
            continue
        yield number, row


def _decode_csv(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel on Chinese Windows saves CSV as GBK
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise _CellError("the CSV file is neither UTF-8 nor GB18030 text")


# ----- rows to commands -------------------------------------------------------------------------


class _RowProblems:
    def __init__(self, sheet: str, row: int, errors: list[RowError]) -> None:
        self.sheet, self.row, self.errors, self.count = sheet, row, errors, 0
        self.flagged: set[str] = set()

    def add(self, column: str, reason: str) -> None:
        self.errors.append(RowError(self.sheet, self.row, column, reason))
        self.flagged.add(column)
        self.count += 1

    def add_unflagged(self, column: str, reason: str) -> None:
        """A rule checked on stand-in values: only report it where the cell itself was fine."""
        if column not in self.flagged:
            self.add(column, reason)

    def cell(self, column: str, parse: Any, value: Any, default: Any = None) -> Any:
        if _text(value) == "" and not isinstance(value, bool):
            if default is not _REQUIRED:
                return default
            self.add(column, "is required")
            return None
        try:
            return parse(value)
        except _CellError as exc:
            self.add(column, str(exc))
            return None


_REQUIRED = object()

# Domain field names → spreadsheet column keys, so an error points at the cell to fix.
PROJECT_FIELD_COLUMNS = {"operator": "operator_kind", "operator.name": "operator_name",
                          "operator.contract_start": "contract_start", "operator.contract_end": "contract_end",
                          "claimed_status": "status"}


def column_of(field_name: str, mapping: Mapping[str, str]) -> str:
    base = re.sub(r"\[\d+\]", "", field_name)
    return mapping.get(field_name, mapping.get(base, base))


def _unit_code(problems: _RowProblems, value: Any, campaign: Campaign) -> str | None:
    text = _text(value)
    if not text:
        problems.add("unit", "is required")
        return None
    unit = campaign.unit_by_name(text)
    if unit is None:
        problems.add("unit", f"unknown reporting unit {_quoted(text)}")
        return None
    return unit.code


def _project_command(number: int, row: Mapping[str, Any], campaign: Campaign, today: date,
                     errors: list[RowError]) -> c.RegisterProject | None:
    p = _RowProblems(PROJECTS, number, errors)
    unit = _unit_code(p, row.get("unit"), campaign)
    type_text = _text(row.get("project_type"))
    type_term = vocab.project_types(campaign).find(type_text) if type_text else None
    project_type = campaign.project_type(type_term.code) if type_term is not None else None
    if not type_text:
        p.add("project_type", "is required")
    elif project_type is None:
        p.add("project_type", f"unknown project type {_quoted(type_text)}")
    elif project_type.kind != ProjectKind.FACILITY:
        p.add("project_type", "home adaptation goes in the households sheet, one row per household")
    year = p.cell("project_year", _year, row.get("project_year"), _REQUIRED)
    provincial = p.cell("provincial_key", _flag, row.get("provincial_key"), False)
    kind = p.cell("operator_kind", lambda v: _word(v, _OPERATOR_WORDS, "operator kind"),
                  row.get("operator_kind"), _REQUIRED)
    start = p.cell("contract_start", _date, row.get("contract_start"))
    end = p.cell("contract_end", _date, row.get("contract_end"))
    status = p.cell("status", lambda v: _word(v, _STATUS_WORDS, "operating status"), row.get("status"), _REQUIRED)
    services: list[str] = []
    for part in _split(row.get("services")):
        service = campaign.service_by_name(part)
        if service is None:
            p.add("services", f"unknown service {_quoted(part)}")
        else:
            services.append(service.code)
    operator_name = _text(row.get("operator_name"))
    # Cells that failed to parse get stand-ins, so the row's other rules are still checked and
    # every problem of the row is reported at once; the stand-ins' own complaints are dropped.
    cmd = c.RegisterProject(
        project_type=project_type.code if project_type else type_text, name=_text(row.get("name")),
        unit=unit or _text(row.get("unit")), township=_text(row.get("township")),
        village=_text(row.get("village")) or None,
        project_year=year if year is not None else campaign.plan_period.first_year,
        provincial_key=bool(provincial),
        operator=e.Operator(kind=kind or (OperatorKind.PROFESSIONAL if operator_name else OperatorKind.NONE),
                            name=operator_name or None, contract_start=start, contract_end=end),
        services=tuple(dict.fromkeys(services)), claimed_status=status or OperatingStatus.OPERATING,
        on_duplicate=c.OnDuplicate.SKIP_IF_IDENTICAL)
    for problem in d.project_problems(cmd, campaign, today):
        p.add_unflagged(column_of(problem.field, PROJECT_FIELD_COLUMNS), problem.reason)
    return None if p.count else cmd


@dataclass
class _HouseholdRow:
    number: int
    unit: str
    township: str
    household: c.HouseholdInput


def _household_row(number: int, row: Mapping[str, Any], campaign: Campaign, today: date,
                   errors: list[RowError]) -> _HouseholdRow | None:
    p = _RowProblems(HOUSEHOLDS, number, errors)
    unit = _unit_code(p, row.get("unit"), campaign)
    township_text = _text(row.get("township"))
    township = campaign.township(township_text) if township_text else None
    if not township_text:
        p.add("township", "is required")
    elif township is None:
        p.add("township", f"unknown township {_quoted(township_text)}")
    elif unit is not None and township.unit != unit:
        p.add("township", f"{township.name} belongs to {campaign.unit(township.unit).name}, "
                          f"not {campaign.unit(unit).name}")
    year = p.cell("adaptation_year", _year, row.get("adaptation_year"), _REQUIRED)
    accepted = p.cell("acceptance_date", _date, row.get("acceptance_date"), _REQUIRED)
    items: list[str] = []
    for part in _split(row.get("items")):
        item = campaign.adaptation_item_by_name(part)
        if item is None:
            p.add("items", f"unknown adaptation item {_quoted(part)}")
        else:
            items.append(item.code)
    phone = _text(row.get("phone"))
    stand_in_year = year if year is not None else campaign.plan_period.first_year
    household = c.HouseholdInput(
        household_code=_text(row.get("household_code")), village=_text(row.get("village")),
        adaptation_year=stand_in_year, items=tuple(dict.fromkeys(items)),
        acceptance_date=accepted if accepted is not None else date(stand_in_year, 12, 31),
        name=SecretStr(_text(row.get("name"))), address=SecretStr(_text(row.get("address"))),
        phone=SecretStr(phone) if phone else None)
    for problem in d.household_problems(household, campaign, today):
        p.add_unflagged(column_of(problem.field, {}), problem.reason)
    if p.count or unit is None or township is None:
        return None
    return _HouseholdRow(number, unit, township.name, household)


def _plan(sheets: Mapping[str, Iterable[Sequence[Any]]], campaign: Campaign, today: date,
          digest: str, errors: list[RowError]) -> ImportResult:
    items: list[ImportItem] = []
    project_rows = household_rows = 0

    seen_projects: dict[str, int] = {}
    for number, row in _rows(sheets.get(PROJECTS, ()), PROJECTS, errors) if PROJECTS in sheets else ():
        project_rows += 1
        cmd = _project_command(number, row, campaign, today, errors)
        if cmd is None:
            continue
        project_id = d.project_id_for(cmd.unit, cmd.project_type, cmd.name)
        if project_id in seen_projects:
            errors.append(RowError(PROJECTS, number, "name",
                                   f"the same project (unit, type, name) as row {seen_projects[project_id]}"))
            continue
        seen_projects[project_id] = number
        items.append(ImportItem(sheet=PROJECTS, rows=(number,), command=cmd))

    groups: dict[tuple[str, str, int], list[_HouseholdRow]] = defaultdict(list)
    seen_households: dict[tuple[str, str, int, str], int] = {}
    for number, row in _rows(sheets.get(HOUSEHOLDS, ()), HOUSEHOLDS, errors) if HOUSEHOLDS in sheets else ():
        household_rows += 1
        parsed = _household_row(number, row, campaign, today, errors)
        if parsed is None:
            continue
        key = (parsed.unit, parsed.township, parsed.household.adaptation_year)
        code_key = (*key, parsed.household.household_code.strip())
        if code_key in seen_households:
            errors.append(RowError(HOUSEHOLDS, number, "household_code",
                                   f"the same household code as row {seen_households[code_key]} "
                                   "(same township and year)"))
            continue
        seen_households[code_key] = number
        groups[key].append(parsed)

    for (unit, township, year), rows in groups.items():
        programme = c.RegisterAdaptationProgramme(unit=unit, township=township, year=year,
                                                  on_duplicate=c.OnDuplicate.SKIP_IF_IDENTICAL)
        programme_id = d.programme_id_for(unit, township, year)
        items.append(ImportItem(sheet=HOUSEHOLDS, rows=(rows[0].number,), command=programme))
        items.append(ImportItem(sheet=HOUSEHOLDS, rows=tuple(r.number for r in rows),
                                command=c.RegisterHouseholds(
                                    programme_id=programme_id,
                                    households=tuple(r.household for r in rows),
                                    on_duplicate=c.OnDuplicate.SKIP_IF_IDENTICAL)))

    if not errors and not items:
        errors.append(RowError(PROJECTS if PROJECTS in sheets else HOUSEHOLDS, 2, "", "no data rows"))
    if errors:
        return rejected(errors)
    return ImportPlan(items=tuple(items), source_digest=digest, project_rows=project_rows,
                      household_rows=household_rows)


def rejected(errors: list[RowError]) -> ImportRejected:
    """Every refused row, in sheet and row order, at most MAX_ROW_ERRORS of them and a last line
    saying how many more there were; problems of a whole sheet or file (no column) first."""
    ordered = sorted(errors, key=lambda err: (err.column not in ("", "file"), err.sheet != PROJECTS,
                                              err.row))
    if len(ordered) > MAX_ROW_ERRORS:
        more = len(ordered) - MAX_ROW_ERRORS
        ordered = [*ordered[:MAX_ROW_ERRORS],
                   RowError("", 0, "file", f"and {more} more refused rows not listed")]
    return ImportRejected(tuple(ordered))


def parse_xlsx(data: bytes, campaign: Campaign, *, today: date) -> ImportResult:
    """Parse a workbook with a `projects` and/or a `households` sheet (Chinese names accepted)."""
    from openpyxl import load_workbook  # imported here: the rest of the module needs no openpyxl

    digest = hashlib.sha256(data).hexdigest()
    too_large = _unpacked_size_problem(data)
    if too_large:
        return ImportRejected((RowError("", 0, "file", too_large),))
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a file that is not a workbook
        return ImportRejected((RowError("", 0, "file", f"not a readable .xlsx workbook ({type(exc).__name__})"),))
    try:
        sheets: dict[str, Iterable[Sequence[Any]]] = {}
        by_name = {_norm(ws.title): ws for ws in workbook.worksheets}
        for sheet, names in _SHEET_NAMES.items():
            worksheet = next((by_name[_norm(n)] for n in names if _norm(n) in by_name), None)
            if worksheet is not None:
                # The declared dimension (`A1:XFD1048576`) is the file's claim, not its content:
                # ignore it, read the rows that exist, as they come (`_rows` stops at the cap).
                worksheet.reset_dimensions()
                sheets[sheet] = worksheet.iter_rows(values_only=True, max_col=MAX_COLUMNS)
        if not sheets:
            return ImportRejected((RowError("", 0, "file", "no sheet named projects (项目) or households (改造户)"),))
        return _plan(sheets, campaign, today, digest, [])
    finally:
        workbook.close()


def _unpacked_size_problem(data: bytes) -> str | None:
    """Why the workbook must not be opened (it unpacks to too much), or None."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, ValueError):
        return "not a readable .xlsx workbook (not a zip archive)"
    if unpacked > MAX_UNPACKED_BYTES:
        return (f"the workbook unpacks to {unpacked // (1024 * 1024)} MiB (at most "
                f"{MAX_UNPACKED_BYTES // (1024 * 1024)} MiB): split it into smaller files")
    return None


def parse_csv(*, projects: bytes | None = None, households: bytes | None = None, campaign: Campaign,
              today: date) -> ImportResult:
    """Parse one CSV file per sheet (UTF-8, with or without BOM, or GB18030)."""
    if projects is None and households is None:
        return ImportRejected((RowError("", 0, "file", "no CSV file given"),))
    digest = hashlib.sha256()
    sheets: dict[str, Iterable[Sequence[Any]]] = {}
    errors: list[RowError] = []
    for sheet, data in ((PROJECTS, projects), (HOUSEHOLDS, households)):
        if data is None:
            continue
        digest.update(sheet.encode() + b"\x00" + hashlib.sha256(data).digest())
        try:
            sheets[sheet] = csv.reader(io.StringIO(_decode_csv(data)))
        except _CellError as exc:
            errors.append(RowError(sheet, 0, "file", str(exc)))
    if errors:
        return ImportRejected(tuple(errors))
    try:
        return _plan(sheets, campaign, today, digest.hexdigest(), errors)
    except csv.Error as exc:
        return ImportRejected((RowError("", 0, "file", f"not a readable CSV file ({exc})"),))


# ----- the template -----------------------------------------------------------------------------


def build_template(campaign: Campaign) -> bytes:
    """An empty workbook with both sheets, bilingual headers, and the allowed values explained."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.worksheet.datavalidation import DataValidation

    workbook = Workbook()
    bold, fill = Font(bold=True), PatternFill("solid", fgColor="DDEBF7")
    sheets = ((PROJECTS, PROJECT_COLUMNS), (HOUSEHOLDS, HOUSEHOLD_COLUMNS))
    for index, (title, columns) in enumerate(sheets):
        worksheet = workbook.active if index == 0 else workbook.create_sheet()
        worksheet.title = title
        for col, column in enumerate(columns, start=1):
            cell = worksheet.cell(row=1, column=col, value=column.header)
            cell.font, cell.fill = bold, fill
            cell.alignment = Alignment(wrap_text=True, vertical="center")
            worksheet.column_dimensions[cell.column_letter].width = max(14, len(column.zh) * 2 + 4)
        worksheet.row_dimensions[1].height = 32
        worksheet.freeze_panes = "A2"

    def choose(worksheet: Any, key: str, columns: Sequence[Column], values: Sequence[str]) -> None:
        letter = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[[col.key for col in columns].index(key)]
        formula = '"' + ",".join(values) + '"'
        if len(formula) <= 255:  # Excel's limit for an inline list
            validation = DataValidation(type="list", formula1=formula, allow_blank=True)
            worksheet.add_data_validation(validation)
            validation.add(f"{letter}2:{letter}{MAX_ROWS_PER_SHEET + 1}")

    projects_ws, households_ws = workbook[PROJECTS], workbook[HOUSEHOLDS]
    facility_types = [t.name for t in campaign.project_types if t.kind == ProjectKind.FACILITY]
    choose(projects_ws, "unit", PROJECT_COLUMNS, [u.area_name for u in campaign.units])
    choose(projects_ws, "project_type", PROJECT_COLUMNS, facility_types)
    choose(projects_ws, "provincial_key", PROJECT_COLUMNS, ["是", "否"])
    choose(projects_ws, "operator_kind", PROJECT_COLUMNS, [w[1] for w in _OPERATOR_WORDS.values()])
    choose(projects_ws, "status", PROJECT_COLUMNS, [w[1] for w in _STATUS_WORDS.values()])
    choose(households_ws, "unit", HOUSEHOLD_COLUMNS, [u.area_name for u in campaign.units])

    guide = workbook.create_sheet("说明")
    lines = [
        ("说明 / How to fill in", ""),
        ("整表导入:任一行有误则全部不导入,并列出每个错误的行号和原因。", "All or nothing: any bad row refuses the file."),
        ("重复导入同一文件不会产生重复记录。", "Importing the same file twice adds nothing."),
        ("多个服务或改造项目用顿号(、)分隔。", "Separate several services or items with 、"),
        ("姓名、地址、电话为个人信息,加密保存。", "Names, addresses and phones are personal data, stored encrypted."),
        ("", ""),
        ("填报单位 unit", "、".join(u.area_name for u in campaign.units)),
        ("项目类型 project_type", "、".join(facility_types)),
        ("运营主体类型 operator_kind", "、".join(w[1] for w in _OPERATOR_WORDS.values())),
        ("运营状态 status", "、".join(w[1] for w in _STATUS_WORDS.values())),
        ("开展的养老服务 services", "、".join(s.name for s in campaign.services)),
        ("改造项目 items", "、".join(i.name for i in campaign.adaptation_items)),
        ("项目年份 years", f"{campaign.plan_period.first_year}-{campaign.plan_period.last_year}"),
    ]
    for unit in campaign.units:
        lines.append((f"{unit.area_name} 乡镇(街道)", "、".join(t.name for t in campaign.townships_of(unit.code))))
    for row in lines:
        guide.append(row)
    guide["A1"].font = bold
    guide.column_dimensions["A"].width = 36
    guide.column_dimensions["B"].width = 100

    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def rows_to_xlsx(projects: Sequence[Mapping[str, Any]] = (), households: Sequence[Mapping[str, Any]] = ()) -> bytes:
    """A workbook in the import layout from rows keyed by column key (tests, seeds, exports)."""
    from openpyxl import Workbook

    workbook = Workbook()
    for index, (title, columns, rows) in enumerate(
            ((PROJECTS, PROJECT_COLUMNS, projects), (HOUSEHOLDS, HOUSEHOLD_COLUMNS, households))):
        worksheet = workbook.active if index == 0 else workbook.create_sheet()
        worksheet.title = title
        worksheet.append([column.header for column in columns])
        for row in rows:
            worksheet.append([row.get(column.key) for column in columns])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def rows_to_csv(sheet: str, rows: Sequence[Mapping[str, Any]]) -> bytes:
    """A CSV file in the import layout (UTF-8 with BOM, so Excel opens it correctly)."""
    columns = _COLUMNS[sheet]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([column.header.replace("\n", " ") for column in columns])
    for row in rows:
        writer.writerow(["" if row.get(column.key) is None else row.get(column.key) for column in columns])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
