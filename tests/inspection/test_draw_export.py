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
from shared.campaign import load_campaign
from tests.inspection import world

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden" / "draw_list_echeng.json"
CAMPAIGN = load_campaign()
AREAS = [CAMPAIGN.unit(unit).area_name for unit in world.UNITS]   # sheets are named as people say
TYPE_NAMES = {t.code: t.name for t in CAMPAIGN.project_types}


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
    rows = _rows(_saved(draw_export.draw_document(state, unit="echeng")), "鄂城区")
    as_json = json.loads(json.dumps(rows, ensure_ascii=False))
    if os.environ.get("LOOKBACK_REGENERATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        lines = ",\n".join(json.dumps(row, ensure_ascii=False) for row in as_json)
        GOLDEN.write_text(f"[\n{lines}\n]\n", encoding="utf-8")
    assert as_json == json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_the_sheet_prints_what_a_paper_copy_is_checked_against(state):
    doc = draw_export.draw_document(state, unit="echeng")
    workbook = _saved(doc)
    rows = _rows(workbook, "鄂城区")
    basis = {row[0]: row[2] for row in rows if row and row[0] is not None and row[1] is None
             and row[2] is not None}
    assert basis["算法版本"] == "lookback-draw-v1"
    assert basis["随机数"] == world.ENTROPY
    assert basis["全部抽样框摘要(SHA-256)"] == doc["frames_digest"]
    assert basis["抽签时间"] == "2024年5月8日 22:00"
    assert basis["抽样框冻结时间"] == "2024年5月7日 09:00"
    printed = {row[1]: row[5] for row in rows if row and len(str(row[5] or "")) == 64}
    assert printed == {TYPE_NAMES[r["frame"]["project_type"]]: r["frame_digest"]
                       for r in doc["strata"]}
    # On every printed page: the footer carries the draw id and the digest of all its frames.
    sheet = workbook["鄂城区"]
    assert doc["frames_digest"] in sheet.oddFooter.center.text
    assert world.DRAW_ID in sheet.oddFooter.center.text
    assert sheet.page_setup.orientation == "landscape"
    assert (sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight) == (1, 0)
    assert sheet.print_title_rows == "$1:$2"


def test_the_sheet_lists_every_pick_by_name_with_chinese_labels_only(state):
    rows = _rows(_saved(draw_export.draw_document(state, unit="echeng")), "鄂城区")
    # The list's rows (the replacement list below has no 入选方式 column).
    picks = [row for row in rows if isinstance(row[0], int) and row[5] is not None]
    how = {row[2]: row[5] for row in picks}
    labels = {pid: world_label.name for pid, world_label in state.projects.items()}
    for pid in state.outcomes["echeng/canteen"].picks:
        assert how[labels[pid]] == "随机抽取"
    assert how[labels["EC-COMPLEX-1"]] == "全覆盖"
    assert how[labels["EC-COMPLEX-2"]] == "自由裁量增加"
    replaced = state.outcomes["echeng/home_adaptation"].picks[1]
    replacement = state.outcomes["echeng/home_adaptation"].replacements[0]
    programme = next(row[2] for row in picks if row[2].endswith(f"改造户 {replacement}"))
    assert how[programme] == f"替补（替换 {replaced}）"
    notes = {row[2]: row[6] for row in picks}
    assert notes[programme.replace(replacement, replaced)] == "已被替补：无法入户（拒绝入户）"
    cells = [str(c) for row in rows for c in row if c is not None]
    for code in ("echeng", "canteen", "refused", "EC-COMPLEX-1", "T22:00"):
        assert not any(code in cell for cell in cells), code


def test_one_sheet_per_unit_in_a_whole_draw_export(state):
    workbook = _saved(draw_export.draw_document(state))
    assert workbook.sheetnames == AREAS
    linkong = _rows(workbook, "临空经济区")
    assert sum(1 for row in linkong if row[7] and "无符合条件项目" in row[7]) == 5


def test_text_that_looks_like_a_formula_stays_text_on_the_sheet(state):
    doc = draw_export.draw_document(state, unit="echeng")
    doc["discretionary"][0]["reason"] = "=HYPERLINK(\"http://example.invalid\")"
    sheet = _saved(doc)["鄂城区"]
    [cell] = [c for row in sheet.iter_rows() for c in row
              if isinstance(c.value, str) and "HYPERLINK" in c.value]
    assert cell.data_type == "s" and cell.value.startswith("理由：")
    doc["labels"]["projects"]["EC-COMPLEX-2"]["name"] = "=1+1"
    sheet = _saved(doc)["鄂城区"]
    [cell] = [c for row in sheet.iter_rows() for c in row if c.value == "=1+1"]
    assert cell.data_type == "s" and cell.quotePrefix


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
    assert openpyxl.load_workbook(target).sheetnames == ["鄂城区"]
    verify = CliRunner().invoke(cli, ["verify-draw", str(source)])
    assert verify.exit_code == 0, verify.output
    assert "1 discretionary pick" in verify.output


def test_times_on_the_sheet_are_the_recorded_ones(state):
    doc = draw_export.draw_document(state)
    assert dt.datetime.fromisoformat(doc["drawn_at"]) == world.DRAWN_AT
    assert dt.datetime.fromisoformat(doc["frozen_at"]) == world.FROZEN_AT
