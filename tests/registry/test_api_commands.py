"""Every registry command over HTTP with real tokens on real PostgreSQL: what it returns, what it
writes, who may send it, and that refused input leaves nothing behind."""
from __future__ import annotations

import hashlib

import pytest

from tests.registry.support import (
    as_,
    household_body,
    liaison_body,
    project_body,
    projected,
    registry_client,
    registry_event_count,
    subject_key_count,
)

pytestmark = pytest.mark.integration


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def reasons(response) -> dict[str, str]:
    return {item["field"]: item["reason"] for item in response.json()["detail"]}


async def test_every_project_command_is_an_event_with_its_actor_and_changes_the_project(database):
    async with registry_client(database) as client:
        created = await client.post("/projects", json=project_body(), headers=as_("echeng-reporter"))
        assert created.status_code == 201, created.text
        project = created.json()
        pid = project["project_id"]
        assert (project["status"], project["on_ledger"], project["version"]) == ("operating", False, 1)

        operator = await client.post(f"/projects/{pid}/operator", headers=as_("echeng-reviewer"), json={
            "project_id": pid, "changed_on": "2024-04-01",
            "operator": {"kind": "village_committee", "name": "滨湖社区(示例)居民委员会"}})
        assert operator.status_code == 200, operator.text
        assert operator.json()["operator"]["kind"] == "village_committee"

        services = await client.post(f"/projects/{pid}/services", headers=as_("echeng-reporter"),
                                     json={"project_id": pid, "services": ["day_care", "recreation"]})
        assert services.status_code == 200, services.text
        assert services.json()["status"] == "underperforming"  # lost 助餐: the rule holds
        assert services.json()["on_ledger"] is True

        assessed = await client.post(f"/projects/{pid}/assessments", headers=as_("inspector"), json={
            "project_id": pid, "claimed_status": "operating", "assessor": "何某(示例)",
            "assessed_on": "2024-04-08", "evidence": "(示例)现场查看助餐记录", "services": [
                "meal_assistance", "day_care", "health_management"], "attachment_hashes": [sha("photo")]})
        assert assessed.status_code == 201, assessed.text
        assert (assessed.json()["status"], assessed.json()["on_ledger"]) == ("operating", False)
        assert assessed.json()["assessments"] == 1

        retired = await client.post(f"/projects/{pid}/retirement", headers=as_("admin"), json={
            "project_id": pid, "reason_code": "repurposed", "reason": "(示例)改作社区卫生服务站",
            "retired_on": "2024-04-09"})
        assert retired.status_code == 201, retired.text
        assert retired.json()["status"] == "retired"
        assert retired.json()["retirement"]["reason"] == "(示例)改作社区卫生服务站"

        detail = await client.get(f"/projects/{pid}", headers=as_("auditor"))
        assert detail.status_code == 200
        history = detail.json()["history"]
        assert [h["event_type"] for h in history] == [
            "registry.ProjectRegistered", "registry.OperatorChanged", "registry.ServicesChanged",
            "registry.LedgerEntryAdded", "registry.ServicesChanged", "registry.ProjectAssessed",
            "registry.LedgerEntryCleared", "registry.ProjectRetired"]
        assert [h["actor"]["id"] for h in history] == ["ec-r", "ec-v", "ec-r", "ec-r", "insp-1",
                                                       "insp-1", "insp-1", "admin-1"]
        assert [h["version"] for h in history] == list(range(1, 9))
        assert all(h["occurred_at"].startswith("2024-04-10T10:00") for h in history)
        assert detail.json()["project"]["status"] == "retired"

        listed = await projected(client, "/projects", lambda b: b["items"] and
                                 b["items"][0]["status"] == "retired", what="the retired project")
        row = listed["items"][0]
        assert row["operator"]["kind"] == "village_committee"
        assert row["retirement"]["reason_code"] == "repurposed" and row["version"] == 8


async def test_a_home_adaptation_programme_and_its_households_are_registered(database):
    async with registry_client(database) as client:
        programme = await client.post("/programmes", headers=as_("echeng-reporter"),
                                      json={"unit": "echeng", "township": "凤凰街道", "year": 2022})
        assert programme.status_code == 201, programme.text
        pid = programme.json()["programme_id"]
        assert programme.json()["name"] == "凤凰街道2022年特殊困难老年人家庭适老化改造"

        households = await client.post(f"/programmes/{pid}/households", headers=as_("echeng-reporter"),
                                       json={"programme_id": pid, "households": [
                                           household_body("EC-T-001"),
                                           household_body("EC-T-002", phone=None, name="李某(示例)")]})
        assert households.status_code == 201, households.text
        assert households.json()["households_registered"] == 2
        assert households.json()["household_codes"] == ["EC-T-001", "EC-T-002"]
        assert "王某某" not in households.text and "13800012345" not in households.text

        again = await client.post(f"/programmes/{pid}/households", headers=as_("echeng-reporter"),
                                  json={"programme_id": pid, "households": [household_body("EC-T-001")]})
        assert again.status_code == 422
        assert "already registered" in reasons(again)["households[0].household_code"]


