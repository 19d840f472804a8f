"""Bulk import over HTTP (.xlsx and CSV): every valid row or none, every bad row named with its
row number and reason, one atomic append, and the same file twice adds nothing."""
from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from services.registry.importing import HOUSEHOLDS, PROJECTS, rows_to_csv, rows_to_xlsx
from tests.registry.support import (
    project_body,
    projected,
    registry_client,
    registry_event_count,
    subject_key_count,
)
from tests.support.actors import auth
from tests.support.databases import fetchval

pytestmark = pytest.mark.integration

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def project_row(name: str, **overrides: Any) -> dict[str, Any]:
    row = {"unit": "鄂城区", "project_type": "幸福食堂", "name": name, "township": "凤凰街道",
           "village": "滨湖社区", "project_year": 2022, "provincial_key": "否",
           "operator_kind": "专业机构", "operator_name": "(示例)餐饮管理有限公司",
           "contract_start": "2023-01-01", "contract_end": "2025-12-31",
           "services": "助餐、日间照料、助洁", "status": "正常运营"}
    row.update(overrides)
    return row


def household_row(code: str, **overrides: Any) -> dict[str, Any]:
    row = {"unit": "鄂城区", "township": "凤凰街道", "village": "滨湖社区", "household_code": code,
           "adaptation_year": 2022, "items": "地面防滑处理、如厕洗浴区扶手", "acceptance_date": "2022-11-03",
           "name": "刘某某(示例)", "address": "凤凰街道滨湖社区(示例)3组", "phone": "13800000011"}
    row.update(overrides)
    return row


PROJECT_ROWS = [project_row("(示例)滨湖幸福食堂"),
                project_row("(示例)古楼幸福食堂", township="古楼街道", village=None, services="助餐",
                            status="运营中"),
                project_row("(示例)泽林综合体", project_type="街道(乡镇)养老服务综合体", township="泽林镇",
                            provincial_key="是", village=None)]
HOUSEHOLD_ROWS = [household_row(f"EC-IMP-{n:03d}", phone=f"1380000{n:04d}" if n % 2 else "")
                  for n in range(1, 6)] + [household_row("EC-IMP-100", township="杜山镇",
                                                         adaptation_year=2023,
                                                         acceptance_date="2023-08-01")]


async def upload_xlsx(client: httpx.AsyncClient, data: bytes, who: str = "admin-1") -> httpx.Response:
    return await client.post("/imports", content=data, headers=auth(who) | {"Content-Type": XLSX})


async def upload_csv(client: httpx.AsyncClient, who: str = "admin-1", **files: bytes) -> httpx.Response:
    return await client.post("/imports", headers=auth(who), files={
        name: (f"{name}.csv", data, "text/csv") for name, data in files.items()})


async def import_tx_count(dsn: str, correlation_id: str) -> int:
    return await fetchval(dsn, "SELECT count(DISTINCT tx_id) FROM es.events "
                               "WHERE metadata->>'correlation_id' = $1", correlation_id)


async def test_an_xlsx_import_registers_every_row_in_one_append_and_again_adds_nothing(database):
    workbook = rows_to_xlsx(PROJECT_ROWS, HOUSEHOLD_ROWS)
    async with registry_client(database) as client:
        first = await upload_xlsx(client, workbook)
        assert first.status_code == 201, first.text
        result = first.json()
        assert (result["project_rows"], result["household_rows"]) == (3, 6)
        assert (result["projects_registered"], result["programmes_registered"],
                result["households_registered"]) == (3, 2, 6)
        # 3 registrations + 1 ledger entry (助餐 alone is underperforming) + 2 × (programme + households)
        assert result["events_appended"] == 8 and result["streams_written"] == 5
        assert await import_tx_count(database, result["correlation_id"]) == 1  # one atomic append
        written = await registry_event_count(database)
        keys = await subject_key_count(database)
        assert (written, keys) == (8, 6)

        again = await upload_xlsx(client, workbook)
        assert again.status_code == 200, again.text
        assert again.json()["events_appended"] == 0 and again.json()["unchanged"] == 7
        assert (await registry_event_count(database), await subject_key_count(database)) == (written, keys)

        projects = await projected(client, "/projects", lambda b: b["total"] == 3)
        assert {p["name"]: p["status"] for p in projects["items"]} == {
            "(示例)滨湖幸福食堂": "operating", "(示例)古楼幸福食堂": "underperforming",
            "(示例)泽林综合体": "operating"}
        programmes = await projected(client, "/programmes", lambda b: sum(
            p["households"] for p in b["items"]) == 6)
        assert sorted((p["township"], p["year"], p["households"]) for p in programmes["items"]) == [
            ("凤凰街道", 2022, 5), ("杜山镇", 2023, 1)]


