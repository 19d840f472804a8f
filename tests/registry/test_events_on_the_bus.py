"""Registry events reach RabbitMQ in the shape the service's AsyncAPI document promises: CloudEvents
`ce-` headers valid against the message's headers schema, and a JSON body valid against its payload
schema; and the official CloudEvents SDK reads every captured message with its RabbitMQ binding."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aio_pika
import pytest
from cloudevents.core.bindings.rabbitmq import RabbitMQMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from shared.store import PostgresEventStore, create_pool
from tests.registry.support import project_body, registry_client
from tests.support.actors import auth
from tests.support.broker import deployment_of
from tests.support.polling import eventually
from tests.support.services import AMQP_URL, delete_bus_objects

pytestmark = pytest.mark.integration

_JSON_TYPES = {"string": str, "integer": int, "boolean": bool, "array": list, "object": dict,
               "null": type(None), "number": (int, float)}


def schema_problems(
        value: Any, schema: dict[str, Any], document: dict[str, Any], path: str = "$") -> list[str]:
    """Required fields, types, enums and no undeclared fields (the parts of JSON Schema the
    AsyncAPI document uses for these messages)."""
    if "$ref" in schema:
        target: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return schema_problems(value, target, document, path)
    if "anyOf" in schema:
        options = [schema_problems(value, option, document, path) for option in schema["anyOf"]]
        return [] if any(not o for o in options) else [f"{path}: matches no option ({options})"]
    problems = []
    expected = schema.get("type")
    if expected is not None:
        python_type = _JSON_TYPES[expected]
        if not isinstance(value, python_type) or (expected == "integer" and isinstance(value, bool)):
            return [f"{path}: {value!r} is not {expected}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} not in {schema['enum']}")
    if schema.get("format") == "date" and isinstance(value, str):
        try:
            datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            problems.append(f"{path}: {value!r} is not a date")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{path}.{name}: required but missing")
        for name, item in value.items():
            if name in properties:
                problems += schema_problems(item, properties[name], document, f"{path}.{name}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{path}.{name}: not declared")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += schema_problems(item, schema["items"], document, f"{path}[{index}]")
    return problems


def payload_schema(document: dict[str, Any], event_type: str) -> dict[str, Any]:
    [channel] = [c for c in document["channels"].values() if c["address"] == event_type]
    [message_ref] = channel["messages"].values()
    message: Any = document
    for part in message_ref["$ref"].removeprefix("#/").split("/"):
        message = message[part]
    return message["payload"]


def headers_problems(headers: dict[str, Any], document: dict[str, Any], event_type: str) -> list[str]:
    """The message's AMQP headers against the headers schema the document gives its type."""
    registry = Registry().with_resource("urn:doc", Resource.from_contents(
        document, default_specification=DRAFT7))
    validator = Draft7Validator({"$ref": f"urn:doc#/components/messages/{event_type}/headers"},
                                registry=registry)
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(headers)]


TAP = "test.registry-tap"  # a queue of the test, bound to every registry event


async def test_registry_events_on_rabbitmq_match_the_asyncapi_document(database, unique_prefix):
    tap = f"{unique_prefix}{TAP}"
    received: list[aio_pika.abc.AbstractIncomingMessage] = []
    connection = await aio_pika.connect(AMQP_URL)
    try:
        async with registry_client(database, amqp_url=AMQP_URL, prefix=unique_prefix) as client:
            channel = await connection.channel()
            exchange = await channel.get_exchange(f"{unique_prefix}registry.events")  # declared at start
            queue = await channel.declare_queue(tap, auto_delete=True)
            await queue.bind(exchange, routing_key="#")

            # Operating except for 助餐: ProjectRegistered and LedgerEntryAdded.
            response = await client.post("/projects", headers=auth("admin-1"), json=project_body(
                services=["day_care", "cleaning_assistance", "health_management"]))
            assert response.status_code == 201, response.text
            project_id = response.json()["project_id"]

            async def two_messages() -> bool:
                message = await queue.get(fail=False, no_ack=True)
                if message is not None:
                    received.append(message)
                return len(received) >= 2

            await eventually(two_messages, timeout=20, what="two registry events on the bus")
            document = (await client.get("/asyncapi.json")).json()
            stored = {str(r.event_id): r for r in await _stream(database, project_id)}
    finally:
        await connection.close()
        await delete_bus_objects(unique_prefix, services=["registry"], consumers=[TAP])

    assert [m.routing_key for m in received] == ["registry.ProjectRegistered", "registry.LedgerEntryAdded"]
    source = f"urn:lookback:{deployment_of(unique_prefix)}:registry"
    for message in received:
        headers = message.headers
        event_type = message.routing_key
        assert headers_problems(headers, document, event_type) == []
        assert headers["ce-specversion"] == "1.0"
        assert headers["ce-id"] == message.message_id and message.message_id in stored
        recorded = stored[message.message_id]
        assert (headers["ce-type"], headers["ce-source"], headers["ce-subject"]) == (
            event_type, source, f"project-{project_id}")
        assert headers["ce-schemaversion"] == "1"
        assert headers["ce-streamversion"] == str(recorded.stream_version)
        assert headers["ce-correlationid"] == recorded.metadata["correlation_id"]
        event = from_binary(RabbitMQMessage(headers, message.content_type, message.body), JSONFormat())
        assert (event.get_id(), event.get_source(), event.get_type(), event.get_subject()) == (
            message.message_id, source, event_type, f"project-{project_id}")
        assert event.get_data() == recorded.payload
        assert event.get_extension("streamversion") == str(recorded.stream_version)
        assert datetime.fromisoformat(headers["ce-time"]) == datetime.fromisoformat(
            recorded.metadata["occurred_at"])
        assert message.content_type == "application/json"
        body = json.loads(message.body)
        assert schema_problems(body, payload_schema(document, event_type), document) == []
        assert body == recorded.payload
    registered = json.loads(received[0].body)
    assert (registered["status"], registered["status_reasons"]) == ("underperforming", ["no_meal_assistance"])


async def _stream(dsn: str, project_id: str):
    pool = await create_pool(dsn, max_size=1)
    try:
        return await PostgresEventStore(pool).read_stream(f"project-{project_id}")
    finally:
        await pool.close()


def test_the_schema_check_catches_a_missing_field_a_wrong_type_and_an_undeclared_field():
    document = {"components": {"schemas": {"E": {
        "type": "object", "additionalProperties": False, "required": ["a", "b"],
        "properties": {"a": {"type": "integer"}, "b": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}}}}
    schema = {"$ref": "#/components/schemas/E"}
    assert schema_problems({"a": 1, "b": None}, schema, document) == []
    assert schema_problems({"a": True, "b": "x"}, schema, document) == ["$.a: True is not integer"]
    assert schema_problems({"a": 1}, schema, document) == ["$.b: required but missing"]
    assert schema_problems({"a": 1, "b": 2, "c": 3}, schema, document)[1] == "$.c: not declared"