async def test_a_liaison_is_registered_and_an_identical_resubmission_records_nothing(database):
    async with registry_client(database) as client:
        first = await client.post("/liaisons", json=liaison_body(), headers=as_("echeng-reporter"))
        assert first.status_code == 201, first.text
        assert (first.json()["role"], first.json()["version"], first.json()["name"]) == ("liaison", 1, "陈某某(示例)")
        assert (first.json()["mobile"], first.json()["office_phone"]) == ("138****9876", "0711-***0123")
        assert first.json()["submitted_late"] is True  # 2024-04-10 is after the 2024-03-06 due date
        events = await registry_event_count(database)

        same = await client.post("/liaisons", json=liaison_body(mobile="138 0000 9876"),
                                 headers=as_("echeng-reviewer"))
        assert same.status_code == 200 and same.json()["version"] == 1
        assert await registry_event_count(database) == events

        changed = await client.post("/liaisons", json=liaison_body(mobile="13900001111"),
                                    headers=as_("echeng-reviewer"))
        assert changed.status_code == 201 and changed.json()["version"] == 2
        assert changed.json()["mobile"] == "139****1111"


async def test_bad_input_gets_422_with_each_fields_reason_and_nothing_is_written(database):
    async with registry_client(database) as client:
        bad_project = await client.post("/projects", headers=as_("admin"), json=project_body(
            township="华容镇", project_year=2019, services=["meal_assistance", "karaoke"],
            operator={"kind": "professional"}))
        assert bad_project.status_code == 422, bad_project.text
        problems = reasons(bad_project)
        assert "belongs to 华容区民政局" in problems["township"]
        assert "outside the plan period" in problems["project_year"]
        assert "unknown service 'karaoke'" in problems["services[1]"]
        assert problems["operator.name"] == "is required"

        future = await client.post("/projects", headers=as_("admin"), json=project_body(project_year=2025))
        assert future.status_code == 422 and "in the future" in reasons(future)["project_year"]

        shapeless = await client.post("/projects", headers=as_("admin"), json={"name": "x", "project_year": "soon"})
        assert shapeless.status_code == 422
        fields = reasons(shapeless)
        assert {"project_type", "unit", "township", "operator", "claimed_status", "project_year"} <= set(fields)

        programme = await client.post("/programmes", headers=as_("admin"),
                                      json={"unit": "echeng", "township": "凤凰街道", "year": 2022})
        pid = programme.json()["programme_id"]
        before_keys = await subject_key_count(database)
        bad_households = await client.post(f"/programmes/{pid}/households", headers=as_("admin"), json={
            "programme_id": pid, "households": [
                household_body("EC-T-001"),
                household_body("EC-T-002", phone="99999", items=["gold_taps"], acceptance_date="2021-01-01"),
                household_body("13800001234", name=" ")]})
        assert bad_households.status_code == 422
        problems = reasons(bad_households)
        assert problems["households[1].phone"].startswith("not a valid phone number")
        assert "unknown adaptation item" in problems["households[1].items[0]"]
        assert problems["households[1].acceptance_date"] == "is before the adaptation year"
        assert "looks like an ID card or phone number" in problems["households[2].household_code"]
        assert problems["households[2].name"] == "is required"
        assert "99999" not in bad_households.text and "王某某" not in bad_households.text

        bad_liaison = await client.post("/liaisons", headers=as_("admin"),
                                        json=liaison_body(mobile="1234567", office_phone="abc", name=""))
        assert bad_liaison.status_code == 422
        assert {"mobile", "office_phone", "name"} <= set(reasons(bad_liaison))

        # Only the programme was written; no household, no liaison, not even a key for one.
        assert await registry_event_count(database) == 1
        assert await subject_key_count(database) == before_keys == 0


