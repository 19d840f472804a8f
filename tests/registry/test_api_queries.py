"""Registry queries over HTTP: filters and paging, unit scoping, the 台账, and personal data shown
masked unless an allowed role explicitly reveals it (and that reveal is recorded)."""
from __future__ import annotations

import asyncpg
import pytest

from tests.registry.support import household_body, liaison_body, project_body, projected, registry_client
from tests.support.actors import auth

pytestmark = pytest.mark.integration

MEALS = ["meal_assistance", "day_care", "cleaning_assistance"]

PROJECTS = [  # unit, type, township, name, provincial, services, claimed
    ("echeng", "complex", "凤凰街道", "(示例)凤凰综合体", True, MEALS, "operating"),
    ("echeng", "complex", "泽林镇", "(示例)泽林综合体", False, ["day_care"], "operating"),
    ("echeng", "community_center", "古楼街道", "(示例)古楼中心", False, MEALS, "operating"),
    ("echeng", "canteen", "西山街道", "(示例)西山食堂", False, [], "not_operating"),
    ("echeng", "canteen", "杜山镇", "(示例)杜山食堂", False, MEALS, "operating"),
    ("huarong", "rural_center", "段店镇", "(示例)段店照料中心", True, MEALS, "underperforming"),
    ("huarong", "canteen", "华容镇", "(示例)华容食堂", False, MEALS, "operating"),
]


async def register_all(client) -> dict[str, str]:
    ids = {}
    for unit, kind, township, name, provincial, services, claimed in PROJECTS:
        response = await client.post("/projects", headers=auth("admin-1"), json=project_body(
            unit=unit, project_type=kind, township=township, name=name, provincial_key=provincial,
            services=services, claimed_status=claimed, village=None,
            operator={"kind": "none"} if claimed == "not_operating" else project_body()["operator"]))
        assert response.status_code == 201, response.text
        ids[name] = response.json()["project_id"]
    await projected(client, "/projects", lambda b: b["total"] == len(PROJECTS), what="all projects")
    return ids


def names(body) -> list[str]:
    return [item["name"] for item in body["items"]]


async def test_projects_are_found_by_unit_type_status_and_provincial_flag_a_page_at_a_time(database):
    async with registry_client(database) as client:
        await register_all(client)

        async def get(query: str, who: str = "leader-1"):
            response = await client.get(f"/projects?{query}", headers=auth(who))
            assert response.status_code == 200, response.text
            return response.json()

        assert (await get("unit=huarong"))["total"] == 2
        assert names(await get("unit=echeng&project_type=canteen")) == ["(示例)杜山食堂", "(示例)西山食堂"]
        assert names(await get("status=underperforming")) == ["(示例)泽林综合体", "(示例)段店照料中心"]
        assert names(await get("status=not_operating")) == ["(示例)西山食堂"]
        assert names(await get("provincial_key=true")) == ["(示例)凤凰综合体", "(示例)段店照料中心"]
        assert (await get("provincial_key=false&unit=echeng"))["total"] == 4

        first, second, last = [await get(f"limit=3&offset={o}") for o in (0, 3, 6)]
        assert [first["total"], second["total"], last["total"]] == [7, 7, 7]
        assert (len(first["items"]), len(second["items"]), len(last["items"])) == (3, 3, 1)
        assert len(set(names(first) + names(second) + names(last))) == 7

        for bad in ("status=closed", "project_type=spa", "unit=wuhan", "limit=0", "offset=-1"):
            assert (await client.get(f"/projects?{bad}", headers=auth("leader-1"))).status_code == 422, bad


async def test_a_district_role_reads_only_its_own_unit(database):
    async with registry_client(database) as client:
        ids = await register_all(client)
        own = await client.get("/projects", headers=auth("rep-huarong-1"))
        assert {item["unit"] for item in own.json()["items"]} == {"huarong"}
        assert own.json()["total"] == 2

        elsewhere = [
            await client.get("/projects?unit=echeng", headers=auth("rep-huarong-1")),
            await client.get(f"/projects/{ids['(示例)凤凰综合体']}", headers=auth("rep-huarong-1")),
            await client.get("/ledger?unit=echeng", headers=auth("rep-huarong-1")),
            await client.get("/liaisons?unit=echeng", headers=auth("rep-huarong-1")),
            await client.get("/programmes?unit=echeng", headers=auth("rep-huarong-1")),
        ]
        assert [r.status_code for r in elsewhere] == [403] * len(elsewhere)

        ledger = await projected(client, "/ledger", lambda b: b["total"] == 1, who="rep-huarong-1")
        assert [e["project_name"] for e in ledger["items"]] == ["(示例)段店照料中心"]
        assert (await client.get(f"/projects/{ids['(示例)段店照料中心']}",
                                 headers=auth("rep-huarong-1"))).status_code == 200


