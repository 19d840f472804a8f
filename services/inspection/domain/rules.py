"""What every decision on a draw checks first, and the errors the draw's rules raise.

Each error class has one HTTP status (shared/errors.py); its `code` names the rule more finely
where one class covers several steps (a draw step out of order says which step).
"""
from __future__ import annotations

from services.inspection.domain.state import DrawState, Stage
from shared.errors import DomainError, ForbiddenError, IllegalTransitionError, NotFoundError
from shared.messages import Actor, Role

# What people call each stage of a draw (the vocabulary and the refusals say it so).
STAGE_LABELS = {"new": "未开始", "frozen": "抽样框已冻结", "committed": "随机数来源已承诺",
                "revealed": "随机数已公布", "drawn": "已抽取"}

# The inspection group acts on draws; everyone else reads (district roles their own unit).
INSPECTION_ROLES = frozenset({Role.INSPECTOR, Role.CITY_ADMIN})


class DrawNotFoundError(NotFoundError):
    """No frame was frozen under this draw id."""

    code = "draw_not_found"


class UnitNotInDrawError(NotFoundError):
    """A unit the draw does not cover: asked for in a query, or a project's unit in a pick."""

    code = "unit_not_in_draw"


class DrawStageError(IllegalTransitionError):
    """A draw step came out of order (reveal before commit, draw before reveal, ...)."""


class FrameInvalidError(DomainError):
    """The registry view cannot make a frame (e.g. a township name with "|" from a bad import)."""

    code = "frame_invalid"


class FrameIntegrityError(DomainError):
    """The frozen frame no longer hashes to its recorded digest; refuse to draw on it."""

    code = "frame_digest_mismatch"


class NotSampledError(DomainError):
    code = "not_sampled"


class VisitRuleError(DomainError):
    code = "visit_rule_broken"


class ReplacementsExhaustedError(DomainError):
    code = "replacements_exhausted"


def authorise(actor: Actor) -> None:
    if actor.role not in INSPECTION_ROLES:
        raise ForbiddenError(f"role {actor.role.value!r} may not act on inspections; "
                             "only inspector and city_admin may",
                             zh="只有检查组成员和市局管理员可以办理抽查，您只能查看。")


def require_draw(state: DrawState, draw_id: str) -> None:
    if state.stage is Stage.NEW:
        raise DrawNotFoundError(f"draw {draw_id!r} has no frozen frame yet",
                                zh=f"抽签 {draw_id} 不存在（尚未冻结抽样框）。")
    if state.draw_id != draw_id:
        raise DomainError(f"command for draw {draw_id!r} sent to draw {state.draw_id!r}",
                          code="wrong_draw", zh="请求中的抽签编号与地址中的不一致。")


def require_stage(state: DrawState, stage: Stage, what: str) -> None:
    if state.stage is not stage:
        raise DrawStageError(f"cannot {what}: the draw is at stage {state.stage.name.lower()}, "
                             f"this step needs stage {stage.name.lower()}",
                             code=f"{what.replace(' ', '_')}_out_of_order",
                             zh=f"抽签目前处于“{STAGE_LABELS[state.stage.name.lower()]}”阶段，"
                                f"须到“{STAGE_LABELS[stage.name.lower()]}”阶段才能办理。")