async def test_a_second_project_of_the_same_name_unit_and_type_is_refused(database):
    async with registry_client(database) as client:
        assert (await client.post("/projects", json=project_body(), headers=as_("admin"))).status_code == 201
        twin = await client.post("/projects", headers=as_("admin"),
                                 json=project_body(name=" 凤凰街道(示例)测试社区居家养老服务中心 ", services=["day_care"]))
        assert twin.status_code == 422
        assert "already registered" in reasons(twin)["name"]
        other_type = await client.post("/projects", headers=as_("admin"), json=project_body(project_type="canteen"))
        assert other_type.status_code == 201
        assert await registry_event_count(database) == 2


async def test_leaving_the_ledger_needs_an_assessment_with_evidence(database):
    async with registry_client(database) as client:
        created = await client.post("/projects", headers=as_("admin"), json=project_body(
            name="(示例)无助餐中心", services=["day_care", "health_management", "psychological_comfort"]))
        project = created.json()
        pid = project["project_id"]
        assert (project["status"], project["on_ledger"]) == ("underperforming", True)
        assert project["status_reasons"] == ["no_meal_assistance"]
        assert project["status_reason_text"] == ["未开展助餐服务"]

        claim = {"project_id": pid, "claimed_status": "operating", "assessor": "何某(示例)",
                 "assessed_on": "2024-04-09", "evidence": "(示例)称已正常运营"}
        meals = {"services": ["meal_assistance", "day_care", "health_management"]}
        no_files = await client.post(f"/projects/{pid}/assessments", headers=as_("admin"), json=claim | meals)
        assert no_files.status_code == 422
        assert "evidence" in reasons(no_files)["attachment_hashes"]

        still_no_meals = await client.post(f"/projects/{pid}/assessments", headers=as_("admin"),
                                           json=claim | {"attachment_hashes": [sha("a")]})
        assert still_no_meals.status_code == 201
        assert (still_no_meals.json()["status"], still_no_meals.json()["on_ledger"]) == ("underperforming", True)

        fixed = await client.post(f"/projects/{pid}/assessments", headers=as_("admin"),
                                  json=claim | meals | {"attachment_hashes": [sha("b")]})
        assert (fixed.json()["status"], fixed.json()["on_ledger"]) == ("operating", False)

        bad_hash = await client.post(f"/projects/{pid}/assessments", headers=as_("admin"),
                                     json=claim | {"attachment_hashes": ["not-a-hash"]})
        assert bad_hash.status_code == 422 and "attachment_hashes[0]" in reasons(bad_hash)

        ledger = await projected(client, "/ledger?include_cleared=true",
                                 lambda b: b["items"] and not b["items"][0]["open"], what="cleared entry")
        entry = ledger["items"][0]
        assert entry["cleared_by_assessor"] == "何某(示例)" and entry["clearing_attachments"] == [sha("b")]
        open_only = await client.get("/ledger", headers=as_("admin"))
        assert open_only.json()["total"] == 0


async def test_a_district_role_acts_only_in_its_own_unit(database):
    async with registry_client(database) as client:
        echeng = (await client.post("/projects", json=project_body(), headers=as_("admin"))).json()
        pid = echeng["project_id"]
        programme = (await client.post("/programmes", headers=as_("admin"),
                                       json={"unit": "echeng", "township": "凤凰街道", "year": 2022})).json()
        written = await registry_event_count(database)

        refused = [
            await client.post("/projects", json=project_body(), headers=as_("huarong-reporter")),
            await client.post(f"/projects/{pid}/operator", headers=as_("huarong-reporter"), json={
                "project_id": pid, "changed_on": "2024-04-01", "operator": {"kind": "none"}}),
            await client.post(f"/projects/{pid}/services", headers=as_("huarong-reporter"),
                              json={"project_id": pid, "services": []}),
            await client.post(f"/projects/{pid}/assessments", headers=as_("huarong-reporter"), json={
                "project_id": pid, "claimed_status": "not_operating", "assessor": "x",
                "assessed_on": "2024-04-01", "evidence": "x"}),
            await client.post(f"/projects/{pid}/retirement", headers=as_("huarong-reporter"), json={
                "project_id": pid, "reason_code": "merged", "reason": "x", "retired_on": "2024-04-01"}),
            await client.post("/programmes", headers=as_("huarong-reporter"),
                              json={"unit": "echeng", "township": "古楼街道", "year": 2022}),
            await client.post(f"/programmes/{programme['programme_id']}/households",
                              headers=as_("huarong-reporter"),
                              json={"programme_id": programme["programme_id"],
                                    "households": [household_body("EC-T-009")]}),
            await client.post("/liaisons", json=liaison_body(), headers=as_("huarong-reporter")),
        ]
        assert [r.status_code for r in refused] == [403] * len(refused), [r.text for r in refused]
        assert await registry_event_count(database) == written
        assert await subject_key_count(database) == 0

        own = await client.post("/projects", headers=as_("huarong-reporter"), json=project_body(
            unit="huarong", township="华容镇", village="华容社区", name="(示例)华容测试中心"))
        assert own.status_code == 201


