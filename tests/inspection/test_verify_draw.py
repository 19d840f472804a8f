"""verify-draw agrees with the service on an exported draw and catches every kind of tampering."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from services.inspection import commands as c
from services.inspection import domain as d
from services.inspection import sampling
from services.inspection.cli import cli
from services.inspection.draw_export import draw_document
from tests.inspection import world

pytestmark = pytest.mark.unit

runner = CliRunner()


@pytest.fixture(scope="module")
def state() -> d.DrawState:
    drawn = world.drawn()
    code = drawn.active_households["echeng"][0]
    return world.apply(drawn, d.decide_replace_household,
                       c.ReplaceHousehold(draw_id=world.DRAW_ID, household_code=code,
                                          reason_code="moved"))


@pytest.fixture()
def doc(state) -> dict:
    return draw_document(state)


def _run(tmp_path: Path, document: dict) -> tuple[int, str]:
    path = tmp_path / "draw.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    result = runner.invoke(cli, ["verify-draw", str(path)])
    return result.exit_code, result.output


def _record(document: dict, stratum: str) -> dict:
    return next(r for r in document["strata"] if r["stratum"] == stratum)


def test_an_untouched_export_verifies(tmp_path, doc):
    code, output = _run(tmp_path, doc)
    assert code == 0, output
    assert output.startswith("MATCH") and doc["frames_digest"] in output


def test_verify_draw_agrees_with_the_service_on_every_stratum(doc, state):
    for record in doc["strata"]:
        outcome = state.outcomes[record["stratum"]]
        assert record["picks"] == outcome.picks
        assert record["replacements"] == outcome.replacements
    assert sampling.verify_document(doc) == []


@pytest.mark.parametrize("unit", world.UNITS)
def test_each_units_export_verifies_on_its_own(tmp_path, state, unit):
    document = draw_document(state, unit=unit)
    assert {r["frame"]["unit"] for r in document["strata"]} == {unit}
    code, output = _run(tmp_path, document)
    assert code == 0, output


def test_a_changed_pick_is_caught(tmp_path, doc):
    record = _record(doc, "echeng/canteen")
    record["picks"][0], record["replacements"][0] = record["replacements"][0], record["picks"][0]
    code, output = _run(tmp_path, doc)
    assert code == 1 and "echeng/canteen: picks" in output


def test_a_changed_frame_id_is_caught(tmp_path, doc):
    record = _record(doc, "echeng/canteen")
    record["frame"]["items"][-1] = "EC-CANTEEN-99"
    code, output = _run(tmp_path, doc)
    assert code == 1 and "frame digest" in output


def test_a_frame_id_changed_together_with_its_digest_is_still_caught(tmp_path, doc):
    record = _record(doc, "echeng/canteen")
    record["frame"]["items"][-1] = "EC-CANTEEN-99"
    record["frame_digest"] = sampling.frame_digest(record["frame"])
    doc["frame_digests"]["echeng/canteen"] = record["frame_digest"]
    code, output = _run(tmp_path, doc)
    assert code == 1 and "frames_digest does not match" in output


def test_a_changed_entropy_is_caught(tmp_path, doc):
    doc["entropy"] = doc["entropy"].replace("3 7 1", "3 7 2")
    code, output = _run(tmp_path, doc)
    assert code == 1 and "picks" in output


def test_a_changed_algorithm_version_is_refused(tmp_path, doc):
    doc["algorithm_version"] = "lookback-draw-v0"
    code, output = _run(tmp_path, doc)
    assert code == 1 and "algorithm version" in output


def test_a_dropped_stratum_is_caught(tmp_path, doc):
    doc["strata"] = [r for r in doc["strata"] if r["stratum"] != "echeng/complex"]
    code, output = _run(tmp_path, doc)
    assert code == 1 and "echeng/complex: listed in the draw but missing" in output


def test_a_replacement_out_of_sequence_is_caught(tmp_path, doc):
    record = _record(doc, "echeng/home_adaptation")
    step = record["household_replacements"][0]
    assert step["replacement"] == record["replacements"][0]
    record["household_replacements"][0] = {**step, "replacement": record["picks"][1]}
    code, output = _run(tmp_path, doc)
    assert code == 1 and "the sequence gives" in output


def test_a_changed_flag_is_caught(tmp_path, doc):
    _record(doc, "linkong/canteen")["no_eligible_project"] = False
    code, output = _run(tmp_path, doc)
    assert code == 1 and "no_eligible_project" in output


def test_an_unreadable_file_exits_with_a_usage_error(tmp_path):
    path = tmp_path / "draw.json"
    path.write_text("{not json", encoding="utf-8")
    result = runner.invoke(cli, ["verify-draw", str(path)])
    assert result.exit_code == 2


@settings(max_examples=60, deadline=None)
@given(stratum_index=st.integers(0, 100), field=st.sampled_from(["picks", "replacements", "frame"]),
       data=st.data())
def test_any_swap_of_two_ids_in_an_export_is_caught(state, stratum_index, field, data):
    document = copy.deepcopy(draw_document(state))
    candidates = [r for r in document["strata"]
                  if len(r["picks"] + r["replacements"]) >= 2 and r["rule"] != "R1"]
    record = candidates[stratum_index % len(candidates)]
    order = record["picks"] + record["replacements"]
    i, j = data.draw(st.lists(st.integers(0, len(order) - 1), min_size=2, max_size=2,
                              unique=True))
    order[i], order[j] = order[j], order[i]
    n = record["sample_size"]
    record["picks"], record["replacements"] = order[:n], order[n:]
    if field == "frame":  # move a frame id instead: the frame is no longer canonical
        items = record["frame"].get("items") or next(iter(record["frame"]["townships"].values()))
        if len(items) >= 2:
            items[0], items[1] = items[1], items[0]
    assert sampling.verify_document(document) != []


def test_the_verifier_loads_no_service_code_beyond_sampling(tmp_path, doc):
    path = tmp_path / "draw.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from services.inspection.cli import cli\n"
        f"result = CliRunner().invoke(cli, ['verify-draw', {str(path)!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('services', 'shared', 'asyncpg',"
        " 'openpyxl', 'aio_pika')))\n"
        "print(loaded)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == str(["services", "services.inspection", "services.inspection.cli",
                               "services.inspection.sampling", "shared", "shared.canonical"])


def test_lookback_inspection_verify_draw_is_registered(tmp_path, doc):
    from services.cli import app

    path = tmp_path / "draw.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    result = runner.invoke(app, ["inspection", "verify-draw", str(path)])
    assert result.exit_code == 0, result.output


# --- the share is the campaign's, recorded in the draw --------------------------------------------


def _drawn_with(policy: d.SamplingPolicy) -> d.DrawState:
    events = d.decide_freeze_frame(
        d.INITIAL_STATE, c.FreezeFrame(draw_id=world.DRAW_ID, title="另一期抽查(示例)"),
        actor=world.INSPECTOR, now=world.FROZEN_AT, units=world.UNITS,
        projects=world.projects(), households=world.households(), policy=policy)
    state = d.fold(events)
    state = d.fold(d.decide_commit_entropy(
        state, c.CommitEntropy(draw_id=world.DRAW_ID, statement="3D",
                               not_before=world.ENTROPY_KNOWN_AT),
        actor=world.INSPECTOR, now=world.FROZEN_AT), state)
    return d.fold(d.decide_reveal_and_draw(
        state, c.RevealEntropy(draw_id=world.DRAW_ID, entropy=world.ENTROPY),
        actor=world.INSPECTOR, now=world.DRAWN_AT), state)


def test_an_export_without_a_share_is_one_half_as_every_export_made_before(tmp_path, doc):
    shared_strata = [r for r in doc["strata"] if r["rule"] == "R2"]
    assert shared_strata and all("share" not in r["frame"] for r in shared_strata)
    canteens = _record(doc, "echeng/canteen")
    assert (canteens["frame_size"], canteens["sample_size"]) == (5, 3)
    code, output = _run(tmp_path, doc)
    assert code == 0, output


def test_a_draw_under_another_share_records_it_and_verifies_with_it(tmp_path):
    third = replace(world.POLICY, r2_share=Fraction(1, 3))
    document = draw_document(_drawn_with(third), unit="echeng")
    canteens = _record(document, "echeng/canteen")
    assert canteens["frame"]["share"] == {"numerator": 1, "denominator": 3}
    assert (canteens["frame_size"], canteens["sample_size"]) == (5, 2)   # ⌈5/3⌉
    code, output = _run(tmp_path, document)
    assert code == 0, output
    # The share is part of the frozen frame: claiming one half afterwards breaks its digest.
    del canteens["frame"]["share"]
    code, output = _run(tmp_path, document)
    assert code == 1 and "echeng/canteen" in output


def test_the_printed_rule_names_the_recorded_share(tmp_path):
    from services.inspection.draw_export import draw_workbook

    half = draw_workbook(draw_document(world.drawn(), unit="echeng"))
    third = draw_workbook(draw_document(
        _drawn_with(replace(world.POLICY, r2_share=Fraction(1, 3))), unit="echeng"))

    def rule_of(workbook, type_name: str) -> str:
        return next(row[2] for row in workbook["鄂城区"].iter_rows(values_only=True)
                    if row[1] == type_name and str(row[2]).startswith("R"))

    assert rule_of(half, "幸福食堂") == "R2 按50%随机抽取"
    assert rule_of(third, "幸福食堂") == "R2 按1/3随机抽取"
