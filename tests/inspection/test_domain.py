"""The draw life cycle: every legal step, and every step out of order refused."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from pydantic import ValidationError

from services.inspection import commands as c
from services.inspection import domain as d
from services.inspection import events as e
from services.inspection import sampling
from shared.errors import (
    DomainError,
    ForbiddenError,
    IllegalTransitionError,
    NotFoundError,
)
from shared.messages import EventRegistry, deterministic_id, new_event
from tests.inspection import world
from tests.inspection.world import (
    AFTER_VISIT,
    CITY_ADMIN,
    DRAW_ID,
    DRAWN_AT,
    ENTROPY,
    FROZEN_AT,
    INSPECTOR,
    VISIT_DAY,
    apply,
    full_checklist,
)

pytestmark = pytest.mark.unit


def _errors_code(excinfo) -> str:
    return excinfo.value.code


# --- who may act -------------------------------------------------------------------------------


def _every_decision(state: d.DrawState):
    household = next(iter(state.sampled_households()), "FH-1")
    return [
        (d.decide_freeze_frame, d.INITIAL_STATE, c.FreezeFrame(draw_id="other", title="t"),
         dict(units=world.UNITS, projects=world.projects(), households=world.households(),
              policy=world.POLICY)),
        (d.decide_commit_entropy, world.frozen(),
         c.CommitEntropy(draw_id=DRAW_ID, statement="3D"), {}),
        (d.decide_reveal_entropy, world.committed(),
         c.RevealEntropy(draw_id=DRAW_ID, entropy="1"), {}),
        (d.decide_draw_sample, state, c.DrawSample(draw_id=DRAW_ID), {}),
        (d.decide_add_discretionary_pick, state,
         c.AddDiscretionaryPick(draw_id=DRAW_ID, project_id="EC-COMPLEX-2", reason="r"),
         dict(project=world.projects()[7])),
        (d.decide_replace_household, state,
         c.ReplaceHousehold(draw_id=DRAW_ID, household_code=household, reason_code="moved"), {}),
        (d.decide_schedule_visit, state,
         c.ScheduleVisit(draw_id=DRAW_ID, visit_id="v", target_kind="project",
                         target_id="EC-COMPLEX-1", scheduled_for=VISIT_DAY,
                         inspector_ids=["insp-1"]), {}),
        (d.decide_record_visit, state,
         c.RecordVisit(draw_id=DRAW_ID, visit_id="v", outcome="passed", visited_on=VISIT_DAY,
                       inspector_ids=["insp-1"]), {}),
        (d.decide_record_finding, state,
         c.RecordFinding(draw_id=DRAW_ID, visit_id="v", text="t", deadline=VISIT_DAY), {}),
    ]


@pytest.mark.parametrize("outsider", world.OUTSIDERS, ids=lambda a: a.role.value)
def test_only_inspectors_and_city_admins_act_on_a_draw(outsider):
    drawn = world.drawn()
    for decide, state, cmd, extra in _every_decision(drawn):
        with pytest.raises(ForbiddenError):
            decide(state, cmd, actor=outsider, now=AFTER_VISIT, **extra)


def test_a_city_admin_may_run_a_draw():
    state = world.frozen(actor=CITY_ADMIN)
    assert state.stage is d.Stage.FROZEN


# --- freezing the frame ------------------------------------------------------------------------


def test_freezing_gives_every_unit_every_stratum_even_empty_ones():
    state = world.frozen()
    strata = {f.stratum for f in state.frames}
    assert strata == {f"{u}/{t}" for u in world.UNITS for t in world.POLICY.rules}
    assert state.stage is d.Stage.FROZEN and state.draw_id == DRAW_ID


def test_retired_projects_leave_the_frame_with_their_reason():
    state = world.frozen()
    canteens = next(f for f in state.frames if f.stratum == "echeng/canteen")
    assert "EC-CANTEEN-9" not in canteens.items
    assert sampling.Exclusion("EC-CANTEEN-9", "retired", "改作他用") in canteens.exclusions
    adaptation = next(f for f in state.frames if f.stratum == "huarong/home_adaptation")
    assert dict(adaptation.townships) == {"华容镇": ("HR-1",)}
    assert adaptation.exclusions == (
        sampling.Exclusion("ML-1", "programme_retired", "并入华容镇项目"),)


def test_full_coverage_frames_hold_only_provincial_key_projects():
    state = world.frozen()
    complexes = next(f for f in state.frames if f.stratum == "echeng/complex")
    assert complexes.items == ("EC-COMPLEX-1",)
    assert complexes.exclusions == (sampling.Exclusion("EC-COMPLEX-2", "not_provincial_key"),)


def test_the_frozen_event_states_each_digest_and_the_digest_of_all():
    [event] = d.decide_freeze_frame(d.INITIAL_STATE, c.FreezeFrame(draw_id=DRAW_ID, title="t"),
                                    actor=INSPECTOR, now=FROZEN_AT, units=world.UNITS,
                                    projects=world.projects(), households=world.households(),
                                    policy=world.POLICY)
    digests = {s.stratum: s.frame_digest for s in event.strata}
    assert event.frames_digest == sampling.frames_digest(digests)
    frames = d.build_frames(world.UNITS, world.projects(), world.households(), world.POLICY)
    assert digests == {f.stratum: f.digest for f in frames}
    assert event.algorithm_version == sampling.ALGORITHM_VERSION


def test_a_frame_is_frozen_once_per_draw():
    with pytest.raises(IllegalTransitionError) as excinfo:
        d.decide_freeze_frame(world.frozen(), c.FreezeFrame(draw_id=DRAW_ID, title="t"),
                              actor=INSPECTOR, now=FROZEN_AT, units=world.UNITS,
                              projects=world.projects(), households=world.households(),
                              policy=world.POLICY)
    assert _errors_code(excinfo) == "frame_already_frozen"


def test_a_project_of_an_unknown_unit_is_refused_not_dropped():
    stray = d.ProjectView("X-1", "wuhan", "江岸区", "canteen")
    with pytest.raises(DomainError) as excinfo:
        d.decide_freeze_frame(d.INITIAL_STATE, c.FreezeFrame(draw_id=DRAW_ID, title="t"),
                              actor=INSPECTOR, now=FROZEN_AT, units=world.UNITS,
                              projects=[*world.projects(), stray], households=[],
                              policy=world.POLICY)
    assert _errors_code(excinfo) == "unknown_unit"


def test_a_draw_id_with_the_key_separator_is_refused():
    with pytest.raises(ValidationError):
        c.FreezeFrame(draw_id="a|b", title="t")


def test_a_policy_can_change_the_household_minimum():
    policy = replace(world.POLICY, min_households=4)
    frames = d.build_frames(world.UNITS, world.projects(), world.households(), policy)
    adaptation = next(f for f in frames if f.stratum == "echeng/home_adaptation")
    assert adaptation.min_households == 4
    drawn = sampling.draw_stratum(adaptation, draw_id="d", entropy="e")
    assert drawn.township == "凤凰街道"  # the only township with >= 4 households


# --- the entropy -------------------------------------------------------------------------------


def test_entropy_is_committed_only_after_the_frame_is_frozen():
    with pytest.raises(NotFoundError):
        d.decide_commit_entropy(d.INITIAL_STATE, c.CommitEntropy(draw_id=DRAW_ID, statement="3D"),
                                actor=INSPECTOR, now=FROZEN_AT)


def test_the_entropy_commitment_cannot_change():
    with pytest.raises(IllegalTransitionError) as excinfo:
        d.decide_commit_entropy(world.committed(),
                                c.CommitEntropy(draw_id=DRAW_ID, statement="另一期"),
                                actor=INSPECTOR, now=FROZEN_AT)
    assert _errors_code(excinfo) == "entropy_already_committed"


def test_committed_entropy_must_not_exist_yet():
    with pytest.raises(DomainError) as excinfo:
        d.decide_commit_entropy(world.frozen(), c.CommitEntropy(
            draw_id=DRAW_ID, statement="昨天的3D", not_before=FROZEN_AT - dt.timedelta(days=1)),
            actor=INSPECTOR, now=FROZEN_AT)
    assert _errors_code(excinfo) == "entropy_already_known"


def test_entropy_is_revealed_only_after_it_was_committed():
    with pytest.raises(IllegalTransitionError) as excinfo:
        d.decide_reveal_entropy(world.frozen(), c.RevealEntropy(draw_id=DRAW_ID, entropy="371"),
                                actor=INSPECTOR, now=DRAWN_AT)
    assert _errors_code(excinfo) == "entropy_not_committed"


def test_entropy_is_not_revealed_before_it_can_exist():
    with pytest.raises(IllegalTransitionError) as excinfo:
        d.decide_reveal_entropy(world.committed(), c.RevealEntropy(draw_id=DRAW_ID, entropy="371"),
                                actor=INSPECTOR, now=world.ENTROPY_KNOWN_AT - dt.timedelta(minutes=1))
    assert _errors_code(excinfo) == "reveal_too_early"


def test_entropy_is_revealed_only_once():
    state = world.committed()
    state = apply(state, d.decide_reveal_entropy, c.RevealEntropy(draw_id=DRAW_ID, entropy="371"),
                  now=DRAWN_AT)
    assert state.stage is d.Stage.REVEALED and state.entropy == "371"
    for later in (state, world.drawn()):
        with pytest.raises(IllegalTransitionError) as excinfo:
            d.decide_reveal_entropy(later, c.RevealEntropy(draw_id=DRAW_ID, entropy="372"),
                                    actor=INSPECTOR, now=DRAWN_AT)
        assert _errors_code(excinfo) == "entropy_already_revealed"


def test_a_command_for_another_draw_is_refused():
    with pytest.raises(DomainError) as excinfo:
        d.decide_commit_entropy(world.frozen(), c.CommitEntropy(draw_id="other", statement="3D"),
                                actor=INSPECTOR, now=FROZEN_AT)
    assert _errors_code(excinfo) == "wrong_draw"


# --- the draw ----------------------------------------------------------------------------------


@pytest.mark.parametrize("state_factory", [world.frozen, world.committed])
def test_the_sample_is_drawn_only_after_the_entropy_is_revealed(state_factory):
    with pytest.raises(IllegalTransitionError) as excinfo:
        d.decide_draw_sample(state_factory(), c.DrawSample(draw_id=DRAW_ID), actor=INSPECTOR,
                             now=DRAWN_AT)
    assert _errors_code(excinfo) == "entropy_not_revealed"


def test_the_sample_is_drawn_once():
    with pytest.raises(IllegalTransitionError) as excinfo:
        d.decide_draw_sample(world.drawn(), c.DrawSample(draw_id=DRAW_ID), actor=INSPECTOR,
                             now=DRAWN_AT)
    assert _errors_code(excinfo) == "already_drawn"


def test_the_service_draws_what_the_algorithm_computes_from_the_frozen_frames():
    state = world.drawn()
    expected = [sampling.draw_stratum(frame, draw_id=DRAW_ID, entropy=ENTROPY) for frame in
                d.build_frames(world.UNITS, world.projects(), world.households(), world.POLICY)]
    for draw in expected:
        outcome = state.outcomes[draw.stratum]
        assert (tuple(outcome.picks), tuple(outcome.replacements)) == (draw.picks, draw.replacements)
        assert outcome.no_eligible_project == draw.no_eligible_project
    assert state.outcomes["linkong/canteen"].no_eligible_project
    assert state.outcomes["huarong/home_adaptation"].insufficient_sample
    assert len(state.outcomes["echeng/canteen"].picks) == 3


def test_a_frame_that_no_longer_matches_its_digest_is_not_drawn_on():
    [frozen] = d.decide_freeze_frame(d.INITIAL_STATE, c.FreezeFrame(draw_id=DRAW_ID, title="t"),
                                     actor=INSPECTOR, now=FROZEN_AT, units=world.UNITS,
                                     projects=world.projects(), households=world.households(),
                                     policy=world.POLICY)
    strata = list(frozen.strata)
    strata[0] = strata[0].model_copy(update={"frame_digest": "0" * 64})
    state = d.fold([frozen.model_copy(update={"strata": strata}),
                    e.EntropyCommitted(draw_id=DRAW_ID, statement="3D", committed_at=FROZEN_AT),
                    e.EntropyRevealed(draw_id=DRAW_ID, entropy="371", revealed_at=DRAWN_AT)])
    with pytest.raises(d.FrameIntegrityError):
        d.decide_draw_sample(state, c.DrawSample(draw_id=DRAW_ID), actor=INSPECTOR, now=DRAWN_AT)


# --- discretionary picks -----------------------------------------------------------------------


def _project(project_id: str) -> d.ProjectView:
    return next(p for p in world.projects() if p.project_id == project_id)


def test_a_discretionary_pick_is_recorded_with_its_reason_and_becomes_visitable():
    state = apply(world.drawn(), d.decide_add_discretionary_pick,
                  c.AddDiscretionaryPick(draw_id=DRAW_ID, project_id="EC-COMPLEX-2",
                                         reason="群众反映运营不佳"),
                  project=_project("EC-COMPLEX-2"))
    assert state.discretionary == {"EC-COMPLEX-2": "群众反映运营不佳"}
    assert state.sampled_projects()["EC-COMPLEX-2"] == "discretionary"
    state = apply(state, d.decide_schedule_visit, c.ScheduleVisit(
        draw_id=DRAW_ID, visit_id="v-x", target_kind="project", target_id="EC-COMPLEX-2",
        scheduled_for=VISIT_DAY, inspector_ids=["insp-1"]))
    assert state.visits["v-x"].project_type == "complex"


@pytest.mark.parametrize(("project_id", "reason", "state_factory", "error", "code"), [
    ("EC-COMPLEX-2", "r", world.committed, IllegalTransitionError,
     "add_discretionary_pick_out_of_order"),
    ("EC-COMPLEX-1", "r", world.drawn, DomainError, "already_sampled"),
    ("EC-HA-FH", "r", world.drawn, DomainError, "not_a_facility"),
    ("EC-COMPLEX-2", "  ", world.drawn, DomainError, "reason_required"),
])
def test_discretionary_picks_that_break_a_rule_are_refused(project_id, reason, state_factory,
                                                           error, code):
    with pytest.raises(error) as excinfo:
        d.decide_add_discretionary_pick(
            state_factory(), c.AddDiscretionaryPick(draw_id=DRAW_ID, project_id=project_id,
                                                    reason=reason),
            actor=INSPECTOR, now=AFTER_VISIT, project=_project(project_id))
    assert _errors_code(excinfo) == code


def test_a_discretionary_pick_must_be_a_known_project_of_the_draws_units():
    cmd = c.AddDiscretionaryPick(draw_id=DRAW_ID, project_id="X-1", reason="r")
    with pytest.raises(NotFoundError):
        d.decide_add_discretionary_pick(world.drawn(), cmd, actor=INSPECTOR, now=AFTER_VISIT,
                                        project=None)
    with pytest.raises(DomainError) as excinfo:
        d.decide_add_discretionary_pick(world.drawn(), cmd, actor=INSPECTOR, now=AFTER_VISIT,
                                        project=d.ProjectView("X-1", "gedian", "葛店镇", "canteen"))
    assert _errors_code(excinfo) == "unit_not_in_draw"


# --- household replacement ---------------------------------------------------------------------


def _replace(state, code, reason="moved"):
    return apply(state, d.decide_replace_household,
                 c.ReplaceHousehold(draw_id=DRAW_ID, household_code=code, reason_code=reason))


def test_an_unvisitable_household_is_replaced_by_the_next_pick_never_a_redraw():
    state = world.drawn()
    outcome = state.outcomes["echeng/home_adaptation"]
    first = outcome.picks[0]
    [event] = d.decide_replace_household(
        state, c.ReplaceHousehold(draw_id=DRAW_ID, household_code=first, reason_code="deceased"),
        actor=INSPECTOR, now=AFTER_VISIT)
    assert event.replacement_household == outcome.replacements[0]
    assert event.reason_code == "deceased"
    state = d.evolve(state, event)
    assert state.active_households["echeng"] == (outcome.replacements[0], outcome.picks[1])
    with pytest.raises(d.NotSampledError):
        d.decide_schedule_visit(state, c.ScheduleVisit(
            draw_id=DRAW_ID, visit_id="v", target_kind="household", target_id=first,
            scheduled_for=VISIT_DAY, inspector_ids=["insp-1"]), actor=INSPECTOR, now=AFTER_VISIT)


def test_when_the_replacement_list_runs_out_the_replacement_is_refused():
    state = world.drawn()
    outcome = state.outcomes["echeng/home_adaptation"]
    state = _replace(state, outcome.picks[0])
    assert len(outcome.replacements) == 1
    with pytest.raises(d.ReplacementsExhaustedError):
        _replace(state, outcome.picks[1])


@pytest.mark.parametrize(("code", "reason", "error"), [
    ("FH-1", "moved", d.NotSampledError),   # 凤凰街道 was not drawn
    ("EC-COMPLEX-1", "moved", d.NotSampledError),
    (None, "unknown", DomainError),
])
def test_replacing_needs_a_sampled_household_and_a_known_reason(code, reason, error):
    state = world.drawn()
    code = code or state.active_households["echeng"][0]
    with pytest.raises(error):
        _replace(state, code, reason)


def _schedule(state, visit_id, kind, target):
    return apply(state, d.decide_schedule_visit, c.ScheduleVisit(
        draw_id=DRAW_ID, visit_id=visit_id, target_kind=kind, target_id=target,
        scheduled_for=VISIT_DAY, inspector_ids=["insp-1", "insp-2"]))


def _record(state, visit_id, outcome, **fields):
    fields.setdefault("inspector_ids", ["insp-1", "insp-2"])
    return apply(state, d.decide_record_visit, c.RecordVisit(
        draw_id=DRAW_ID, visit_id=visit_id, outcome=outcome, visited_on=VISIT_DAY, **fields))


def test_a_household_with_an_open_visit_is_replaced_only_after_recording_wu_fa_ru_hu():
    state = world.drawn()
    code = state.active_households["echeng"][0]
    state = _schedule(state, "v-h", "household", code)
    with pytest.raises(d.VisitRuleError):
        _replace(state, code)
    state = _record(state, "v-h", "unable_to_enter", unable_reason_code="absent")
    state = _replace(state, code, "absent")
    assert code in state.replaced


def test_an_inspected_household_is_not_replaced():
    state = world.drawn()
    code = state.active_households["echeng"][0]
    state = _schedule(state, "v-h", "household", code)
    state = _record(state, "v-h", "passed", checklist=full_checklist("home_adaptation"))
    with pytest.raises(d.VisitRuleError):
        _replace(state, code)


# --- visits ------------------------------------------------------------------------------------


def test_a_visit_is_scheduled_only_for_a_sampled_project():
    with pytest.raises(d.NotSampledError):
        _schedule(world.drawn(), "v", "project", "EC-COMPLEX-2")
    with pytest.raises(IllegalTransitionError):
        _schedule(world.committed(), "v", "project", "EC-COMPLEX-1")


def test_a_target_has_one_open_visit_and_is_inspected_once():
    state = _schedule(world.drawn(), "v-1", "project", "EC-COMPLEX-1")
    with pytest.raises(DomainError) as excinfo:
        _schedule(state, "v-1", "project", "EC-RURAL-1")
    assert _errors_code(excinfo) == "visit_exists"
    with pytest.raises(d.VisitRuleError):
        _schedule(state, "v-2", "project", "EC-COMPLEX-1")
    state = _record(state, "v-1", "passed", checklist=full_checklist("complex"))
    with pytest.raises(d.VisitRuleError):
        _schedule(state, "v-2", "project", "EC-COMPLEX-1")
    with pytest.raises(d.VisitRuleError):
        _record(state, "v-1", "passed", checklist=full_checklist("complex"))


def test_a_household_can_be_tried_again_after_wu_fa_ru_hu():
    state = world.drawn()
    code = state.active_households["echeng"][0]
    state = _schedule(state, "v-1", "household", code)
    state = _record(state, "v-1", "unable_to_enter", unable_reason_code="absent")
    state = _schedule(state, "v-2", "household", code)
    assert state.visits["v-2"].is_open


def test_a_visit_that_was_never_scheduled_cannot_be_recorded():
    with pytest.raises(NotFoundError):
        _record(world.drawn(), "nope", "passed", checklist=full_checklist("complex"))


@pytest.mark.parametrize(("target", "outcome", "fields", "message"), [
    ("EC-COMPLEX-1", "unable_to_enter", dict(unable_reason_code="absent"), "households"),
    ("household", "unable_to_enter", {}, "reason code"),
    ("household", "unable_to_enter",
     dict(unable_reason_code="absent", findings=[dict(text="t", deadline=VISIT_DAY)]),
     "no findings"),
    ("household", "unable_to_enter",
     dict(unable_reason_code="absent", checklist=full_checklist("home_adaptation")),
     "no checklist"),
    ("EC-COMPLEX-1", "passed", dict(checklist=full_checklist("complex"),
                                    unable_reason_code="absent"), "only to 无法入户"),
    ("EC-COMPLEX-1", "passed", dict(checklist=full_checklist("complex"),
                                    findings=[dict(text="t", deadline=VISIT_DAY)]), "not 合格"),
    ("EC-COMPLEX-1", "problems_found", dict(checklist=full_checklist("complex")),
     "at least one finding"),
    ("EC-COMPLEX-1", "passed", dict(checklist=full_checklist("home_adaptation")), "checklist"),
    ("EC-COMPLEX-1", "passed", dict(checklist=full_checklist("complex", "maybe")), "answers"),
    ("EC-COMPLEX-1", "passed", {}, "missing"),
    ("EC-COMPLEX-1", "passed", dict(checklist=full_checklist("complex"),
                                    photo_hashes=["a" * 64, "a" * 64]), "photo"),
    ("EC-COMPLEX-1", "problems_found",
     dict(checklist=full_checklist("complex"),
          findings=[dict(text="无助餐", deadline=VISIT_DAY - dt.timedelta(days=1))]), "deadline"),
])
def test_a_visit_record_that_breaks_a_rule_is_refused(target, outcome, fields, message):
    state = world.drawn()
    kind = "project"
    if target == "household":
        kind, target = "household", state.active_households["echeng"][0]
    state = _schedule(state, "v", kind, target)
    with pytest.raises(d.VisitRuleError, match=message):
        _record(state, "v", outcome, **fields)


def test_a_visit_cannot_be_recorded_for_a_day_that_has_not_come():
    state = _schedule(world.drawn(), "v", "project", "EC-COMPLEX-1")
    with pytest.raises(d.VisitRuleError, match="future"):
        apply(state, d.decide_record_visit, c.RecordVisit(
            draw_id=DRAW_ID, visit_id="v", outcome="passed", visited_on=VISIT_DAY,
            inspector_ids=["i"], checklist=full_checklist("complex")),
            now=dt.datetime(2024, 5, 9, 12, 0, tzinfo=world.CST))


def test_photo_hashes_must_be_sha256_hex():
    with pytest.raises(ValidationError):
        c.RecordVisit(draw_id=DRAW_ID, visit_id="v", outcome="passed", visited_on=VISIT_DAY,
                      inspector_ids=["i"], photo_hashes=["not-a-hash"])


# --- findings ----------------------------------------------------------------------------------


def test_problems_found_yields_one_finding_event_per_problem_for_rectification():
    state = _schedule(world.drawn(), "v", "project", "EC-COMPLEX-1")
    events = d.decide_record_visit(state, c.RecordVisit(
        draw_id=DRAW_ID, visit_id="v", outcome="problems_found", visited_on=VISIT_DAY,
        inspector_ids=["insp-1"], checklist=full_checklist("complex"), notes="现场检查",
        photo_hashes=["b" * 64],
        findings=[dict(text="未提供助餐服务", deadline=dt.date(2024, 5, 31)),
                  dict(text="消防通道堵塞", deadline=VISIT_DAY)]),
        actor=INSPECTOR, now=AFTER_VISIT)
    visit, *findings = events
    assert isinstance(visit, e.VisitRecorded) and visit.outcome is e.VisitOutcome.PROBLEMS_FOUND
    assert [f.text for f in findings] == ["未提供助餐服务", "消防通道堵塞"]
    first = findings[0]
    assert (first.project_id, first.unit, first.project_name, first.township,
            first.project_year, first.project_type, first.deadline, first.found_on) == (
        "EC-COMPLEX-1", "echeng", "泽林镇养老服务综合体(示例)", "泽林镇", 2023, "complex",
        dt.date(2024, 5, 31), VISIT_DAY)
    assert first.finding_id == str(deterministic_id("inspection.finding", DRAW_ID, "v", "0"))
    assert len({f.finding_id for f in findings}) == 2
    state = d.fold(events, state)
    assert state.visits["v"].finding_ids == tuple(f.finding_id for f in findings)


def test_a_household_finding_names_its_programme_and_code_not_the_person():
    state = world.drawn()
    code = state.active_households["echeng"][0]
    state = _schedule(state, "v", "household", code)
    events = d.decide_record_visit(state, c.RecordVisit(
        draw_id=DRAW_ID, visit_id="v", outcome="problems_found", visited_on=VISIT_DAY,
        inspector_ids=["insp-1"], checklist=full_checklist("home_adaptation"),
        findings=[dict(text="扶手松动", deadline=dt.date(2024, 5, 20))]),
        actor=INSPECTOR, now=AFTER_VISIT)
    finding = events[1]
    assert (finding.project_id, finding.household_code, finding.project_name, finding.township) == (
        "EC-HA-ZL", code, "泽林镇适老化改造(示例)", "泽林镇")


def test_a_further_finding_belongs_to_a_problems_found_visit():
    state = _schedule(world.drawn(), "v", "project", "EC-COMPLEX-1")
    state = _record(state, "v", "passed", checklist=full_checklist("complex"))
    cmd = c.RecordFinding(draw_id=DRAW_ID, visit_id="v", text="补充问题", deadline=VISIT_DAY)
    with pytest.raises(d.VisitRuleError):
        d.decide_record_finding(state, cmd, actor=INSPECTOR, now=AFTER_VISIT)
    with pytest.raises(NotFoundError):
        d.decide_record_finding(state, cmd.model_copy(update={"visit_id": "x"}),
                                actor=INSPECTOR, now=AFTER_VISIT)

    state = _schedule(world.drawn(), "v", "project", "EC-COMPLEX-1")
    state = _record(state, "v", "problems_found", checklist=full_checklist("complex"),
                    findings=[dict(text="无助餐", deadline=VISIT_DAY)])
    [finding] = d.decide_record_finding(state, cmd, actor=INSPECTOR, now=AFTER_VISIT)
    assert finding.finding_id == str(deterministic_id("inspection.finding", DRAW_ID, "v", "1"))


# --- progress and the contract -----------------------------------------------------------------


def test_progress_per_unit_counts_the_sample_and_the_visits():
    state = world.drawn()
    state = _schedule(state, "v-1", "project", "EC-COMPLEX-1")
    state = _record(state, "v-1", "problems_found", checklist=full_checklist("complex"),
                    findings=[dict(text="无助餐", deadline=VISIT_DAY)])
    state = _schedule(state, "v-2", "project", "EC-RURAL-1")
    progress = d.visit_progress(state)
    echeng = progress["echeng"]
    assert (echeng.sampled, echeng.scheduled, echeng.inspected, echeng.problems_found,
            echeng.findings) == (3 + 1 + 1 + 1 + 2, 1, 1, 1, 1)
    assert progress["linkong"].sampled == 0
    assert len(progress["linkong"].no_eligible_strata) == 5
    assert progress["huarong"].insufficient_sample


def test_every_event_has_a_stable_inspection_type_name_and_round_trips():
    registry = EventRegistry()
    registry.register(*e.ALL_EVENTS)
    assert all(cls.type_name == f"inspection.{cls.__name__}" for cls in e.ALL_EVENTS)
    state = world.drawn()
    state = _schedule(state, "v", "project", "EC-COMPLEX-1")
    events = d.decide_record_visit(state, c.RecordVisit(
        draw_id=DRAW_ID, visit_id="v", outcome="problems_found", visited_on=VISIT_DAY,
        inspector_ids=["insp-1"], checklist=full_checklist("complex"),
        findings=[dict(text="无助餐", deadline=VISIT_DAY)]), actor=INSPECTOR, now=AFTER_VISIT)
    history = [*d.decide_freeze_frame(d.INITIAL_STATE, c.FreezeFrame(draw_id=DRAW_ID, title="t"),
                                      actor=INSPECTOR, now=FROZEN_AT, units=world.UNITS,
                                      projects=world.projects(), households=world.households(),
                                      policy=world.POLICY),
               *events]
    for event in history:
        stored = new_event(f"draw-{DRAW_ID}", event, actor=INSPECTOR, occurred_at=AFTER_VISIT)
        assert registry.load(stored.event_type, stored.schema_version, stored.payload) == event


def test_evolve_refuses_what_is_not_a_draw_event():
    assert d.fold([]) == d.INITIAL_STATE
    with pytest.raises(TypeError):
        d.evolve(world.drawn(), object())
