"""The rectification API with real tokens on real PostgreSQL (local transport): the 销号 life
cycle's four eyes, district scoping, bad input, and the concurrent 序号 counter."""
from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from tests.rectification.api_support import (
    known_projects,
    other_services,
    post,
    problem,
    rectification,
    register,
    request_close_out,
    start,
    verify,
)
from tests.support.actors import auth
from tests.support.clock import Clock, at

pytestmark = pytest.mark.integration


@pytest.fixture
def clock() -> Clock:
    return Clock(at(2024, 3, 12))


async def test_a_registered_item_gets_the_next_number_and_a_history_with_its_actor(
        database, tmp_path, clock):
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        project_id = await others.project("echeng")
        await known_projects(api, project_id)
        first = await register(api, "rep-echeng-1", project_id)
        second = await register(api, "rev-echeng-1", project_id)
        assert (first["seq_no"], second["seq_no"]) == (1, 2)
        assert first["status"] == "registered" and first["overdue"] is False
        assert first["project_name"] == "凤凰街道幸福食堂1(示例)" and first["project_year"] == 2022
        item = await problem(api, first["problem_id"], version=1)
        [entry] = item["history"]
        assert entry["event_type"] == "rectification.ProblemRegistered"
        assert (entry["actor_id"], entry["actor_role"]) == ("rep-echeng-1", "district_reporter")


async def test_close_out_needs_a_second_person_and_the_units_own_reviewer(database, tmp_path, clock):
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        project_id = await others.project("echeng")
        await others.project("huarong")
        await known_projects(api, project_id, "p-huarong-1")
        item = await register(api, "rep-echeng-1", project_id)
        pid = item["problem_id"]
        await start(api, "rep-echeng-1", pid)
        # The reviewer asks for the close-out himself: he may not then grant it.
        requested = await request_close_out(api, "rev-echeng-1", pid)
        assert requested["status"] == "close_out_requested"
        refused = await api.post("/problems/verify", json={"problem_id": pid, "conclusion": "好"},
                                 headers=auth("rev-echeng-1"))
        assert refused.status_code == 409 and refused.json()["error"] == "four_eyes"
        # Neither a reporter (no verifying authority) nor another unit's reviewer may.
        await verify(api, "rep-echeng-2", pid, expect=403)
        await verify(api, "rev-huarong-1", pid, expect=403)
        await verify(api, "insp-1", pid, expect=403)   # self-found: the unit's reviewer verifies
        await verify(api, "leader-1", pid, expect=403)
        closed = await verify(api, "rev-echeng-2", pid)
        assert closed["status"] == "closed" and closed["verified_by"] == "rev-echeng-2"
        history = (await problem(api, pid, version=4))["history"]
        assert [h["event_type"].split(".")[1] for h in history] == [
            "ProblemRegistered", "RectificationStarted", "CloseOutRequested", "CloseOutVerified"]


async def test_a_city_found_item_is_verified_only_by_an_inspector(database, tmp_path, clock):
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        project_id = await others.project("echeng")
        await known_projects(api, project_id)
        # A district role cannot register a city finding; an inspector can.
        await register(api, "rep-echeng-1", project_id, source="city", expect=403)
        item = await register(api, "insp-1", project_id, source="city")
        pid = item["problem_id"]
        await start(api, "rep-echeng-1", pid)
        await request_close_out(api, "rep-echeng-1", pid)
        await verify(api, "rev-echeng-1", pid, expect=403)
        await verify(api, "rev-echeng-2", pid, expect=403)
        closed = await verify(api, "insp-1", pid)
        assert (closed["status"], closed["verifier_role"]) == ("closed", "inspector")


async def test_an_inspector_who_requested_a_close_out_cannot_verify_it(database, tmp_path, clock):
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        project_id = await others.project("echeng")
        await known_projects(api, project_id)
        pid = (await register(api, "insp-1", project_id, source="city"))["problem_id"]
        await start(api, "admin-1", pid)
        await request_close_out(api, "admin-1", pid)
        await verify(api, "admin-1", pid, expect=403)          # city_admin is no verifier
        await verify(api, "insp-2", pid)


