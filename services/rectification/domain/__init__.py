"""Rectification rules, pure: decide what happened, then fold it into state. One module per aggregate:

- `problems`: a problem item and its 销号 life cycle (`problem-<id>` streams);
- `counter`: a unit's 序号 counter (`unit-<code>`);
- `registration`: registering an item (by people, 反弹, a 台账 entry, a finding), which writes the
  item and its unit's counter in one append;
- `reports`: a unit's monthly lists, self-inspection report and typical cases (`report-<id>`);
- `rules`: what they share: the campaign's rules, the project reference, errors, ids, the principal.

Scores (`score-<unit>`) and progress are in ../scoring.py. No I/O, no clock, no ids invented here:
time (`now`), the acting official (`actor`), ids and the service's own knowledge (the project, the
unit's counter, the evidence index, the campaign's rules) come in as arguments. Each `decide_*`
returns the events to append or raises a named error; `evolve*` folds an event into a state.
Which command runs which decision is the command table's business (handlers.py).

Who may do what (checked in this order: may the role command at all, is it the actor's own unit,
is the transition legal from the current state, does the actor hold the authority it needs, four
eyes):

- register: a self-found item, the unit's district roles or city_admin; a city-found one, an
  inspector or city_admin; a ledger item, city_admin (the system actor);
- start, request close-out, request an extension: the unit's district roles, city_admin;
- verify or return a close-out: for a district-found item (self-inspection, ledger), the unit's
  district_reviewer; for a city-found one, an inspector. Never the requester;
- decide an extension, withdraw: the verifying authority above, or city_admin; never the
  requester / the registrant;
- reopen (反弹): the unit's district roles, an inspector, city_admin;
- leader, auditor: no commands at all.

A district role acting on another unit, or a role without the authority, gets ForbiddenError
(403); an illegal transition gets IllegalTransitionError naming the current state (409); a broken
four-eyes rule gets FourEyesError (409: see its docstring).
"""
from __future__ import annotations

import uuid

from services.rectification import events as e
from services.rectification.domain.counter import UnitSequenceState, evolve_sequence, sequence_at_version
from services.rectification.domain.problems import (
    OPEN_STATUSES,
    STATUS_LABELS,
    PendingExtension,
    ProblemState,
    ProblemStatus,
    close_out_deciders_zh,
    decide_extension,
    decide_request_close_out,
    decide_request_extension,
    decide_return_close_out,
    decide_start_rectification,
    decide_verify_close_out,
    decide_withdraw_problem,
    evolve,
    find_evidence_reuse,
    is_overdue,
    may_judge_close_out,
    may_verify,
    problem_list_rows,
    requester_is_the_units_reviewer,
    was_open_at,
)
from services.rectification.domain.registration import (
    UNKNOWN_PROJECT_ZH,
    blocking_ledger_items,
    decide_open_finding_item,
    decide_open_ledger_item,
    decide_register_problem,
    decide_reopen_problem,
    finding_problem_id,
    ledger_description,
    ledger_problem_id,
    open_ledger_keys,
    registration_for_finding,
    registration_for_ledger_entry,
)
from services.rectification.domain.reports import (
    NO_REPORT_ZH,
    REPORT_STATUS_LABELS,
    ReportState,
    ReportStatus,
    decide_return_monthly_list,
    decide_review_report,
    decide_submit_monthly_list,
    decide_submit_self_inspection_report,
    decide_submit_typical_case,
    decide_submit_work_plan,
    evolve_report,
    fold_report,
    new_report,
    report_initial,
)
from services.rectification.domain.rules import (
    ROLE_LABELS,
    FourEyesError,
    InvalidCommandError,
    ProjectRef,
    RectificationRules,
    Submission,
    SubmissionKind,
    monthly_list_report_id,
    problem_stream_id,
    report_stream_id,
    score_stream_id,
    self_inspection_report_id,
    typical_case_report_id,
    unit_stream_id,
    work_plan_report_id,
    zh_date,
    zh_datetime,
    zh_deadline,
)
from shared.messages import Event
from shared.pipeline import StreamSpec

__all__ = [
    "NO_REPORT_ZH", "REPORT_STATUS_LABELS", "ROLE_LABELS", "STATUS_LABELS", "Submission", "SubmissionKind",
    "close_out_deciders_zh", "decide_submit_work_plan", "may_judge_close_out",
    "requester_is_the_units_reviewer",
    "work_plan_report_id", "zh_date", "zh_datetime", "zh_deadline",
    "UNKNOWN_PROJECT_ZH", "OPEN_STATUSES", "FourEyesError",
    "InvalidCommandError", "PendingExtension", "ProblemState", "ProblemStatus", "ProjectRef",
    "RectificationRules", "ReportState", "ReportStatus", "UnitSequenceState",
    "blocking_ledger_items", "decide_extension", "decide_open_finding_item",
    "decide_open_ledger_item", "decide_register_problem", "decide_reopen_problem",
    "decide_request_close_out", "decide_request_extension", "decide_return_close_out",
    "decide_return_monthly_list", "decide_review_report", "decide_start_rectification",
    "decide_submit_monthly_list", "decide_submit_self_inspection_report",
    "decide_submit_typical_case", "decide_verify_close_out", "decide_withdraw_problem", "evolve",
    "evolve_report", "evolve_sequence", "find_evidence_reuse", "finding_problem_id",
    "fold_report", "is_overdue", "ledger_description", "ledger_problem_id", "may_verify",
    "monthly_list_report_id", "new_report", "open_ledger_keys", "problem_list_rows",
    "problem_spec", "problem_stream_id", "registration_for_finding",
    "registration_for_ledger_entry", "report_initial", "report_spec", "report_stream_id",
    "score_stream_id", "self_inspection_report_id", "stream_id_for", "typical_case_report_id",
    "unit_counter_spec", "unit_spec", "unit_stream_id", "was_open_at",
]


def problem_spec(problem_id: uuid.UUID) -> StreamSpec[ProblemState]:
    return StreamSpec(problem_stream_id(problem_id), evolve, ProblemState(problem_id=problem_id))


def unit_spec(unit: str) -> StreamSpec[UnitSequenceState]:
    """The unit's counter folded whole: every item it allocated (`allocations`)."""
    return StreamSpec(unit_stream_id(unit), evolve_sequence, UnitSequenceState(unit=unit))


def unit_counter_spec(unit: str) -> StreamSpec[UnitSequenceState]:
    """The unit's counter for allocating the next 序号: its head version only, never its history."""
    return StreamSpec(unit_stream_id(unit), evolve_sequence, UnitSequenceState(unit=unit),
                      at_version=sequence_at_version)


def report_spec(report_id: str) -> StreamSpec[ReportState]:
    """NotFoundError for an id that is no report id (see `report_initial`)."""
    return StreamSpec(report_stream_id(report_id), evolve_report, report_initial(report_id))


def stream_id_for(event: Event) -> str:
    """The stream a decided event is appended to (a decision may write several): how the command
    table routes the events of a multi-stream decision."""
    if isinstance(event, e.SeqNoAllocated):
        return unit_stream_id(event.unit)
    if isinstance(event, e.SCORE_EVENTS):
        return score_stream_id(event.unit)
    if isinstance(event, e.REPORT_EVENTS):
        return report_stream_id(event.report_id)
    if isinstance(event, e.PROBLEM_EVENTS):
        return problem_stream_id(event.problem_id)
    raise TypeError(f"not a rectification event: {type(event).__name__}")
