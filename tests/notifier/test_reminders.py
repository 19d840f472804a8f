"""Claiming and recording reminders, pure; the contact directory's file; masking and scrubbing."""
from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from services.notifier import commands as c
from services.notifier.channels import OutgoingMessage, scrub, webhook_payload
from services.notifier.directory import ContactsFileError, read_contacts_file
from services.notifier.domain import obligations as ob
from services.notifier.domain.calendar import plan
from services.notifier.domain.contacts import mask_email, mask_url
from services.notifier.domain.reminders import (
    ClaimInputs,
    ReminderState,
    claim_event_id,
    decide_claim,
    decide_record_delivery,
    evolve_reminder,
    message_id_for,
)
from services.notifier.events import (
    Channel,
    ObligationFulfilled,
    PlannedDelivery,
    ReminderClaimed,
    ReminderFailed,
    SourceRef,
)
from services.notifier.texts import Texts
from shared.campaign import load_campaign

pytestmark = pytest.mark.unit

CAMPAIGN = load_campaign()
TEXTS = Texts(CAMPAIGN)
TZ = CAMPAIGN.tz
NINE = datetime(2024, 3, 20, 9, 0, tzinfo=TZ)
EMAIL = (PlannedDelivery(channel=Channel.EMAIL, recipient_masked="li***@example.invalid"),)
OBLIGATION = ob.initial_state(ob.deadline_obligation_id("echeng", "monthly_list_2024_03"), CAMPAIGN)
T3 = plan(OBLIGATION, CAMPAIGN)[0]


def claim(state: ReminderState, instance: str, *, deliveries=EMAIL, gone: bool = False,
          take_over_from: str | None = None, now: datetime = NINE,
          obligation: ob.ObligationState = OBLIGATION) -> list:
    cmd = c.ClaimReminder(reminder_id=T3.reminder_id, obligation_id=obligation.obligation_id,
                          instance_id=instance, take_over_from=take_over_from)
    inputs = ClaimInputs(deliveries=deliveries, claimant_gone=gone, message_domain="x.invalid")
    return decide_claim(obligation, state, cmd, inputs=inputs, now=now, campaign=CAMPAIGN,
                        render=TEXTS.render)


def fold(events: list) -> ReminderState:
    state = ReminderState(reminder_id=T3.reminder_id)
    for event in events:
        state = evolve_reminder(state, event)
    return state


def test_a_due_reminder_is_claimed_once_with_its_text_and_message_id():
    [first] = claim(ReminderState(reminder_id=T3.reminder_id), "a")
    assert isinstance(first, ReminderClaimed) and first.attempt == 1
    assert first.message_id == message_id_for(T3.reminder_id, "x.invalid")
    assert "3月问题整改清单" in first.subject and "2024年3月25日" in first.body
    assert claim(fold([first]), "b") == []            # someone has it
    assert claim(fold([first]), "a") == []            # even its own claimant: no second claim


def test_a_reminder_not_due_yet_or_of_a_past_day_is_not_claimed():
    empty = ReminderState(reminder_id=T3.reminder_id)
    assert claim(empty, "a", now=datetime(2024, 3, 20, 8, 59, tzinfo=TZ)) == []
    assert claim(empty, "a", now=datetime(2024, 3, 21, 9, 0, tzinfo=TZ)) == []
    fulfilled = ob.evolve_obligation(OBLIGATION, ObligationFulfilled(
        obligation_id=OBLIGATION.obligation_id, unit="echeng", part="r", fulfilled_at=NINE,
        how="报送", source=SourceRef(event_type="x", event_id=uuid.uuid4(), stream_id="r-1",
                                  stream_version=1)))
    assert claim(empty, "a", obligation=fulfilled) == []


def test_a_reminder_without_a_contact_is_claimed_and_failed_at_once():
    claimed, failed = claim(ReminderState(reminder_id=T3.reminder_id), "a", deliveries=())
    assert isinstance(failed, ReminderFailed) and failed.channel is Channel.NONE
    assert failed.reason == "no contact for echeng/liaison in the directory"
    assert fold([claimed, failed]).pending == ()