async def test_district_roles_see_and_change_only_their_own_unit(database, tmp_path, clock):
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        echeng, huarong = await others.project("echeng"), await others.project("huarong")
        await known_projects(api, echeng, huarong)
        mine = (await register(api, "rep-echeng-1", echeng))["problem_id"]
        theirs = (await register(api, "rep-huarong-1", huarong))["problem_id"]
        await problem(api, mine)
        await problem(api, theirs)

        listed = (await api.get("/problems", headers=auth("rep-echeng-1"))).json()["items"]
        assert [i["problem_id"] for i in listed] == [mine]
        assert (await api.get("/problems?unit=huarong", headers=auth("rep-echeng-1"))).status_code == 403
        assert (await api.get(f"/problems/{theirs}", headers=auth("rep-echeng-1"))).status_code == 403
        assert (await api.get("/progress?unit=huarong", headers=auth("rev-echeng-1"))).status_code == 403
        assert (await api.get("/problem-list.xlsx?unit=huarong",
                              headers=auth("rep-echeng-1"))).status_code == 403

        before = await _versions(database)
        forbidden = await api.post("/problems/start", json={"problem_id": theirs, "plan": "x"},
                                   headers=auth("rep-echeng-1"))
        assert forbidden.status_code == 403
        await register(api, "rep-echeng-1", huarong, expect=403)
        await post(api, "/reports/monthly-list/submit", "rep-echeng-1",
                   {"unit": "huarong", "month": "2024-03"}, expect=403)
        for reader in ("leader-1", "auditor-1"):
            await register(api, reader, echeng, expect=403)
            await post(api, "/problems/start", reader, {"problem_id": mine, "plan": "x"}, expect=403)
        assert await _versions(database) == before    # nothing was written

        for reader in ("leader-1", "auditor-1", "admin-1", "insp-1"):
            listed = (await api.get("/problems", headers=auth(reader))).json()["items"]
            assert {i["problem_id"] for i in listed} == {mine, theirs}
        assert (await api.get("/problems")).status_code == 401
        assert (await api.get("/problems", headers={"Authorization": "Bearer nope"})).status_code == 401


async def _versions(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT stream_id, version FROM es.streams "
                                "WHERE split_part(stream_id, '-', 1) IN ('problem','unit','report','score')")
        return {r["stream_id"]: r["version"] for r in rows}
    finally:
        await conn.close()


async def test_bad_input_is_422_with_each_fields_reason_and_nothing_is_written(
        database, tmp_path, clock):
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        project_id = await others.project("echeng")
        await known_projects(api, project_id)
        response = await api.post("/problems/register", headers=auth("rep-echeng-1"), json={
            "problem_id": "not-a-uuid", "project_id": project_id, "description": "  ",
            "deadline": "2024-05-07"})
        assert response.status_code == 422
        fields = {f["field"] for f in response.json()["detail"]}
        assert {"problem_id", "description"} <= fields
        response = await api.post("/problems/request-close-out", headers=auth("rep-echeng-1"), json={
            "problem_id": str(uuid.uuid4()), "evidence_text": "照片", "attachment_hashes": ["abc"]})
        assert response.status_code == 422
        assert "attachment_hashes.0" in [f["field"] for f in response.json()["detail"]]
        response = await api.post("/scores/deduct", headers=auth("admin-1"), json={
            "unit": "nowhere", "deduction_id": str(uuid.uuid4()), "points": "1", "reason": "r"})
        assert response.status_code == 422 and response.json()["detail"][0]["field"] == "unit"
        response = await api.post("/scores/deduct", headers=auth("admin-1"), json={
            "unit": "echeng", "deduction_id": str(uuid.uuid4()), "points": 1.5, "reason": "r"})
        assert response.status_code == 422
        assert await _versions(database) == {}
        # A rule broken by a well-formed command is a conflict, not bad input.
        unknown = await api.post("/problems/start", headers=auth("rep-echeng-1"),
                                 json={"problem_id": str(uuid.uuid4()), "plan": "x"})
        assert unknown.status_code == 404


async def test_concurrent_registrations_in_one_unit_get_distinct_numbers(database, tmp_path, clock):
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        project_ids = [await others.project("echeng", n) for n in (1, 2)]
        await known_projects(api, *project_ids)
        items = await asyncio.gather(*(register(api, who, project_ids[n % 2]) for n, who in
                                       enumerate(["rep-echeng-1", "rep-echeng-2", "rev-echeng-1",
                                                  "rev-echeng-2"])))
        assert sorted(i["seq_no"] for i in items) == [1, 2, 3, 4]
        # The same registration again (a client retry) is recognised: no new 序号.
        retry = await register(api, "rep-echeng-1", items[0]["project_id"],
                               problem_id=uuid.UUID(items[0]["problem_id"]), expect=200)
        assert retry["seq_no"] == items[0]["seq_no"]


