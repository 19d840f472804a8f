"""Registry rules shared by every aggregate: ids, the principal, the service rule, field checks.

Pure: no I/O, no clock. The field checks are shared by the decide functions and the importer, so
a spreadsheet row and a form are refused for the same reasons in the same words.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Iterable, Iterator

from services.registry import commands as c
from services.registry import events as e
from services.registry.events import OperatingStatus, OperatorKind
from shared.campaign import Campaign, ProjectKind, ProjectType
from shared.errors import FieldProblem, ForbiddenError, ValidationFailed
from shared.messages import Actor, Role, deterministic_id
from shared.personal_data import mobile_problem, phone_problem

MAX_NAME_LENGTH = 100
MAX_TEXT_LENGTH = 4000
MAX_HOUSEHOLDS_PER_COMMAND = 5000
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
HOUSEHOLD_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,39}")
# A household code must not be a person's ID card number or phone: codes travel in clear.
ID_CARD = re.compile(r"\d{17}[\dXx]")

REGISTERING_ROLES = (Role.CITY_ADMIN, Role.DISTRICT_REPORTER, Role.DISTRICT_REVIEWER)
ASSESSING_ROLES = (Role.CITY_ADMIN, Role.INSPECTOR, Role.DISTRICT_REPORTER, Role.DISTRICT_REVIEWER)


# ----- ids ------------------------------------------------------------------------------------------


def normalise_name(name: str) -> str:
    """The identity of a name: full-width/half-width forms, spaces and letter case do not make a
    new one (Chinese names carry no meaningful spaces; "(示例)" and "(示例)" are the same)."""
    return "".join(unicodedata.normalize("NFKC", name).casefold().split())


def tidy_text(text: str | None) -> str | None:
    """Strip and collapse runs of spaces in a name-like field; None for blank."""
    if text is None:
        return None
    tidied = " ".join(text.split())
    return tidied or None


def project_id_for(unit: str, project_type: str, name: str) -> str:
    """Deterministic: the same unit, type and name is the same project (import twice, one project)."""
    return str(deterministic_id("registry", "project", unit, project_type, normalise_name(name)))


def programme_id_for(unit: str, township: str, year: int) -> str:
    """`township` must be the canonical name (campaign.township(name).name), not an alias."""
    return str(deterministic_id("registry", "adaptation", unit, township, str(year)))


def household_id_for(programme_id: str, household_code: str) -> str:
    return str(deterministic_id("registry", "household", programme_id, household_code.strip()))


def household_subject_id(programme_id: str, household_code: str) -> str:
    """The personal-data subject of a household: its key seals name, address and phone."""
    return str(deterministic_id("registry", "household-subject", programme_id, household_code.strip()))


def liaison_subject_id(unit: str, role: str, version: int) -> str:
    return str(deterministic_id("registry", "liaison-subject", unit, str(role), str(version)))


def ledger_entry_id_for(project_id: str, ordinal: int) -> str:
    return str(deterministic_id("registry", "ledger", project_id, str(ordinal)))



# ----- the principal -------------------------------------------------------------------------------

# What each refused action is called in the Chinese message a person reads.
_WHAT_ZH = {
    "register projects": "登记项目", "change operators": "变更运营主体", "change services": "变更服务项目",
    "assess projects": "评估项目", "retire projects": "办理项目退出",
    "register adaptation programmes": "登记适老化改造计划", "register households": "登记改造户",
    "register liaisons": "报送责任领导和联络员", "import": "批量导入",
    "change its operator": "变更运营主体", "change its services": "变更服务项目", "assess it": "评估",
}


def authorise(actor: Actor, unit: str, allowed: tuple[Role, ...], what: str) -> None:
    """Leader and auditor read only; other roles as allowed; district roles only in their unit."""
    doing = _WHAT_ZH.get(what, what)
    if not actor.role.may_command:
        raise ForbiddenError(f"{actor.role.value} may read but not {what}",
                             zh=f"您的角色只能查看，不能{doing}。")
    if actor.role not in allowed:
        raise ForbiddenError(f"{actor.role.value} may not {what}", zh=f"您的角色不能{doing}。")
    if actor.role.is_district and actor.unit != unit:
        raise ForbiddenError(f"{actor.role.value} of unit {actor.unit} may not {what} in unit {unit}",
                             zh=f"您只能为本单位{doing}，不能为其他单位操作。")


# ----- the service rule -------------------------------------------------------------------------------


def effective_status(claimed: OperatingStatus, services: Iterable[str],
                     campaign: Campaign) -> tuple[OperatingStatus, tuple[str, ...]]:
    """The status the registry records for a claim, and why it is not `operating`.

    Fewer than the minimum professional services, or no 助餐, is underperforming whatever was
    claimed; a claim of not operating stands as it is (it is the worse state).
    """
    if claimed == OperatingStatus.NOT_OPERATING:
        return OperatingStatus.NOT_OPERATING, (e.REASON_NOT_OPERATING,)
    failures = campaign.service_rule_failures(services)
    if claimed == OperatingStatus.UNDERPERFORMING:
        return OperatingStatus.UNDERPERFORMING, failures or (e.REASON_ASSESSED_UNDERPERFORMING,)
    if claimed == OperatingStatus.OPERATING:
        if failures:
            return OperatingStatus.UNDERPERFORMING, failures
        return OperatingStatus.OPERATING, ()
    raise ValueError(f"{claimed.value} is not a status an assessment can claim")


# ----- field checks (shared by decide and the importer) -------------------------------------------------


# Field names as a person reads them, for the Chinese message of a refusal.
FIELD_ZH = {
    "unit": "填报单位", "township": "乡镇(街道)", "project_type": "项目类型", "name": "名称",
    "village": "村(社区)", "project_year": "项目年份", "operator": "运营主体",
    "operator.name": "运营主体名称", "operator.contract_end": "合同结束日期", "services": "养老服务",
    "claimed_status": "运营状态", "assessor": "评估人", "evidence": "评估依据",
    "assessed_on": "评估日期", "attachment_hashes": "附件", "reason": "原因",
    "retired_on": "退出日期", "changed_on": "变更日期", "household_code": "户编号",
    "adaptation_year": "改造年份", "items": "改造项目", "acceptance_date": "验收日期",
    "address": "地址", "phone": "联系电话", "mobile": "手机号码", "office_phone": "办公电话",
    "position": "职务", "year": "年份", "households": "改造户",
}


def field_zh(field_name: str) -> str:
    """`households[3].phone` → 第4户联系电话; `services[1]` → 养老服务."""
    match = re.fullmatch(r"households\[(\d+)\]\.(.+)", field_name)
    if match:
        part = "姓名" if match.group(2) == "name" else field_zh(match.group(2))
        return f"第{int(match.group(1)) + 1}户{part}"
    base = re.sub(r"\[\d+\]", "", field_name)
    return FIELD_ZH.get(field_name, FIELD_ZH.get(base, field_name))


class Problems:
    """Every problem of a command, each with its Chinese (`zh`, said of the field) and, for a
    code that must be one of a list, the valid codes."""

    def __init__(self) -> None:
        self.items: list[FieldProblem] = []
        self.zh: list[str] = []

    def add(self, field_name: str, reason: str, zh: str = "填写有误",
            valid: tuple[str, ...] = ()) -> None:
        self.items.append(FieldProblem(field_name, reason, valid))
        self.zh.append(f"{field_zh(field_name)}{zh}")

    def extend(self, other: Problems) -> None:
        self.items += other.items
        self.zh += other.zh

    def __iter__(self) -> Iterator[FieldProblem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationFailed(self.items, zh=refusal_zh(self.zh))


def refusal_zh(parts: Iterable[str]) -> str:
    return "请修改后重新提交：" + "；".join(parts) + "。"


def refused(field_name: str, reason: str, zh: str) -> ValidationFailed:
    """One refused field, with its Chinese."""
    return ValidationFailed([FieldProblem(field_name, reason)],
                            zh=refusal_zh([f"{field_zh(field_name)}{zh}"]))


def _valid(items: Iterable[tuple[str, str]]) -> tuple[tuple[str, ...], str]:
    pairs = list(items)
    return tuple(code for code, _ in pairs), "、".join(f"{code}（{label}）" for code, label in pairs)


def check_required_text(problems: Problems, name: str, value: str | None, *,
                         max_length: int = MAX_NAME_LENGTH) -> None:
    if value is None or not value.strip():
        problems.add(name, "is required", "为必填项")
    elif len(value.strip()) > max_length:
        problems.add(name, f"is longer than {max_length} characters", f"不能超过{max_length}个字")


def check_year(problems: Problems, name: str, year: int, campaign: Campaign, today: date) -> None:
    period = campaign.plan_period
    if not period.contains(year):
        problems.add(name, f"{year} is outside the plan period {period.name} "
                           f"({period.first_year}-{period.last_year})",
                     f"{year}年不在“{period.name}”期间（{period.first_year}—{period.last_year}年）")
    elif year > today.year:
        problems.add(name, f"{year} is in the future", f"{year}年尚未到来")


def check_unit(problems: Problems, unit: str, campaign: Campaign) -> bool:
    if campaign.has_unit(unit):
        return True
    codes, text = _valid((u.code, u.name) for u in campaign.units)
    problems.add("unit", f"unknown reporting unit {unit!r}",
                 f"“{unit}”不存在，可选：{text}", codes)
    return False


def check_unit_and_township(problems: Problems, unit: str, township: str, campaign: Campaign) -> None:
    if not check_unit(problems, unit, campaign):
        return
    known = campaign.township(township)
    names = tuple(t.name for t in campaign.townships_of(unit))
    if known is None:
        problems.add("township", f"unknown township {township!r}",
                     f"“{township}”不是本市的乡镇(街道)，{campaign.unit(unit).area_name}可选："
                     f"{'、'.join(names)}", names)
    elif known.unit != unit:
        problems.add("township", f"{known.name} belongs to {campaign.unit(known.unit).name}, "
                                 f"not {campaign.unit(unit).name}",
                     f"{known.name}属于{campaign.unit(known.unit).name}，"
                     f"不属于{campaign.unit(unit).name}", names)


def check_services(problems: Problems, name: str, services: Iterable[str], campaign: Campaign) -> None:
    seen: set[str] = set()
    codes, text = _valid((s.code, s.name) for s in campaign.services)
    for index, code in enumerate(services):
        if not campaign.has_service(code):
            problems.add(f"{name}[{index}]", f"unknown service {code!r}",
                         f"“{code}”不是可选的养老服务，可选：{text}", codes)
        elif code in seen:
            problems.add(f"{name}[{index}]", f"service {code!r} is listed twice",
                         f"重复填写了“{campaign.service(code).name}”")
        seen.add(code)


def check_operator(problems: Problems, operator: e.Operator, name: str = "operator") -> None:
    if operator.kind == OperatorKind.NONE:
        if operator.name or operator.contract_start or operator.contract_end:
            problems.add(name, "an operator of kind 'none' has no name or contract",
                         "为“无运营主体”时不填名称和合同期限")
        return
    check_required_text(problems, f"{name}.name", operator.name)
    if operator.contract_start and operator.contract_end and operator.contract_end < operator.contract_start:
        problems.add(f"{name}.contract_end", "is before contract_start", "早于合同开始日期")


def check_not_future(problems: Problems, name: str, day: date, today: date) -> None:
    if day > today:
        problems.add(name, f"{day} is in the future", f"{day.year}年{day.month}月{day.day}日晚于今天")


def tidy_operator(operator: e.Operator) -> e.Operator:
    return operator.model_copy(update={"name": tidy_text(operator.name)})


def project_problems(cmd: c.RegisterProject, campaign: Campaign, today: date) -> Problems:
    """Every field problem of a project registration that needs no stored state."""
    problems = Problems()
    facilities = [(t.code, t.name) for t in campaign.project_types if t.kind == ProjectKind.FACILITY]
    codes, text = _valid(facilities)
    if not campaign.has_project_type(cmd.project_type):
        problems.add("project_type", f"unknown project type {cmd.project_type!r}",
                     f"“{cmd.project_type}”不存在，可选：{text}", codes)
    elif campaign.project_type(cmd.project_type).kind != ProjectKind.FACILITY:
        problems.add("project_type", f"{cmd.project_type} is registered as an adaptation programme "
                                     "with households, not as a facility",
                     "为适老化改造，请按改造计划和改造户登记，不作为设施项目", codes)
    check_required_text(problems, "name", cmd.name)
    check_unit_and_township(problems, cmd.unit, cmd.township, campaign)
    if cmd.village is not None and len(cmd.village.strip()) > MAX_NAME_LENGTH:
        problems.add("village", f"is longer than {MAX_NAME_LENGTH} characters",
                     f"不能超过{MAX_NAME_LENGTH}个字")
    check_year(problems, "project_year", cmd.project_year, campaign, today)
    check_operator(problems, cmd.operator)
    check_services(problems, "services", cmd.services, campaign)
    if cmd.claimed_status == OperatingStatus.RETIRED:
        problems.add("claimed_status", "a project is registered operating, underperforming or not "
                                       "operating; retire it afterwards with a reason",
                     "登记时只能选正常运营、运营不佳或未投入运营；项目退出请登记后另行办理并说明原因",
                     ("operating", "underperforming", "not_operating"))
    return problems


def household_problems(household: c.HouseholdInput, campaign: Campaign, today: date,
                       prefix: str = "", programme_year: int | None = None) -> Problems:
    """Every field problem of one household row that needs no stored state."""
    problems = Problems()
    code = household.household_code.strip()
    if not HOUSEHOLD_CODE.fullmatch(code):
        problems.add(f"{prefix}household_code", "use 1-40 letters, digits, '-' or '_'",
                     "只能用1至40位字母、数字、“-”或“_”")
    elif ID_CARD.fullmatch(code) or mobile_problem(code) is None:
        problems.add(f"{prefix}household_code", "looks like an ID card or phone number; codes are "
                                                "shown in clear, so use a neutral code",
                     "像身份证号或手机号；户编号会明文显示，请改用不含个人信息的编号")
    check_required_text(problems, f"{prefix}village", household.village)
    check_year(problems, f"{prefix}adaptation_year", household.adaptation_year, campaign, today)
    if programme_year is not None and household.adaptation_year != programme_year:
        problems.add(f"{prefix}adaptation_year",
                     f"{household.adaptation_year} differs from the programme's year {programme_year}",
                     f"与改造计划的年份（{programme_year}年）不一致")
    if not household.items:
        problems.add(f"{prefix}items", "list at least one installed item", "至少填写一项")
    seen: set[str] = set()
    codes, text = _valid((i.code, i.name) for i in campaign.adaptation_items)
    for index, item in enumerate(household.items):
        if not campaign.has_adaptation_item(item):
            problems.add(f"{prefix}items[{index}]", f"unknown adaptation item {item!r}",
                         f"“{item}”不是可选的改造项目，可选：{text}", codes)
        elif item in seen:
            problems.add(f"{prefix}items[{index}]", f"item {item!r} is listed twice", "重复填写")
        seen.add(item)
    check_not_future(problems, f"{prefix}acceptance_date", household.acceptance_date, today)
    if household.acceptance_date.year < household.adaptation_year:
        problems.add(f"{prefix}acceptance_date", "is before the adaptation year", "早于改造年份")
    check_required_text(problems, f"{prefix}name", household.name.get_secret_value())
    check_required_text(problems, f"{prefix}address", household.address.get_secret_value(),
                         max_length=200)
    if household.phone is not None and household.phone.get_secret_value().strip():
        reason = phone_problem(household.phone.get_secret_value())
        if reason:
            problems.add(f"{prefix}phone", reason, "格式不正确（手机号11位，或区号-号码）")
    return problems


def programme_project_type(campaign: Campaign) -> ProjectType | None:
    return next((t for t in campaign.project_types if t.kind == ProjectKind.PROGRAMME), None)


def programme_problems(cmd: c.RegisterAdaptationProgramme, campaign: Campaign, today: date) -> Problems:
    problems = Problems()
    if programme_project_type(campaign) is None:
        problems.add("project_type", f"campaign {campaign.id} has no home-adaptation project type",
                     "：本次活动没有适老化改造项目类型")
    check_unit_and_township(problems, cmd.unit, cmd.township, campaign)
    check_year(problems, "year", cmd.year, campaign, today)
    if cmd.name is not None and len(cmd.name.strip()) > MAX_NAME_LENGTH:
        problems.add("name", f"is longer than {MAX_NAME_LENGTH} characters",
                     f"不能超过{MAX_NAME_LENGTH}个字")
    return problems
