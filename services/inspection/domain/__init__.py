"""The inspection draw and its visits, decided and folded without I/O. One aggregate, the draw
(one stream, `draw-<draw_id>`), in modules by concern:

- `state`: the draw folded from its events (`DrawState`, `evolve`, `fold`);
- `rules`: who may act, the checks every step makes first, the errors;
- `frames`: freezing the frames from the registry view under the campaign's SamplingPolicy;
- `draws`: commit, reveal and draw; discretionary picks; household replacements (无法入户);
- `visits`: visits, findings and the progress per unit;
- `checklists`: what a visit answers, and the reasons a household could not be visited.

A draw's life: FrameFrozen → EntropyCommitted → EntropyRevealed → SampleDrawn, then discretionary
picks, household replacements, visits and findings. `decide_*(state, cmd, *, actor, now, ...)`
returns events or raises a named error; time (in the campaign's time zone), the actor, the
registry view and the policy come in as arguments. Which command runs which decision is the
command table's business (handlers.py).
"""
from __future__ import annotations

from services.inspection.domain.checklists import (
    CHECKLIST_ANSWERS,
    DEFAULT_CHECKLISTS,
    UNABLE_REASON_CODES,
    check_checklist,
    checklist_of,
)
from services.inspection.domain.draws import (
    decide_add_discretionary_pick,
    decide_commit_entropy,
    decide_draw_sample,
    decide_replace_household,
    decide_reveal_and_draw,
    decide_reveal_entropy,
)
from services.inspection.domain.frames import (
    HouseholdView,
    ProjectView,
    SamplingPolicy,
    build_frames,
    decide_freeze_frame,
    frozen_stratum,
    project_label,
)
from services.inspection.domain.rules import (
    INSPECTION_ROLES,
    DrawNotFoundError,
    DrawStageError,
    FrameIntegrityError,
    FrameInvalidError,
    NotSampledError,
    ReplacementsExhaustedError,
    UnitNotInDrawError,
    VisitRuleError,
    authorise,
    require_draw,
    require_stage,
)
from services.inspection.domain.state import (
    INITIAL_STATE,
    DrawState,
    Stage,
    Visit,
    evolve,
    fold,
    frame_from_frozen,
)
from services.inspection.domain.visits import (
    UnitProgress,
    decide_record_finding,
    decide_record_visit,
    decide_schedule_visit,
    visit_progress,
)
from services.inspection.events import draw_stream
from shared.pipeline import StreamSpec

__all__ = [
    "CHECKLIST_ANSWERS", "DEFAULT_CHECKLISTS", "INITIAL_STATE", "INSPECTION_ROLES",
    "UNABLE_REASON_CODES", "DrawNotFoundError", "DrawStageError", "DrawState",
    "FrameIntegrityError", "FrameInvalidError", "HouseholdView", "NotSampledError", "ProjectView",
    "ReplacementsExhaustedError", "SamplingPolicy", "Stage", "UnitNotInDrawError", "UnitProgress",
    "Visit", "VisitRuleError", "authorise", "build_frames", "check_checklist", "checklist_of",
    "decide_add_discretionary_pick", "decide_commit_entropy", "decide_draw_sample",
    "decide_freeze_frame", "decide_record_finding", "decide_record_visit",
    "decide_replace_household", "decide_reveal_and_draw", "decide_reveal_entropy",
    "decide_schedule_visit", "draw_spec", "evolve", "fold", "frame_from_frozen", "frozen_stratum",
    "project_label", "require_draw", "require_stage", "visit_progress",
]


def draw_spec(draw_id: str) -> StreamSpec[DrawState]:
    """The draw's stream as a decision reads it: its id, the fold, the empty state."""
    return StreamSpec(draw_stream(draw_id), evolve, INITIAL_STATE)
