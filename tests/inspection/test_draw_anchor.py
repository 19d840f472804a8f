"""A draw export is tied to the signed log: `verify-draw --audit-log` checks its frame, commitment,
reveal, picks, discretionary picks and replacements against the draw's own events; the export
alone is also checked for the timing and discretionary rules."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.inspection import commands as c
from services.inspection import domain as d
from services.inspection import sampling
from services.inspection.cli import cli
from services.inspection.draw_export import draw_document
from shared.messages import new_event
from shared.signing import public_key_to_text
from tests.inspection import world
from tests.shared.audit_support import SIGNER, export_of

pytestmark = pytest.mark.unit
PUBLIC = public_key_to_text(SIGNER.public_key)


def _life() -> tuple[d.DrawState, list]:
    """The draw's events as the service decides them, and the state they fold to."""
    events, state = [], d.INITIAL_STATE

    def step(new_events) -> None:
        nonlocal state
        events.extend(new_events)
        state = d.fold(new_events, state)

    step(d.decide_freeze_frame(state, c.FreezeFrame(draw_id=world.DRAW_ID, title="2024年回头看市级抽查"),
                               actor=world.INSPECTOR, now=world.FROZEN_AT, units=world.UNITS,
                               projects=world.projects(), households=world.households(),
                               policy=world.POLICY))
    step(d.decide_commit_entropy(state, c.CommitEntropy(
        draw_id=world.DRAW_ID, statement="中国福利彩票3D 2024-05-08 开奖号码",
        not_before=world.ENTROPY_KNOWN_AT), actor=world.INSPECTOR, now=world.FROZEN_AT))
    step(d.decide_reveal_and_draw(state, c.RevealEntropy(draw_id=world.DRAW_ID, entropy=world.ENTROPY),
                                  actor=world.INSPECTOR, now=world.DRAWN_AT))
    extra = next(p for p in world.projects() if p.project_id == "EC-COMPLEX-2")
    step(d.decide_add_discretionary_pick(state, c.AddDiscretionaryPick(
        draw_id=world.DRAW_ID, project_id=extra.project_id, reason="群众反映运营不正常"),
        actor=world.INSPECTOR, now=world.AFTER_VISIT, project=extra))
    step(d.decide_replace_household(state, c.ReplaceHousehold(
        draw_id=world.DRAW_ID, household_code=state.active_households["echeng"][0],
        reason_code="moved"), actor=world.INSPECTOR, now=world.AFTER_VISIT))
    return state, events


@pytest.fixture(scope="module")
def life() -> tuple[d.DrawState, list]:
    return _life()


@pytest.fixture()
def files(tmp_path, life) -> tuple[dict, Path]:
    state, events = life
    stream = sampling.draw_stream_id(world.DRAW_ID)
    log = tmp_path / "audit.jsonl"
    log.write_bytes(export_of([new_event(stream, e, actor=world.INSPECTOR,
                                         occurred_at=world.AFTER_VISIT) for e in events]))
    return draw_document(state), log


def run(tmp_path: Path, doc: dict, *args) -> tuple[int, str]:
    path = tmp_path / "draw.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    result = CliRunner().invoke(cli, ["verify-draw", str(path), *map(str, args)])
    return result.exit_code, result.output


def rewrite_consistently(doc: dict, stratum: str, drop: str) -> dict:
    """What a dishonest operator does: drop one project from a frame, then recompute the frame's
    digest, the draw's digest and the picks, so the export is internally perfect."""
    doc = copy.deepcopy(doc)
    record = next(r for r in doc["strata"] if r["stratum"] == stratum)
    frame = sampling.frame_from_object({**record["frame"], "items": [
        i for i in record["frame"]["items"] if i != drop]})
    draw = sampling.draw_stratum(frame, draw_id=doc["draw_id"], entropy=doc["entropy"])
    record.update({"frame": frame.frame_object(), **draw.to_object()})
    doc["frame_digests"][stratum] = frame.digest
    doc["frames_digest"] = sampling.frames_digest(doc["frame_digests"])
    return doc


def test_an_untouched_export_matches_its_signed_events(tmp_path, files):
    doc, log = files
    code, output = run(tmp_path, doc, "--audit-log", log, "--public-key", PUBLIC)
    assert code == 0, output
    assert "anchored to positions 1..6 of the audit log, covered by a checkpoint signed at tree " \
           "size 6" in output


def test_a_consistent_rewrite_passes_alone_but_not_against_the_log(tmp_path, files):
    doc, log = files
    canteens = next(r for r in doc["strata"] if r["stratum"] == "echeng/canteen")
    forged = rewrite_consistently(doc, "echeng/canteen", canteens["picks"][0])
    alone, _ = run(tmp_path, forged)
    assert alone == 0  # the export by itself cannot tell
    code, output = run(tmp_path, forged, "--audit-log", log, "--public-key", PUBLIC)
    assert code == 1
    assert "frames_digest: the export says" in output and "echeng/canteen: frame:" in output


def test_changed_entropy_commitment_or_discretionary_reason_differ_from_the_log(tmp_path, files):
    doc, log = files
    for field, value in (("entropy_statement", "另一个来源"),
                         ("entropy_not_before", "2024-05-08T20:00:00+08:00")):
        changed = {**doc, field: value}
        code, output = run(tmp_path, changed, "--audit-log", log, "--public-key", PUBLIC)
        assert code == 1 and f"{field}: the export says" in output
    changed = copy.deepcopy(doc)
    changed["discretionary"][0]["reason"] = "另一理由"
    code, output = run(tmp_path, changed, "--audit-log", log, "--public-key", PUBLIC)
    assert code == 1 and "discretionary: the export says" in output


def test_an_audit_log_that_does_not_verify_is_refused(tmp_path, files):
    doc, log = files
    log.write_bytes(log.read_bytes().replace("群众反映".encode(), "有人反映".encode()))
    code, output = run(tmp_path, doc, "--audit-log", log, "--public-key", PUBLIC)
    assert code == 1 and "the audit log does not verify: FAIL position 5" in output


def test_a_reveal_dated_before_the_entropy_could_be_known_fails_even_alone(tmp_path, files):
    doc, _ = files
    early = {**doc, "revealed_at": "2024-05-08T20:00:00+08:00"}
    code, output = run(tmp_path, early)
    assert code == 1 and "before it could be known" in output


@pytest.mark.parametrize("change, message", [
    ({"reason": "  "}, "no reason given"),
    ({"unit": "wuhan"}, "unit 'wuhan' is not a unit of this draw"),
])
def test_a_discretionary_pick_needs_a_reason_and_a_unit_of_the_draw(tmp_path, files, change,
                                                                     message):
    doc, _ = files
    changed = copy.deepcopy(doc)
    changed["discretionary"][0].update(change)
    code, output = run(tmp_path, changed)
    assert code == 1 and message in output
