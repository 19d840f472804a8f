"""The console in a real browser (Debian's Chromium, headless) against the real services on the
real PostgreSQL: what a person sees and does, and what the system records of it.

One system and one browser for the module (a fresh database cloned from the template, the
registry's sample, one account per role and unit); each test signs in the people it needs in
their own browser contexts. Screenshots of the main pages go to var/screenshots/.
"""
from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from playwright.async_api import Page, expect

from tests.console.browser import PHONE, PHONE_NUMBER, chromium, csrf_of, png, shot
from tests.console.support import PASSWORD, running_system
from tests.support.databases import fresh_database
from tests.support.polling import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# What each role is called on the page (the services' vocabulary names them; these words are in
# every version of it).
ROLE_NAMES = {"admin": "管理员", "inspector": "检查", "leader": "领导", "auditor": "审计",
              "reporter-echeng": "填报人", "reviewer-echeng": "审核人"}


@pytest.fixture(scope="module")
async def system(template_db, tmp_path_factory):
    async with fresh_database(template_db) as dsn:
        async with running_system(dsn, tmp_path_factory.mktemp("console")) as running:
            running.extra["dsn"] = dsn
            yield running


@pytest.fixture(scope="module")
async def browsing():
    async with chromium() as browser:
        yield browser


def today() -> datetime:
    return datetime.now(UTC) + timedelta(hours=8)


async def expect_status(page: Page, code: str) -> None:
    """The item's state as the page shows it: by its code, in Chinese (the label is the
    service's vocabulary's, so the test names the code and checks no code leaks as text)."""
    badge = page.locator("h1 .status")
    await expect(badge).to_have_attribute("data-status", code)
    text = await badge.inner_text()
    assert text and not re.search(r"[a-z_]", text), text


async def register_item(page: Page, url: str, description: str) -> str:
    """As a district reporter: 登记问题 through the form; the new item's id."""
    await page.goto(f"{url}/problems/new")
    await page.select_option("select[name=project_id]", index=0)
    await page.fill("textarea[name=description]", description)
    await page.fill("input[name=deadline]", (today() + timedelta(days=30)).date().isoformat())
    await page.fill("input[name=responsible_person]", "张某（示例）")
    await page.click("form button[type=submit]:has-text('登记')")
    await page.wait_for_url(re.compile(r"/problems/[0-9a-f-]{36}\?done=registered"))
    await expect_status(page, "registered")
    return page.url.split("/problems/")[1].split("?")[0]


async def request_close_out(page: Page, url: str, problem_id: str, photo_path, note: str) -> None:
    await page.goto(f"{url}/problems/{problem_id}")
    if await page.locator("textarea[name=plan]").count():
        await page.fill("textarea[name=plan]", "清理杂物，设置警示标识")
        await page.click("button:has-text('开始整改')")
        await expect_status(page, "in_rectification")
    await page.fill("textarea[name=evidence_text]", note)
    await page.set_input_files("input[name=files]", str(photo_path))
    await page.click("button:has-text('提交销号申请')")
    await expect_status(page, "close_out_requested")


async def board_closed(system, unit_name: str) -> int:
    """The 已销号 count of a unit on the board, as the city bureau reads it."""
    async with httpx.AsyncClient(base_url=system.console_url) as client:
        await client.post("/login", data={"username": "admin", "password": PASSWORD})
        page = (await client.get("/board")).text
    row = re.search(rf"<tr><td>\d+</td><td>{unit_name}</td>(.*?)</tr>", page, re.S)
    assert row, f"no board row for {unit_name}"
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))
    return int(cells[1])  # 问题数, 已销号, …


async def chart_values(system, name: str) -> list[str]:
    """The values a chart shows, read as the city bureau would see them."""
    async with httpx.AsyncClient(base_url=system.console_url) as client:
        await client.post("/login", data={"username": "admin", "password": PASSWORD})
        svg = (await client.get(f"/board/charts/{name}.svg")).text
    return re.findall(r'<desc class="value">([^<]*)</desc>', svg)


