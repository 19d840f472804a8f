"""The rectification service's vocabulary: every code of its API, its screens and its 附件2 with
the Chinese people read (`GET /vocabulary`; shared/vocabulary.py). The labels live beside the
domain's enums; this module only gathers them, with the campaign's deduction rules."""
from __future__ import annotations

from functools import lru_cache

from services.rectification import domain as d
from services.rectification.events import DeadlineKind, ProblemSource, ReportKind
from shared.campaign import Campaign
from shared.vocabulary import Term, Terms, Vocabulary, campaign_terms, code_terms, enum_terms, vocabulary

STATUS = code_terms("problem_status", "问题状态", {
    str(status): label for status, label in d.STATUS_LABELS.items() if status is not None})
SOURCE = enum_terms("problem_source", "问题来源", ProblemSource, {
    ProblemSource.SELF_INSPECTION: "自查发现", ProblemSource.LEDGER: "台账",
    ProblemSource.CITY: "市级抽查发现"})
DEADLINE_KIND = enum_terms("deadline_kind", "整改限期方式", DeadlineKind, {
    DeadlineKind.DATE: "限期整改", DeadlineKind.IMMEDIATE: "立行立改"})
REPORT_KIND = enum_terms("report_kind", "报送材料", ReportKind, {
    ReportKind.MONTHLY_LIST: "月度问题整改清单(附件2)", ReportKind.SELF_INSPECTION_REPORT: "自查报告",
    ReportKind.TYPICAL_CASE: "典型案例或经验材料", ReportKind.WORK_PLAN: "工作计划"})
REPORT_STATUS = code_terms("report_status", "材料状态", {
    str(status): label for status, label in d.REPORT_STATUS_LABELS.items() if status is not None})
ROLE = code_terms("role", "角色", {str(role): label for role, label in d.ROLE_LABELS.items()})


def deduction_rules(campaign: Campaign) -> Terms:
    """The campaign's deduction rules, each with its Chinese description (and its points)."""
    return Terms("deduction_rule", "扣分规则", tuple(
        Term(rule.id, rule.description, note=f"{rule.points}分") for rule in campaign.deduction_rules))


@lru_cache(maxsize=8)
def rectification_vocabulary(campaign: Campaign) -> Vocabulary:
    return vocabulary(
        "rectification", campaign_terms(campaign, ["unit", "area", "township", "project_type"]),
        STATUS, SOURCE, DEADLINE_KIND, REPORT_KIND, REPORT_STATUS, ROLE, deduction_rules(campaign))
