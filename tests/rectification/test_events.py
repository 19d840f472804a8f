"""The public contract: stable type names, JSON round-trips, no floats, one stream per event."""
from __future__ import annotations

import uuid
from datetime import date

import pytest
from pydantic import ValidationError

from services.rectification import domain as d
from services.rectification import events as e
from shared.canonical import canonical_json
from shared.messages import new_event
from tests.rectification.support import content_hash
from tests.support.actors import city_admin
from tests.support.clock import at

pytestmark = pytest.mark.unit


def test_every_event_has_a_stable_rectification_type_name():
    names = [cls.type_name for cls in e.ALL_EVENTS]
    assert len(set(names)) == len(names)
    for cls in e.ALL_EVENTS:
        assert cls.type_name == f"rectification.{cls.__name__}"
        assert e.REGISTRY.classes[cls.type_name] is cls


def registered() -> e.ProblemRegistered:
    return e.ProblemRegistered(
        problem_id=uuid.UUID(int=5), unit="echeng", seq_no=3, project_id="p-1",
        project_name="凤凰街道养老服务综合体(示例)", township="凤凰街道", project_year=2022,
        description="未开展助餐服务", deadline=date(2024, 5, 7), deadline_kind=e.DeadlineKind.DATE,
        responsible_person="张某(示例)", source=e.ProblemSource.SELF_INSPECTION,
        registered_by="rep-1", registered_at=at(2024, 3, 10))


def test_an_event_round_trips_through_the_store_envelope_with_chinese_intact():
    event = registered()
    stored = new_event(d.stream_id_for(event), event, actor=city_admin(), occurred_at=at(2024, 3, 10))
    assert stored.stream_id == "problem-00000000-0000-0000-0000-000000000005"
    assert "未开展助餐服务".encode() in canonical_json(stored.payload)  # no floats, UTF-8 as is
    assert e.REGISTRY.load(stored.event_type, stored.schema_version, stored.payload) == event


def test_points_are_decimal_strings_and_hashes_are_sha256_hex():
    e.PointsDeducted(unit="echeng", points="1.5", rule_id="r", trigger_ref="t", reason="x",
                     decided_by="a")
    with pytest.raises(ValidationError):
        e.PointsDeducted(unit="echeng", points=1.5, rule_id="r", trigger_ref="t", reason="x",
                         decided_by="a")
    with pytest.raises(ValidationError):
        e.CloseOutRequested(problem_id=uuid.uuid4(), unit="echeng", evidence_text="x",
                            attachment_hashes=("abc",), requested_by="a", requested_at=at(2024, 3, 1))
    e.CloseOutRequested(problem_id=uuid.uuid4(), unit="echeng", evidence_text="x",
                        attachment_hashes=(content_hash("a"),), requested_by="a",
                        requested_at=at(2024, 3, 1))


def test_events_are_frozen_and_refuse_unknown_fields():
    event = registered()
    with pytest.raises(ValidationError):
        event.seq_no = 4
    with pytest.raises(ValidationError):
        e.ProblemRegistered(**event.model_dump(), extra_field=1)


def test_each_event_kind_goes_to_its_own_stream_category():
    allocated = e.SeqNoAllocated(unit="gedian", seq_no=1, problem_id=uuid.UUID(int=1))
    assert d.stream_id_for(allocated) == "unit-gedian"
    assert d.stream_id_for(e.PointsDeducted(unit="gedian", points="1", rule_id="r", trigger_ref="t",
                                            reason="x", decided_by="a")) == "score-gedian"
    report_id = d.monthly_list_report_id("gedian", "2024-03")
    assert d.stream_id_for(e.MonthlyListReturned(report_id=report_id, unit="gedian", month="2024-03",
                                                 version=1, comment="c", returned_by="a")) \
        == "report-gedian-monthly_list-2024-03"
