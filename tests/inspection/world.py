"""A small registry view and a draw walked through its life cycle, for the inspection tests."""
from __future__ import annotations

import datetime as dt

from services.inspection import commands as c
from services.inspection import domain as d
from services.inspection.config import sampling_policy
from shared.campaign import load_campaign
from shared.messages import Actor, Role

CST = dt.timezone(dt.timedelta(hours=8))
FROZEN_AT = dt.datetime(2024, 5, 7, 9, 0, tzinfo=CST)
ENTROPY_KNOWN_AT = dt.datetime(2024, 5, 8, 21, 30, tzinfo=CST)
DRAWN_AT = dt.datetime(2024, 5, 8, 22, 0, tzinfo=CST)
VISIT_DAY = dt.date(2024, 5, 10)
AFTER_VISIT = dt.datetime(2024, 5, 10, 18, 0, tzinfo=CST)

DRAW_ID = "ezhou-2024-city-01"
ENTROPY = "福彩3D 2024-05-08: 3 7 1"
UNITS = ["echeng", "huarong", "linkong"]
# The sampling rules of the campaign file (Ezhou 2024), as the service reads them.
POLICY = sampling_policy(load_campaign())

INSPECTOR = Actor(id="insp-1", name="检查员甲(示例)", role=Role.INSPECTOR)
CITY_ADMIN = Actor(id="admin-1", name="市局管理员(示例)", role=Role.CITY_ADMIN)
OUTSIDERS = [Actor(id=f"{role.value}-1", name="(示例)", role=role,
                   unit="echeng" if role.is_district else None)
             for role in Role if role not in d.INSPECTION_ROLES]


def projects() -> list[d.ProjectView]:
    views = [d.ProjectView(f"EC-CANTEEN-{n}", "echeng", "凤凰街道", "canteen",
                           name=f"凤凰幸福食堂{n}(示例)", project_year=2022) for n in range(1, 6)]
    views += [
        d.ProjectView("EC-CANTEEN-9", "echeng", "古楼街道", "canteen", retired=True,
                      retired_reason="改作他用", name="古楼幸福食堂(示例)"),
        d.ProjectView("EC-COMPLEX-1", "echeng", "泽林镇", "complex", provincial_key=True,
                      name="泽林镇养老服务综合体(示例)", project_year=2023),
        d.ProjectView("EC-COMPLEX-2", "echeng", "杜山镇", "complex", provincial_key=False,
                      name="杜山镇养老服务综合体(示例)", project_year=2023),
        d.ProjectView("EC-RURAL-1", "echeng", "碧石镇", "rural_center", provincial_key=True,
                      name="碧石村互助照料中心(示例)", project_year=2021),
        d.ProjectView("EC-CC-1", "echeng", "西山街道", "community_center",
                      name="西山社区居家养老服务中心(示例)", project_year=2022),
        d.ProjectView("EC-HA-FH", "echeng", "凤凰街道", "home_adaptation",
                      name="凤凰街道适老化改造(示例)", project_year=2023),
        d.ProjectView("EC-HA-ZL", "echeng", "泽林镇", "home_adaptation",
                      name="泽林镇适老化改造(示例)", project_year=2023),
        d.ProjectView("HR-HA-HR", "huarong", "华容镇", "home_adaptation",
                      name="华容镇适老化改造(示例)", project_year=2023),
        d.ProjectView("HR-HA-OLD", "huarong", "庙岭镇", "home_adaptation", retired=True,
                      retired_reason="并入华容镇项目", project_year=2022),
        d.ProjectView("HR-CC-1", "huarong", "华容镇", "community_center", project_year=2022),
        d.ProjectView("HR-CC-2", "huarong", "段店镇", "community_center", project_year=2022),
    ]
    return views


def households() -> list[d.HouseholdView]:
    rows = [d.HouseholdView(f"FH-{n}", "EC-HA-FH", "echeng", "凤凰街道") for n in range(1, 6)]
    rows += [d.HouseholdView(f"ZL-{n}", "EC-HA-ZL", "echeng", "泽林镇") for n in range(1, 4)]
    rows += [d.HouseholdView("HR-1", "HR-HA-HR", "huarong", "华容镇"),
             d.HouseholdView("ML-1", "HR-HA-OLD", "huarong", "庙岭镇")]
    return rows


def frozen(actor: Actor = INSPECTOR) -> d.DrawState:
    events = d.decide_freeze_frame(d.INITIAL_STATE, c.FreezeFrame(draw_id=DRAW_ID,
                                                                  title="2024年回头看市级抽查"),
                                   actor=actor, now=FROZEN_AT, units=UNITS, projects=projects(),
                                   households=households(), policy=POLICY)
    return d.fold(events)


def committed() -> d.DrawState:
    state = frozen()
    return d.fold(d.decide_commit_entropy(
        state, c.CommitEntropy(draw_id=DRAW_ID, statement="中国福利彩票3D 2024-05-08 开奖号码",
                               not_before=ENTROPY_KNOWN_AT),
        actor=INSPECTOR, now=FROZEN_AT), state)


def drawn() -> d.DrawState:
    state = committed()
    return d.fold(d.decide_reveal_and_draw(state, c.RevealEntropy(draw_id=DRAW_ID, entropy=ENTROPY),
                                           actor=INSPECTOR, now=DRAWN_AT), state)


def apply(state: d.DrawState, decide, cmd, **kwargs) -> d.DrawState:
    kwargs.setdefault("actor", INSPECTOR)
    kwargs.setdefault("now", AFTER_VISIT)
    return d.fold(decide(state, cmd, **kwargs), state)


def full_checklist(project_type: str, answer: str = "yes") -> dict[str, str]:
    return {item: answer for item in d.DEFAULT_CHECKLISTS[project_type]}