async def test_the_ledger_lists_idle_and_underperforming_projects_with_their_reasons(database):
    async with registry_client(database) as client:
        await register_all(client)
        ledger = await projected(client, "/ledger", lambda b: b["total"] == 3, who="leader-1")
        entries = {e["project_name"]: e for e in ledger["items"]}
        assert set(entries) == {"(示例)泽林综合体", "(示例)西山食堂", "(示例)段店照料中心"}
        zelin = entries["(示例)泽林综合体"]
        assert (zelin["reason"], zelin["reason_text"]) == ("underperforming", "项目运营不佳,作用发挥不够")
        assert zelin["reason_details"] == ["fewer_than_min_services", "no_meal_assistance"]
        assert zelin["reason_details_text"] == ["专业养老服务不足3项", "未开展助餐服务"]
        assert entries["(示例)西山食堂"]["reason_text"] == "项目未投入运营"
        assert entries["(示例)段店照料中心"]["reason_details"] == ["assessed_underperforming"]
        assert all(e["open"] and e["listed_on"] == "2024-04-10" for e in entries.values())


async def test_liaison_phones_are_masked_unless_an_allowed_role_reveals_them(database):
    async with registry_client(database) as client:
        for unit, mobile in (("echeng", "13800009876"), ("huarong", "13800005432")):
            who = "admin-1" if unit == "huarong" else "rep-echeng-1"
            response = await client.post("/liaisons", headers=auth(who),
                                         json=liaison_body(unit=unit, mobile=mobile))
            assert response.status_code == 201
        await projected(client, "/liaisons", lambda b: len(b["items"]) == 2)

        for who in ("leader-1", "auditor-1", "insp-1", "admin-1", "rev-echeng-1"):
            masked = (await client.get("/liaisons", headers=auth(who))).json()["items"]
            assert all(item["mobile"].count("*") == 4 and not item["revealed"] for item in masked), who
            assert "13800009876" not in str(masked)

        for who in ("leader-1", "auditor-1", "insp-1"):
            assert (await client.get("/liaisons?reveal=true", headers=auth(who))).status_code == 403
        assert (await client.get("/liaisons?unit=huarong&reveal=true",
                                 headers=auth("rev-echeng-1"))).status_code == 403

        own = (await client.get("/liaisons?reveal=true", headers=auth("rev-echeng-1"))).json()["items"]
        assert [(i["unit"], i["mobile"], i["office_phone"], i["revealed"]) for i in own] == [
            ("echeng", "13800009876", "0711-0000123", True)]
        everyone = (await client.get("/liaisons?reveal=true", headers=auth("admin-1"))).json()["items"]
        assert {i["mobile"] for i in everyone} == {"13800009876", "13800005432"}

    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch("SELECT * FROM registry.personal_data_access ORDER BY accessed_at")
        recorded = [(r["actor_id"], r["actor_role"], r["unit"], len(r["subject_ids"]), r["what"])
                    for r in rows]
        assert recorded == [("rev-echeng-1", "district_reviewer", "echeng", 1, "liaison_phones"),
                            ("admin-1", "city_admin", None, 2, "liaison_phones")]
        everything = " ".join(str(dict(r)) for r in rows)
        assert "9876" not in everything and "5432" not in everything
        # The service may add to the access record but never change or remove it.
        registry = await asyncpg.connect(database)
        await registry.execute("SET ROLE lookback_registry")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await registry.execute("DELETE FROM registry.personal_data_access")
        await registry.close()
    finally:
        await conn.close()


async def test_households_are_shown_masked_and_stored_only_sealed(database):
    async with registry_client(database) as client:
        programme = (await client.post("/programmes", headers=auth("rep-echeng-1"), json={
            "unit": "echeng", "township": "凤凰街道", "year": 2022})).json()
        pid = programme["programme_id"]
        response = await client.post(f"/programmes/{pid}/households", headers=auth("rep-echeng-1"), json={
            "programme_id": pid, "households": [
                household_body("EC-T-001", name="王大明(示例)", phone="13800012345"),
                household_body("EC-T-002", name="李小红(示例)", phone=None)]})
        assert response.status_code == 201
        body = await projected(client, f"/programmes/{pid}/households", lambda b: b["total"] == 2,
                               who="leader-1")
        first, second = body["items"]
        assert (first["household_code"], first["name"], first["phone"]) == (
            "EC-T-001", "王******", "138****2345")
        assert (second["name"], second["phone"]) == ("李******", None)
        assert "address" not in first and "凤凰街道滨湖社区(示例)1栋101" not in str(body)
        assert body["programme"]["households"] == 2

        listed = await client.get("/programmes?unit=echeng", headers=auth("rev-echeng-1"))
        assert [p["households"] for p in listed.json()["items"]] == [2]
        assert (await client.get(f"/programmes/{pid}/households",
                                 headers=auth("rep-huarong-1"))).status_code == 403

    conn = await asyncpg.connect(database)
    try:
        for table in ("registry.households", "es.events"):
            text = " ".join(str(dict(r)) for r in await conn.fetch(f"SELECT * FROM {table}"))
            for secret in ("王大明", "李小红", "13800012345", "1栋101"):
                assert secret not in text, (table, secret)
    finally:
        await conn.close()


async def test_an_unknown_project_is_404(database):
    async with registry_client(database) as client:
        response = await client.get("/projects/00000000-0000-0000-0000-000000000000", headers=auth("admin-1"))
        assert response.status_code == 404
        response = await client.get("/programmes/nope/households", headers=auth("admin-1"))
        assert response.status_code == 404
