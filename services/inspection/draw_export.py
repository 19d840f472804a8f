"""The 抽查名单 (draw list) of a draw, per unit: JSON that verify-draw can check, and a printable .xlsx.

The JSON carries everything a recomputation needs (frames, digests, entropy, algorithm version,
draw id, picks, replacements); the sheet prints the frame digests, the entropy and the algorithm
version, so a paper copy can be checked against a recomputation years later.
No personal data: households appear as codes only.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side

from services.inspection import sampling
from services.inspection.domain import (
    DrawStageError,
    DrawState,
    Stage,
    UnitNotInDrawError,
)
from services.inspection.vocabulary import EXCLUSION, RULE, SELECTION, UNABLE_REASON
from shared.campaign import Campaign, load_campaign
from shared.spreadsheets import append, fit_row_heights, print_setup, set_widths
from shared.times import written_datetime


def _as_draw(outcome: Any) -> sampling.StratumDraw:
    return sampling.StratumDraw(
        stratum=outcome.stratum, rule=sampling.Rule(outcome.rule),
        frame_digest=outcome.frame_digest, frame_size=outcome.frame_size,
        sample_size=outcome.sample_size, picks=tuple(outcome.picks),
        replacements=tuple(outcome.replacements),
        no_eligible_project=outcome.no_eligible_project,
        insufficient_sample=outcome.insufficient_sample, township=outcome.township,
        township_order=tuple(outcome.township_order))


def draw_document(state: DrawState, *, unit: str | None = None) -> dict[str, Any]:
    """The export of a drawn draw, for one unit or (unit=None) all of them."""
    if state.stage is not Stage.DRAWN:
        raise DrawStageError("a draw list exists only once the sample is drawn",
                             code="not_drawn")
    if unit is not None and unit not in state.units:
        raise UnitNotInDrawError(f"unit {unit!r} is not part of draw {state.draw_id}")
    units = [unit] if unit is not None else list(state.units)
    strata = []
    project_ids: set[str] = set()
    household_codes: set[str] = set()
    for frame in state.frames:
        if frame.unit not in units:
            continue
        outcome = state.outcomes[frame.stratum]
        steps = [{"replaced": old, "replacement": new, "reason_code": reason}
                 for old, new, reason in state.replacement_log.get(frame.unit, ())
                 ] if frame.rule is sampling.Rule.TOWNSHIP_HOUSEHOLDS else []
        strata.append(sampling.stratum_record(frame, _as_draw(outcome), steps))
        if frame.rule is sampling.Rule.TOWNSHIP_HOUSEHOLDS:
            household_codes.update(outcome.picks, outcome.replacements)
        else:
            project_ids.update(outcome.picks, outcome.replacements)
    discretionary = [
        {"project_id": pid, "unit": state.projects[pid].unit, "reason": reason}
        for pid, reason in sorted(state.discretionary.items())
        if state.projects[pid].unit in units]
    project_ids.update(d["project_id"] for d in discretionary)
    project_ids.update(state.households[code].project_id for code in household_codes)
    return {
        "format": sampling.EXPORT_FORMAT,
        "algorithm_version": sampling.ALGORITHM_VERSION,
        "draw_id": state.draw_id,
        "title": state.title,
        "units": units,
        "entropy_statement": state.statement,
        "entropy_not_before": _iso(state.not_before),
        "entropy": state.entropy,
        "frozen_at": _iso(state.frozen_at),
        "committed_at": _iso(state.committed_at),
        "revealed_at": _iso(state.revealed_at),
        "drawn_at": _iso(state.drawn_at),
        "frames_digest": state.frames_digest,
        "frame_digests": dict(sorted(state.stated_digests.items())),
        "strata": strata,
        "discretionary": discretionary,
        "labels": {
            "projects": {pid: state.projects[pid].model_dump(exclude={"project_id"})
                         for pid in sorted(project_ids)},
            "households": {code: state.households[code].model_dump(exclude={"household_code"})
                           for code in sorted(household_codes)},
        },
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def document_json(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


# ---------------------------------------------------------------------------------------------
# The printable sheet: what the inspection group takes to the field
#
# One sheet per unit, A4 landscape, scaled to the page width (no column ever lands on a page of its
# own), the title repeated on every page and the draw's id and `frames_digest` in every page's
# footer (docs/sampling.md §7: one unit's list cannot be swapped for another draw's). People read
# names, townships, Chinese labels (campaign file, vocabulary.py) and dates as they write them;
# the ids a recomputation needs are in the JSON export the sheet names.

TITLE_ROWS = 2
LIST_HEADER = ("序号", "项目类型", "项目名称（改造户编号）", "乡镇(街道)", "项目年份", "入选方式", "备注",
               "现场检查情况（检查时填写）")
REPLACEMENT_HEADER = ("替补顺序", "项目类型", "项目名称（改造户编号）", "乡镇(街道)", "项目年份")
STRATA_HEADER = ("", "项目类型", "抽查规则", "抽样框数量N", "抽取数量n", "抽样框摘要（SHA-256）", "",
                 "说明")
WIDTHS = (6, 22, 40, 13, 9, 12, 22, 24)
FONT = "宋体"
_THIN = Side(style="thin")
_BOX = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)


def draw_workbook(doc: Mapping[str, Any], *, campaign: Campaign | None = None) -> Workbook:
    """One sheet per unit of the export, in the order of `doc["units"]`, labelled from the
    campaign file (the packaged default, or LOOKBACK_CAMPAIGN_FILE, when none is given)."""
    campaign = campaign or load_campaign()
    workbook = Workbook()
    workbook.remove(workbook.active)
    for unit in doc["units"]:
        _Sheet(workbook, doc, unit, campaign).write()
    return workbook


def write_draw_xlsx(doc: Mapping[str, Any], target: Path | IO[bytes], *,
                    campaign: Campaign | None = None) -> None:
    draw_workbook(doc, campaign=campaign).save(target)


class _Sheet:
    """One unit's sheet, written top to bottom."""

    def __init__(self, workbook: Workbook, doc: Mapping[str, Any], unit: str,
                 campaign: Campaign) -> None:
        self.doc, self.unit, self.campaign = doc, unit, campaign
        self.tz = campaign.tz
        known = campaign.has_unit(unit)
        self.unit_name = campaign.unit(unit).name if known else unit
        self.sheet = workbook.create_sheet(title=(campaign.unit(unit).area_name if known else unit)[:31])
        self.projects = doc["labels"]["projects"]
        self.households = doc["labels"]["households"]
        self.records = [r for r in doc["strata"] if r["frame"]["unit"] == unit]
        self.merged: dict[tuple[int, int], float] = {}

    # -- layout helpers --------------------------------------------------------------------------
    def row(self, values: list[Any], *, bold: bool = False, boxed: bool = False,
            size: float = 10.5) -> int:
        """A row; `boxed`: a table row (bordered cells as wide as the values given)."""
        line = append(self.sheet, values)
        for column in range(1, len(WIDTHS) + 1):
            cell = self.sheet.cell(row=line, column=column)
            cell.font = Font(name=FONT, size=size, bold=bold)
            centred = boxed and (bold or isinstance(cell.value, int))
            cell.alignment = Alignment(wrap_text=True, vertical="center",
                                       horizontal="center" if centred else None)
            if boxed and column <= len(values):
                cell.border = _BOX
        return line

    def merge(self, line: int, first: int, last: int) -> None:
        self.sheet.merge_cells(start_row=line, start_column=first, end_row=line, end_column=last)
        self.merged[(line, first)] = sum(WIDTHS[first - 1:last])

    def section(self, text: str) -> None:
        self.row([])
        line = self.row([text], bold=True, size=12)
        self.merge(line, 1, len(WIDTHS))

    def type_name(self, code: str) -> str:
        return self.campaign.project_type(code).name if self.campaign.has_project_type(code) else code

    def project_cells(self, pid: str) -> list[Any]:
        label = self.projects.get(pid, {})
        return [label.get("name") or "（名称未登记）", label.get("township", ""),
                label.get("project_year") or ""]

    def household_cells(self, code: str) -> list[Any]:
        label = self.households.get(code, {})
        programme = self.projects.get(label.get("project_id", ""), {})
        name = programme.get("name") or "（改造计划名称未登记）"
        return [f"{name}\n改造户 {code}", label.get("township", ""), programme.get("project_year") or ""]

    # -- the sheet -----------------------------------------------------------------------------
    def write(self) -> None:
        set_widths(self.sheet, WIDTHS)
        title = self.row([f"{self.doc['title']} 抽查名单"], bold=True, size=16)
        self.merge(title, 1, len(WIDTHS))
        self.sheet.cell(row=title, column=1).alignment = Alignment(horizontal="center",
                                                                   vertical="center")
        drawn = written_datetime(_instant(self.doc["drawn_at"]), self.tz)
        line = self.row([f"被抽查单位：{self.unit_name}    抽签编号：{self.doc['draw_id']}    "
                         f"抽签时间：{drawn}"], size=11)
        self.merge(line, 1, len(WIDTHS))
        self.picks()
        self.replacements()
        self.strata()
        self.basis()
        fit_row_heights(self.sheet, range(TITLE_ROWS + 1, self.sheet.max_row + 1), point_size=10.5,
                        merged_widths=self.merged)
        self.sheet.row_dimensions[1].height = 30
        self.sheet.row_dimensions[2].height = 20
        print_setup(self.sheet, landscape=True, repeat_rows=(1, TITLE_ROWS),
                    footer=f"抽签编号 {self.doc['draw_id']}  全部抽样框摘要（SHA-256）"
                           f"{self.doc['frames_digest']}")

    def picks(self) -> None:
        self.section("一、抽查名单")
        self.row(list(LIST_HEADER), bold=True, boxed=True)
        number = 0
        for record in self.records:
            frame = record["frame"]
            type_name = self.type_name(frame["project_type"])
            if frame["rule"] == sampling.Rule.TOWNSHIP_HOUSEHOLDS:
                steps = record.get("household_replacements", [])
                replaced = {s["replaced"]: s for s in steps}
                entered = {s["replacement"]: s for s in steps}
                for code in [*record["picks"], *entered]:
                    number += 1
                    how = (f"{SELECTION.label('replacement')}（替换 {entered[code]['replaced']}）"
                           if code in entered else SELECTION.label("random"))
                    note = (f"已被替补：无法入户（{UNABLE_REASON.label(replaced[code]['reason_code'])}）"
                            if code in replaced else "")
                    name, township, year = self.household_cells(code)
                    self.row([number, type_name, name, township, year, how, note, ""], boxed=True)
                continue
            how = SELECTION.label("full_coverage" if frame["rule"] == sampling.Rule.FULL_COVERAGE
                                  else "random")
            for pid in record["picks"]:
                number += 1
                self.row([number, type_name, *self.project_cells(pid), how, "", ""], boxed=True)
        for pick in self.doc["discretionary"]:
            if pick["unit"] != self.unit:
                continue
            number += 1
            label = self.projects.get(pick["project_id"], {})
            self.row([number, self.type_name(label.get("project_type", "")),
                      *self.project_cells(pick["project_id"]), SELECTION.label("discretionary"),
                      f"理由：{pick['reason']}", ""], boxed=True)
        if number == 0:
            line = self.row(["本单位本次没有抽中的项目（见“三、分层与抽样框”）。"])
            self.merge(line, 1, len(WIDTHS))

    def replacements(self) -> None:
        listed = [(record, order, item) for record in self.records
                  for order, item in enumerate(record["replacements"], start=1)]
        self.section("二、替补顺序（抽中的无法检查时按序递补，不重新抽取）")
        if not listed:
            line = self.row(["无替补名单。"])
            self.merge(line, 1, len(WIDTHS))
            return
        self.row(list(REPLACEMENT_HEADER), bold=True, boxed=True)
        for record, order, item in listed:
            frame = record["frame"]
            cells = (self.household_cells(item) if frame["rule"] == sampling.Rule.TOWNSHIP_HOUSEHOLDS
                     else self.project_cells(item))
            self.row([order, self.type_name(frame["project_type"]), *cells], boxed=True)

    def strata(self) -> None:
        self.section("三、分层与抽样框")
        header = self.row(list(STRATA_HEADER), bold=True, boxed=True)
        self.merge(header, 6, 7)
        for record in self.records:
            frame = record["frame"]
            notes = []
            if record["no_eligible_project"]:
                notes.append("无符合条件项目")
            if record["insufficient_sample"]:
                notes.append("样本不足")
            if record.get("township"):
                notes.append(f"抽中乡镇(街道)：{record['township']}")
            notes += _exclusions(frame["excluded"])
            line = self.row(["", self.type_name(frame["project_type"]), _rule_name(frame),
                             record["frame_size"], record["sample_size"], record["frame_digest"],
                             "", "；".join(notes)], boxed=True)
            self.merge(line, 6, 7)

    def basis(self) -> None:
        self.section("四、抽签依据（据此可离线复核，结果应与本名单一致）")
        for label, value in (
            ("算法版本", self.doc["algorithm_version"]),
            ("随机数来源(事先承诺)", self.doc["entropy_statement"]),
            ("随机数", self.doc["entropy"]),
            ("抽样框冻结时间", written_datetime(_instant(self.doc["frozen_at"]), self.tz)),
            ("随机数承诺时间", written_datetime(_instant(self.doc["committed_at"]), self.tz)),
            ("随机数公布时间", written_datetime(_instant(self.doc["revealed_at"]), self.tz)),
            ("抽签时间", written_datetime(_instant(self.doc["drawn_at"]), self.tz)),
            ("全部抽样框摘要(SHA-256)", self.doc["frames_digest"]),
            ("核验方法", "导出本次抽签的 JSON 文件，运行 lookback inspection verify-draw "
                         "<JSON文件>；算法见 docs/sampling.md"),
        ):
            line = self.row([label, "", value])
            self.sheet.cell(row=line, column=1).font = Font(name=FONT, size=10.5, bold=True)
            self.merge(line, 1, 2)
            self.merge(line, 3, len(WIDTHS))


