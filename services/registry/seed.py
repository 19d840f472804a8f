"""Sample data for all five units, as registry commands (pure; handlers execute them).

Real township names from the campaign file, fictional facility and person names marked (示例),
obviously fake phones (1380000xxxx, 0711-0000xxx). The edge cases later services must meet:

- 鄂城区 has 5 active community centres (odd: R2 draws ⌈5/2⌉ = 3) and a sixth retired;
- 华容区 has exactly 1 canteen; 临空经济区 has none; 葛店经开区 has no community centre;
- 梁子湖区 沼山镇 has exactly one adapted household (and 鄂城区 长港镇, 华容区 蒲团乡 too);
- 临空经济区 has adapted households but no township with 2 (R3 falls back, 样本不足);
- 葛店经开区 has no adapted household at all (R3: an explicit "no eligible" record);
- provincial key complexes and rural centres (R1) next to non-key ones;
- projects operating, underperforming by the service rule (no 助餐, too few services), claimed
  underperforming, not operating; one listed project assessed back to operating with evidence
  (its ledger entry cleared); one project retired with its reason.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from pydantic import SecretStr

from services.registry import commands as c
from services.registry import domain as d
from services.registry.events import Gender, LiaisonRole, OperatingStatus, Operator, OperatorKind
from shared.campaign import Campaign
from shared.messages import Actor, Role

SEED_ACTOR = Actor(id="seed", name="示例数据", role=Role.CITY_ADMIN, unit=None)
# A moment inside the campaign at which the sample reads naturally (mobilisation, before Mar 6).
SEED_AS_OF = datetime(2024, 3, 5, 10, 0, tzinfo=timezone(timedelta(hours=8)))

GOOD = ("meal_assistance", "day_care", "cleaning_assistance")
GOOD_COMPLEX = ("meal_assistance", "day_care", "residential_care", "rehabilitation",
                "medical_care_integration")
NO_MEALS = ("day_care", "recreation", "psychological_comfort", "health_management")
TOO_FEW = ("meal_assistance", "recreation")

# Real villages and communities (domain research §8.2), used where known.
_VILLAGES = {
    "凤凰街道": ("滨湖社区",),
    "杨叶镇": ("白沙村", "古塘村", "平石村", "三浃村", "团山村", "杨叶村"),
    "华容镇": ("华容社区", "楚藩社区", "新街社区", "芦花村", "铁咀村", "汀桥村", "五分村"),
    "梁子镇": ("龙塘村", "伯岩村", "毛塘村", "刘斌村", "沙湾村"),
    "梧桐湖新区": ("月山社区", "大垅村", "六十村"),
}

_ITEMS = ("anti_slip_floor", "level_difference", "bedside_rail", "bathroom_grab_bar", "shower_chair",
          "walking_stick", "anti_wandering_device", "threshold_removal", "induction_night_light")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙胡朱高林何郭马罗"


@dataclass(frozen=True, slots=True)
class Facility:
    project_type: str
    township: str
    provincial_key: bool = False
    services: tuple[str, ...] = GOOD
    claimed: OperatingStatus = OperatingStatus.OPERATING
    operator: OperatorKind = OperatorKind.PROFESSIONAL


_O = OperatingStatus
_K = OperatorKind

# Per unit: facilities, then adapted households per (township, year).
FACILITIES: dict[str, tuple[Facility, ...]] = {
    "echeng": (
        Facility("complex", "凤凰街道", True, GOOD_COMPLEX),
        Facility("complex", "泽林镇", True, GOOD_COMPLEX),
        Facility("complex", "杜山镇", False, NO_MEALS),
        Facility("community_center", "凤凰街道"),
        Facility("community_center", "古楼街道"),
        Facility("community_center", "西山街道", services=TOO_FEW),
        Facility("community_center", "古楼街道"),  # retired below: 5 stay in the frame
        Facility("community_center", "杜山镇"),
        Facility("community_center", "鄂州经济开发区", claimed=_O.NOT_OPERATING, services=(),
                 operator=_K.NONE),
        Facility("rural_center", "新庙镇", True, operator=_K.VILLAGE_COMMITTEE),
        Facility("rural_center", "碧石镇", True, operator=_K.ELDERLY_ASSOCIATION),
        Facility("rural_center", "汀祖镇", True, claimed=_O.NOT_OPERATING, services=(), operator=_K.NONE),
        Facility("rural_center", "长港镇", False, operator=_K.VILLAGE_COMMITTEE),
        Facility("canteen", "凤凰街道"),
        Facility("canteen", "古楼街道"),
        Facility("canteen", "西山街道"),
        Facility("canteen", "泽林镇", claimed=_O.UNDERPERFORMING),
        Facility("canteen", "杜山镇"),
        Facility("canteen", "凤凰街道"),
    ),
    "huarong": (
        Facility("complex", "华容镇", True, GOOD_COMPLEX),
        Facility("complex", "段店镇", False, GOOD_COMPLEX),
        Facility("community_center", "华容镇"),
        Facility("community_center", "庙岭镇", services=NO_MEALS),
        Facility("rural_center", "段店镇", True, claimed=_O.NOT_OPERATING, services=(), operator=_K.NONE),
        Facility("rural_center", "临江乡", True, operator=_K.VILLAGE_COMMITTEE),
        Facility("rural_center", "蒲团乡", True, operator=_K.ELDERLY_ASSOCIATION, services=TOO_FEW),
        Facility("rural_center", "庙岭镇", True, operator=_K.VILLAGE_COMMITTEE),
        Facility("rural_center", "华容镇", False, operator=_K.VILLAGE_COMMITTEE),
        Facility("canteen", "华容镇"),
    ),
    "liangzihu": (
        Facility("complex", "太和镇", True, NO_MEALS),
        Facility("complex", "梧桐湖新区", True, GOOD_COMPLEX),
        Facility("community_center", "梧桐湖新区"),
        Facility("community_center", "太和镇"),
        Facility("community_center", "东沟镇", claimed=_O.UNDERPERFORMING),
        Facility("rural_center", "梁子镇", True, operator=_K.VILLAGE_COMMITTEE),
        Facility("rural_center", "梁子镇", True, operator=_K.ELDERLY_ASSOCIATION),
        Facility("rural_center", "涂家垴镇", True, claimed=_O.NOT_OPERATING, services=(), operator=_K.NONE),
        Facility("rural_center", "沼山镇", True, operator=_K.VILLAGE_COMMITTEE),
        Facility("rural_center", "东沟镇", True, operator=_K.VILLAGE_COMMITTEE, services=TOO_FEW),
        Facility("rural_center", "太和镇", True, operator=_K.ELDERLY_ASSOCIATION),
        Facility("rural_center", "沼山镇", False, operator=_K.VILLAGE_COMMITTEE),
        Facility("rural_center", "涂家垴镇", False, operator=_K.VILLAGE_COMMITTEE),
        Facility("canteen", "太和镇"),
        Facility("canteen", "东沟镇"),
        Facility("canteen", "梧桐湖新区", services=NO_MEALS),
        Facility("canteen", "梁子镇"),
    ),
    "gedian": (
        Facility("complex", "葛店开发区", True, GOOD_COMPLEX),
        Facility("rural_center", "葛店镇", False, operator=_K.VILLAGE_COMMITTEE),
        Facility("canteen", "葛店开发区"),
        Facility("canteen", "葛店镇", claimed=_O.NOT_OPERATING, services=(), operator=_K.NONE),
    ),
    "linkong": (
        Facility("complex", "燕矶镇", True, GOOD_COMPLEX),
        Facility("community_center", "花湖镇"),
        Facility("community_center", "燕矶镇", services=TOO_FEW),
        Facility("rural_center", "杨叶镇", True, operator=_K.VILLAGE_COMMITTEE),
        Facility("rural_center", "沙窝乡", True, claimed=_O.NOT_OPERATING, services=(), operator=_K.NONE),
        Facility("rural_center", "花湖镇", False, operator=_K.ELDERLY_ASSOCIATION),
    ),
}

# (township, adaptation year) → number of adapted households.
HOUSEHOLDS: dict[str, dict[tuple[str, int], int]] = {
    "echeng": {("凤凰街道", 2021): 2, ("凤凰街道", 2022): 2, ("古楼街道", 2022): 3, ("泽林镇", 2021): 3,
               ("泽林镇", 2023): 2, ("杜山镇", 2023): 2, ("长港镇", 2022): 1},
    "huarong": {("华容镇", 2021): 3, ("华容镇", 2022): 3, ("庙岭镇", 2022): 3, ("段店镇", 2023): 2,
                ("蒲团乡", 2021): 1},
    "liangzihu": {("太和镇", 2022): 5, ("东沟镇", 2021): 3, ("梁子镇", 2023): 2, ("沼山镇", 2022): 1},
    "gedian": {},
    "linkong": {("燕矶镇", 2022): 1, ("花湖镇", 2023): 1},
}

# The single-household townships the docstring promises.
SINGLE_HOUSEHOLD_TOWNSHIPS = ("长港镇", "蒲团乡", "沼山镇")

_UNIT_PREFIX = {"echeng": "EC", "huarong": "HR", "liangzihu": "LZH", "gedian": "GD", "linkong": "LK"}
_TYPE_SUFFIX = {"complex": "养老服务综合体", "community_center": "社区居家养老服务中心",
                "rural_center": "农村互助照料中心", "canteen": "幸福食堂"}


@dataclass(frozen=True, slots=True)
class SeedPlan:
    """Commands in execution order; run them as SEED_ACTOR, one stream at a time."""

    commands: tuple[c.RegistryCommand, ...]
    actor: Actor = SEED_ACTOR
    as_of: datetime = SEED_AS_OF

    def of_type(self, kind: type) -> list:
        return [cmd for cmd in self.commands if isinstance(cmd, kind)]


def _villages(township: str) -> tuple[str, ...]:
    short = township[:2]
    return _VILLAGES.get(township, (f"(示例){short}社区", f"(示例){short}一村", f"(示例){short}二村"))


def _operator(kind: OperatorKind, unit: str, index: int, township: str) -> Operator:
    if kind == OperatorKind.NONE:
        return Operator(kind=kind)
    names = {OperatorKind.PROFESSIONAL: f"(示例){_UNIT_PREFIX[unit]}颐康养老服务有限公司{index % 3 + 1}",
             OperatorKind.VILLAGE_COMMITTEE: f"{township}(示例)村民委员会",
             OperatorKind.ELDERLY_ASSOCIATION: f"{township}(示例)老年协会"}
    if kind == OperatorKind.PROFESSIONAL:
        return Operator(kind=kind, name=names[kind], contract_start=date(2023, 1, 1),
                        contract_end=date(2025, 12, 31))
    return Operator(kind=kind, name=names[kind])


def _facility_commands(unit: str, campaign: Campaign) -> Iterator[c.RegisterProject]:
    counters: dict[tuple[str, str], int] = {}
    for index, facility in enumerate(FACILITIES[unit]):
        township = campaign.township(facility.township)
        if township is None or township.unit != unit:
            raise ValueError(f"seed township {facility.township} is not in unit {unit} of this campaign")
        key = (facility.project_type, township.name)
        counters[key] = counters.get(key, 0) + 1
        number = "" if counters[key] == 1 else f"{counters[key]}号"
        villages = _villages(township.name)
        village = None if facility.project_type == "complex" else villages[index % len(villages)]
        yield c.RegisterProject(
            project_type=facility.project_type,
            name=f"{township.name}(示例){number}{_TYPE_SUFFIX[facility.project_type]}",
            unit=unit, township=township.name, village=village, project_year=2021 + index % 3,
            provincial_key=facility.provincial_key,
            operator=_operator(facility.operator, unit, index, township.name),
            services=facility.services, claimed_status=facility.claimed,
            on_duplicate=c.OnDuplicate.SKIP_IF_IDENTICAL)


def _household_commands(unit: str, campaign: Campaign, phone_counter: Iterator[int]
                        ) -> Iterator[c.RegistryCommand]:
    for (township_name, year), count in HOUSEHOLDS[unit].items():
        township = campaign.township(township_name)
        if township is None or township.unit != unit:
            raise ValueError(f"seed township {township_name} is not in unit {unit} of this campaign")
        yield c.RegisterAdaptationProgramme(unit=unit, township=township.name, year=year,
                                            on_duplicate=c.OnDuplicate.SKIP_IF_IDENTICAL)
        villages = _villages(township.name)
        households = []
        for n in range(1, count + 1):
            serial = next(phone_counter)
            village = villages[n % len(villages)]
            households.append(c.HouseholdInput(
                household_code=f"{_UNIT_PREFIX[unit]}-{(township.code or '000')[-3:]}-{year}-{n:03d}",
                village=village, adaptation_year=year,
                items=(_ITEMS[serial % 4], _ITEMS[4 + serial % 5]),
                acceptance_date=date(year, 6 + n % 6, 1 + (serial * 7) % 28),
                name=SecretStr(f"{_SURNAMES[serial % len(_SURNAMES)]}某某(示例)"),
                address=SecretStr(f"{township.name}{village}(示例){serial}号"),
                phone=SecretStr(f"1380001{serial:04d}") if n % 3 else None))
        yield c.RegisterHouseholds(
            programme_id=d.programme_id_for(unit, township.name, year), households=tuple(households),
            on_duplicate=c.OnDuplicate.SKIP_IF_IDENTICAL)


def _liaison_commands(unit: str, index: int) -> Iterator[c.RegisterLiaison]:
    yield c.RegisterLiaison(unit=unit, role=LiaisonRole.LEADER, name=f"{_SURNAMES[index]}某(示例)",
                            gender=Gender.MALE, position="副局长",
                            mobile=SecretStr(f"1380000{2 * index + 1:04d}"),
                            office_phone=SecretStr(f"0711-0000{2 * index + 1:03d}"))
    yield c.RegisterLiaison(unit=unit, role=LiaisonRole.LIAISON, name=f"{_SURNAMES[index + 5]}某某(示例)",
                            gender=Gender.FEMALE, position="养老服务科科长",
                            mobile=SecretStr(f"1380000{2 * index + 2:04d}"),
                            office_phone=SecretStr(f"0711-0000{2 * index + 2:03d}"))


def _evidence_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def build_seed(campaign: Campaign, *, liaisons: bool = True) -> SeedPlan:
    """The sample, deterministic: the same campaign gives the same commands (and ids).
    `liaisons=False` leaves 附件1 out, for the units to file (`lookback demo`, `lookback up`)."""
    commands: list[c.RegistryCommand] = []
    phone_counter = iter(range(1, 10_000))
    for index, unit in enumerate(campaign.unit_codes):
        if unit not in FACILITIES:
            continue  # another campaign's units get no sample
        if liaisons:
            commands.extend(_liaison_commands(unit, index))
        commands.extend(_facility_commands(unit, campaign))
        commands.extend(_household_commands(unit, campaign, phone_counter))

    # A not-operating rural centre that brought in its village committee and 助餐: off the ledger.
    revived = d.project_id_for("huarong", "rural_center", "段店镇(示例)农村互助照料中心")
    commands.append(c.ChangeOperator(project_id=revived, changed_on=date(2024, 3, 1), operator=Operator(
        kind=OperatorKind.VILLAGE_COMMITTEE, name="段店镇(示例)村民委员会")))
    commands.append(c.AssessProject(
        project_id=revived, claimed_status=OperatingStatus.OPERATING, assessor="何某(示例)",
        assessed_on=date(2024, 3, 4), services=GOOD,
        evidence="(示例)村委会接手运营,每日午餐供应约30人,日间照料与助洁已恢复;查阅服务台账近30天记录。",
        attachment_hashes=(_evidence_hash("seed: 段店镇 meal log photo"),
                           _evidence_hash("seed: 段店镇 operating agreement"))))
    # A community centre turned into something else: out of the sampling frame, with its reason.
    commands.append(c.RetireProject(
        project_id=d.project_id_for("echeng", "community_center", "古楼街道(示例)2号社区居家养老服务中心"),
        reason_code="repurposed",
        reason="(示例)场地改作社区卫生服务站,服务并入古楼街道(示例)社区居家养老服务中心",
        retired_on=date(2024, 2, 20)))
    return SeedPlan(tuple(commands))
