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
from services.inspection.domain.checklists import UNABLE_REASON_CODES, unable_reasons_zh
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
                             code="entropy_already_committed",
                             zh="本次抽签的随机数来源已经承诺，不能更改。")
    if cmd.not_before is not None and cmd.not_before <= now:
        raise DomainError("the committed entropy must not exist yet: not_before is in the past",
                          code="entropy_already_known",
                          zh="承诺的随机数必须是尚未产生的：公布时间已经过去，请选择将来的开奖号码。")
    return [EntropyCommitted(draw_id=cmd.draw_id, statement=cmd.statement,
                             not_before=cmd.not_before, committed_at=now)]


def decide_reveal_entropy(state: DrawState, cmd: RevealEntropy, *, actor: Actor,
                          now: dt.datetime) -> list[Event]:
    authorise(actor)
    require_draw(state, cmd.draw_id)
    if state.stage >= Stage.REVEALED:
        raise DrawStageError("the entropy was already revealed; it is revealed only once",
                             code="entropy_already_revealed", zh="随机数已经公布，只能公布一次。")
    if state.stage < Stage.COMMITTED:
        raise DrawStageError("commit to the entropy source before revealing it",
                             code="entropy_not_committed", zh="请先承诺随机数来源，再公布随机数。")
    if state.not_before is not None and now < state.not_before:
        raise DrawStageError(f"the committed entropy does not exist before {state.not_before}",
                             code="reveal_too_early",
                             zh="承诺的随机数还没有产生，不能提前公布（请在承诺的时间之后再公布）。")
    return [EntropyRevealed(draw_id=cmd.draw_id, entropy=cmd.entropy, revealed_at=now)]


def decide_draw_sample(state: DrawState, cmd: DrawSample, *, actor: Actor,
                       now: dt.datetime) -> list[Event]:
    authorise(actor)
    require_draw(state, cmd.draw_id)
    if state.stage is Stage.DRAWN:
        raise DrawStageError("the sample was already drawn", code="already_drawn",
                             zh="本次已经抽取，不能重新抽取。")
    if state.stage is not Stage.REVEALED:
        raise DrawStageError("draw only after the frame is frozen and the entropy revealed",
                             code="entropy_not_revealed", zh="须先冻结抽样框并公布随机数，才能抽取。")
    assert state.entropy is not None and state.draw_id is not None
    strata = []
    for frame in state.frames:
        if frame.digest != state.stated_digests.get(frame.stratum):
            raise FrameIntegrityError(f"frame {frame.stratum} does not hash to its frozen digest",
                                      zh="抽样框与冻结时的摘要不符，已拒绝抽取，请联系管理员核查。")
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
                            code="project_not_found", zh="未找到该项目（登记系统中没有这个项目）。")
    if project.unit not in state.units:
        raise UnitNotInDrawError(f"project {project.project_id} belongs to unit "
                                 f"{project.unit!r}, which this draw does not cover",
                                 zh="该项目所属单位不在本次抽查范围内。")
    if state.samples_households_of(project.project_type):
        raise DomainError("households are sampled by rule R3 and replaced by the sequence; "
                          "a programme is not a discretionary pick", code="not_a_facility",
                          zh="适老化改造按乡镇和改造户抽取并按顺序替补，不能作为自由裁量增加的项目。")
    if project.project_id in state.sampled_projects():
        raise DomainError(f"project {project.project_id} is already in the sample",
                          code="already_sampled", zh="该项目已在抽查名单中。")
    if not cmd.reason.strip():
        raise DomainError("a discretionary pick needs a reason", code="reason_required",
                          zh="自由裁量增加项目须说明理由。")
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
        raise NotSampledError(f"household {cmd.household_code!r} is not in the current sample",
                              zh=f"改造户 {cmd.household_code} 不在当前抽查名单中。")
    if cmd.reason_code not in UNABLE_REASON_CODES:
        raise DomainError(f"unknown reason code {cmd.reason_code!r}; one of "
                          f"{sorted(UNABLE_REASON_CODES)}", code="unknown_reason_code",
                          zh=f"无法入户原因“{cmd.reason_code}”不存在，可选：{unable_reasons_zh()}。")
    visits = [v for v in state.visits.values()
              if v.target_kind is TargetKind.HOUSEHOLD and v.target_id == cmd.household_code]
    if any(v.inspected for v in visits):
        raise VisitRuleError(f"household {cmd.household_code!r} was already inspected",
                             zh="该户已检查过，不能替补。")
    if any(v.is_open for v in visits):
        raise VisitRuleError(f"household {cmd.household_code!r} has an open visit; record its "
                             "outcome (无法入户) first",
                             zh="该户有待完成的检查，请先记录检查结果（无法入户）。")
    outcome = state.adaptation_outcome(unit)
    assert outcome is not None
    used = state.replacements_used.get(unit, 0)
    if used >= len(outcome.replacements):
        raise ReplacementsExhaustedError(
            f"no household left in the replacement list of {outcome.stratum}",
            zh="替补名单已用完，没有可递补的改造户。")
    return [HouseholdReplaced(draw_id=cmd.draw_id, unit=unit, stratum=outcome.stratum,
                              replaced_household=cmd.household_code,
                              replacement_household=outcome.replacements[used],
                              reason_code=cmd.reason_code, note=cmd.note, replaced_at=now)]
