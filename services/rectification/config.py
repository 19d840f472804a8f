"""The campaign file read as the rectification service's rules.

The campaign file is the only source of campaign facts. `rectification_config` turns it
(shared/campaign.py) into what the pure code takes: the `RectificationRules` (立行立改 days, time
zone, due time, the due dates of the monthly lists, the self-inspection report and the typical
case, the rectification deadline) and the deduction rules; the working-day calendar
(`Campaign.is_working_day`), the units and the traffic-light window are the campaign's own. A
campaign rule this service cannot apply faithfully is not guessed at: it is listed in
`RectificationConfig.not_applied` (also at `GET /rules`) and logged at start.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time

from services.rectification import domain as d
from services.rectification import scoring as s
from services.registry.events import describe_reason
from shared.campaign import Campaign, Deadline, DeadlineKind, DeductionTrigger

DEFAULT_SCORE_CHECK_INTERVAL = 60.0


@dataclass(frozen=True)
class RectificationConfig:
    """Everything campaign-specific the service needs, read once at start: the campaign itself
    (units, calendar, supervision settings) and what this service makes of it."""

    campaign: Campaign
    rules: d.RectificationRules
    deduction_rules: tuple[s.DeductionRule, ...]
    not_applied: tuple[tuple[str, str], ...]        # (campaign rule id, why)
    score_check_interval: float | None = DEFAULT_SCORE_CHECK_INTERVAL

    @property
    def campaign_id(self) -> str:
        return self.campaign.id

    @property
    def units(self) -> tuple[str, ...]:
        return self.campaign.unit_codes

    @property
    def yellow_working_days(self) -> int:
        return self.campaign.supervision.yellow_within_working_days

    def is_working_day(self, day: date) -> bool:
        return self.campaign.is_working_day(day)

    def unit_name(self, unit: str) -> str:
        return self.campaign.unit(unit).name if self.campaign.has_unit(unit) else unit

    def area_name(self, unit: str) -> str:
        return self.campaign.unit(unit).area_name if self.campaign.has_unit(unit) else unit

    def describe_reason(self, code: str) -> str:
        """A registry reason code in Chinese, by the registry's own words and this campaign."""
        return describe_reason(code, self.campaign)

    def rule_description(self, rule_id: str) -> str:
        """The Chinese description of a deduction rule, from the campaign file."""
        if rule_id == s.DISCRETIONARY_RULE_ID:
            return s.DISCRETIONARY_DESCRIPTION
        for rule in self.campaign.deduction_rules:
            if rule.id == rule_id:
                return rule.description
        return rule_id

    def deadline_name(self, code: str) -> str:
        for deadline in self.campaign.deadlines:
            if deadline.code == code:
                return deadline.name
        return code

    @property
    def problem_list_title(self) -> str:
        """附件2's title, from the campaign's name: "…“回头看”活动" → "…“回头看”问题清单"."""
        return f"{self.campaign.campaign.name.removesuffix('活动')}问题清单"


# Campaign deadline kinds a unit submits something by, as this service names them.
SUBMISSION_KINDS = {
    DeadlineKind.LIAISONS: d.SubmissionKind.LIAISONS,
    DeadlineKind.WORK_PLAN: d.SubmissionKind.WORK_PLAN,
    DeadlineKind.MONTHLY_PROBLEM_LIST: d.SubmissionKind.MONTHLY_LIST,
    DeadlineKind.SELF_INSPECTION_REPORT: d.SubmissionKind.SELF_INSPECTION_REPORT,
    DeadlineKind.TYPICAL_CASE: d.SubmissionKind.TYPICAL_CASE,
}
_JUDGED_KINDS = {*SUBMISSION_KINDS, DeadlineKind.RECTIFICATION_COMPLETE}


def _single_due_time(campaign: Campaign) -> time:
    times = {deadline.due_time for deadline in campaign.deadlines
             if deadline.kind in _JUDGED_KINDS}
    if len(times) > 1:
        raise ValueError("the rectification service applies one due time to all its deadlines; "
                         f"the campaign file names several: {sorted(t.isoformat() for t in times)}")
    if not times:
        raise ValueError("the campaign file names no monthly list, self-inspection report, typical "
                         "case or rectification deadline: the rectification service takes its "
                         "due time from them")
    return times.pop()


