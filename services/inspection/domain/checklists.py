"""What an inspector answers on a visit, and why a household could not be visited.

The campaign file names no checklists (yet): these are the service's, per project type code.
A type without one here (a campaign's new type) is visited with an empty checklist.
"""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from services.inspection.domain.rules import VisitRuleError

_FACILITY_CHECKLIST = MappingProxyType({
    "services_three_plus": "提供3项以上专业养老服务",
    "meal_assistance": "提供助餐服务",
    "operator_in_place": "有运营主体并正常运营",
    "safety_facilities": "消防等安全设施完好",
    "service_records": "服务台账资料齐全",
})

DEFAULT_CHECKLISTS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "complex": _FACILITY_CHECKLIST,
    "community_center": _FACILITY_CHECKLIST,
    "rural_center": _FACILITY_CHECKLIST,
    "canteen": _FACILITY_CHECKLIST,
    "home_adaptation": MappingProxyType({
        "items_match_plan": "改造项目与方案一致",
        "items_installed_working": "设施安装到位、正常使用",
        "acceptance_documented": "验收资料齐全",
        "older_person_satisfied": "老年人满意",
    }),
})

CHECKLIST_ANSWERS = frozenset({"yes", "no", "not_applicable"})
ANSWER_LABELS: Mapping[str, str] = MappingProxyType({
    "yes": "是", "no": "否", "not_applicable": "不适用"})

UNABLE_REASON_CODES: Mapping[str, str] = MappingProxyType({
    "absent": "多次上门不在家",
    "refused": "拒绝入户",
    "deceased": "已去世",
    "moved": "已搬离",
    "hospitalised": "住院",
    "other": "其他",
})


def unable_reasons_zh() -> str:
    return "、".join(f"{code}（{label}）" for code, label in UNABLE_REASON_CODES.items())


def checklist_of(project_type: str) -> Mapping[str, str]:
    return DEFAULT_CHECKLISTS.get(project_type, MappingProxyType({}))


def check_checklist(answers: Mapping[str, str], items: Mapping[str, str]) -> None:
    """Every item answered, nothing else, each answer one of CHECKLIST_ANSWERS."""
    missing = sorted(set(items) - set(answers))
    unknown = sorted(set(answers) - set(items))
    if missing or unknown:
        said = [f"未回答：{'、'.join(v for k, v in items.items() if k in missing)}"] if missing else []
        said += [f"不属于本类项目的检查项：{'、'.join(unknown)}"] if unknown else []
        raise VisitRuleError(f"checklist does not match the project type: missing {missing}, "
                             f"unknown {unknown}", code="checklist_mismatch",
                             zh="检查表与项目类型不符（" + "；".join(said) + "）。可填写的检查项："
                                + "、".join(f"{k}（{v}）" for k, v in items.items()) + "。")
    wrong = sorted(k for k, v in answers.items() if v not in CHECKLIST_ANSWERS)
    if wrong:
        raise VisitRuleError(f"checklist answers must be one of {sorted(CHECKLIST_ANSWERS)}: "
                             f"{wrong}", code="checklist_mismatch",
                             zh="检查项的回答只能是："
                                + "、".join(f"{k}（{v}）" for k, v in ANSWER_LABELS.items())
                                + f"；有误的项：{'、'.join(items.get(k, k) for k in wrong)}。")