async def test_a_csv_import_of_both_sheets_is_all_or_nothing_and_idempotent(database):
    projects, households = rows_to_csv(PROJECTS, PROJECT_ROWS), rows_to_csv(HOUSEHOLDS, HOUSEHOLD_ROWS)
    async with registry_client(database) as client:
        broken = rows_to_csv(HOUSEHOLDS, HOUSEHOLD_ROWS + [household_row("EC-IMP-200", phone="0000")])
        refused = await upload_csv(client, projects=projects, households=broken)
        assert refused.status_code == 422
        assert refused.json()["rows"] == [{"sheet": "households", "row": 8, "column": "phone",
                                           "reason": refused.json()["rows"][0]["reason"]}]
        assert (await registry_event_count(database), await subject_key_count(database)) == (0, 0)

        first = await upload_csv(client, projects=projects, households=households)
        assert first.status_code == 201, first.text
        assert first.json()["households_registered"] == 6 and first.json()["projects_registered"] == 3
        assert await import_tx_count(database, first.json()["correlation_id"]) == 1
        written = await registry_event_count(database)

        again = await upload_csv(client, projects=projects, households=households)
        assert again.status_code == 200 and again.json()["events_appended"] == 0
        assert await registry_event_count(database) == written

        one_sheet = await client.post("/imports?sheet=projects", content=projects,
                                      headers=auth("admin-1") | {"Content-Type": "text/csv"})
        assert one_sheet.status_code == 200 and one_sheet.json()["unchanged"] == 3


async def test_every_invalid_row_is_returned_with_its_number_and_reason_and_nothing_is_written(database):
    rows = [project_row("(示例)好食堂"),
            project_row("(示例)坏食堂一", township="华容镇", project_year=2030),
            project_row("(示例)坏食堂二", services="助餐、按摩", status="很好")]
    households = [household_row("EC-IMP-001"), household_row("EC-IMP-002", phone="12"),
                  household_row("EC-IMP-003", items="")]
    async with registry_client(database) as client:
        response = await upload_xlsx(client, rows_to_xlsx(rows, households))
        assert response.status_code == 422
        body = response.json()
        assert body["error"] == "import_refused"
        cells = {(r["sheet"], r["row"], r["column"]) for r in body["rows"]}
        assert {("projects", 3, "township"), ("projects", 3, "project_year"),
                ("projects", 4, "services"), ("projects", 4, "status"),
                ("households", 3, "phone"), ("households", 4, "items")} <= cells
        assert not any(r["row"] == 2 for r in body["rows"])  # the good rows are not blamed
        assert all(r["reason"] for r in body["rows"])
        assert {d["field"] for d in body["detail"]} >= {"projects[3].township", "households[3].phone"}
        assert "刘某某" not in response.text  # personal cells are never echoed back
        assert (await registry_event_count(database), await subject_key_count(database)) == (0, 0)


async def test_rows_that_clash_with_the_registry_refuse_the_whole_import(database):
    async with registry_client(database) as client:
        existing = await client.post("/projects", headers=auth("admin-1"), json=project_body(
            project_type="canteen", name="(示例)滨湖幸福食堂", services=["meal_assistance"],
            claimed_status="not_operating", operator={"kind": "none"}))
        assert existing.status_code == 201
        before = await registry_event_count(database)

        response = await upload_xlsx(client, rows_to_xlsx(PROJECT_ROWS, HOUSEHOLD_ROWS))
        assert response.status_code == 422
        assert [(r["sheet"], r["row"], r["column"]) for r in response.json()["rows"]] == [
            ("projects", 2, "name")]
        assert "already registered" in response.json()["rows"][0]["reason"]
        assert await registry_event_count(database) == before
        assert await subject_key_count(database) == 0


async def test_a_district_role_imports_only_its_own_units_rows(database):
    async with registry_client(database) as client:
        response = await upload_xlsx(client, rows_to_xlsx(PROJECT_ROWS), who="rep-huarong-1")
        assert response.status_code == 422
        assert {(r["row"], r["column"]) for r in response.json()["rows"]} == {(2, "unit"), (3, "unit"),
                                                                              (4, "unit")}
        assert await registry_event_count(database) == 0

        own = await upload_xlsx(client, rows_to_xlsx(PROJECT_ROWS), who="rep-echeng-1")
        assert own.status_code == 201
        listed = await projected(client, "/projects", lambda b: b["total"] == 3)
        project_id = listed["items"][0]["project_id"]
        history = (await client.get(f"/projects/{project_id}", headers=auth("admin-1"))).json()["history"]
        assert history[0]["actor"]["id"] == "rep-echeng-1"


async def test_uploads_that_are_not_a_workbook_or_csv_are_refused(database):
    async with registry_client(database) as client:
        not_a_workbook = await client.post("/imports", content=b"PK\x03\x04garbage",
                                           headers=auth("admin-1") | {"Content-Type": XLSX})
        assert not_a_workbook.status_code == 422
        assert "not a readable .xlsx" in not_a_workbook.json()["rows"][0]["reason"]
        unknown = await client.post("/imports", content=b"{}", headers=auth("admin-1") | {
            "Content-Type": "application/json"})
        assert unknown.status_code == 415
        csv_without_sheet = await client.post("/imports", content=b"a,b",
                                              headers=auth("admin-1") | {"Content-Type": "text/csv"})
        assert csv_without_sheet.status_code == 415
        assert await registry_event_count(database) == 0


async def test_the_import_template_can_be_downloaded_and_filled_in(database):
    async with registry_client(database) as client:
        response = await client.get("/imports/template", headers=auth("rep-echeng-1"))
        assert response.status_code == 200
        assert response.headers["content-type"] == XLSX
        assert "attachment" in response.headers["content-disposition"]
        workbook = load_workbook(io.BytesIO(response.content))
        assert {"projects", "households"} <= set(workbook.sheetnames)
        headers = [cell.value for cell in workbook["households"][1]]
        assert headers[0] == "填报单位\nunit" and "姓名\nname" in headers
        assert (await client.get("/imports/template")).status_code == 401
