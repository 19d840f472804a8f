"""Each service's AsyncAPI 3.0 document, generated from what the service really does on the wire.

Generated here rather than by FastStream (docs/adr/0016): the relay publishes through aio-pika, not
through FastStream publishers, and FastStream's generator cannot say what the wire carries — the
CloudEvents `ce-` headers, every routing key a consumer queue is bound with (it shows the first),
the queue arguments (quorum, delivery limit, dead-letter exchange), the dead-letter path and the
archive stream. So the document is built from the same sources the code runs on: the topology
(shared/topology.py: names, exchanges, queue arguments), the producer's contract (its events, the
payload schemas published under docs/events/schemas, shared/contracts.py) and the envelope
(shared/envelope.py: the headers every message carries).

What AsyncAPI's AMQP binding (0.3.0) has no field for — a queue's arguments and its bindings — is
written as binding extensions, `x-lookback-queue-arguments` and `x-lookback-bindings`.
"""
from __future__ import annotations

import copy
import inspect
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from faststream.rabbit import RabbitExchange, RabbitQueue
from faststream.specification.asyncapi.site import get_asyncapi_html

from shared import topology
from shared.consuming import ConsumerSpec
from shared.contracts import schema_of
from shared.envelope import CE, source_uri
from shared.messages import Event, EventContract
from shared.provisioning import OPERATOR, service_role

if TYPE_CHECKING:
    from faststream.specification import Specification

ASYNCAPI_VERSION = "3.1.0"
AMQP_BINDING = "0.3.0"
HEADERS = "CloudEventHeaders"
DEAD_LETTER = "DeadLetter"
DEAD_LETTER_HEADERS = "DeadLetterHeaders"
_KEY = re.compile(r"[^\w.\-]")

_ENVELOPE = f"""Every message is a CloudEvents 1.0 event in binary content mode, in the RabbitMQ
binding: its attributes are AMQP headers prefixed `{CE}`, all strings; the body is the event's
payload as JSON (`content_type` application/json). The AMQP `message_id` is the event id and `type`
the event type; the routing key is the event type. `{CE}source` is `urn:lookback:<deployment>:
<service>`; `{CE}source` and `{CE}id` together identify an event, so a redelivery is recognised by
them. Messages published before this form (in the archive streams) carry the service's bare name as
source and integer extensions. A consumer acts on a message only if its broker user (`user_id`,
which RabbitMQ guarantees) is the producer's, and the producer's signed ledger holds the same event
(type, stream, payload hash); what it cannot accept goes to its dead-letter queue with the reason.
Event schemas and how they may change: docs/events.md."""


def document(*, service: str, version: str, description: str, contract: EventContract,
             consumers: Sequence[ConsumerSpec], names: topology.Names, deployment: str,
             amqp_url: str | None = None) -> dict[str, Any]:
    """The AsyncAPI document of `service`: what it publishes, what it consumes, where it
    dead-letters, and the archive stream a late subscriber reads."""
    server = urlsplit(amqp_url or "amqp://localhost:5672/")
    vhost = (server.path or "/").removeprefix("/") or "/"
    builder = _Builder(names, deployment, vhost)
    for event in contract.events:
        builder.message(contract.service, event)
    for consumer in consumers:
        for event_type in consumer.event_types:
            builder.message(consumer.producer, consumer.registry.classes[event_type])

    if contract.events:
        builder.publishing(service, contract.events)
    for consumer in consumers:
        builder.consuming(service, consumer)
    if consumers:
        builder.dead_letters(service, consumers)

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": f"urn:lookback:{deployment}:{service}:asyncapi",
        "info": {"title": f"Lookback {service}", "version": version,
                 "description": f"{description}\n\n{_ENVELOPE}",
                 "x-lookback-deployment": deployment},
        "defaultContentType": "application/json",
        "servers": {"broker": {
            "host": f"{server.hostname or 'localhost'}:{server.port or 5672}",
            "protocol": "amqp", "protocolVersion": "0.9.1", "pathname": f"/{vhost.lstrip('/')}",
            "description": f"RabbitMQ; {service} logs in as the broker user "
                           f"`{service_role(service)}`, its own (docs/adr/0009)."}},
        "channels": builder.channels,
        "operations": builder.operations,
        "components": {
            "messages": builder.messages,
            "schemas": {HEADERS: _headers_schema(), DEAD_LETTER_HEADERS: _dead_letter_headers(),
                        **builder.schemas},
            "correlationIds": {"correlation": {
                "description": "The command (or the event) that started the chain of events this "
                               "one belongs to; the same on every event it caused, in any service.",
                "location": f"$message.header#/{CE}correlationid"}},
        },
    }