async def test_return_extension_withdrawal_and_reused_evidence_through_the_api(
        database, tmp_path, clock):
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        project_id = await others.project("echeng")
        await known_projects(api, project_id)
        one = (await register(api, "rep-echeng-1", project_id))["problem_id"]
        two = (await register(api, "rep-echeng-1", project_id))["problem_id"]
        for pid in (one, two):
            await start(api, "rep-echeng-1", pid)

        # 退回 with a reason, back to rectification.
        await request_close_out(api, "rep-echeng-1", one, photo="same-photo.jpg")
        returned = await post(api, "/problems/return", "rev-echeng-1",
                              {"problem_id": one, "reason": "缺少服务台账"})
        assert (returned["status"], returned["times_returned"]) == ("in_rectification", 1)

        # An extension: asked by the reporter, decided by the reviewer (not by the asker).
        asked = await post(api, "/problems/request-extension", "rev-echeng-1", {
            "problem_id": one, "new_deadline": "2024-05-20", "reason": "运营机构招标中"})
        assert asked["pending_extension"]["new_deadline"] == "2024-05-20"
        refused = await api.post("/problems/decide-extension", headers=auth("rev-echeng-1"), json={
            "problem_id": one, "approved": True, "reason": "同意"})
        assert refused.status_code == 409 and refused.json()["error"] == "four_eyes"
        await post(api, "/problems/decide-extension", "rep-echeng-1",
                   {"problem_id": one, "approved": True, "reason": "同意"}, expect=403)
        decided = await post(api, "/problems/decide-extension", "rev-echeng-2",
                             {"problem_id": one, "approved": True, "reason": "同意"})
        assert decided["deadline"] == "2024-05-20" and decided["pending_extension"] is None

        # The same photo filed for a second item is flagged (纸面销号).
        await problem(api, one, version=6)   # the evidence index is a read model
        flagged = await request_close_out(api, "rep-echeng-1", two, photo="same-photo.jpg")
        assert flagged["evidence_reuse_flagged"] is True
        body = (await api.get(f"/evidence/{flagged['flagged_hashes'][0]}",
                              headers=auth("rev-echeng-1"))).json()
        filed_for = {row["problem_id"] for row in body["filed_for"]}
        assert filed_for <= {one, two} and one in filed_for

        # 撤销: approved by someone other than the registrant.
        three = (await register(api, "rev-echeng-1", project_id))["problem_id"]
        refused = await api.post("/problems/withdraw", headers=auth("rev-echeng-1"),
                                 json={"problem_id": three, "reason": "误登记"})
        assert refused.status_code == 409
        withdrawn = await post(api, "/problems/withdraw", "rev-echeng-2",
                               {"problem_id": three, "reason": "误登记"})
        assert withdrawn["status"] == "withdrawn" and withdrawn["seq_no"] == 3
        # A withdrawn item cannot be worked any more: an illegal transition is 409.
        illegal = await api.post("/problems/start", headers=auth("rep-echeng-1"),
                                 json={"problem_id": three, "plan": "x"})
        assert illegal.status_code == 409 and illegal.json()["error"] == "illegal_transition"


async def test_overdue_items_are_flagged_and_filtered(database, tmp_path, clock):
    async with other_services(database) as others, rectification(database, tmp_path, clock) as api:
        project_id = await others.project("echeng")
        await known_projects(api, project_id)
        soon = (await register(api, "rep-echeng-1", project_id, deadline="2024-03-15"))["problem_id"]
        later = (await register(api, "rep-echeng-1", project_id, deadline="2024-04-30"))["problem_id"]
        await problem(api, later)
        clock.set(2024, 3, 15, 23, 59, 59)
        assert [i["problem_id"] for i in (await api.get(
            "/problems?overdue=true", headers=auth("rep-echeng-1"))).json()["items"]] == []
        clock.set(2024, 3, 16, 0, 0, 1)
        overdue = (await api.get("/problems?overdue=true", headers=auth("rep-echeng-1"))).json()["items"]
        assert [(i["problem_id"], i["light"]) for i in overdue] == [(soon, "red")]
        registered = (await api.get("/problems?status=registered&unit=echeng",
                                    headers=auth("leader-1"))).json()["items"]
        assert {i["problem_id"] for i in registered} == {soon, later}