async def test_each_role_signs_in_to_its_own_desk_in_chinese(system, browsing):
    for account, role_name in ROLE_NAMES.items():
        async with browsing.person(system.console_url, account, PASSWORD) as page:
            assert await page.get_attribute("html", "lang") == "zh-CN"
            await expect(page.locator("h1")).to_have_text("工作台")
            header = await page.inner_text("header")
            assert role_name in header, header
            if account.endswith("echeng"):
                assert "鄂城区民政局" in header
            assert ("审计" in header) == (account in ("admin", "auditor")), header
            cookie = next(c for c in await page.context.cookies() if c["name"] == "lookback_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            if account in ("admin", "reporter-echeng", "reviewer-echeng"):
                await shot(page, f"desk-{account}")
            await page.click("header button:has-text('退出')")
            await page.wait_for_url(re.compile(r"/login$"))
            await page.goto(f"{system.console_url}/problems")
            assert "/login" in page.url  # signed out is signed out


async def test_a_reporter_requests_close_out_with_a_photo_and_only_another_person_verifies_it(
        system, browsing, tmp_path):
    url = system.console_url
    photo = tmp_path / "整改后现场照片.png"
    photo.write_bytes(png(11))
    chart_before = await chart_values(system, "progress")
    closed_before = await board_closed(system, "鄂城区民政局")
    async with browsing.person(url, "reporter-echeng", PASSWORD) as page:
        problem_id = await register_item(page, url, "消防通道堆放杂物（示例）")
        await request_close_out(page, url, problem_id, photo, "杂物已清理，照片为证（示例）")
        await shot(page, "problem-requested-by-reporter")
        assert await page.locator("form#verify").count() == 0  # not offered to the requester
        # ... and refused by the service when the requester sends it anyway
        forged = await page.request.post(f"{url}/problems/{problem_id}/verify", form={
            "csrf": await csrf_of(page), "conclusion": "自己核验自己（示例）"})
        assert forged.status in (403, 409), forged.status
        assert 'data-status="close_out_requested"' in await forged.text()
        # the uploaded photo is viewable by its uploader, byte for byte
        link = page.locator("ul.files a").first
        evidence = await page.request.get(url + await link.get_attribute("href"))
        assert evidence.status == 200 and evidence.headers["content-type"] == "image/png"
        assert await evidence.body() == photo.read_bytes()
    async with browsing.person(url, "reviewer-echeng", PASSWORD) as page:
        await expect(page.locator("#awaiting")).to_contain_text("消防通道堆放杂物（示例）")
        await page.goto(f"{url}/problems/{problem_id}")
        await page.fill("form#verify textarea[name=conclusion]", "现场核实，已整改到位（示例）")
        await page.click("form#verify button")
        await expect_status(page, "closed")
        await expect(page.locator("ol.timeline")).to_contain_text("核验销号")
        await shot(page, "problem-verified-by-reviewer")
    # The events say who did it: the people signed in, as the services recorded them.
    conn = await asyncpg.connect(system.extra["dsn"])
    try:
        rows = await conn.fetch("SELECT event_type, metadata FROM es.events WHERE stream_id = $1 "
                                "ORDER BY stream_version", f"problem-{problem_id}")
    finally:
        await conn.close()
    actors = {r["event_type"]: r["metadata"] for r in rows}
    requested = _json(actors["rectification.CloseOutRequested"])["actor"]
    verified = _json(actors["rectification.CloseOutVerified"])["actor"]
    assert (requested["id"], requested["name"], requested["role"], requested["unit"]) == (
        "reporter-echeng", "鄂城区填报人(示例)", "district_reporter", "echeng")
    assert (verified["id"], verified["role"]) == ("reviewer-echeng", "district_reviewer")
    # The board and its chart follow.
    await eventually(lambda: _changed(system, chart_before), what="the progress chart to change")
    assert await board_closed(system, "鄂城区民政局") == closed_before + 1
    async with browsing.person(url, "admin", PASSWORD) as page:
        await page.goto(f"{url}/board")
        await expect(page.locator("tr", has_text="鄂城区民政局").first).to_contain_text("%")
        await expect(page.locator("img[src^='/board/charts/progress.svg']")).to_be_visible()
        await shot(page, "board")


async def _changed(system, before: list[str]) -> bool:
    return await chart_values(system, "progress") != before


def _json(value):
    import json

    return json.loads(value) if isinstance(value, str) else value


async def test_a_file_filed_for_two_items_is_flagged_on_the_verifiers_screen(
        system, browsing, tmp_path):
    url = system.console_url
    photo = tmp_path / "同一张照片.png"
    photo.write_bytes(png(42))
    async with browsing.person(url, "reporter-echeng", PASSWORD) as page:
        first = await register_item(page, url, "扶手松动（示例）")
        await request_close_out(page, url, first, photo, "已加固（示例）")
        second = await register_item(page, url, "呼叫器失灵（示例）")
        await request_close_out(page, url, second, photo, "已修复（示例）")
    async with browsing.person(url, "reviewer-echeng", PASSWORD) as page:
        await page.goto(f"{url}/problems/{second}")
        warning = page.locator("#reuse")
        await expect(warning).to_contain_text("佐证材料重复使用")
        await expect(warning.locator(f"a[href='/problems/{first}']")).to_have_count(1)
        await shot(page, "problem-reused-evidence-flagged")


async def test_another_units_pages_are_refused(system, browsing):
    url = system.console_url
    async with browsing.person(url, "reporter-echeng", PASSWORD) as page:
        problem_id = await register_item(page, url, "门牌缺失（示例）")
    async with browsing.person(url, "reporter-huarong", PASSWORD) as page:
        response = await page.goto(f"{url}/problems/{problem_id}")
        assert response is not None and response.status == 403
        await expect(page.locator("h1")).to_have_text("无权访问")
        assert "门牌缺失" not in await page.content()
        response = await page.goto(f"{url}/problems?unit=echeng")
        assert response is not None and response.status == 403
        await shot(page, "refused-cross-unit")


async def test_the_public_page_needs_no_sign_in_and_shows_no_name_or_phone(system, browsing):
    async with browsing.person(system.console_url, None) as page:
        response = await page.goto(f"{system.console_url}/public")
        assert response is not None and response.status == 200
        body = await page.inner_text("main")
        for unit in ("鄂城区民政局", "华容区民政局", "梁子湖区民政局"):
            assert unit in body
        assert "示例" not in body          # every person and facility of the sample is 「(示例)」
        assert not PHONE_NUMBER.search(body), body
        assert "****" not in body
        await shot(page, "public")


async def test_the_draw_ceremony_and_the_visit_form_on_a_phone(system, browsing, tmp_path):
    url = system.console_url
    draw_id = f"draw-{uuid.uuid4().hex[:8]}"
    async with browsing.person(url, "inspector", PASSWORD) as page:
        await page.goto(f"{url}/inspection")
        await page.fill("input[name=draw_id]", draw_id)
        await page.fill("input[name=title]", "2024年市级实地抽查（示例）")
        await page.click("button:has-text('冻结抽样框')")
        await expect(page.locator("ol.ceremony li.done")).to_have_count(1)
        await page.fill("input[name=statement]", "2024年5月10日福彩3D开奖号码（示例）")
        await page.click("button:has-text('承诺')")
        await expect(page.locator("ol.ceremony li.done")).to_have_count(2)
        await page.fill("input[name=entropy]", "3-7-1")
        await page.click("button:has-text('公布并抽取')")
        await expect(page.locator("ol.ceremony li.done")).to_have_count(4)
        await expect(page.locator("section.card")).to_contain_text("verify-draw")
        listing = await page.request.get(f"{url}/inspection/draws/{draw_id}/list.json")
        assert listing.status == 200 and draw_id in await listing.text()
        await page.locator("form.inline-form button:has-text('安排检查')").first.click()
        await expect(page.locator("a:has-text('填写检查表')")).to_have_count(1)
        await shot(page, "draw-ceremony")
        visit_href = await page.locator("a:has-text('填写检查表')").get_attribute("href")
        await page.goto(url + visit_href)
        await shot(page, "visit-form-desktop")
    photo = tmp_path / "现场.png"
    photo.write_bytes(png(77))
    async with browsing.person(url, "inspector", PASSWORD, viewport=PHONE, mobile=True) as page:
        await page.goto(url + visit_href)
        # made for a phone: nothing wider than the screen
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], width
        await expect(page.locator("fieldset").first).to_contain_text("提供助餐服务")
        await shot(page, "visit-form-phone")
        await page.locator("label.choice:has-text('否') input").first.check()
        await page.check("input[name=outcome][value=problems_found]")
        await page.fill("textarea[name=finding_1]", "助餐服务未开展（示例）")
        await page.fill("input[name=finding_1_deadline]", (today() + timedelta(days=20)).date().isoformat())
        await page.set_input_files("input[name=photos]", str(photo))
        await page.click("button:has-text('提交检查结果')")
        await expect(page.locator("p.note.ok")).to_contain_text("检查结果已记录")
        await expect(page.locator("main")).to_contain_text("助餐服务未开展（示例）")


