"""The inspection service's command table: every command decides on its draw's one stream.

The kernel's pipeline (shared/pipeline.py) runs every row the same way: authorize, prepare, load,
decide, append with the expected version, retry a conflict, envelope, log, count.

What a decision needs besides the draw is prepared inside the command's transaction: the
service's view of the registry for freezing a frame (read from its own read model, never from
the registry's tables), the project named by a discretionary pick. Decisions see `now` in the
campaign's time zone (`on_the_draw`), so "today" is the local day for every rule.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from services.inspection import commands as c
from services.inspection import domain as d
from services.inspection import queries as q
from services.inspection.config import InspectionDeps
from shared.messages import Event
from shared.pipeline import CommandTable, Decision, Handler, Preparation, StreamSpec

InspectionDecision = Decision[Any, Any, InspectionDeps]


@dataclass(frozen=True)
class RegistryView:
    """What this service knows of the registry when a frame is frozen."""

    projects: list[d.ProjectView]
    households: list[d.HouseholdView]


# ----- which stream -------------------------------------------------------------------------------


def the_draw(cmd: c.DrawCommand, _: InspectionDeps) -> list[StreamSpec[d.DrawState]]:
    """Every inspection command names its draw (`draw_id`) and decides on that one stream."""
    return [d.draw_spec(cmd.draw_id)]


# ----- what a decision needs besides the draw -----------------------------------------------------


async def registry_view(p: Preparation[c.FreezeFrame, InspectionDeps]) -> RegistryView:
    projects, households = await q.registry_view(p.conn)
    return RegistryView(projects, households)


async def named_project(p: Preparation[c.AddDiscretionaryPick, InspectionDeps]
                        ) -> d.ProjectView | None:
    return await q.project_view(p.conn, p.command.project_id)


# ----- decisions ----------------------------------------------------------------------------------


def on_the_draw(decide: Callable[..., Sequence[Event]],
                inputs: Callable[[InspectionDecision], dict[str, Any]] | None = None
                ) -> Callable[[InspectionDecision], Sequence[Event]]:
    """A decision on the draw's state, in the campaign's local time (the one place it is set);
    `inputs` gives the decision's further keyword arguments from the prepared inputs and deps."""

    def decision(x: InspectionDecision) -> Sequence[Event]:
        extra = inputs(x) if inputs is not None else {}
        return decide(x.only_state, x.command, actor=x.actor, now=x.deps.local(x.now), **extra)

    return decision


def frame_inputs(x: Decision[c.FreezeFrame, RegistryView, InspectionDeps]) -> dict[str, Any]:
    return dict(units=x.deps.units, projects=x.inputs.projects, households=x.inputs.households,
                policy=x.deps.policy)


def the_project(x: Decision[c.AddDiscretionaryPick, d.ProjectView | None, InspectionDeps]
                ) -> dict[str, Any]:
    return dict(project=x.inputs)


# ----- the table ----------------------------------------------------------------------------------


def on_draw(decide: Callable[..., Sequence[Event]], *,
            prepare: Callable[[Any], Awaitable[Any]] | None = None,
            inputs: Callable[[InspectionDecision], dict[str, Any]] | None = None
            ) -> Handler[Any, Any, InspectionDeps]:
    """A row of the table: the command's draw stream, sent only by the inspection group."""
    return Handler(streams=the_draw, prepare=prepare, decide=on_the_draw(decide, inputs),
                   roles=d.INSPECTION_ROLES)


COMMANDS: CommandTable = {
    c.FreezeFrame: on_draw(d.decide_freeze_frame, prepare=registry_view, inputs=frame_inputs),
    c.CommitEntropy: on_draw(d.decide_commit_entropy),
    c.RevealEntropy: on_draw(d.decide_reveal_and_draw),
    c.AddDiscretionaryPick: on_draw(d.decide_add_discretionary_pick, prepare=named_project,
                                    inputs=the_project),
    c.ReplaceHousehold: on_draw(d.decide_replace_household),
    c.ScheduleVisit: on_draw(d.decide_schedule_visit),
    c.RecordVisit: on_draw(d.decide_record_visit),
    c.RecordFinding: on_draw(d.decide_record_finding),
}
