"""Each service's AsyncAPI document describes the wire: the official `@asyncapi/cli` validates it
with no finding; the queues, bindings and arguments it names are the ones the broker holds; every
message carries its headers schema (the `ce-` attributes) and its payload schema; the dead-letter
path and the archive stream are there; `correlationId` points at a header that exists."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from services.system import BACKEND_SERVICES, all_consumers, contracts, spec
from shared.contracts import schema_of
from shared.envelope import CE
from shared.service import asyncapi_of
from shared.settings import Settings
from tests.support.broker import BROKER_ADMIN_URL, declare_system_bus
from tests.support.services import AMQP_URL, delete_bus_objects

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "tools" / "asyncapi" / "node_modules" / ".bin" / "asyncapi"
SETTINGS = Settings(amqp_url="amqp://lookback@rabbit.example:5672/", deployment="ezhou")


def documents(settings: Settings = SETTINGS) -> dict[str, dict[str, Any]]:
    return {name: asyncapi_of(spec(name), settings) for name in BACKEND_SERVICES}


def resolve(document: dict[str, Any], ref: str) -> Any:
    target: Any = document
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target


def schema_errors(document: dict[str, Any], pointer: str, value: Any) -> list[str]:
    registry = Registry().with_resource("urn:doc", Resource.from_contents(
        document, default_specification=DRAFT7))
    validator = Draft7Validator({"$ref": f"urn:doc#{pointer}"}, registry=registry)
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(value)]


# -- the official validator ---------------------------------------------------------------------
async def validate(path: Path, home: Path) -> tuple[int, str]:
    # Analytics off (the CLI would otherwise send what it validated to a metrics service).
    config = home / "asyncapi-analytics.json"
    config.write_text(json.dumps({"analyticsEnabled": "false", "infoMessageShown": "true",
                                  "userID": "lookback-ci"}))
    process = await asyncio.create_subprocess_exec(
        str(CLI), "validate", str(path), "--fail-severity", "hint", "--diagnostics-format", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "ASYNCAPI_METRICS_CONFIG_PATH": str(config), "CI": "true",
             "HOME": str(home)})
    output, _ = await asyncio.wait_for(process.communicate(), 300)
    return process.returncode or 0, output.decode(errors="replace")


@pytest.mark.integration
@pytest.mark.timeout(600)
async def test_the_official_asyncapi_cli_finds_nothing_wrong_in_any_document(tmp_path):
    if not CLI.exists():
        pytest.fail(f"the AsyncAPI CLI is not installed at {CLI}: run "
                    "`(cd tools/asyncapi && npm ci)` (.ci/run does it when it is missing)")
    assert shutil.which("node"), "node is not on PATH (.ci/run installs nodejs and npm)"
    paths = {}
    for name, document in documents().items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(document, ensure_ascii=False))
    # The validator really resolves what the documents refer to: a dangling reference fails.
    broken = documents()["notifier"]
    broken["components"]["messages"]["registry.LiaisonRegistered"]["payload"]["$ref"] += "Gone"
    paths["broken"] = tmp_path / "broken.json"
    paths["broken"].write_text(json.dumps(broken, ensure_ascii=False))

    results = dict(zip(paths, await asyncio.gather(*(validate(p, tmp_path) for p in paths.values())),
                       strict=True))
    broken_code, broken_output = results.pop("broken")
    assert broken_code != 0 and "invalid-ref" in broken_output, broken_output
    for name, (code, output) in results.items():
        assert code == 0, f"{name}: {output}"
        assert "is valid" in output and "governance issues" not in output.replace(
            "don't have governance issues", ""), f"{name}: {output}"


# -- what the documents say ----------------------------------------------------------------------
@pytest.mark.unit
def test_every_message_has_the_cloudevents_headers_and_the_published_payload_schema():
    events = {event.type_name: event for contract in contracts() for event in contract.events}
    for name, document in documents().items():
        messages = document["components"]["messages"]
        for key, message in messages.items():
            if key == "DeadLetter":
                continue
            headers = message["headers"]["allOf"]
            assert headers[0] == {"$ref": "#/components/schemas/CloudEventHeaders"}, key
            assert headers[1]["properties"][f"{CE}type"] == {"const": key}
            payload = resolve(document, message["payload"]["$ref"])
            published = schema_of(events[key])
            assert payload["x-lookback-schema-id"] == published["$id"]
            assert (set(payload["properties"]), payload.get("required")) == (
                set(published["properties"]), published.get("required")), (name, key)
        # the document's own correlation id is a header every message declares as required
        location = document["components"]["correlationIds"]["correlation"]["location"]
        header = location.removeprefix("$message.header#/")
        required = document["components"]["schemas"]["CloudEventHeaders"]["required"]
        assert header == f"{CE}correlationid" and header in required


@pytest.mark.unit
def test_the_headers_schema_takes_the_current_form_and_not_the_older_one():
    document = documents()["rectification"]
    current = {f"{CE}specversion": "1.0", f"{CE}id": "7f0f7a34-0b7e-4e43-9a6e-5b0f4c9f2d11",
               f"{CE}source": "urn:lookback:ezhou:registry", f"{CE}type": "registry.LedgerEntryAdded",
               f"{CE}subject": "project-p-1", f"{CE}time": "2024-03-08T02:00:00Z",
               f"{CE}schemaversion": "1", f"{CE}streamversion": "2", f"{CE}globalposition": "17",
               f"{CE}correlationid": "0c5e2d8e-1f43-4f7b-a7c4-1f5b8b1e6a90"}
    pointer = "/components/messages/registry.LedgerEntryAdded/headers"
    assert schema_errors(document, pointer, current) == []
    older = {**current, f"{CE}source": "registry", f"{CE}streamversion": 2}
    problems = schema_errors(document, pointer, older)
    assert any(p.startswith(f"{CE}source") for p in problems)
    assert any(p.startswith(f"{CE}streamversion") for p in problems)


@pytest.mark.unit
def test_every_receive_operation_names_its_messages_and_every_queue_its_routing_keys():
    for name, document in documents().items():
        consumers = {c.name: c for c in spec(name).consumers}
        receives = {k: op for k, op in document["operations"].items() if op["action"] == "receive"}
        assert set(receives) == {f"receive.{c}" for c in consumers}
        for consumer_name, consumer in consumers.items():
            operation = receives[f"receive.{consumer_name}"]
            messages = [resolve(document, m["$ref"]) for m in operation["messages"]]
            assert [m["$ref"].rsplit("/", 1)[1] for m in messages] == consumer.event_types
            for message in messages:
                assert resolve(document, message["$ref"])["payload"]["$ref"]
            amqp = document["channels"][consumer_name]["bindings"]["amqp"]
            assert [b["routingKey"] for b in amqp["x-lookback-bindings"]] == consumer.event_types
            assert amqp["x-lookback-queue-arguments"]["x-queue-type"] == "quorum"
            assert amqp["x-lookback-queue-arguments"]["x-dead-letter-exchange"] == f"{name}.dlx"


@pytest.mark.unit
def test_the_dead_letter_path_and_the_archive_stream_are_described():
    for name, document in documents().items():
        channels = document["channels"]
        archive = channels[f"{name}.events.archive"]["bindings"]["amqp"]
        assert archive["x-lookback-queue-arguments"]["x-queue-type"] == "stream"
        assert archive["x-lookback-bindings"] == [{"exchange": f"{name}.events", "routingKey": "#"}]
        assert len(channels[f"{name}.events.archive"]["messages"]) == len(spec(name).contract.events)
        if spec(name).consumers:
            assert channels[f"{name}.dlx"]["bindings"]["amqp"]["exchange"]["type"] == "fanout"
            dlq = channels[f"{name}.dlq"]["bindings"]["amqp"]
            assert dlq["x-lookback-bindings"] == [{"exchange": f"{name}.dlx", "routingKey": ""}]
            assert document["operations"][f"deadLetter.{name}"]["action"] == "send"


@pytest.mark.unit
def test_the_notifier_document_is_complete():
    document = documents()["notifier"]
    notifier = spec("notifier")
    sent = {op["channel"]["$ref"] for op in document["operations"].values() if op["action"] == "send"}
    addresses = {document["channels"][ref.removeprefix("#/channels/")]["address"] for ref in sent}
    assert {e.type_name for e in notifier.contract.events} | {"notifier.dlx"} == addresses
    assert notifier.consumers and all(f"receive.{c.name}" in document["operations"]
                                      for c in notifier.consumers)


# -- the broker holds what the documents say -----------------------------------------------------
@pytest.mark.integration
async def test_the_queues_bindings_and_arguments_described_are_those_the_broker_holds(unique_prefix):
    """Provisioning's topology, read back from RabbitMQ's management API, against the documents."""
    settings = Settings(amqp_url=AMQP_URL, bus_prefix=unique_prefix)
    consumers = [c for _, c in all_consumers()]
    await declare_system_bus(unique_prefix)
    try:
        vhost = quote(urlsplit(AMQP_URL).path.lstrip("/") or "/", safe="")
        admin_url = urlsplit(BROKER_ADMIN_URL)
        async with httpx.AsyncClient(
                base_url=f"{admin_url.scheme}://{admin_url.hostname}:{admin_url.port or 15672}",
                auth=(admin_url.username or "", admin_url.password or "")) as admin:
            for name, document in documents(settings).items():
                for consumer in spec(name).consumers:
                    amqp = document["channels"][consumer.name]["bindings"]["amqp"]
                    queue = quote(amqp["queue"]["name"], safe="")
                    held = (await admin.get(f"/api/queues/{vhost}/{queue}")).json()
                    assert held["arguments"] == amqp["x-lookback-queue-arguments"]
                    bound = (await admin.get(f"/api/queues/{vhost}/{queue}/bindings")).json()
                    assert sorted((b["source"], b["routing_key"]) for b in bound if b["source"]) == \
                        sorted((b["exchange"], b["routingKey"]) for b in amqp["x-lookback-bindings"])
    finally:
        await delete_bus_objects(unique_prefix, services=BACKEND_SERVICES,
                                 consumers=[c.name for c in consumers])
