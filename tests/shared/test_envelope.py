"""The CloudEvents envelope: what the relay writes (an absolute source, string attributes), what
the official SDK reads of it, and the older form archives still hold, read the same way."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings.rabbitmq import RabbitMQMessage, from_binary, to_binary
from cloudevents.core.formats.json import JSONFormat

from shared.envelope import Delivery, cloud_event_headers, producer_of, source_uri

pytestmark = pytest.mark.unit

EVENT_ID, CORRELATION = str(uuid.uuid4()), str(uuid.uuid4())


def relay_headers(source: str) -> dict[str, str]:
    return cloud_event_headers(
        event_id=EVENT_ID, source=source, event_type="registry.ProjectRegistered",
        stream_id="project-p-1", schema_version=2, stream_version=3, global_position=41,
        time="2024-03-08T02:00:00+00:00", correlation_id=CORRELATION, causation_id=None)


def test_the_source_names_deployment_and_producer_and_every_attribute_is_a_string():
    headers = relay_headers(source_uri("ezhou", "registry"))
    assert headers["ce-source"] == "urn:lookback:ezhou:registry"
    assert all(isinstance(value, str) for value in headers.values()), headers
    assert (headers["ce-schemaversion"], headers["ce-streamversion"],
            headers["ce-globalposition"]) == ("2", "3", "41")
    assert headers["ce-time"] == "2024-03-08T02:00:00Z"


def test_a_name_that_cannot_sit_in_a_urn_is_refused():
    for deployment in ("", "a:b", "-x", "城市"):
        with pytest.raises(ValueError, match="cannot name a deployment or service"):
            source_uri(deployment, "registry")


def test_the_producer_is_read_from_either_form_of_the_source():
    assert producer_of("urn:lookback:ezhou:registry") == "registry"
    assert producer_of("urn:lookback:t0123456789:inspection") == "inspection"
    assert producer_of("registry") == "registry"  # the older form
    for foreign in ("https://example.invalid/registry", "urn:lookback:registry", "/services/registry",
                    "urn:other:ezhou:registry", "urn:lookback:ezhou:"):
        with pytest.raises(ValueError, match="neither urn:lookback"):
            producer_of(foreign)


def test_the_current_and_the_older_form_parse_to_the_same_delivery():
    body = json.dumps({"project_id": "p-1"}).encode()
    current = relay_headers(source_uri("ezhou", "registry"))
    older = {**relay_headers("registry"), "ce-schemaversion": 2, "ce-streamversion": 3,
             "ce-globalposition": 41}
    new, old = (Delivery.from_amqp(body, headers, EVENT_ID) for headers in (current, older))
    assert new.model_dump(exclude={"source"}) == old.model_dump(exclude={"source"})
    assert (new.producer, old.producer) == ("registry", "registry")
    assert (new.schema_version, new.stream_version, new.global_position) == (2, 3, 41)
    assert new.occurred_at == datetime(2024, 3, 8, 2, tzinfo=UTC)


def test_a_source_that_names_no_producer_is_not_a_delivery():
    headers = {**relay_headers(source_uri("ezhou", "registry")), "ce-source": "https://x.invalid/"}
    with pytest.raises(ValueError, match="neither urn:lookback"):
        Delivery.from_amqp(b"{}", headers, EVENT_ID)


def test_the_cloudevents_sdk_reads_our_message_and_writes_the_same_headers():
    delivery = Delivery.from_amqp(b'{"a":1}', relay_headers(source_uri("ezhou", "registry")),
                                  EVENT_ID)
    outgoing = delivery.outgoing()
    event = from_binary(RabbitMQMessage(outgoing.headers, "application/json", outgoing.body),
                        JSONFormat())
    assert (event.get_id(), event.get_source(), event.get_type()) == (
        EVENT_ID, "urn:lookback:ezhou:registry", "registry.ProjectRegistered")
    assert event.get_extension("correlationid") == CORRELATION
    assert event.get_data() == {"a": 1}
    # Written back by the SDK's own binding, the headers are ours, attribute for attribute.
    assert to_binary(event, JSONFormat()).headers == outgoing.headers
