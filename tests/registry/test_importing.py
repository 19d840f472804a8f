"""Bulk import: .xlsx and CSV, all or nothing, idempotent by content-derived ids."""
from __future__ import annotations

import io
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from services.registry import domain as d
from services.registry import events as e
from services.registry import handlers as h
from services.registry.handlers import RegistryDeps
from services.registry.importing import (
    HOUSEHOLDS,
    PROJECTS,
    ImportPlan,
    ImportRefused,
    ImportRejected,
    build_template,
    parse_csv,
    parse_xlsx,
    rows_to_csv,
    rows_to_xlsx,
)
from services.registry.importing.parsing import HOUSEHOLD_COLUMNS, PROJECT_COLUMNS
from shared.pipeline import Decision
from shared.campaign import Campaign, load_campaign
from shared.errors import ForbiddenError
from shared.messages import Actor, Role
from shared.personal_data import InMemoryPersonalDataVault, Keyring

pytestmark = pytest.mark.unit

TZ8 = timezone(timedelta(hours=8))
NOW = datetime(2024, 3, 20, 10, 0, tzinfo=TZ8)
TODAY = NOW.date()
ADMIN = Actor(id="u-admin", name="市局管理员(示例)", role=Role.CITY_ADMIN)
HUARONG = Actor(id="u-hr", name="华容填报人(示例)", role=Role.DISTRICT_REPORTER, unit="huarong")


@pytest.fixture(scope="module")
def campaign() -> Campaign:
    return load_campaign()


def project_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"unit": "华容区", "project_type": "幸福食堂", "name": "华容镇(示例)幸福食堂",
                           "township": "华容镇", "village": "华容社区", "project_year": 2022,
                           "provincial_key": "否", "operator_kind": "专业机构",
                           "operator_name": "(示例)餐饮管理有限公司", "contract_start": date(2023, 1, 1),
                           "contract_end": "2025-12-31", "services": "助餐、日间照料、助洁", "status": "正常运营"}
    row.update(overrides)
    return row


def household_row(code: str = "HR-001", **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"unit": "huarong", "township": "华容镇", "village": "芦花村", "household_code": code,
                           "adaptation_year": "2022年", "items": "地面防滑处理、如厕洗浴区扶手",
                           "acceptance_date": "2022年11月3日", "name": "刘某某(示例)",
                           "address": "华容镇芦花村(示例)3组", "phone": "13800000011"}
    row.update(overrides)
    return row


def plan_of(result: Any) -> ImportPlan:
    assert isinstance(result, ImportPlan), getattr(result, "errors", result)
    return result


def run(plan: ImportPlan, campaign: Campaign, store: dict[str, list], ring: Keyring,
        actor: Actor = ADMIN):
    """Decide against the 'stored' events and 'append' them: a stand-in for the pipeline."""
    deps = RegistryDeps(campaign, InMemoryPersonalDataVault())
    states = {}
    for spec in h.every_stream(plan, deps):
        states[spec.stream_id] = d.fold(spec.initial, store.get(spec.stream_id, []))
    decision = h.import_decision(Decision(command=plan, states=states, inputs=ring, actor=actor,
                                          now=NOW, deps=deps))
    for event in decision.events:
        store.setdefault(d.stream_of(event), []).append(event)
    return decision


def test_an_xlsx_with_both_sheets_becomes_commands(campaign: Campaign) -> None:
    data = rows_to_xlsx([project_row(), project_row(name="庙岭镇(示例)社区中心", project_type="社区居家养老服务中心",
                                                    township="庙岭镇", provincial_key="是")],
                        [household_row("HR-001"), household_row("HR-002", phone=None),
                         household_row("HR-003", adaptation_year=2021, acceptance_date=date(2021, 12, 1))])
    plan = plan_of(parse_xlsx(data, campaign, today=TODAY))
    assert (plan.project_rows, plan.household_rows) == (2, 3)
    kinds = [type(item.command).__name__ for item in plan.items]
    assert kinds == ["RegisterProject", "RegisterProject", "RegisterAdaptationProgramme", "RegisterHouseholds",
                     "RegisterAdaptationProgramme", "RegisterHouseholds"]
    first = plan.items[0].command
    assert (first.unit, first.project_type, first.services, first.claimed_status) == (
        "huarong", "canteen", ("meal_assistance", "day_care", "cleaning_assistance"), "operating")
    assert first.operator.contract_end == date(2025, 12, 31)
    assert plan.items[1].command.provincial_key is True
    households = plan.items[3].command
    assert [h.household_code for h in households.households] == ["HR-001", "HR-002"]
    assert households.households[0].items == ("anti_slip_floor", "bathroom_grab_bar")
    assert households.households[0].acceptance_date == date(2022, 11, 3)
    assert plan.items[3].rows == (2, 3) and plan.items[5].rows == (4,)


