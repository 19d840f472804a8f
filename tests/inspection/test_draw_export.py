"""The 抽查名单 as JSON and .xlsx: complete enough to verify, printed so paper can be checked."""
from __future__ import annotations

import datetime as dt
import io
import json
import os
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from services.inspection import commands as c
from services.inspection import domain as d
from services.inspection import draw_export
from services.inspection.cli import cli
from tests.inspection import world

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden" / "draw_list_echeng.json"


@pytest.fixture(scope="module")
def state() -> d.DrawState:
    state = world.drawn()
    state = world.apply(state, d.decide_add_discretionary_pick,
                        c.AddDiscretionaryPick(draw_id=world.DRAW_ID, project_id="EC-COMPLEX-2",
                                               reason="群众反映运营不佳"),
                        project=next(p for p in world.projects()
                                     if p.project_id == "EC-COMPLEX-2"))
    code = state.active_households["echeng"][1]
    return world.apply(state, d.decide_replace_household,
                       c.ReplaceHousehold(draw_id=world.DRAW_ID, household_code=code,
                                          reason_code="refused"))


def _rows(workbook: openpyxl.Workbook, sheet: str) -> list[list]:
    return [[cell for cell in row] for row in workbook[sheet].iter_rows(values_only=True)]


def _saved(doc: dict) -> openpyxl.Workbook:
    buffer = io.BytesIO()
    draw_export.write_draw_xlsx(doc, buffer)
    buffer.seek(0)
    return openpyxl.load_workbook(buffer)


def test_the_unit_sheet_matches_the_golden_layout(state):
    rows = _rows(_saved(draw_export.draw_document(state, unit="echeng")), "echeng")
    as_json = json.loads(json.dumps(rows, ensure_ascii=False))
    if os.environ.get("LOOKBACK_REGENERATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        lines = ",\n".join(json.dumps(row, ensure_ascii=False) for row in as_json)
        GOLDEN.write_text(f"[\n{lines}\n]\n", encoding="utf-8")
    assert as_json == json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_the_sheet_prints_what_a_paper_copy_is_checked_against(state):
    doc = draw_export.draw_document(state, unit="echeng")
    rows = _rows(_saved(doc), "echeng")
    cells = {row[0]: row[1] for row in rows if row and row[0] is not None}
    assert cells["算法版本"] == "lookback-draw-v1"
    assert cells["随机数"] == world.ENTROPY
    assert cells["抽签编号"] == world.DRAW_ID
    assert cells["全部抽样框摘要(SHA-256)"] == doc["frames_digest"]
    printed = {row[0]: row[5] for row in rows if row and str(row[0]).startswith("echeng/")
               and len(str(row[5] or "")) == 64}
    assert printed == {r["stratum"]: r["frame_digest"] for r in doc["strata"]}


def test_the_sheet_lists_every_pick_discretionary_pick_and_replacement(state):
    rows = _rows(_saved(draw_export.draw_document(state, unit="echeng")), "echeng")
    listed = {row[2]: row[6] for row in rows if isinstance(row[0], int)}
    for pid in state.outcomes["echeng/canteen"].picks:
        assert listed[pid] == "随机抽取"
    assert listed["EC-COMPLEX-1"] == "全覆盖"
    assert listed["EC-COMPLEX-2"] == "自由裁量增加"
    replaced = state.outcomes["echeng/home_adaptation"].picks[1]
    replacement = state.outcomes["echeng/home_adaptation"].replacements[0]
    assert listed[replacement] == f"替补(替换 {replaced})"
    notes = {row[2]: row[7] for row in rows if isinstance(row[0], int)}
    assert notes[replaced] == "已替换, 无法入户: 拒绝入户 (refused)"


def test_one_sheet_per_unit_in_a_whole_draw_export(state):
    workbook = _saved(draw_export.draw_document(state))
    assert workbook.sheetnames == world.UNITS
    linkong = _rows(workbook, "linkong")
    assert sum(1 for row in linkong if row[6] == "无符合条件项目") == 5


def test_the_json_export_holds_no_personal_data_and_only_its_units(state):
    doc = draw_export.draw_document(state, unit="huarong")
    assert doc["units"] == ["huarong"]
    assert {r["frame"]["unit"] for r in doc["strata"]} == {"huarong"}
    assert set(doc["frame_digests"]) == {f.stratum for f in state.frames}  # all, for the total
    assert doc["labels"]["households"] == {
        "HR-1": {"project_id": "HR-HA-HR", "unit": "huarong", "township": "华容镇"}}
    text = draw_export.document_json(doc)
    assert "138" not in text and "姓名" not in text


def test_a_draw_list_exists_only_once_drawn():
    with pytest.raises(d.DrawStageError):
        draw_export.draw_document(world.committed())
    with pytest.raises(d.UnitNotInDrawError):
        draw_export.draw_document(world.drawn(), unit="gedian")


def test_the_cli_prints_a_json_export_as_xlsx(tmp_path, state):
    source = tmp_path / "draw.json"
    source.write_text(draw_export.document_json(draw_export.draw_document(state, unit="echeng")),
                      encoding="utf-8")
    target = tmp_path / "draw.xlsx"
    result = CliRunner().invoke(cli, ["draw-list-xlsx", str(source), str(target)])
    assert result.exit_code == 0, result.output
    assert openpyxl.load_workbook(target).sheetnames == ["echeng"]
    verify = CliRunner().invoke(cli, ["verify-draw", str(source)])
    assert verify.exit_code == 0, verify.output
    assert "1 discretionary pick" in verify.output


def test_times_on_the_sheet_are_the_recorded_ones(state):
    doc = draw_export.draw_document(state)
    assert dt.datetime.fromisoformat(doc["drawn_at"]) == world.DRAWN_AT
    assert dt.datetime.fromisoformat(doc["frozen_at"]) == world.FROZEN_AT
