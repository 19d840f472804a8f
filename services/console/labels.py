"""Chinese for every code a page shows: from the services' `/vocabulary` where they serve it,
from the campaign file (units, types, services, townships), and from this table otherwise.

The services own their codes; their vocabularies win. This table is what a page falls back on
when a service has no vocabulary endpoint (or is down): a bare English code must never reach a
person. A code found nowhere is shown as itself, and a test checks every status the pages show
has Chinese.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.campaign import Campaign

ROLE = {"city_admin": "市局管理员", "inspector": "专班检查员", "district_reporter": "区级填报人",
        "district_reviewer": "区级审核人", "leader": "领导", "auditor": "审计员", "system": "系统"}

FALLBACK: dict[str, dict[str, str]] = {
    "role": ROLE,
    "problem_status": {"registered": "已登记", "in_rectification": "整改中",
                       "close_out_requested": "待核验销号", "closed": "已销号",
                       "reopened": "已反弹", "withdrawn": "已撤销"},
    "problem_source": {"self_inspection": "自查发现", "ledger": "台账自动生成", "city": "市级抽查发现"},
    "deadline_kind": {"date": "限期整改", "immediate": "立行立改"},
    "report_kind": {"monthly_list": "月度问题清单（附件2）", "self_inspection_report": "自查报告",
                    "typical_case": "典型案例", "work_plan": "工作计划"},
    "report_status": {"submitted": "已报送待审核", "reviewed": "已审核通过", "returned": "已退回"},
    "light": {"green": "正常", "yellow": "临近期限", "red": "已逾期"},
    "operating_status": {"operating": "正常运营", "underperforming": "运营不佳",
                         "not_operating": "未投入运营", "retired": "已退出"},
    "operator_kind": {"none": "无运营主体", "village_committee": "村（居）委会",
                      "elderly_association": "老年协会", "professional": "专业运营机构"},
    "liaison_role": {"leader": "责任领导", "liaison": "联络员"},
    "gender": {"male": "男", "female": "女"},
    "selection": {"full_coverage": "全覆盖", "random": "随机抽取", "replacement": "替补",
                  "discretionary": "自由裁量增加"},
    "channel": {"email": "邮件", "webhook": "群机器人", "mailbox": "本地邮件", "file": "本地邮件"},
    "delivery": {"sent": "已送达", "failed": "发送失败", "pending": "待发送", "claimed": "发送中"},
    "visit_outcome": {"passed": "合格", "problems_found": "发现问题", "unable_to_enter": "无法入户"},
    "target_kind": {"project": "项目", "household": "改造户"},
    "checklist_answer": {"yes": "是", "no": "否", "not_applicable": "不适用"},
    "draw_stage": {"new": "未开始", "frozen": "已冻结抽样框", "committed": "已承诺随机数来源",
                   "revealed": "已公布随机数", "drawn": "已抽取样本"},
    "sampling_rule": {"R1": "省级重点项目全覆盖", "R2": "按比例随机抽查", "R3": "随机抽取乡镇及改造户"},
    "ledger_state": {"open": "在台账", "rectified": "已整改", "cleared": "已移出"},
}


class Labels:
    """kind → code → Chinese, merged: fallback, then the campaign, then the services' vocabularies."""

    def __init__(self, campaign: Campaign) -> None:
        self._sets: dict[str, dict[str, str]] = {k: dict(v) for k, v in FALLBACK.items()}
        self._notes: dict[str, dict[str, str]] = {}
        self._sets["unit"] = {u.code: u.name for u in campaign.units}
        self._sets["area"] = {u.code: u.area_name for u in campaign.units}
        for kind, attribute in (("project_type", "project_types"), ("service", "services")):
            self._sets[kind] = {x.code: x.name for x in getattr(campaign, attribute, ())}
        self.loaded: set[str] = set()

    def merge_vocabulary(self, service: str, body: Mapping[str, Any]) -> None:
        """A service's `GET /vocabulary` answer: {"sets": [{"kind", "title", "terms": [...]}]}."""
        for terms in body.get("sets", ()):
            kind = terms.get("kind")
            if not kind:
                continue
            target = self._sets.setdefault(kind, {})
            notes = self._notes.setdefault(kind, {})
            for term in terms.get("terms", ()):
                if "code" in term and "label" in term:
                    target[str(term["code"])] = str(term["label"])
                    if term.get("note"):
                        notes[str(term["code"])] = str(term["note"])
        self.loaded.add(service)

    def label(self, kind: str, code: Any) -> str:
        if code is None or code == "":
            return "—"
        return self._sets.get(kind, {}).get(str(code), str(code))

    def terms(self, kind: str) -> dict[str, str]:
        return dict(self._sets.get(kind, {}))

    def note(self, kind: str, code: str) -> str:
        return self._notes.get(kind, {}).get(code, "")


# The visit checklist per project type, until the inspection service's vocabulary says which
# items belong to which type (its `checklist_item` terms name their types in a note).
FALLBACK_CHECKLISTS: dict[str, dict[str, str]] = {
    "facility": {"services_three_plus": "提供3项以上专业养老服务", "meal_assistance": "提供助餐服务",
                 "operator_in_place": "有运营主体并正常运营", "safety_facilities": "消防等安全设施完好",
                 "service_records": "服务台账资料齐全"},
    "home_adaptation": {"items_match_plan": "改造项目与方案一致",
                        "items_installed_working": "设施安装到位、正常使用",
                        "acceptance_documented": "验收资料齐全", "older_person_satisfied": "老年人满意"},
}


def checklist_for(labels: Labels, project_type: str) -> dict[str, str]:
    """code → Chinese question of the visit checklist of a project type."""
    type_name = labels.label("project_type", project_type)
    from_vocabulary = {code: label for code, label in labels.terms("checklist_item").items()
                       if type_name in labels.note("checklist_item", code).split("、")}
    if from_vocabulary:
        return from_vocabulary
    return FALLBACK_CHECKLISTS["home_adaptation" if project_type == "home_adaptation" else "facility"]
