"""Reminders sent by the notifier show on the units' desks: the notifier runs the 2024 campaign on
a simulated clock, the city bureau moves it to three working days before the first monthly list
is due, and a district's desk lists what was sent to its liaison (the address masked)."""
from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest

from services.notifier.settings import NotifierSettings
from shared.assertions import AssertionSigner
from shared.messages import Actor, Role
from shared.signing import load_private_key
from tests.console.support import PASSWORD, running_system
from tests.support.databases import fresh_database
from tests.support.polling import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


async def test_the_reminders_the_notifier_sent_show_on_the_units_desk(template_db, tmp_path):
    notifier = NotifierSettings(simulated_clock_start=datetime.fromisoformat("2024-03-18T08:00:00+08:00"),
                                mail_dir=tmp_path / "mail", retry_delays=(0.1,))
    async with fresh_database(template_db) as dsn, running_system(
            dsn, tmp_path, service_kwargs={"notifier": {"notifier_settings": notifier}}) as system:
        # The city bureau moves the demo clock (an operator's act, as a program would do it).
        assert system.settings.assertion_signing_key is not None
        signer = AssertionSigner(load_private_key(system.settings.assertion_signing_key), issuer="t")
        admin = Actor(id="admin", name="市局管理员(示例)", role=Role.CITY_ADMIN)
        async with httpx.AsyncClient(base_url=system.service_urls["notifier"]) as client:
            moved = await client.post("/clock", json={"now": "2024-03-20T10:00:00+08:00"}, headers={
                "Authorization": f"Bearer {signer.sign(admin, datetime.now(UTC))}"})
            assert moved.status_code == 200, moved.text
        async with httpx.AsyncClient(base_url=system.console_url, timeout=30) as reporter:
            await reporter.post("/login", data={"username": "reporter-huarong", "password": PASSWORD})

            async def reminder_rows() -> list[str]:
                desk = (await reporter.get("/")).text
                section = desk.split("已发送的提醒", 1)[1]
                return re.findall(r"<tr><td>.*?</tr>", section, re.S)

            rows = await eventually(reminder_rows, timeout=90, what="a reminder on the desk")
        assert all("华容区民政局" in row for row in rows), rows  # its own unit's only
        assert not any(EMAIL.search(re.sub(r"<[^>]+>", " ", row)) for row in rows), rows
        assert any("2024年3月" in row for row in rows), rows
