"""The rectification service's exports as they print (issue 12, "paper that prints"): rendered by
LibreOffice to PDF, each page A4 landscape, the header row on every page, about fifteen two-line
items a page, formulas printed as the text they are; the first page of each written to
var/prints/ (tests/paper.py) for a person to look at, and the page counts of the sample data
written beside them (rectification-page-counts.json)."""
from __future__ import annotations

import json
import math
import uuid
from datetime import date

import asyncpg
import pytest

from services.rectification import events as e
from services.rectification import xlsx_export as x
from services.registry.seeding import seed_if_empty
from shared.settings import Settings
from tests.faults import eventually
from tests.paper import PRINTS_DIR, Printed, render

from .api_support import Clock, auth, post, rectification
from .support import CONFIG, RULES, at

FORM_HEADER, STATUS_HEADER = "存在的问题隐患", "销号状态"
DESCRIPTIONS = ("列入台账：项目运营不佳,作用发挥不够（专业养老服务不足3项；未开展助餐服务）",
                "助餐服务未正常开展，老年人就餐登记台账缺失，近三个月无服务记录(示例)")


def synthetic_rows(n: int) -> list[e.ProblemListRow]:
    """n items of two lines each (a long project name and description), 立行立改 and dated."""
    return [e.ProblemListRow(
        problem_id=uuid.UUID(int=i), seq_no=i, township="鄂州经济开发区",
        project_name=f"凤凰街道(示例){i}号社区居家养老服务中心", project_year=2022,
        description=DESCRIPTIONS[i % 2], deadline=date(2024, 12, 8),
        deadline_kind=e.DeadlineKind.IMMEDIATE if i % 2 else e.DeadlineKind.DATE,
        responsible_person="王某某(示例)", status=("registered", "closed")[i % 2])
        for i in range(1, n + 1)]


def pages_with(printed: Printed, text: str) -> list[int]:
    """1-based numbers of the pages whose text has `text` on one line (spaces ignored)."""
    wanted = "".join(text.split())
    return [n for n, page in enumerate(printed.texts, start=1)
            if any(wanted in "".join(line.split()) for line in page.splitlines())]


def form_and_status_pages(printed: Printed) -> tuple[list[int], list[int]]:
    """The pages of the 附件2 form and of the 销号情况 sheet: every page has one header or the other
    (the header row is repeated), and none has both."""
    form, status = pages_with(printed, FORM_HEADER), pages_with(printed, STATUS_HEADER)
    assert sorted(form + status) == list(range(1, printed.pages + 1)), (form, status)
    return form, status


@pytest.mark.integration
def test_thirty_two_line_items_print_fifteen_a_page_a4_landscape_with_the_header_on_each(tmp_path):
    rows = synthetic_rows(30)
    rows[0] = rows[0].model_copy(update={"project_name": '=HYPERLINK("http://evil.example","点击")'})
    content = x.export_problem_list(
        rows, unit_name="鄂城区民政局", title=CONFIG.problem_list_title, as_of=at(2024, 3, 25),
        rules=RULES, footer=x.ListFooter(submitter="李某(示例)", reviewer="王某(示例)",
                                         day=date(2024, 3, 25)))
    printed = render({"rectification-list-30": content}, tmp_path)["rectification-list-30"]
    assert printed.all_a4(landscape=True), printed.sizes
    form, status = form_and_status_pages(printed)
    assert len(form) == 2                              # 15 two-line items a page
    assert len(status) <= 2
    first = printed.texts[0]
    assert "鄂州市养老领域重点民生项目“回头看”问题清单" in first and "填报单位：鄂城区民政局" in first
    assert '=HYPERLINK("http://' in first and "点击" not in first.replace('"点击"', "")  # as typed
    assert 1 in pages_with(printed, "立行立改（2024年12月8日前）")             # on one line
    assert pages_with(printed, "填报人：李某(示例)") == [form[-1]]


@pytest.mark.integration
async def test_the_sample_datas_exports_print(database, tmp_path):
    """The registry's sample (every 台账 entry opens an item; 附件1 names each unit's 责任领导),
    the rectification service's exports of it, printed."""
    assert await seed_if_empty(Settings(database_url=database)) is not None
    connection = await asyncpg.connect(database)
    try:
        entries = await connection.fetchval(
            "SELECT count(*) FROM es.events WHERE event_type = 'registry.LedgerEntryAdded'")
    finally:
        await connection.close()
    clock = Clock(at(2024, 3, 25, 16))
    async with rectification(database, tmp_path, clock) as api:
        async def all_items_with_a_responsible_person() -> list | None:
            body = (await api.get("/problems?limit=1000", headers=auth("admin"))).json()
            items = body["items"]
            complete = len(items) == entries and all(i["responsible_person_effective"] for i in items)
            return items if complete else None

        items = await eventually(all_items_with_a_responsible_person, timeout=60,
                                 what=f"{entries} ledger items, each with a 责任人")
        assert not any("_" in item["description"] for item in items)   # no reason codes left
        await post(api, "/reports/monthly-list/submit", "rep-echeng",
                   {"unit": "echeng", "month": "2024-03"})
        exports = {"rectification-city-problem-list": "/problem-list.xlsx",
                   "rectification-monthly-list-echeng-2024-03":
                       "/reports/echeng-monthly_list-2024-03/xlsx"}
        exports |= {f"rectification-problem-list-{unit}": f"/problem-list.xlsx?unit={unit}"
                    for unit in CONFIG.units}
        files: dict[str, bytes] = {}
        for name, path in exports.items():
            response = await api.get(path, headers=auth("admin"))
            assert response.status_code == 200, (path, response.text)
            files[name] = response.content

    per_unit = {unit: sum(i["unit"] == unit for i in items) for unit in CONFIG.units}
    counts = {"city": len(items), "rectification-monthly-list-echeng-2024-03": per_unit["echeng"]}
    printed = render(files, tmp_path)
    summary = {}
    for name, pdf in printed.items():
        assert pdf.all_a4(landscape=True), (name, pdf.sizes)
        form, status = form_and_status_pages(pdf)
        n = (counts["city"] if name == "rectification-city-problem-list"
             else per_unit.get(name.rsplit("-", 1)[-1], counts.get(name, 0)))
        # about fifteen items a page (one- to three-line rows), never fewer than one page
        assert max(1, math.ceil(n / 20)) <= len(form) <= max(1, math.ceil(n / 10)), (name, n, form)
        assert pages_with(pdf, "填报人："), name                   # the footer made it to paper
        summary[name] = {"items": n, "pages": pdf.pages, "form_pages": len(form),
                         "status_pages": len(status), "a4_landscape": True,
                         "first_page": str(PRINTS_DIR / f"{name}.png")}
    (PRINTS_DIR / "rectification-page-counts.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