async def test_no_page_asks_anything_of_another_origin(system, browsing):
    """Every page of the console, and a service's API documents, load only from their own
    process: no CDN, no web font, no analytics (the browser's own network log says so)."""
    url = system.console_url
    pages = {"projects": "/projects", "problems": "/problems", "reports": "/reports",
             "inspection": "/inspection", "board": "/board", "audit": "/audit", "desk": "/"}
    async with browsing.person(url, None) as page:
        await page.goto(f"{url}/login")
        await shot(page, "login")
    async with browsing.person(url, "admin", PASSWORD) as page:
        for name, path in pages.items():
            response = await page.goto(url + path)
            assert response is not None and response.status == 200, (path, response and response.status)
            await page.wait_for_load_state("networkidle")
            if name in ("projects", "problems", "reports", "inspection", "audit"):
                await shot(page, name)
        await page.goto(f"{url}/projects")
        await page.locator("table a[href^='/projects/']").first.click()
        await expect(page.locator("h2:has-text('时间线')")).to_have_count(1)
        await shot(page, "project")
        registry = system.service_urls["registry"]
        await page.goto(f"{registry}/docs")
        await expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
        await shot(page, "registry-api-docs", full_page=False)
    foreign = browsing.foreign(url, registry)
    assert browsing.requests and not foreign, foreign