def render(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


class _Rendered:
    """What FastStream's page needs of a document: its title and its JSON."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.title, self._json = doc["info"]["title"], json.dumps(doc, ensure_ascii=False)

    def to_json(self) -> str:
        return self._json


def asyncapi_page(doc: Mapping[str, Any]) -> str:
    """The document as FastStream renders one (AsyncAPI's React component), without its
    try-it-out route: that would let anyone publish onto the real broker."""
    return get_asyncapi_html(cast("Specification", _Rendered(doc)), try_it_out_path=None)


class _Builder:
    def __init__(self, names: topology.Names, deployment: str, vhost: str) -> None:
        self.names, self.deployment, self.vhost = names, deployment, vhost
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.schemas: dict[str, Any] = {}

    # -- messages --------------------------------------------------------------------------------
    def message(self, producer: str, event: type[Event]) -> None:
        name = event.type_name
        if _key(name) in self.messages:
            return
        self.schemas[_key(name)] = self._payload_schema(event)
        doc = inspect.cleandoc(event.__doc__ or "")
        self.messages[_key(name)] = {
            "name": name,
            "title": event.__name__,
            "summary": _first_sentence(doc) or name,
            **({"description": doc} if doc else {}),
            "contentType": "application/json",
            "headers": {"allOf": [
                {"$ref": f"#/components/schemas/{HEADERS}"},
                {"type": "object", "properties": {
                    f"{CE}type": {"const": name},
                    f"{CE}source": {"const": source_uri(self.deployment, producer)},
                    f"{CE}schemaversion": {"const": str(event.schema_version)}}}]},
            "payload": {"$ref": f"#/components/schemas/{_key(name)}"},
            "correlationId": {"$ref": "#/components/correlationIds/correlation"},
            "bindings": {"amqp": {"messageType": name, "bindingVersion": AMQP_BINDING}},
            "x-lookback-schema-version": event.schema_version,
            "x-lookback-schema": f"docs/events/schemas/{name}/v{event.schema_version}.json",
        }

    def _payload_schema(self, event: type[Event]) -> dict[str, Any]:
        """The published JSON Schema, its `$defs` moved to components.schemas: a `$ref` in an
        AsyncAPI document is resolved against the document, not against the schema it is in."""
        schema = copy.deepcopy(schema_of(event))
        published_id = schema.pop("$id")
        defs = schema.pop("$defs", {})
        mapping = {def_name: _key(def_name) for def_name in defs}
        if any(mapping[n] in self.schemas and self.schemas[mapping[n]] != _rewrite(d, mapping)
               for n, d in defs.items()):  # a name taken by a different shape: keep them apart
            mapping = {n: _key(f"{event.type_name}.{n}") for n in defs}
        for def_name, definition in defs.items():
            self.schemas[mapping[def_name]] = _rewrite(definition, mapping)
        rewritten: dict[str, Any] = _rewrite(schema, mapping)
        rewritten["x-lookback-schema-id"] = published_id
        return rewritten

    # -- channels and operations -----------------------------------------------------------------
    def publishing(self, service: str, events: Iterable[type[Event]]) -> None:
        exchange = topology.events_exchange(self.names, service)
        own = list(events)
        for event in own:
            channel = _key(f"{service}.events.{event.type_name.removeprefix(service + '.')}")
            self.channels[channel] = {
                "address": event.type_name,
                "title": f"{event.type_name} on {exchange.name}",
                "description": f"Routing key `{event.type_name}` on the topic exchange "
                               f"`{exchange.name}`. Bind a queue of your own with this key, or "
                               f"`#` for every event of {service}.",
                "messages": {_key(event.type_name): _message_ref(event.type_name)},
                "bindings": {"amqp": self._exchange_binding(exchange)},
            }
            self.operations[_key(f"publish.{event.type_name}")] = {
                "action": "send",
                "title": f"Publish {event.__name__}",
                "summary": f"The relay publishes each sequenced {event.__name__} once it is in "
                           "the signed ledger, in the ledger's order, persistent, with publisher "
                           "confirms.",
                "channel": {"$ref": f"#/channels/{channel}"},
                "messages": [{"$ref": f"#/channels/{channel}/messages/{_key(event.type_name)}"}],
                "bindings": {"amqp": {"deliveryMode": 2, "mandatory": True,
                                      "userId": service_role(service),
                                      "bindingVersion": AMQP_BINDING}},
            }
        archive = topology.archive_queue(self.names, service)
        channel = _key(f"{service}.events.archive")
        self.channels[channel] = {
            "address": archive.name,
            "title": f"{service}'s archive stream",
            "description": f"Every event {service} publishes, in order, kept for "
                           f"{topology.ARCHIVE_RETENTION.removesuffix('D')} days (a RabbitMQ "
                           "stream bound to the exchange with `#`). A subscriber added later reads "
                           "it from its first offset and goes on reading it live "
                           "(docs/events.md, examples/external_subscriber.py). Older messages in "
                           "it carry the previous header form (bare service name as source, "
                           "integer extensions).",
            "messages": {_key(e.type_name): _message_ref(e.type_name) for e in own},
            "bindings": {"amqp": self._queue_binding(archive, [(exchange.name, "#")])},
        }

    def consuming(self, service: str, consumer: ConsumerSpec) -> None:
        exchange = topology.events_exchange(self.names, consumer.producer, declare=False)
        queue = topology.consumer_queue(self.names, consumer.name, service,
                                        consumer.event_types[0])
        self.channels[_key(consumer.name)] = {
            "address": queue.name,
            "title": f"{consumer.name}: {consumer.producer}'s events for {service}",
            "description": f"A quorum queue of {service}'s, bound to `{exchange.name}` with "
                           f"{len(consumer.event_types)} routing key(s). Past "
                           f"{topology.DELIVERY_LIMIT} deliveries, or at once if it cannot be "
                           f"accepted, a message goes to `{self.names.dlx(service)}`.",
            "messages": {_key(t): _message_ref(t) for t in consumer.event_types},
            "bindings": {"amqp": self._queue_binding(
                queue, [(exchange.name, t) for t in consumer.event_types])},
        }
        self.operations[_key(f"receive.{consumer.name}")] = {
            "action": "receive",
            "title": f"{service} receives {consumer.producer}'s events",
            "summary": "Each delivery is checked (envelope, publishing broker user, the producer's "
                       "ledger), handled exactly once in one transaction with its inbox row, then "
                       "acknowledged; what cannot be accepted is dead-lettered with the reason.",
            "channel": {"$ref": f"#/channels/{_key(consumer.name)}"},
            "messages": [{"$ref": f"#/channels/{_key(consumer.name)}/messages/{_key(t)}"}
                         for t in consumer.event_types],
            "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING}},
        }

    def dead_letters(self, service: str, consumers: Sequence[ConsumerSpec]) -> None:
        dlx = topology.dead_letter_exchange(self.names, service)
        dlq = topology.dead_letter_queue(self.names, service)
        self.messages[DEAD_LETTER] = {
            "name": DEAD_LETTER,
            "title": "A message a consumer could not accept",
            "summary": "The message as it came (body and headers), with the reason.",
            "description": f"Dead-lettered by the consumer (a message that does not parse, is not "
                           f"in the producer's ledger, or fails validation; `x-lookback-*` headers) "
                           f"or by the broker after {topology.DELIVERY_LIMIT} deliveries (`x-death`)."
                           " `lookback dlq` lists, replays or discards them; each decision is "
                           "recorded as an event.",
            "headers": {"$ref": f"#/components/schemas/{DEAD_LETTER_HEADERS}"},
            "payload": {"description": "The body exactly as it was received: usually an event's "
                                       "JSON payload, but possibly anything."},
        }
        self.channels[_key(f"{service}.dlx")] = {
            "address": dlx.name,
            "title": f"{service}'s dead-letter exchange",
            "description": f"Fanout exchange; every consumer queue of {service} names it as its "
                           f"`x-dead-letter-exchange`, and {service} publishes here what it "
                           "refuses, with the reason.",
            "messages": {DEAD_LETTER: {"$ref": f"#/components/messages/{DEAD_LETTER}"}},
            "bindings": {"amqp": self._exchange_binding(dlx)},
        }
        self.channels[_key(f"{service}.dlq")] = {
            "address": dlq.name,
            "title": f"{service}'s dead-letter queue",
            "description": f"Everything dead-lettered by {', '.join(c.name for c in consumers)}; "
                           f"read by the operator (`lookback dlq … {service}`, broker user "
                           f"`{OPERATOR}`), never by {service} itself.",
            "messages": {DEAD_LETTER: {"$ref": f"#/components/messages/{DEAD_LETTER}"}},
            "bindings": {"amqp": self._queue_binding(dlq, [(dlx.name, "")])},
        }
        self.operations[_key(f"deadLetter.{service}")] = {
            "action": "send",
            "title": f"{service} dead-letters a message",
            "summary": "A message that no retry can make acceptable, with the reason, the consumer "
                       "and the broker user that published it.",
            "channel": {"$ref": f"#/channels/{_key(service + '.dlx')}"},
            "messages": [{"$ref": f"#/channels/{_key(service + '.dlx')}/messages/{DEAD_LETTER}"}],
            "bindings": {"amqp": {"deliveryMode": 2, "bindingVersion": AMQP_BINDING}},
        }

    # -- AMQP bindings ---------------------------------------------------------------------------
    def _exchange_binding(self, exchange: RabbitExchange) -> dict[str, Any]:
        return {"is": "routingKey", "exchange": {
            "name": exchange.name, "type": exchange.type.value, "durable": exchange.durable,
            "autoDelete": exchange.auto_delete, "vhost": self.vhost},
            "bindingVersion": AMQP_BINDING}

    def _queue_binding(self, queue: RabbitQueue,
                       bound: Sequence[tuple[str, str]]) -> dict[str, Any]:
        return {"is": "queue", "queue": {
            "name": queue.name, "durable": queue.durable, "exclusive": queue.exclusive,
            "autoDelete": queue.auto_delete, "vhost": self.vhost},
            "x-lookback-queue-arguments": dict(queue.arguments or {}),
            "x-lookback-bindings": [{"exchange": exchange, "routingKey": key}
                                    for exchange, key in bound],
            "bindingVersion": AMQP_BINDING}


def _headers_schema() -> dict[str, Any]:
    uuid_text = {"type": "string", "format": "uuid"}
    number = {"type": "string", "pattern": "^[0-9]+$"}
    older = " Older messages in the archive streams carry it as an AMQP integer."
    return {
        "type": "object",
        "description": "CloudEvents 1.0 attributes and Lookback's extensions, as AMQP headers "
                       "(RabbitMQ binding, binary content mode: `ce-` prefix, string values).",
        "required": [f"{CE}{name}" for name in (
            "specversion", "id", "source", "type", "subject", "time", "schemaversion",
            "streamversion", "globalposition", "correlationid")],
        "properties": {
            f"{CE}specversion": {"type": "string", "const": "1.0"},
            f"{CE}id": {**uuid_text, "description": "The event id (also the AMQP message_id); "
                                                     "with ce-source, what identifies an event."},
            f"{CE}source": {"type": "string", "format": "uri",
                            "pattern": "^urn:lookback:[A-Za-z0-9][A-Za-z0-9._-]*:[a-z]+$",
                            "description": "urn:lookback:<deployment>:<service>: the producer, "
                                           "globally. Older messages in the archive streams carry "
                                           "the service's bare name."},
            f"{CE}type": {"type": "string", "description": "<service>.<EventName>; also the "
                                                           "routing key and the AMQP `type`."},
            f"{CE}subject": {"type": "string", "description": "The stream the event belongs to "
                                                              "(`<category>-<id>`)."},
            f"{CE}time": {"type": "string", "format": "date-time",
                          "description": "When it happened (RFC 3339, UTC)."},
            f"{CE}schemaversion": {**number, "description": "Extension: the payload's schema "
                                   "version (docs/events/schemas/<type>/v<n>.json)." + older},
            f"{CE}streamversion": {**number, "description": "Extension: the event's version in "
                                   "its stream (1, 2, …)." + older},
            f"{CE}globalposition": {**number, "description": "Extension: its position in the "
                                    "signed ledger's global order (gap-free)." + older},
            f"{CE}correlationid": {**uuid_text, "description": "Extension: the command or event "
                                                               "that started this chain."},
            f"{CE}causationid": {**uuid_text, "description": "Extension: the event this one "
                                 "reacted to, if it was caused by one."},
        },
    }


def _dead_letter_headers() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The original message's headers (its `ce-` attributes if it had them), "
                       "and why it was dead-lettered.",
        "properties": {
            "x-lookback-reason": {"type": "string", "maxLength": 1000,
                                  "description": "Why the consumer refused it."},
            "x-lookback-consumer": {"type": "string", "description": "The consumer that refused it."},
            "x-lookback-published-by": {"type": "string",
                                        "description": "The broker user that published it."},
            "x-death": {"type": "array", "description": "Set by RabbitMQ when it dead-lettered "
                        "the message itself (delivery limit reached).", "items": {"type": "object"}},
        },
        "additionalProperties": True,
    }


def _first_sentence(text: str) -> str:
    paragraph = " ".join(text.split("\n\n", 1)[0].split())
    sentence, stop, _ = paragraph.partition(". ")
    return sentence + "." if stop else paragraph


def _message_ref(event_type: str) -> dict[str, str]:
    return {"$ref": f"#/components/messages/{_key(event_type)}"}


def _key(name: str) -> str:
    """A component or channel key AsyncAPI accepts (`^[\\w.\\-]+$`)."""
    return _KEY.sub("_", name)


def _rewrite(schema: Any, mapping: Mapping[str, str]) -> Any:
    if isinstance(schema, dict):
        return {k: (f"#/components/schemas/{mapping[v.removeprefix('#/$defs/')]}"
                    if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/")
                    else _rewrite(v, mapping)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rewrite(item, mapping) for item in schema]
    return schema