def test_every_invalid_row_is_reported_with_its_number_and_nothing_is_planned(campaign: Campaign) -> None:
    data = rows_to_xlsx(
        [project_row(), project_row(name="坏行(示例)", township="太和镇"),
         project_row(name="年份(示例)", project_year="去年", status="很好"), project_row()],
        [household_row("OK-1"), household_row("BAD-1", phone="99999", items="按摩椅"),
         household_row("BAD-2", acceptance_date="2022-13-45", name="")])
    result = parse_xlsx(data, campaign, today=TODAY)
    assert isinstance(result, ImportRejected)
    found = {(err.sheet, err.row, err.column) for err in result.errors}
    assert found == {
        (PROJECTS, 3, "township"), (PROJECTS, 4, "project_year"), (PROJECTS, 4, "status"),
        (PROJECTS, 5, "name"),  # the same project as row 2
        (HOUSEHOLDS, 3, "phone"), (HOUSEHOLDS, 3, "items"),
        (HOUSEHOLDS, 4, "acceptance_date"), (HOUSEHOLDS, 4, "name"),
    }
    reasons = {(err.sheet, err.row, err.column): err.reason for err in result.errors}
    assert "row 2" in reasons[(PROJECTS, 5, "name")]
    assert "梁子湖区民政局" in reasons[(PROJECTS, 3, "township")]
    # Personal data is never echoed back in an error.
    assert all("99999" not in err.reason for err in result.errors)


