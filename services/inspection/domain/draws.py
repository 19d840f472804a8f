"""The draw's life after the frame: commit to the entropy, reveal it, draw; then the choices the
rules leave (discretionary picks) and the replacements they prescribe (无法入户).

The order is the point: the frame is fixed before anyone states where the entropy will come from,
and the entropy is stated before it exists, so nobody can steer the sample (DOMAIN.md §5).
"""
from __future__ import annotations

import datetime as dt

from services.inspection import sampling
from services.inspection.commands import (
    AddDiscretionaryPick,
    CommitEntropy,
    DrawSample,
    ReplaceHousehold,
    RevealEntropy,
)
from services.inspection.domain.checklists import UNABLE_REASON_CODES
from services.inspection.domain.frames import ProjectView, project_label
from services.inspection.domain.rules import (
    DrawStageError,
    FrameIntegrityError,
    NotSampledError,
    ReplacementsExhaustedError,
    UnitNotInDrawError,
    VisitRuleError,
    authorise,
    require_draw,
    require_stage,
)
from services.inspection.domain.state import DrawState, Stage, fold
from services.inspection.events import (
    DiscretionaryPickAdded,
    EntropyCommitted,
    EntropyRevealed,
    HouseholdReplaced,
    SampleDrawn,
    StratumOutcome,
    TargetKind,
)
from shared.errors import DomainError, NotFoundError
from shared.messages import Actor, Event


def decide_commit_entropy(state: DrawState, cmd: CommitEntropy, *, actor: Actor,
                          now: dt.datetime) -> list[Event]:
    authorise(actor)
    require_draw(state, cmd.draw_id)
    if state.stage >= Stage.COMMITTED:
        raise DrawStageError("the entropy of this draw was already committed; it cannot change",
                             code="entropy_already_committed")
    if cmd.not_before is not None and cmd.not_before <= now:
        raise DomainError("the committed entropy must not exist yet: not_before is in the past",
                          code="entropy_already_known")
    return [EntropyCommitted(draw_id=cmd.draw_id, statement=cmd.statement,
                             not_before=cmd.not_before, committed_at=now)]


def decide_reveal_entropy(state: DrawState, cmd: RevealEntropy, *, actor: Actor,
                          now: dt.datetime) -> list[Event]:
    authorise(actor)
    require_draw(state, cmd.draw_id)
    if state.stage >= Stage.REVEALED:
        raise DrawStageError("the entropy was already revealed; it is revealed only once",
                             code="entropy_already_revealed")
    if state.stage < Stage.COMMITTED:
        raise DrawStageError("commit to the entropy source before revealing it",
                             code="entropy_not_committed")
    if state.not_before is not None and now < state.not_before:
        raise DrawStageError(f"the committed entropy does not exist before {state.not_before}",
                             code="reveal_too_early")
    return [EntropyRevealed(draw_id=cmd.draw_id, entropy=cmd.entropy, revealed_at=now)]


def decide_draw_sample(state: DrawState, cmd: DrawSample, *, actor: Actor,
                       now: dt.datetime) -> list[Event]:
    authorise(actor)
    require_draw(state, cmd.draw_id)
    if state.stage is Stage.DRAWN:
        raise DrawStageError("the sample was already drawn", code="already_drawn")
    if state.stage is not Stage.REVEALED:
        raise DrawStageError("draw only after the frame is frozen and the entropy revealed",
                             code="entropy_not_revealed")
    assert state.entropy is not None and state.draw_id is not None
    strata = []
    for frame in state.frames:
        if frame.digest != state.stated_digests.get(frame.stratum):
            raise FrameIntegrityError(f"frame {frame.stratum} does not hash to its frozen digest")
        draw = sampling.draw_stratum(frame, draw_id=state.draw_id, entropy=state.entropy)
        strata.append(StratumOutcome(
            stratum=draw.stratum, unit=frame.unit, project_type=frame.project_type,
            rule=draw.rule.value, frame_digest=draw.frame_digest, frame_size=draw.frame_size,
            sample_size=draw.sample_size, picks=list(draw.picks),
            replacements=list(draw.replacements), no_eligible_project=draw.no_eligible_project,
            insufficient_sample=draw.insufficient_sample, township=draw.township,
            township_order=list(draw.township_order)))
    return [SampleDrawn(draw_id=state.draw_id, algorithm_version=sampling.ALGORITHM_VERSION,
                        strata=strata, drawn_at=now)]