def test_only_a_gone_claimant_is_taken_over_with_the_same_message():
    [first] = claim(ReminderState(reminder_id=T3.reminder_id), "a")
    state = fold([first])
    assert claim(state, "b", take_over_from="a", gone=False) == []
    assert claim(state, "b", take_over_from="someone-else", gone=True) == []
    [second] = claim(state, "b", take_over_from="a", gone=True,
                     now=datetime(2024, 3, 21, 9, 0, tzinfo=TZ))    # even a day late
    assert (second.attempt, second.instance_id) == (2, "b")
    assert (second.message_id, second.subject, second.body) == (
        first.message_id, first.subject, first.body)
    assert claim_event_id(second) != claim_event_id(first.model_copy(update={"attempt": 2}))


def test_a_taken_over_claim_whose_obligation_is_done_is_closed_as_abandoned():
    [first] = claim(ReminderState(reminder_id=T3.reminder_id), "a")
    done = ob.evolve_obligation(OBLIGATION, ObligationFulfilled(
        obligation_id=OBLIGATION.obligation_id, unit="echeng", part="r", fulfilled_at=NINE,
        how="报送", source=SourceRef(event_type="x", event_id=uuid.uuid4(), stream_id="r-1",
                                  stream_version=1)))
    [abandoned] = claim(fold([first]), "b", take_over_from="a", gone=True, obligation=done)
    assert isinstance(abandoned, ReminderFailed) and abandoned.reason.startswith("claim abandoned")


def test_an_outcome_is_recorded_once_per_channel():
    [first] = claim(ReminderState(reminder_id=T3.reminder_id), "a")
    record = c.RecordDelivery(reminder_id=T3.reminder_id, channel=Channel.EMAIL, sent=True,
                              recipient_masked="li***@example.invalid",
                              message_id=first.message_id, attempts=1, at=NINE)
    [sent] = decide_record_delivery(fold([first]), record)
    assert decide_record_delivery(fold([first, sent]), record) == []
    assert fold([first, sent]).status.value == "sent"


def test_addresses_and_robot_keys_are_masked_and_scrubbed_from_reasons():
    assert mask_email("liaison.echeng@example.invalid") == "li***@example.invalid"
    assert mask_url("https://oapi.dingtalk.com/robot/send?access_token=abc") == \
        "https://oapi.dingtalk.com/***"
    reason = scrub("550 <chen@gov.cn> refused; see https://qyapi.weixin.qq.com/x?key=SECRET")
    assert "chen@gov.cn" not in reason and "SECRET" not in reason
    assert reason == "550 <ch***@gov.cn> refused; see https://qyapi.weixin.qq.com/***"


def test_webhook_payloads_follow_each_robots_text_format():
    message = OutgoingMessage(
        reminder_id=T3.reminder_id, message_id="<m@x>", unit="echeng", audience=T3.audience,
        kind=T3.kind, obligation_kind=OBLIGATION.kind, scheduled_for=T3.at, subject="主题",
        body="正文", date=NINE)
    assert webhook_payload(message, c.WebhookFormat.WECOM) == {
        "msgtype": "text", "text": {"content": "主题\n\n正文"}}
    assert webhook_payload(message, c.WebhookFormat.DINGTALK)["text"]["content"] == "主题\n\n正文"
    own = webhook_payload(message, c.WebhookFormat.JSON)
    assert own["reminder_id"] == str(T3.reminder_id) and own["scheduled_for"] == T3.at.isoformat()


def test_a_bad_contacts_file_is_refused_with_every_problem_and_no_address(tmp_path):
    path = tmp_path / "contacts.toml"
    path.write_text("""
[[contacts]]
unit = "wuhan"
audience = "liaison"
email = "secret.person@@broken"

[[contacts]]
unit = "echeng"
audience = "boss"
email = "x@example.invalid"

[[contacts]]
unit = "echeng"
audience = "leader"

[extra]
""", encoding="utf-8")
    with pytest.raises(ContactsFileError) as refused:
        read_contacts_file(path, CAMPAIGN)
    problems = dict(refused.value.problems)
    assert set(problems) == {"contacts[0].unit", "contacts[0].email", "contacts[1].audience",
                             "contacts[2]", "extra"}
    assert "secret.person" not in str(refused.value)
