"""The Ezhou 2024 campaign from 03-04 to 05-31 on a simulated clock: the local SMTP server
receives exactly the expected messages (date, time, recipient, kind), holiday shifts included;
fulfilment cancels, a return or a 反弹 re-arms, the leader hears on overdue day N."""
from __future__ import annotations

from datetime import datetime

import pytest

from services.notifier.events import ReminderClaimed
from shared.clock import SimulatedClock
from tests.notifier.campaign import EXPECTED, run_campaign
from tests.notifier.support import (
    CAMPAIGN_START,
    TZ,
    Upstream,
    as_,
    fetch,
    notifier,
    notifier_settings,
    smtp_sink,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


async def test_the_ezhou_2024_campaign_sends_exactly_the_expected_messages(database, tmp_path):
    clock = SimulatedClock(CAMPAIGN_START)
    upstream = Upstream(database)

    async def move_clock(moment: datetime) -> None:
        clock.set(moment)

    try:
        async with smtp_sink() as sink, notifier(database, tmp_path, clock,
                                                 notifier_settings(sink)) as client:
            await run_campaign(database, client, move_clock, upstream)
            reminders = (await client.get("/reminders?limit=1000", headers=as_("admin"))).json()
            calendar = (await client.get("/calendar?unit=huarong", headers=as_("admin"))).json()
    finally:
        await upstream.close()

    assert sink.summaries() == EXPECTED
    for received in sink.received:
        message = received.message
        scheduled = datetime.fromisoformat(message["X-Lookback-Scheduled-For"]).astimezone(TZ)
        assert scheduled == received.sent_at      # sent at its moment, not late
        # (a long Message-ID is folded onto a continuation line: legal, hence the strip)
        assert message["Message-ID"].strip() == \
            f"<reminder-{message['X-Lookback-Reminder-Id']}@lookback.example.invalid>"
        assert received.envelope_to == (message["To"],)
    assert len({r.message["Message-ID"].strip() for r in sink.received}) == len(EXPECTED)

    # Every message sent is an event, and /reminders shows each as sent, recipient masked.
    claims = await fetch(database, "SELECT count(*) FROM es.events WHERE event_type = $1",
                         ReminderClaimed.type_name)
    assert claims[0][0] == len(EXPECTED)
    assert reminders["total"] == len(EXPECTED)
    assert {item["outcome"] for item in reminders["items"]} == {"sent"}
    assert all("***@example.invalid" in item["recipient_masked"] for item in reminders["items"])

    # The holiday-shifted item reminder explains itself in the calendar.
    [item_b] = [o for o in calendar["obligations"] if o["title"].startswith("问题整改(序号1")]
    t0 = next(r for r in item_b["reminders"] if r["at"].startswith("2024-04-03"))
    assert "4月5日为节假日" in t0["why"] and t0["status"] == "sent"