def decide_reveal_and_draw(state: DrawState, cmd: RevealEntropy, *, actor: Actor,
                           now: dt.datetime) -> list[Event]:
    """Reveal the entropy and draw at once: the usual case at the draw meeting."""
    revealed = decide_reveal_entropy(state, cmd, actor=actor, now=now)
    drawn = decide_draw_sample(fold(revealed, state), DrawSample(draw_id=cmd.draw_id),
                               actor=actor, now=now)
    return revealed + drawn


def decide_add_discretionary_pick(state: DrawState, cmd: AddDiscretionaryPick, *, actor: Actor,
                                  now: dt.datetime, project: ProjectView | None) -> list[Event]:
    """Add a project the rules did not select (e.g. a non-provincial complex), with a reason."""
    authorise(actor)
    require_draw(state, cmd.draw_id)
    require_stage(state, Stage.DRAWN, "add discretionary pick")
    if project is None or project.project_id != cmd.project_id:
        raise NotFoundError(f"project {cmd.project_id!r} is unknown to the inspection service",
                            code="project_not_found")
    if project.unit not in state.units:
        raise UnitNotInDrawError(f"project {project.project_id} belongs to unit "
                                 f"{project.unit!r}, which this draw does not cover")
    if state.samples_households_of(project.project_type):
        raise DomainError("households are sampled by rule R3 and replaced by the sequence; "
                          "a programme is not a discretionary pick", code="not_a_facility")
    if project.project_id in state.sampled_projects():
        raise DomainError(f"project {project.project_id} is already in the sample",
                          code="already_sampled")
    if not cmd.reason.strip():
        raise DomainError("a discretionary pick needs a reason", code="reason_required")
    return [DiscretionaryPickAdded(draw_id=cmd.draw_id, project=project_label(project),
                                   reason=cmd.reason, added_at=now)]


def decide_replace_household(state: DrawState, cmd: ReplaceHousehold, *, actor: Actor,
                             now: dt.datetime) -> list[Event]:
    """无法入户: the next household of the same sequence takes the place; never a redraw."""
    authorise(actor)
    require_draw(state, cmd.draw_id)
    require_stage(state, Stage.DRAWN, "replace household")
    unit = state.sampled_households().get(cmd.household_code)
    if unit is None:
        raise NotSampledError(f"household {cmd.household_code!r} is not in the current sample")
    if cmd.reason_code not in UNABLE_REASON_CODES:
        raise DomainError(f"unknown reason code {cmd.reason_code!r}; one of "
                          f"{sorted(UNABLE_REASON_CODES)}", code="unknown_reason_code")
    visits = [v for v in state.visits.values()
              if v.target_kind is TargetKind.HOUSEHOLD and v.target_id == cmd.household_code]
    if any(v.inspected for v in visits):
        raise VisitRuleError(f"household {cmd.household_code!r} was already inspected")
    if any(v.is_open for v in visits):
        raise VisitRuleError(f"household {cmd.household_code!r} has an open visit; record its "
                             "outcome (无法入户) first")
    outcome = state.adaptation_outcome(unit)
    assert outcome is not None
    used = state.replacements_used.get(unit, 0)
    if used >= len(outcome.replacements):
        raise ReplacementsExhaustedError(
            f"no household left in the replacement list of {outcome.stratum}")
    return [HouseholdReplaced(draw_id=cmd.draw_id, unit=unit, stratum=outcome.stratum,
                              replaced_household=cmd.household_code,
                              replacement_household=outcome.replacements[used],
                              reason_code=cmd.reason_code, note=cmd.note, replaced_at=now)]
