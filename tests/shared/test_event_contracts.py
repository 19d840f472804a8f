"""The events' published contract (docs/events/schemas, docs/events.md): the code matches what was
published, and the check catches a change that would break another team's consumer or our own
stored events."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

import pytest

from services.registry.events import CONTRACT as REGISTRY, ProjectRetired
from services.system import EVENT_SCHEMAS, contracts
from shared.contracts import contract_problems, incompatibilities, publish, schema_of
from shared.messages import Event, EventContract

pytestmark = pytest.mark.unit


def test_every_event_of_every_service_matches_its_published_schema():
    assert contract_problems(EVENT_SCHEMAS, contracts()) == []


def published_copy(tmp_path: Path) -> Path:
    root = tmp_path / "schemas"
    shutil.copytree(EVENT_SCHEMAS, root)
    return root


class RetiredWithoutReason(Event):
    """ProjectRetired as a careless change would leave it: `reason` gone, `successor` required."""

    type_name: ClassVar[str] = "registry.ProjectRetired"
    project_id: str
    project_type: str
    name: str
    unit: str
    township: str
    previous_status: str
    reason_code: str
    retired_on: str
    successor: str


class RetiredWithANote(ProjectRetired):
    """A compatible change: one more optional field."""

    type_name: ClassVar[str] = "registry.ProjectRetired"
    note: str | None = None


def contract_with(event: type[Event]) -> EventContract:
    return EventContract(service="registry", categories=REGISTRY.categories, events=(event,))


def test_a_deliberately_incompatible_change_without_a_new_version_fails_the_check(tmp_path):
    root = published_copy(tmp_path)
    [problem] = contract_problems(root, [contract_with(RetiredWithoutReason)])
    assert "registry.ProjectRetired v1 changed incompatibly" in problem
    assert "reason removed" in problem and "successor is now required" in problem
    assert "give it schema_version 2 and an upcaster from v1" in problem


def test_a_compatible_change_needs_only_to_be_published(tmp_path):
    root = published_copy(tmp_path)
    [problem] = contract_problems(root, [contract_with(RetiredWithANote)])
    assert "changed compatibly" in problem
    publish(root, [contract_with(RetiredWithANote)])
    assert contract_problems(root, [contract_with(RetiredWithANote)]) == []


def test_a_new_version_keeps_the_old_file_and_needs_its_upcaster(tmp_path):
    root = published_copy(tmp_path)

    class RetiredV2(RetiredWithoutReason):
        schema_version: ClassVar[int] = 2

    contract = contract_with(RetiredV2)
    publish(root, [contract])
    assert (root / "registry.ProjectRetired" / "v1.json").exists()
    [problem] = contract_problems(root, [contract])
    assert "v1 is published but has no upcaster to v2" in problem


def test_enum_values_may_be_added_but_not_removed():
    old = {"$defs": {"S": {"enum": ["a", "b"], "type": "string"}},
           "properties": {"s": {"$ref": "#/$defs/S"}}, "required": ["s"], "type": "object"}
    wider = {"$defs": {"S": {"enum": ["a", "b", "c"], "type": "string"}},
             "properties": {"s": {"$ref": "#/$defs/S"}}, "required": ["s"], "type": "object"}
    assert incompatibilities(old, wider) == []
    assert incompatibilities(wider, old) == ["s: ['c'] no longer allowed"]


def test_the_published_schema_names_its_type_and_version():
    schema = schema_of(ProjectRetired)
    assert schema["x-lookback-type"] == "registry.ProjectRetired"
    assert schema["x-lookback-schema-version"] == 1
    assert schema["$id"] == "urn:lookback:event:registry.ProjectRetired:v1"
