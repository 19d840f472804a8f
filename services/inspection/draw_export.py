"""The 抽查名单 (draw list) of a draw, per unit: JSON that verify-draw can check, and a printable .xlsx.

The JSON carries everything a recomputation needs (frames, digests, entropy, algorithm version,
draw id, picks, replacements); the sheet prints the frame digests, the entropy and the algorithm
version, so a paper copy can be checked against a recomputation years later.
No personal data: households appear as codes only.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font

from services.inspection import sampling
from services.inspection.domain import (
    UNABLE_REASON_CODES,
    DrawStageError,
    DrawState,
    Stage,
    UnitNotInDrawError,
)

UNIT_NAMES: Mapping[str, str] = {
    "echeng": "鄂城区民政局",
    "huarong": "华容区民政局",
    "liangzihu": "梁子湖区民政局",
    "gedian": "葛店经济开发区城乡融合发展局",
    "linkong": "临空经济区社会事务局",
}

TYPE_NAMES: Mapping[str, str] = {
    "complex": "街道(乡镇)养老服务综合体",
    "community_center": "社区居家养老服务中心",
    "rural_center": "农村互助照料中心",
    "canteen": "幸福食堂",
    "home_adaptation": "特殊困难老年人家庭适老化改造",
}

RULE_NAMES: Mapping[str, str] = {
    "R1": "R1 省级重点项目全覆盖",
    "R2": "R2 按{share}随机抽取",
    "R3": "R3 随机抽取1个乡镇(街道)及改造户",
}

STRATA_HEADER = ("分层", "项目类型", "规则", "抽样框数量N", "抽取数量n", "抽样框摘要(SHA-256)", "说明")
LIST_HEADER = ("序号", "项目类型", "项目编号/户编码", "项目名称", "乡镇(街道)", "项目年份", "入选方式",
               "备注")
REPLACEMENT_HEADER = ("分层", "替补顺序", "项目编号/户编码", "乡镇(街道)")


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
# The printable sheet


def draw_workbook(doc: Mapping[str, Any], *, unit_names: Mapping[str, str] = UNIT_NAMES) -> Workbook:
    """One sheet per unit of the export, in the order of `doc["units"]`."""
    workbook = Workbook()
    workbook.remove(workbook.active)
    for unit in doc["units"]:
        _unit_sheet(workbook, doc, unit, unit_names)
    return workbook


def write_draw_xlsx(doc: Mapping[str, Any], target: Path | IO[bytes], *,
                    unit_names: Mapping[str, str] = UNIT_NAMES) -> None:
    draw_workbook(doc, unit_names=unit_names).save(target)


def _unit_sheet(workbook: Workbook, doc: Mapping[str, Any], unit: str,
                unit_names: Mapping[str, str]) -> None:
    sheet = workbook.create_sheet(title=unit[:31])
    bold = Font(bold=True)
    projects = doc["labels"]["projects"]
    households = doc["labels"]["households"]
    records = [r for r in doc["strata"] if r["frame"]["unit"] == unit]

    sheet.append([f"{doc['title']} 抽查名单"])
    sheet["A1"].font = Font(bold=True, size=14)
    for label, value in (
        ("被抽查单位", f"{unit_names.get(unit, unit)} ({unit})"),
        ("抽签编号", doc["draw_id"]),
        ("算法版本", doc["algorithm_version"]),
        ("随机数来源(事先承诺)", doc["entropy_statement"]),
        ("随机数", doc["entropy"]),
        ("抽样框冻结时间", doc["frozen_at"]),
        ("抽签时间", doc["drawn_at"]),
        ("全部抽样框摘要(SHA-256)", doc["frames_digest"]),
    ):
        sheet.append([label, value])
        sheet.cell(row=sheet.max_row, column=1).font = bold

    sheet.append([])
    sheet.append(["一、分层与抽样框"])
    sheet.cell(row=sheet.max_row, column=1).font = bold
    _header(sheet, STRATA_HEADER)
    for record in records:
        frame = record["frame"]
        notes = []
        if record["no_eligible_project"]:
            notes.append("无符合条件项目")
        if record["insufficient_sample"]:
            notes.append("样本不足")
        if record.get("township"):
            notes.append(f"抽中乡镇(街道): {record['township']}")
        excluded = [f"{e['id']}({_exclusion_text(e)})" for e in frame["excluded"]]
        if excluded:
            notes.append("框外: " + "; ".join(excluded))
        sheet.append([record["stratum"], TYPE_NAMES.get(frame["project_type"], frame["project_type"]),
                      _rule_name(frame), record["frame_size"],
                      record["sample_size"], record["frame_digest"], "; ".join(notes)])

    sheet.append([])
    sheet.append(["二、抽查名单"])
    sheet.cell(row=sheet.max_row, column=1).font = bold
    _header(sheet, LIST_HEADER)
    number = 0
    for record in records:
        frame = record["frame"]
        type_name = TYPE_NAMES.get(frame["project_type"], frame["project_type"])
        if frame["rule"] == "R3":
            replaced = {s["replaced"]: s for s in record.get("household_replacements", [])}
            entered = {s["replacement"]: s for s in record.get("household_replacements", [])}
            for code in [*record["picks"], *entered]:
                number += 1
                how = f"替补(替换 {entered[code]['replaced']})" if code in entered else "随机抽取"
                note = _replaced_note(replaced[code]["reason_code"]) if code in replaced else ""
                programme = households.get(code, {}).get("project_id", "")
                name, _, year = _project_cells(projects, programme)
                sheet.append([number, type_name, code, name,
                              households.get(code, {}).get("township", ""), year, how, note])
            continue
        how = "全覆盖" if frame["rule"] == "R1" else "随机抽取"
        for pid in record["picks"]:
            number += 1
            sheet.append([number, type_name, pid, *_project_cells(projects, pid), how, ""])
    for pick in doc["discretionary"]:
        if pick["unit"] != unit:
            continue
        number += 1
        label = projects.get(pick["project_id"], {})
        sheet.append([number, TYPE_NAMES.get(label.get("project_type", ""), ""), pick["project_id"],
                      *_project_cells(projects, pick["project_id"]), "自由裁量增加", pick["reason"]])

    sheet.append([])
    sheet.append(["三、替补顺序(按序递补, 不重新抽取)"])
    sheet.cell(row=sheet.max_row, column=1).font = bold
    _header(sheet, REPLACEMENT_HEADER)
    for record in records:
        for order, item in enumerate(record["replacements"], start=1):
            township = households.get(item, {}).get("township", "") if record["frame"]["rule"] == "R3" \
                else projects.get(item, {}).get("township", "")
            sheet.append([record["stratum"], order, item, township])

    sheet.append([])
    sheet.append(["核验方法", "lookback inspection verify-draw <导出的JSON文件>; 算法见 docs/sampling.md"])
    sheet.cell(row=sheet.max_row, column=1).font = bold
    for column, width in zip("ABCDEFGH", (22, 28, 26, 30, 16, 66, 40, 30), strict=True):
        sheet.column_dimensions[column].width = width
    for row in sheet.iter_rows():
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")


def _rule_name(frame: Mapping[str, Any]) -> str:
    """The rule as printed; R2 with the frame's share (50% unless the frame records another)."""
    name: str = RULE_NAMES.get(frame["rule"], frame["rule"])
    if frame["rule"] != sampling.Rule.SHARE:
        return name
    share = frame.get("share", {"numerator": 1, "denominator": 2})
    numerator: int = share["numerator"]
    denominator: int = share["denominator"]
    percent, rest = divmod(100 * numerator, denominator)
    return name.format(share=f"{numerator}/{denominator}" if rest else f"{percent}%")


def _header(sheet: Any, names: tuple[str, ...]) -> None:
    sheet.append(list(names))
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)


def _project_cells(projects: Mapping[str, Any], pid: str) -> list[Any]:
    label = projects.get(pid, {})
    return [label.get("name", ""), label.get("township", ""), label.get("project_year") or ""]


def _replaced_note(reason_code: str) -> str:
    return f"已替换, 无法入户: {UNABLE_REASON_CODES.get(reason_code, reason_code)} ({reason_code})"


def _exclusion_text(exclusion: Mapping[str, str]) -> str:
    text = {"retired": "已退出", "not_provincial_key": "非省级重点",
            "programme_retired": "所属项目已退出"}.get(exclusion["code"], exclusion["code"])
    return f"{text}: {exclusion['detail']}" if exclusion["detail"] else text
