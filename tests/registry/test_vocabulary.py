"""Chinese everywhere a person reads, on the registry: one vocabulary for the API's codes and the
bulk import's words (GET /vocabulary), 422s that say which codes are valid, refusals in Chinese,
instants in the campaign's offset."""
from __future__ import annotations

import pytest

from services.registry import events as e
from services.registry import vocabulary as vocab
from services.registry.importing import parse_xlsx, rows_to_xlsx
from shared.campaign import load_campaign
from tests.registry.support import as_, liaison_body, project_body, registry_client
from tests.registry.test_importing import TODAY, plan_of, project_row

CAMPAIGN = load_campaign()


@pytest.mark.unit
def test_every_code_of_the_registrys_enums_has_its_chinese_in_the_vocabulary():
    for terms, enum in ((vocab.STATUS, e.OperatingStatus), (vocab.OPERATOR_KIND, e.OperatorKind),
                        (vocab.RETIREMENT_REASON, e.RetirementReason),
                        (vocab.LIAISON_ROLE, e.LiaisonRole), (vocab.GENDER, e.Gender),
                        (vocab.LEDGER_STATE, e.LedgerState)):
        assert set(terms.codes) == {m.value for m in enum}
        assert all(not terms.label(code).isascii() for code in terms.codes)


@pytest.mark.unit
@pytest.mark.parametrize("term", [t for t in vocab.STATUS.terms if t.code != "retired"],
                         ids=lambda t: t.code)
def test_the_bulk_import_reads_every_word_the_vocabulary_lists_for_a_status(term):
    for word in (term.code, term.label, *term.aliases):
        plan = plan_of(parse_xlsx(rows_to_xlsx([project_row(status=word)]), CAMPAIGN, today=TODAY))
        [item] = plan.items
        assert item.command.claimed_status.value == term.code


@pytest.mark.unit
def test_the_bulk_import_reads_project_types_by_campaign_name_or_alias():
    types = vocab.project_types(CAMPAIGN)
    for word in ("幸福食堂", "老年食堂", "canteen"):
        plan = plan_of(parse_xlsx(rows_to_xlsx([project_row(project_type=word)]), CAMPAIGN,
                                  today=TODAY))
        assert plan.items[0].command.project_type == types.find(word).code == "canteen"


@pytest.mark.integration
async def test_the_vocabulary_endpoint_lists_every_code_with_its_chinese(database):
    async with registry_client(database) as client:
        assert (await client.get("/vocabulary")).status_code == 401
        answer = await client.get("/vocabulary", headers=as_("echeng-reporter"))
        assert answer.status_code == 200, answer.text
        sets = {s["kind"]: s for s in answer.json()["sets"]}
        labels = {kind: {t["code"]: t["label"] for t in s["terms"]} for kind, s in sets.items()}
        assert labels["service"]["meal_assistance"] == "助餐"
        assert labels["operating_status"] == {"operating": "正常运营", "underperforming": "运营不佳",
                                              "not_operating": "未投入运营",
                                              "retired": "已退出（改作他用、撤并或拆除）"}
        assert labels["unit"]["echeng"] == "鄂城区民政局"
        assert labels["ledger_state"]["rectified"] == "整改完成，待复评"
        assert labels["status_reason"]["no_meal_assistance"] == "未开展助餐服务"
        assert set(labels["project_type"]) == {t.code for t in CAMPAIGN.project_types}
        status = {t["code"]: t for t in sets["operating_status"]["terms"]}
        assert "闲置" in status["not_operating"]["aliases"]          # what the import accepts


@pytest.mark.integration
async def test_a_422_names_the_valid_codes_and_says_so_in_chinese(database):
    async with registry_client(database) as client:
        answer = await client.get("/projects", params={"unit": "wuhan"}, headers=as_("admin"))
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert body["detail"][0]["valid"] == list(CAMPAIGN.unit_codes)
        assert "wuhan" in body["message"] and "echeng（鄂城区民政局）" in body["message"]

        answer = await client.post("/projects", json=project_body(services=["massage", "day_care"]),
                                   headers=as_("admin"))
        assert answer.status_code == 422, answer.text
        body = answer.json()
        [problem] = body["detail"]
        assert problem["field"] == "services[0]"
        assert "meal_assistance" in problem["valid"]
        assert "养老服务“massage”不是可选的养老服务" in body["message"]
        assert "meal_assistance（助餐）" in body["message"]

        answer = await client.post("/projects", json=project_body(claimed_status="busy"),
                                   headers=as_("admin"))
        assert answer.status_code == 422, answer.text
        [problem] = answer.json()["detail"]
        assert problem["field"] == "claimed_status"
        assert problem["valid"] == ["operating", "underperforming", "not_operating", "retired"]


@pytest.mark.integration
async def test_refusals_say_in_chinese_what_to_do(database):
    async with registry_client(database) as client:
        other_unit = await client.post("/projects", json=project_body(),
                                       headers=as_("huarong-reporter"))
        assert other_unit.status_code == 403
        assert other_unit.json()["message"] == "您只能为本单位登记项目，不能为其他单位操作。"
        created = await client.post("/projects", json=project_body(), headers=as_("admin"))
        project_id = created.json()["project_id"]
        again = await client.post("/projects", json=project_body(), headers=as_("admin"))
        assert again.status_code == 422
        assert "请勿重复登记" in again.json()["message"]
        missing = await client.post("/projects/nope/assessments", headers=as_("admin"), json={
            "project_id": "nope", "claimed_status": "operating", "assessor": "张某(示例)",
            "assessed_on": "2024-04-01", "evidence": "(示例)"})
        assert missing.status_code == 404 and "未找到该项目" in missing.json()["message"]
        retired = await client.post(f"/projects/{project_id}/retirement", headers=as_("admin"), json={
            "project_id": project_id, "reason_code": "repurposed", "reason": "改作社区用房(示例)",
            "retired_on": "2024-04-01"})
        assert retired.status_code == 201, retired.text
        assessed = await client.post(f"/projects/{project_id}/assessments", headers=as_("admin"),
                                     json={"project_id": project_id, "claimed_status": "operating",
                                           "assessor": "张某(示例)", "assessed_on": "2024-04-02",
                                           "evidence": "(示例)"})
        assert assessed.status_code == 409
        assert assessed.json()["message"].startswith("该项目已退出")


@pytest.mark.integration
async def test_instants_in_answers_carry_the_campaigns_offset(database):
    async with registry_client(database) as client:
        created = await client.post("/projects", json=project_body(), headers=as_("admin"))
        project_id = created.json()["project_id"]
        liaison = await client.post("/liaisons", json=liaison_body(), headers=as_("admin"))
        history = await client.get(f"/projects/{project_id}", headers=as_("admin"))
        occurred = [h["occurred_at"] for h in history.json()["history"]]
        assert occurred and all(t.endswith("+08:00") for t in occurred)
        listed = await client.get("/liaisons", headers={
            **as_("admin"), "X-Lookback-After": liaison.headers["X-Lookback-Token"]})
        [row] = listed.json()["items"]
        assert row["registered_at"] == "2024-04-10T10:00:00+08:00"
