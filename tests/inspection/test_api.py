"""The inspection service over HTTP with real tokens on real PostgreSQL (local transport): registry
events become its view, a draw goes from frozen frame to a 抽查名单 that verifies offline, only the
task force acts, district roles see their own unit, and visits produce findings in the store."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.inspection import domain as d
from services.inspection.events import draw_stream
from services.inspection.queries import draw_state
from services.inspection.sampling import verify_document
from shared.store import PostgresEventStore, create_pool
from tests.faults import eventually
from tests.inspection import support as s
from tests.inspection.support import DRAW_ID, INSPECTOR, VISIT_DAY, auth

pytestmark = pytest.mark.integration

LOOKBACK = str(Path(sys.executable).with_name("lookback"))
AREAS = ["鄂城区", "华容区", "梁子湖区", "葛店经开区", "临空经济区"]   # s.UNITS' area names


@pytest.fixture
async def service(database, tmp_path):
    """The inspection service, with the registry world already in its view."""
    clock = s.Clock(s.FROZEN_AT)
    await s.append_registry_events(database, s.registry_world())
    async with s.inspection_service(database, tmp_path, clock) as client:
        await eventually(lambda: s.view_has(client, s.PROJECT_COUNT), what="the registry view")
        yield client, clock


async def _equal(awaitable, expected) -> bool:
    return await awaitable == expected


async def _draw_events(dsn: str) -> list[str]:
    rows = await s.fetch(dsn, "SELECT event_type FROM es.events WHERE category = 'draw' "
                              "ORDER BY stream_id, stream_version")
    return [r["event_type"] for r in rows]


async def _state(dsn: str) -> d.DrawState:
    pool = await create_pool(dsn, max_size=1)
    try:
        return await draw_state(PostgresEventStore(pool), DRAW_ID)
    finally:
        await pool.close()


# --- the view of the registry ------------------------------------------------------------------


async def test_registry_events_become_the_inspection_view_without_personal_data(service, database):
    client, _ = service
    projects = {p["project_id"]: p for p in await s.view_has(client, s.PROJECT_COUNT)}
    assert projects["EC-CANTEEN-9"]["retired"] is True
    assert projects["EC-CANTEEN-9"]["retired_reason"] == "改作社区办公用房"
    assert projects["EC-COMPLEX-1"]["provincial_key"] is True
    assert projects["EC-COMPLEX-2"]["provincial_key"] is False
    assert projects["EC-RURAL-1"]["provincial_key"] is True      # from its assessment
    assert projects["EC-HA-FH"]["kind"] == "programme"
    assert {"unit": "echeng", "township": "凤凰街道", "project_type": "canteen",
            "project_year": 2022, "registered": True}.items() <= projects["EC-CANTEEN-1"].items()
    expected = [("echeng", "凤凰街道", 5), ("echeng", "泽林镇", 3), ("huarong", "华容镇", 1)]

    async def townships() -> list[tuple[str, str, int]]:
        rows = (await client.get("/registry-view/townships", headers=INSPECTOR)).json()
        return [(t["unit"], t["township"], t["households"]) for t in rows]

    # Households come in their own events, after the projects the fixture waited for.
    await eventually(lambda: _equal(townships(), expected), what="the households in the view")
    dump = await s.fetchval(database, """
        SELECT string_agg(t::text, ' ') FROM (
            SELECT p::text AS t FROM inspection.projects p UNION ALL
            SELECT h::text FROM inspection.households h) x""")
    assert s.SEALED_MARK not in dump and "示例村" not in dump
    # A district role sees its own unit's part of the view only.
    own = (await client.get("/registry-view/projects?unit=echeng",
                            headers=auth("tok-echeng-reporter"))).json()
    assert own and {p["unit"] for p in own} == {"echeng"}
    other = await client.get("/registry-view/projects?unit=huarong",
                             headers=auth("tok-echeng-reporter"))
    assert other.status_code == 403


# --- the draw ----------------------------------------------------------------------------------


async def test_freeze_commit_reveal_gives_a_list_that_verify_draw_accepts(service, database,
                                                                          tmp_path):
    client, clock = service
    summary = await s.drawn(client, clock)
    assert summary["stage"] == "drawn"
    canteens = s.stratum(summary, "echeng/canteen")
    assert canteens["frame_size"] == 5 and canteens["sample_size"] == 3     # ⌈5/2⌉
    assert canteens["excluded"] == [{"id": "EC-CANTEEN-9", "code": "retired",
                                     "detail": "改作社区办公用房"}]
    assert s.stratum(summary, "echeng/complex")["picks"] == ["EC-COMPLEX-1"]
    assert s.stratum(summary, "echeng/rural_center")["picks"] == ["EC-RURAL-1"]
    assert s.stratum(summary, "huarong/home_adaptation")["insufficient_sample"] is True
    assert s.stratum(summary, "gedian/canteen")["no_eligible_project"] is True
    assert len(summary["strata"]) == 5 * 5

    response = await client.get(f"/draws/{DRAW_ID}/list", headers=INSPECTOR)
    assert response.status_code == 200
    doc = response.json()
    assert doc["units"] == s.UNITS and verify_document(doc) == []
    path = tmp_path / "draw.json"
    path.write_bytes(response.content)
    result = subprocess.run([LOOKBACK, "inspection", "verify-draw", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("MATCH") and doc["frames_digest"] in result.stdout
    # Tampering with the served document is caught by the same verifier.
    record = next(r for r in doc["strata"] if r["stratum"] == "echeng/canteen")
    record["picks"][0], record["replacements"][0] = record["replacements"][0], record["picks"][0]
    assert verify_document(doc)

    xlsx = await client.get(f"/draws/{DRAW_ID}/list.xlsx", headers=INSPECTOR)
    assert xlsx.status_code == 200
    assert "attachment" in xlsx.headers["content-disposition"]
    workbook = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    assert workbook.sheetnames == AREAS          # the units as people name them
    cells = [c for row in workbook["鄂城区"].iter_rows(values_only=True) for c in row if c]
    assert summary["frames_digest"] in cells and s.ENTROPY in cells

    # The read models catch up: the draw, its strata and the picks per unit.
    async def drawn_in_read_model():
        body = (await client.get(f"/draws/{DRAW_ID}", headers=INSPECTOR)).json()
        return body if body.get("stage") == "drawn" else False

    body = await eventually(drawn_in_read_model, what="the drawn draw in the read model")
    assert body["entropy"] == s.ENTROPY and len(body["strata"]) == 25
    picks = (await client.get(f"/draws/{DRAW_ID}/picks?unit=echeng", headers=INSPECTOR)).json()
    echeng = picks["units"][0]["picks"]
    canteen_picks = [p["target_id"] for p in echeng if p["stratum"] == "echeng/canteen"]
    assert canteen_picks == canteens["picks"]
    households = [p for p in echeng if p["target_kind"] == "household"]
    assert [p["target_id"] for p in households] == summary["active_households"]["echeng"]
    assert all(p["selection"] == "R3" and p["name"].endswith("(示例)") for p in households)
    assert (await _draw_events(database)) == [
        "inspection.FrameFrozen", "inspection.EntropyCommitted", "inspection.EntropyRevealed",
        "inspection.SampleDrawn"]


async def test_the_draw_steps_keep_their_order_and_errors_map_to_http(service, database):
    client, clock = service
    clock.now = s.FROZEN_AT
    missing = await client.post("/draws/nope/entropy-commitment", headers=INSPECTOR,
                                json={"draw_id": "nope", "statement": "3D"})
    assert missing.status_code == 404 and missing.json()["error"] == "draw_not_found"
    assert (await client.post("/draws", headers=INSPECTOR,
                              json={"draw_id": DRAW_ID, "title": "t"})).status_code == 201
    again = await client.post("/draws", headers=INSPECTOR, json={"draw_id": DRAW_ID, "title": "t"})
    assert again.status_code == 409 and again.json()["error"] == "frame_already_frozen"
    early = await client.post(f"/draws/{DRAW_ID}/entropy-reveal", headers=INSPECTOR,
                              json={"draw_id": DRAW_ID, "entropy": "1"})
    assert early.status_code == 409 and early.json()["error"] == "entropy_not_committed"
    for body, field in ((({"draw_id": "other", "entropy": "1"}), "draw_id"),
                        (({"draw_id": DRAW_ID}), "entropy")):
        bad = await client.post(f"/draws/{DRAW_ID}/entropy-reveal", headers=INSPECTOR, json=body)
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == field
    slashed = await client.post("/draws", headers=INSPECTOR,
                                json={"draw_id": "a/b", "title": "t"})
    assert slashed.status_code == 422 and slashed.json()["detail"][0]["field"] == "draw_id"
    assert await _draw_events(database) == ["inspection.FrameFrozen"]


async def test_only_inspectors_and_city_admins_act_and_a_refusal_writes_nothing(service, database):
    client, clock = service
    await s.drawn(client, clock, headers=auth("tok-admin"))    # city_admin may run a draw
    before = await _draw_events(database)
    canteen = s.CANTEENS[0].project_id
    commands = [
        ("/draws", {"draw_id": "second", "title": "t"}),
        (f"/draws/{DRAW_ID}/entropy-commitment", {"draw_id": DRAW_ID, "statement": "3D"}),
        (f"/draws/{DRAW_ID}/entropy-reveal", {"draw_id": DRAW_ID, "entropy": "1"}),
        (f"/draws/{DRAW_ID}/discretionary-picks",
         {"draw_id": DRAW_ID, "project_id": "EC-COMPLEX-2", "reason": "群众反映"}),
        (f"/draws/{DRAW_ID}/household-replacements",
         {"draw_id": DRAW_ID, "household_code": "FH-1", "reason_code": "moved"}),
        (f"/draws/{DRAW_ID}/visits",
         {"draw_id": DRAW_ID, "visit_id": "v1", "target_kind": "project", "target_id": canteen,
          "scheduled_for": VISIT_DAY.isoformat(), "inspector_ids": ["insp-1"]}),
        (f"/draws/{DRAW_ID}/visits/v1/record",
         {"draw_id": DRAW_ID, "visit_id": "v1", "outcome": "passed",
          "visited_on": VISIT_DAY.isoformat(), "inspector_ids": ["insp-1"]}),
        (f"/draws/{DRAW_ID}/visits/v1/findings",
         {"draw_id": DRAW_ID, "visit_id": "v1", "text": "x", "deadline": "2024-05-20"}),
    ]
    for token in s.OUTSIDER_TOKENS:
        for path, body in commands:
            response = await client.post(path, headers=auth(token), json=body)
            assert response.status_code == 403, (token, path, response.text)
            assert response.json()["error"] == "forbidden"
    for path, body in commands[:1]:
        assert (await client.post(path, json=body)).status_code == 401
        assert (await client.post(path, headers=auth("forged"), json=body)).status_code == 401
    assert await _draw_events(database) == before
    assert await s.fetchval(database, "SELECT count(*) FROM es.events WHERE category = 'draw' "
                                      "AND stream_id <> $1", draw_stream(DRAW_ID)) == 0
    # ...while the inspector's identical discretionary pick goes through.
    path, body = commands[3]
    ok = await client.post(path, headers=INSPECTOR, json=body)
    assert ok.status_code == 201, ok.text
    assert ok.json()["project"]["project_id"] == "EC-COMPLEX-2"


async def test_a_district_role_sees_only_its_own_units_draw_list(service):
    client, clock = service
    await s.drawn(client, clock)
    reporter = auth("tok-echeng-reporter")
    own = await client.get(f"/draws/{DRAW_ID}/list", headers=reporter)
    assert own.status_code == 200
    doc = own.json()
    assert doc["units"] == ["echeng"] and verify_document(doc) == []
    assert {r["frame"]["unit"] for r in doc["strata"]} == {"echeng"}
    assert {label["unit"] for label in doc["labels"]["projects"].values()} == {"echeng"}
    assert (await client.get(f"/draws/{DRAW_ID}/list?unit=huarong",
                             headers=reporter)).status_code == 403
    huarong = (await client.get(f"/draws/{DRAW_ID}/list",
                                headers=auth("tok-huarong-reporter"))).json()
    assert huarong["units"] == ["huarong"] and verify_document(huarong) == []
    sheet = await client.get(f"/draws/{DRAW_ID}/list.xlsx", headers=reporter)
    assert openpyxl.load_workbook(io.BytesIO(sheet.content)).sheetnames == ["鄂城区"]
    assert "draw-ezhou-2024-city-01-echeng.xlsx" in sheet.headers["content-disposition"]

    await eventually(lambda: _stage_is(client, "drawn"), what="the drawn read model")
    for path in ("picks", "progress", "visits", "findings"):
        other = await client.get(f"/draws/{DRAW_ID}/{path}?unit=huarong", headers=reporter)
        assert other.status_code == 403, path
    picks = (await client.get(f"/draws/{DRAW_ID}/picks", headers=reporter)).json()
    assert [u["unit"] for u in picks["units"]] == ["echeng"]
    progress = (await client.get(f"/draws/{DRAW_ID}/progress", headers=reporter)).json()
    assert [p["unit"] for p in progress] == ["echeng"]
    draw = (await client.get(f"/draws/{DRAW_ID}", headers=reporter)).json()
    assert {st["unit"] for st in draw["strata"]} == {"echeng"}
    # Leaders and auditors read everything.
    everything = (await client.get(f"/draws/{DRAW_ID}/list", headers=auth("tok-auditor"))).json()
    assert everything["units"] == s.UNITS
    progress = (await client.get(f"/draws/{DRAW_ID}/progress", headers=auth("tok-leader"))).json()
    assert [p["unit"] for p in progress] == sorted(s.UNITS)


async def _stage_is(client, stage: str) -> bool:
    body = (await client.get(f"/draws/{DRAW_ID}", headers=INSPECTOR)).json()
    return body.get("stage") == stage


# --- visits and findings -----------------------------------------------------------------------


async def test_visits_and_findings_become_finding_events_and_progress(service, database):
    client, clock = service
    summary = await s.drawn(client, clock)
    canteen = s.stratum(summary, "echeng/canteen")["picks"][0]
    first, second = summary["active_households"]["echeng"]
    # 07:30 in Ezhou is still the day before in UTC: "today" must be the campaign's local day.
    clock.now = s.EARLY_ON_VISIT_DAY

    async def post(path: str, body: dict, status: int = 201) -> dict:
        response = await client.post(f"/draws/{DRAW_ID}{path}", headers=INSPECTOR,
                                     json={"draw_id": DRAW_ID, **body})
        assert response.status_code == status, response.text
        return response.json()

    def visit(visit_id: str, kind: str, target: str) -> dict:
        return {"visit_id": visit_id, "target_kind": kind, "target_id": target,
                "scheduled_for": VISIT_DAY.isoformat(), "inspector_ids": ["insp-1", "insp-2"]}

    await post("/visits", visit("v-canteen", "project", canteen))
    recorded = await post("/visits/v-canteen/record", {
        "visit_id": "v-canteen", "outcome": "problems_found", "visited_on": VISIT_DAY.isoformat(),
        "inspector_ids": ["insp-1", "insp-2"], "checklist": s_checklist("canteen", "no"),
        "findings": [{"text": "助餐服务未开展", "deadline": "2024-05-24"},
                     {"text": "消防器材过期", "deadline": "2024-05-17"}]}, status=200)
    assert recorded["outcome"] == "problems_found" and len(recorded["findings"]) == 2
    extra = await post("/visits/v-canteen/findings",
                       {"visit_id": "v-canteen", "text": "服务台账缺失", "deadline": "2024-05-24"})
    assert extra["unit"] == "echeng" and extra["project_id"] == canteen

    # A household nobody could see is replaced by the next of its sequence, which is visited.
    await post("/visits", visit("v-home-1", "household", first))
    await post("/visits/v-home-1/record", {
        "visit_id": "v-home-1", "outcome": "unable_to_enter", "visited_on": VISIT_DAY.isoformat(),
        "inspector_ids": ["insp-1"], "unable_reason_code": "absent"}, status=200)
    replaced = await post("/household-replacements",
                          {"household_code": first, "reason_code": "absent"})
    newcomer = replaced["replacement_household"]
    assert replaced["active_households"] == [newcomer, second]
    await post("/visits", visit("v-home-2", "household", newcomer))
    await post("/visits/v-home-2/record", {
        "visit_id": "v-home-2", "outcome": "passed", "visited_on": VISIT_DAY.isoformat(),
        "inspector_ids": ["insp-1"], "checklist": s_checklist("home_adaptation")}, status=200)
    await post("/visits", visit("v-complex", "project", "EC-COMPLEX-1"))
    future = await post("/visits/v-complex/record", {
        "visit_id": "v-complex", "outcome": "passed", "visited_on": "2024-05-11",
        "inspector_ids": ["insp-1"], "checklist": s_checklist("complex")}, status=409)
    assert future["error"] == "visit_rule_broken"

    rows = await s.fetch(database, """SELECT payload, metadata FROM es.events
                                       WHERE event_type = 'inspection.FindingRecorded'
                                       ORDER BY stream_version""")
    payloads = [json.loads(r["payload"]) for r in rows]
    assert [p["text"] for p in payloads] == ["助餐服务未开展", "消防器材过期", "服务台账缺失"]
    assert {(p["unit"], p["project_id"], p["draw_id"]) for p in payloads} == {
        ("echeng", canteen, DRAW_ID)}
    meta = json.loads(rows[0]["metadata"])
    assert meta["actor"]["id"] == "insp-1" and meta["actor"]["role"] == "inspector"

    async def findings_projected():
        # Until the draw reaches its read model the answer is a 404 body (a dict of three keys,
        # which a bare len() would mistake for three findings).
        response = await client.get(f"/draws/{DRAW_ID}/findings", headers=INSPECTOR)
        rows = response.json() if response.status_code == 200 else []
        return rows if len(rows) == 3 else False

    await eventually(findings_projected, what="three findings in the read model")

    state = await _state(database)
    expected = d.visit_progress(state)

    async def progress_matches_the_domain():
        response = await client.get(f"/draws/{DRAW_ID}/progress", headers=INSPECTOR)
        rows = response.json() if response.status_code == 200 else []
        seen = {r["unit"]: r for r in rows}
        wanted = {unit: {"unit": unit, "sampled": p.sampled, "scheduled": p.scheduled,
                         "inspected": p.inspected, "passed": p.passed,
                         "problems_found": p.problems_found, "unable_to_enter": p.unable_to_enter,
                         "findings": p.findings, "no_eligible_strata": list(p.no_eligible_strata),
                         "insufficient_sample": p.insufficient_sample}
                  for unit, p in expected.items()}
        return seen if seen == wanted else False

    progress = await eventually(progress_matches_the_domain, what="progress = visit_progress")
    assert progress["echeng"]["inspected"] == 2 and progress["echeng"]["findings"] == 3
    assert progress["echeng"]["scheduled"] == 1          # the complex, not yet recorded

    picks = (await client.get(f"/draws/{DRAW_ID}/picks?unit=echeng", headers=INSPECTOR)).json()
    by_id = {p["target_id"]: p for p in picks["units"][0]["picks"]}
    assert by_id[first]["in_sample"] is False and by_id[first]["replaced_by"] == newcomer
    assert by_id[newcomer]["selection"] == "replacement" and by_id[newcomer]["replaces"] == first
    assert by_id[newcomer]["sequence_no"] == 3
    # The exported list records the replacement and still verifies.
    doc = (await client.get(f"/draws/{DRAW_ID}/list?unit=echeng", headers=INSPECTOR)).json()
    assert verify_document(doc) == []
    adaptation = next(r for r in doc["strata"] if r["stratum"] == "echeng/home_adaptation")
    assert adaptation["household_replacements"] == [
        {"replaced": first, "replacement": newcomer, "reason_code": "absent"}]


def s_checklist(project_type: str, answer: str = "yes") -> dict[str, str]:
    return {item: answer for item in d.DEFAULT_CHECKLISTS[project_type]}


async def test_every_command_goes_through_the_kernels_pipeline_and_is_counted(service):
    client, clock = service
    await s.drawn(client, clock)
    again = await client.post("/draws", headers=INSPECTOR, json={"draw_id": DRAW_ID, "title": "t"})
    assert again.status_code == 409
    counted = {(sample.labels["command"], sample.labels["outcome"]): sample.value
               for family in text_string_to_metric_families((await client.get("/metrics")).text)
               if family.name == "lookback_commands"
               for sample in family.samples
               if sample.name == "lookback_commands_total"
               and sample.labels["service"] == "inspection"}
    assert counted == {("FreezeFrame", "accepted"): 1.0, ("CommitEntropy", "accepted"): 1.0,
                       ("RevealEntropy", "accepted"): 1.0, ("FreezeFrame", "rejected"): 1.0}
