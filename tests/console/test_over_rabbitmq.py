"""The console in front of services that talk over RabbitMQ: a 台账 item the registry's event
opened (registry → rectification over the bus) is closed through the console by two people, and
the registry learns of it (rectification → registry over the bus); the project's page shows it."""
from __future__ import annotations

import re

import httpx
import pytest

from tests.console.browser import png
from tests.console.support import PASSWORD, running_system
from tests.support.databases import fresh_database
from tests.support.polling import eventually
from tests.support.services import AMQP_URL

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def _form(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text[:300]
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


async def test_a_ledger_item_closed_through_the_console_reaches_the_registry_over_rabbitmq(
        template_db, tmp_path, unique_prefix):
    async with fresh_database(template_db) as dsn, running_system(
            dsn, tmp_path, amqp_url=AMQP_URL, bus_prefix=unique_prefix + ".") as system:
        async with httpx.AsyncClient(base_url=system.console_url, timeout=30) as reporter:
            await reporter.post("/login", data={"username": "reporter-echeng", "password": PASSWORD})

            async def a_ledger_item() -> str | None:
                page = (await reporter.get("/problems?source=ledger")).text
                found = re.search(r'href="/problems/([0-9a-f-]{36})"', page)
                return found.group(1) if found else None

            problem_id = await eventually(a_ledger_item, timeout=60,
                                          what="the registry's 台账 entries to open items")
            item = f"/problems/{problem_id}"
            answer = await reporter.post(f"{item}/start", data={
                "csrf": await _form(reporter, item), "plan": "引入专业运营机构（示例）"})
            assert answer.status_code == 303
            answer = await reporter.post(f"{item}/request-close-out", data={
                "csrf": await _form(reporter, item), "evidence_text": "已恢复运营（示例）"},
                files={"files": ("运营照片.png", png(201), "image/png")})
            assert answer.status_code == 303, answer.text[:500]
            project = re.search(r'href="/projects/([0-9a-f-]{36})"',
                                (await reporter.get(item)).text).group(1)
        async with httpx.AsyncClient(base_url=system.console_url, timeout=30) as reviewer:
            await reviewer.post("/login", data={"username": "reviewer-echeng", "password": PASSWORD})
            answer = await reviewer.post(f"{item}/verify", data={
                "csrf": await _form(reviewer, item), "conclusion": "核实已运营（示例）"})
            assert answer.status_code == 303
            assert 'data-status="closed"' in (await reviewer.get(item)).text

            async def registry_knows() -> bool:
                page = (await reviewer.get(f"/projects/{project}")).text
                return "台账问题整改完成" in page

            await eventually(registry_knows, timeout=60,
                             what="the registry's timeline to show the verified 销号")