def _instant(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def _rule_name(frame: Mapping[str, Any]) -> str:
    """The rule as printed; R2 with the frame's share (50% unless the frame records another)."""
    rule = frame["rule"]
    if rule == sampling.Rule.TOWNSHIP_HOUSEHOLDS and frame.get("households_per_township"):
        return (f"R3 每个区随机抽取1个乡镇(街道)，"
                f"每个乡镇抽{frame['households_per_township']}户")
    if rule != sampling.Rule.SHARE:
        return f"{rule} {RULE.label(rule)}"
    share = frame.get("share", {"numerator": 1, "denominator": 2})
    numerator: int = share["numerator"]
    denominator: int = share["denominator"]
    percent, rest = divmod(100 * numerator, denominator)
    return f"R2 按{f'{numerator}/{denominator}' if rest else f'{percent}%'}随机抽取"


def _exclusions(excluded: list[Mapping[str, str]]) -> list[str]:
    """Out of the frame, by reason, with the reasons given (never ids: see the JSON export)."""
    counts: dict[str, list[str]] = {}
    for item in excluded:
        counts.setdefault(item["code"], []).append(item.get("detail", ""))
    said = []
    for code, details in counts.items():
        given = sorted({d for d in details if d})
        said.append(f"未列入抽样框：{EXCLUSION.label(code)} {len(details)} 个"
                    + (f"（{'、'.join(given)}）" if given else ""))
    return said