def test_missing_columns_are_named(campaign: Campaign) -> None:
    workbook = Workbook()
    workbook.active.title = "projects"
    workbook.active.append(["填报单位", "项目名称"])
    workbook.active.append(["华容区", "X"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    result = parse_xlsx(buffer.getvalue(), campaign, today=TODAY)
    assert isinstance(result, ImportRejected)
    assert {err.column for err in result.errors} == {"project_type", "township", "project_year",
                                                     "operator_kind", "status"}
    assert all(err.row == 1 for err in result.errors)


def test_a_file_that_is_not_a_workbook_is_refused(campaign: Campaign) -> None:
    result = parse_xlsx(b"PK\x03\x04 not really", campaign, today=TODAY)
    assert isinstance(result, ImportRejected) and result.errors[0].column == "file"


def test_chinese_sheet_names_and_english_only_headers_are_accepted(campaign: Campaign) -> None:
    workbook = Workbook()
    worksheet = workbook.active
    worksheet.title = "项目"
    worksheet.append([col.key for col in PROJECT_COLUMNS])
    worksheet.append([project_row().get(col.key) for col in PROJECT_COLUMNS])
    buffer = io.BytesIO()
    workbook.save(buffer)
    assert len(plan_of(parse_xlsx(buffer.getvalue(), campaign, today=TODAY)).items) == 1


def test_csv_files_in_utf8_or_gbk_give_the_same_plan(campaign: Campaign) -> None:
    projects = rows_to_csv(PROJECTS, [project_row(contract_start="2023/1/1")])
    households = rows_to_csv(HOUSEHOLDS, [household_row("HR-9")])
    utf8 = plan_of(parse_csv(projects=projects, households=households, campaign=campaign, today=TODAY))
    gbk = plan_of(parse_csv(projects=projects.decode("utf-8-sig").encode("gb18030"),
                            households=households.decode("utf-8-sig").encode("gb18030"),
                            campaign=campaign, today=TODAY))
    assert utf8.commands == gbk.commands
    assert utf8.items[0].command.operator.contract_start == date(2023, 1, 1)


def test_a_whole_import_is_decided_and_re_importing_it_adds_nothing(campaign: Campaign) -> None:
    data = rows_to_xlsx([project_row(), project_row(name="(示例)不达标食堂", services="助餐")],
                        [household_row("HR-001"), household_row("HR-002")])
    store: dict[str, list] = {}
    ring = Keyring(generate_missing=True)
    first = run(plan_of(parse_xlsx(data, campaign, today=TODAY)), campaign, store, ring)
    assert (first.projects_registered, first.programmes_registered, first.households_registered) == (2, 1, 2)
    assert first.event_count == 5  # 2 projects + 1 ledger entry + 1 programme + 1 households batch
    ledger = [ev for events in store.values() for ev in events if isinstance(ev, e.LedgerEntryAdded)]
    assert [ev.project_name for ev in ledger] == ["(示例)不达标食堂"]

    again = run(plan_of(parse_xlsx(data, campaign, today=TODAY)), campaign, store, ring)
    assert again.event_count == 0 and again.unchanged == 4


def test_a_row_conflicting_with_stored_data_refuses_the_whole_import(campaign: Campaign) -> None:
    store: dict[str, list] = {}
    ring = Keyring(generate_missing=True)
    run(plan_of(parse_xlsx(rows_to_xlsx([project_row()], [household_row("HR-001")]), campaign, today=TODAY)),
        campaign, store, ring)
    before = {stream: list(events) for stream, events in store.items()}

    changed = rows_to_xlsx([project_row(name="(示例)新食堂"), project_row(project_year=2021)],
                           [household_row("HR-002"), household_row("HR-001", village="铁咀村")])
    with pytest.raises(ImportRefused) as caught:
        run(plan_of(parse_xlsx(changed, campaign, today=TODAY)), campaign, store, ring)
    assert {(err.sheet, err.row, err.column) for err in caught.value.errors} == {
        (PROJECTS, 3, "name"), (HOUSEHOLDS, 3, "household_code")}
    assert caught.value.code == "import_refused"
    assert store == before  # nothing of the valid rows was kept either


def test_a_district_reporter_imports_only_its_own_units_rows(campaign: Campaign) -> None:
    data = rows_to_xlsx([project_row(), project_row(unit="鄂城区", township="凤凰街道", name="凤凰(示例)食堂")])
    plan = plan_of(parse_xlsx(data, campaign, today=TODAY))
    with pytest.raises(ImportRefused) as caught:
        run(plan, campaign, {}, Keyring(generate_missing=True), actor=HUARONG)
    assert [(err.row, err.column) for err in caught.value.errors] == [(3, "unit")]
    with pytest.raises(ForbiddenError):
        run(plan, campaign, {}, Keyring(generate_missing=True),
            actor=Actor(id="l", name="领导", role=Role.LEADER))


def test_the_template_has_both_sheets_with_bilingual_headers_and_imports_empty_as_an_error(campaign: Campaign) -> None:
    data = build_template(campaign)
    workbook = load_workbook(io.BytesIO(data))
    assert workbook.sheetnames == [PROJECTS, HOUSEHOLDS, "说明"]
    headers = [cell.value for cell in workbook[PROJECTS][1]]
    assert headers[0] == "填报单位\nunit" and len(headers) == len(PROJECT_COLUMNS)
    assert [cell.value for cell in workbook[HOUSEHOLDS][1]][3] == "户编号\nhousehold_code"
    assert len(HOUSEHOLD_COLUMNS) == len([cell for cell in workbook[HOUSEHOLDS][1] if cell.value])
    result = parse_xlsx(data, campaign, today=TODAY)
    assert isinstance(result, ImportRejected) and result.errors[0].reason == "no data rows"


def test_the_filled_in_template_imports(campaign: Campaign) -> None:
    workbook = load_workbook(io.BytesIO(build_template(campaign)))
    workbook[PROJECTS].append([project_row().get(col.key) for col in PROJECT_COLUMNS])
    buffer = io.BytesIO()
    workbook.save(buffer)
    assert plan_of(parse_xlsx(buffer.getvalue(), campaign, today=TODAY)).project_rows == 1


def test_two_thousand_households_across_townships_and_years_import_as_twelve_programmes(
        campaign: Campaign) -> None:
    # How fast is bench/registry_import_bench.py's business (a ratio to a baseline), not a test's.
    rows = [household_row(f"HR-{i:05d}", township=["华容镇", "庙岭镇", "段店镇", "临江乡"][i % 4],
                          adaptation_year=2021 + i % 3, acceptance_date=date(2021 + i % 3, 12, 1),
                          phone=f"1380000{i:04d}")
            for i in range(2000)]
    plan = plan_of(parse_xlsx(rows_to_xlsx([], rows), campaign, today=TODAY))
    assert plan.household_rows == 2000
    decision = run(plan, campaign, {}, Keyring(generate_missing=True))
    assert decision.households_registered == 2000 and decision.programmes_registered == 12
    registered = [event for event in decision.events if isinstance(event, e.HouseholdsRegistered)]
    assert sorted(len(event.households) for event in registered) == [166] * 4 + [167] * 8
