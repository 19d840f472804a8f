"""Deciding a parsed import against the registry's state: every row or none. Pure.

Each command of the import is decided by its own rule (the command table's row, handed in as
`decide`) against the working state of its stream, in order, so later rows see earlier ones (a
programme registered by row 3 takes households from row 4). Every refused row is collected and
the import as a whole is refused (ImportRefused names sheet, row, column and reason); otherwise
the handler appends every event in one atomic multi-stream append.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from services.registry import commands as c
from services.registry import domain as d
from services.registry import events as e
from services.registry.importing.parsing import (PROJECT_FIELD_COLUMNS, PROJECTS, ImportRefused,
                                                 RowError, column_of)
from shared.errors import FieldProblem, ForbiddenError, NotFoundError, ValidationFailed
from shared.messages import Actor, Event


@dataclass(frozen=True, slots=True)
class ImportDecision:
    """The import's events in order, and what they registered."""

    events: tuple[Event, ...]
    projects_registered: int
    programmes_registered: int
    households_registered: int
    unchanged: int  # commands that found their records already there, identical

    @property
    def event_count(self) -> int:
        return len(self.events)


def decide_import(plan: c.ImportRegistry, states: Mapping[str, Any], *, actor: Actor,
                  stream_of: Callable[[c.RegistryCommand], str],
                  decide: Callable[[c.RegistryCommand, Any], list[Event]]) -> ImportDecision:
    """Decide every command of the plan against the loaded states; ImportRefused names every
    refused row (duplicates with different details, another unit's rows, …) and nothing is kept."""
    if not actor.role.may_command:
        raise ForbiddenError(f"{actor.role.value} may read but not import",
                             zh="您的角色只能查看，不能批量导入。")
    working = dict(states)
    decided: list[Event] = []
    errors: list[RowError] = []
    counts = {"projects": 0, "programmes": 0, "households": 0, "unchanged": 0}
    for item in plan.items:
        stream = stream_of(item.command)
        state = working.get(stream) or d.initial_state(stream)
        try:
            events = decide(item.command, state)
        except ValidationFailed as exc:
            errors.extend(_row_errors(item, exc.problems))
            continue
        except (ForbiddenError, NotFoundError) as exc:
            errors.append(RowError(item.sheet, item.rows[0], "unit", str(exc)))
            continue
        working[stream] = d.fold(state, events)
        if not events:
            counts["unchanged"] += 1
            continue
        decided.extend(events)
        for event in events:
            if isinstance(event, e.ProjectRegistered):
                counts["projects"] += 1
            elif isinstance(event, e.AdaptationProgrammeRegistered):
                counts["programmes"] += 1
            elif isinstance(event, e.HouseholdsRegistered):
                counts["households"] += len(event.households)
    if errors:
        raise ImportRefused(sorted(errors, key=lambda err: (err.sheet != PROJECTS, err.row)))
    return ImportDecision(tuple(decided), counts["projects"], counts["programmes"],
                          counts["households"], counts["unchanged"])


def _row_errors(item: c.ImportItem, problems: Iterable[FieldProblem]) -> list[RowError]:
    errors = []
    for problem in problems:
        match = re.match(r"households\[(\d+)\]\.(.*)", problem.field)
        if match and isinstance(item.command, c.RegisterHouseholds):
            row = item.rows[int(match.group(1))]
            errors.append(RowError(item.sheet, row, column_of(match.group(2), {}), problem.reason))
        else:
            column = column_of(problem.field, PROJECT_FIELD_COLUMNS if item.sheet == PROJECTS else {})
            errors.append(RowError(item.sheet, item.rows[0], column, problem.reason))
    return errors