@pytest.mark.parametrize("who", ["leader", "auditor"])
async def test_leader_and_auditor_send_no_commands(database, who):
    async with registry_client(database) as client:
        pid = "00000000-0000-0000-0000-000000000000"
        attempts = [
            client.post("/projects", json=project_body(), headers=as_(who)),
            client.post("/projects", json={"nonsense": True}, headers=as_(who)),  # 403 before 422
            client.post(f"/projects/{pid}/operator", json={}, headers=as_(who)),
            client.post(f"/projects/{pid}/services", json={}, headers=as_(who)),
            client.post(f"/projects/{pid}/assessments", json={}, headers=as_(who)),
            client.post(f"/projects/{pid}/retirement", json={}, headers=as_(who)),
            client.post("/programmes", json={"unit": "echeng", "township": "凤凰街道", "year": 2022},
                        headers=as_(who)),
            client.post(f"/programmes/{pid}/households", json={}, headers=as_(who)),
            client.post("/liaisons", json=liaison_body(), headers=as_(who)),
            client.post("/imports", content=b"PK\x03\x04", headers=as_(who)),
        ]
        statuses = [(await attempt).status_code for attempt in attempts]
        assert statuses == [403] * len(attempts)
        assert await registry_event_count(database) == 0


async def test_an_inspector_may_assess_but_not_register(database):
    async with registry_client(database) as client:
        assert (await client.post("/projects", json=project_body(), headers=as_("inspector"))).status_code == 403
        assert (await client.post("/liaisons", json=liaison_body(), headers=as_("inspector"))).status_code == 403


async def test_commands_need_a_valid_token_and_name_existing_projects(database):
    async with registry_client(database) as client:
        assert (await client.post("/projects", json=project_body())).status_code == 401
        assert (await client.post("/projects", json=project_body(),
                                  headers={"Authorization": "Bearer nope"})).status_code == 401
        missing = "00000000-0000-0000-0000-000000000000"
        response = await client.post(f"/projects/{missing}/services", headers=as_("admin"),
                                     json={"project_id": missing, "services": []})
        assert response.status_code == 404
        mismatch = await client.post(f"/projects/{missing}/services", headers=as_("admin"),
                                     json={"project_id": "another", "services": []})
        assert mismatch.status_code == 422 and "differs from the path" in reasons(mismatch)["project_id"]


async def test_control_characters_in_any_text_are_refused_naming_the_field_and_nothing_is_written(
        database):
    async with registry_client(database) as client:
        refused = await client.post("/projects", headers=as_("admin"),
                                    json=project_body(name="(示例)食堂\x15", village="村\x00"))
        assert refused.status_code == 422, refused.text
        assert {"name", "village"} <= set(reasons(refused))
        households = await client.post("/liaisons", headers=as_("admin"),
                                       json=liaison_body(position="科长\x07"))
        assert households.status_code == 422 and "position" in reasons(households)
        assert await registry_event_count(database) == 0


async def test_an_offset_past_any_list_is_a_clear_422_not_a_server_error(database):
    async with registry_client(database) as client:
        for path in ("/projects", "/ledger", "/programmes"):
            answer = await client.get(f"{path}?offset=9223372036854775808", headers=as_("admin"))
            assert answer.status_code == 422, (path, answer.text)
            assert "query.offset" in reasons(answer)


async def test_a_phone_or_id_number_in_free_text_is_refused_and_nothing_is_written(database):
    async with registry_client(database) as client:
        created = await client.post("/projects", json=project_body(), headers=as_("admin"))
        pid = created.json()["project_id"]
        before = await registry_event_count(database)
        for evidence in ("(示例)负责人电话 138 0012 3456", "(示例)老人身份证号420704195001011234"):
            refused = await client.post(f"/projects/{pid}/assessments", headers=as_("admin"), json={
                "project_id": pid, "claimed_status": "operating", "assessor": "何某(示例)",
                "assessed_on": "2024-04-08", "evidence": evidence})
            assert refused.status_code == 422, refused.text
            assert "evidence" in reasons(refused)
            assert "138" not in refused.text and "4207041950" not in refused.text  # not echoed
        assert await registry_event_count(database) == before
