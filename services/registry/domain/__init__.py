"""Registry rules, pure: decide what happened, then fold it into state. One module per aggregate:

- `projects`: facilities, their operating status and the 台账 ledger (`project-<id>` streams);
- `programmes`: home-adaptation programmes and their households (`adaptation-<id>`);
- `liaisons`: each unit's 附件1 leader and liaison, versioned (`liaison-<unit>`);
- `rules`: what they share: ids, the principal, the service rule, field checks.

`decide_*(state, cmd, *, actor, now, campaign, ...) -> list[Event]` checks the principal and the
rules and returns events, or raises ForbiddenError / NotFoundError / IllegalTransitionError /
ValidationFailed (every bad field at once). `evolve_*(state, event)` folds. No I/O, no clock:
time, the actor, the campaign and the sealer of personal fields come in as arguments. Which
command runs which decision is the command table's business (handlers.py).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from services.registry import events as e
from services.registry.domain.liaisons import (LiaisonState, decide_register_liaison,
                                               evolve_liaisons, liaison_subjects)
from services.registry.domain.programmes import (ProgrammeState, decide_register_households,
                                                 decide_register_programme, evolve_programme,
                                                 household_subjects, programme_stream_for)
from services.registry.domain.projects import (ProjectState, decide_assess_project,
                                               decide_change_operator, decide_change_services,
                                               decide_mark_ledger_entry_rectified,
                                               decide_register_project,
                                               decide_reopen_ledger_rectification,
                                               decide_retire_project, evolve_project)
from services.registry.domain.rules import (MAX_HOUSEHOLDS_PER_COMMAND, MAX_NAME_LENGTH,
                                            MAX_TEXT_LENGTH, authorise, effective_status,
                                            household_id_for, household_problems,
                                            household_subject_id, ledger_entry_id_for,
                                            liaison_subject_id, normalise_name,
                                            programme_id_for, programme_problems,
                                            project_id_for, project_problems, tidy_text)
from shared.messages import Event
from shared.pipeline import StreamSpec

__all__ = [
    "MAX_HOUSEHOLDS_PER_COMMAND", "MAX_NAME_LENGTH", "MAX_TEXT_LENGTH", "LiaisonState",
    "ProgrammeState", "ProjectState", "RegistryState", "authorise", "decide_assess_project",
    "decide_change_operator", "decide_change_services", "decide_mark_ledger_entry_rectified",
    "decide_register_households", "decide_reopen_ledger_rectification",
    "decide_register_liaison", "decide_register_programme", "decide_register_project",
    "decide_retire_project", "effective_status", "evolve", "evolve_liaisons", "evolve_programme",
    "evolve_project", "fold", "household_id_for", "household_problems", "household_subject_id",
    "household_subjects", "initial_state", "ledger_entry_id_for", "liaison_spec",
    "liaison_subject_id", "liaison_subjects", "normalise_name", "programme_id_for",
    "programme_problems", "programme_spec", "programme_stream_for", "project_id_for",
    "project_problems", "project_spec", "spec_for_stream", "stream_of", "tidy_text",
]

RegistryState = ProjectState | ProgrammeState | LiaisonState


def project_spec(project_id: str) -> StreamSpec[ProjectState]:
    return StreamSpec(e.project_stream(project_id), evolve_project, ProjectState(project_id))


def programme_spec(programme_id: str) -> StreamSpec[ProgrammeState]:
    return StreamSpec(e.programme_stream(programme_id), evolve_programme,
                      ProgrammeState(programme_id))


def liaison_spec(unit: str) -> StreamSpec[LiaisonState]:
    return StreamSpec(e.liaison_stream(unit), evolve_liaisons, LiaisonState(unit))


_SPEC_BY_CATEGORY: dict[str, Callable[[str], StreamSpec[Any]]] = {
    "project": project_spec, "adaptation": programme_spec, "liaison": liaison_spec}


def spec_for_stream(stream_id: str) -> StreamSpec[Any]:
    """The stream spec of a registry stream id, by its category."""
    category, _, key = stream_id.partition("-")
    try:
        return _SPEC_BY_CATEGORY[category](key)
    except KeyError:
        raise ValueError(f"not a registry stream: {stream_id}") from None


def stream_of(event: Event) -> str:
    """The stream a registry event belongs to, from the key it carries (a project, a programme,
    or a unit's liaisons): how a decision over several streams routes its events."""
    for key, stream in (("project_id", e.project_stream), ("programme_id", e.programme_stream)):
        value = getattr(event, key, None)
        if value is not None:
            return stream(value)
    if isinstance(event, e.LiaisonRegistered):
        return e.liaison_stream(event.unit)
    raise ValueError(f"{event.type_name} names no registry stream")


def initial_state(stream_id: str) -> RegistryState:
    """The empty state of a registry stream, by its category."""
    state: RegistryState = spec_for_stream(stream_id).initial
    return state


_EVOLVE: dict[type, Callable[[Any, Event], Any]] = {
    ProjectState: evolve_project, ProgrammeState: evolve_programme, LiaisonState: evolve_liaisons}


def evolve(state: RegistryState, event: Event) -> RegistryState:
    result: RegistryState = _EVOLVE[type(state)](state, event)
    return result


def fold(state: RegistryState, events: Iterable[Event]) -> RegistryState:
    for event in events:
        state = evolve(state, event)
    return state