def rectification_rules(campaign: Campaign) -> d.RectificationRules:
    """The campaign's dates and settings as the domain's RectificationRules. A deadline the file
    does not name falls back to the campaign's last day (the work plan: none is asked for)."""
    by_kind: dict[DeadlineKind, list[Deadline]] = {}
    for deadline in campaign.deadlines:
        by_kind.setdefault(deadline.kind, []).append(deadline)

    def due_on(kind: DeadlineKind) -> date:
        found = by_kind.get(kind)
        return min(x.due_on for x in found) if found else campaign.campaign.ends_on

    # (month, due day); the campaign file's validator makes every monthly list name its month.
    monthly = sorted((x.period, x.due_on) for x in by_kind.get(DeadlineKind.MONTHLY_PROBLEM_LIST, [])
                     if x.period is not None)
    plans = by_kind.get(DeadlineKind.WORK_PLAN)
    submissions = tuple(
        d.Submission(code=x.code, kind=SUBMISSION_KINDS[x.kind], name=x.name, due_on=x.due_on,
                     period=x.period, min_count=x.min_count)
        for x in campaign.deadlines if x.kind in SUBMISSION_KINDS)
    return d.RectificationRules(
        immediate_days=campaign.rectification.immediate_days,
        timezone=campaign.campaign.timezone,
        due_time=_single_due_time(campaign),
        monthly_list_months=tuple(month for month, _ in monthly),
        monthly_list_due_dates=tuple(monthly),
        self_inspection_report_due=due_on(DeadlineKind.SELF_INSPECTION_REPORT),
        typical_case_due=due_on(DeadlineKind.TYPICAL_CASE),
        ledger_item_deadline=due_on(DeadlineKind.RECTIFICATION_COMPLETE),
        work_plan_due=min(x.due_on for x in plans) if plans else None,
        submissions=submissions,
    )


def deduction_rules(campaign: Campaign) -> tuple[tuple[s.DeductionRule, ...],
                                                 tuple[tuple[str, str], ...]]:
    """The campaign's deduction rules as scoring rules, and those this service does not apply.

    - late_submission / missing_submission → the same occurrence, "a deadline not met by its due
      time" (filed late or not at all), for the deadline the rule names; a rule naming none
      covers every submission deadline (附件1, work plan, monthly lists, self-inspection report,
      typical cases) that no rule names (`scoring.rule_matches`). A rule naming a deadline that
      is no submission (全部整改到位) is not applied: items open at it are item_open_at_deadline.
    - item_open_at_deadline → item_open_at on that deadline's day.
    - item_reopened → item_reopened; item_overdue → item_overdue.
    - max_points → the rule's cap per unit.
    """
    deadlines = {x.code: x for x in campaign.deadlines}
    applied: list[s.DeductionRule] = []
    skipped: list[tuple[str, str]] = []
    for rule in campaign.deduction_rules:
        deadline = deadlines.get(rule.deadline) if rule.deadline else None
        trigger: s.Trigger | None = None
        day: date | None = None
        why = ""
        match rule.trigger:
            case DeductionTrigger.LATE_SUBMISSION | DeductionTrigger.MISSING_SUBMISSION:
                if deadline is None or deadline.kind in SUBMISSION_KINDS:
                    trigger = s.Trigger(rule.trigger.value)
                else:
                    why = f"deadline {rule.deadline!r} is no submission a unit files"
            case DeductionTrigger.ITEM_OPEN_AT_DEADLINE:
                assert deadline is not None  # the campaign file's validator requires it
                trigger, day = s.Trigger.ITEM_OPEN_AT, deadline.due_on
            case DeductionTrigger.ITEM_REOPENED:
                trigger = s.Trigger.ITEM_REOPENED
            case DeductionTrigger.ITEM_OVERDUE:
                trigger = s.Trigger.ITEM_OVERDUE
        if trigger is None:
            skipped.append((rule.id, why or f"trigger {rule.trigger} is not applied here"))
            continue
        applied.append(s.DeductionRule(
            id=rule.id, points=rule.points_decimal, trigger=trigger, date=day,
            description=rule.description, max_points=rule.max_points_decimal,
            deadline=rule.deadline if trigger in s.SUBMISSION_TRIGGERS else None))
    return tuple(applied), tuple(skipped)


def rectification_config(campaign: Campaign, *,
                         score_check_interval: float | None = DEFAULT_SCORE_CHECK_INTERVAL,
                         ) -> RectificationConfig:
    applied, skipped = deduction_rules(campaign)
    return RectificationConfig(
        campaign=campaign, rules=rectification_rules(campaign), deduction_rules=applied,
        not_applied=skipped, score_check_interval=score_check_interval)
