"""The inspection service's vocabulary: every code of its API and its 抽查名单 with the Chinese
people read (`GET /vocabulary`; shared/vocabulary.py). The printed list takes its labels from
here and from the campaign file, so no internal code reaches paper.
"""
from __future__ import annotations

from functools import lru_cache

from services.inspection.domain.checklists import ANSWER_LABELS, DEFAULT_CHECKLISTS, UNABLE_REASON_CODES
from services.inspection.domain.rules import STAGE_LABELS
from services.inspection.events import TargetKind, VisitOutcome
from shared.campaign import Campaign
from shared.vocabulary import Term, Terms, Vocabulary, campaign_terms, code_terms, enum_terms, vocabulary

OUTCOME = enum_terms("visit_outcome", "检查结论", VisitOutcome, {
    VisitOutcome.PASSED: "合格", VisitOutcome.PROBLEMS_FOUND: "发现问题",
    VisitOutcome.UNABLE_TO_ENTER: "无法入户"})
TARGET_KIND = enum_terms("target_kind", "检查对象", TargetKind, {
    TargetKind.PROJECT: "项目", TargetKind.HOUSEHOLD: "改造户"})
ANSWER = code_terms("checklist_answer", "检查项回答", ANSWER_LABELS)
UNABLE_REASON = code_terms("unable_reason", "无法入户原因", UNABLE_REASON_CODES)
EXCLUSION = code_terms("exclusion", "未列入抽样框的原因", {
    "retired": "已退出（改作他用、撤并或拆除）", "not_provincial_key": "非省级重点民生实事项目",
    "programme_retired": "所属改造计划已退出"})
RULE = code_terms("sampling_rule", "抽查规则", {
    "R1": "省级重点项目实地全覆盖", "R2": "每个区按比例随机抽查",
    "R3": "每个区随机抽取1个乡镇(街道)，再抽取其中的改造户"})
SELECTION = code_terms("selection", "入选方式", {
    "full_coverage": "全覆盖", "random": "随机抽取", "replacement": "替补",
    "discretionary": "自由裁量增加"})
STAGE = code_terms("draw_stage", "抽签阶段", STAGE_LABELS)


def checklist_items(campaign: Campaign) -> Terms:
    """Every checklist item of every project type (a note names the types it belongs to)."""
    types: dict[str, list[str]] = {}
    labels: dict[str, str] = {}
    for project_type, items in DEFAULT_CHECKLISTS.items():
        for code, label in items.items():
            labels.setdefault(code, label)
            name = (campaign.project_type(project_type).name
                    if campaign.has_project_type(project_type) else project_type)
            types.setdefault(code, []).append(name)
    return Terms("checklist_item", "检查项", tuple(
        Term(code, label, note="、".join(types[code])) for code, label in labels.items()))


@lru_cache(maxsize=8)
def inspection_vocabulary(campaign: Campaign) -> Vocabulary:
    return vocabulary(
        "inspection", campaign_terms(campaign, ["unit", "area", "township", "project_type"]),
        RULE, SELECTION, STAGE, EXCLUSION, TARGET_KIND, checklist_items(campaign), ANSWER, OUTCOME,
        UNABLE_REASON)
