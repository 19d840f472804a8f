"""What travels on the bus: CloudEvents 1.0 in binary mode (attributes as `ce-` AMQP headers).

The body is the event payload (JSON); the `ce-` headers carry id, source, type, subject (the
stream id), time, spec version, and our extensions (schema version, stream version, global
position, correlation and causation ids). The AMQP `message_id` is the event id, so a redelivery is
recognisable (FastStream would otherwise invent a fresh id per delivery).

The binding is the RabbitMQ one (`ce-` headers, AMQP 0-9-1; docs/events.md says why): every
attribute travels as a string, extensions included, and `ce-source` is an absolute URI naming the
deployment and the producer, `urn:lookback:<deployment>:<service>`. Messages published before
(kept for years in the archive streams, or put back from a dead-letter queue) carry the producer's
bare name as source and integer extensions; they are still read (docs/adr/0016).
"""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict

from shared.messages import RecordedEvent

CE = "ce-"
SOURCE_SCHEME = "urn:lookback:"
# A deployment or service name inside a URN: no colon (the separator), nothing to escape.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def source_uri(deployment: str, service: str) -> str:
    """The `ce-source` of what `service` publishes in `deployment`: an absolute URI that names the
    producer wherever the message ends up (the CloudEvents spec asks `source` + `id` to be
    globally unique)."""
    for part in (deployment, service):
        if not NAME.fullmatch(part):
            raise ValueError(f"{part!r} cannot name a deployment or service in a URN "
                             "(letters, digits, '.', '_', '-'; a letter or digit first)")
    return f"{SOURCE_SCHEME}{deployment}:{service}"


def producer_of(source: str) -> str:
    """The producing service a `ce-source` names: `urn:lookback:<deployment>:<service>`, or the
    bare service name that messages published before carry."""
    if source.startswith(SOURCE_SCHEME):
        deployment, _, service = source.removeprefix(SOURCE_SCHEME).partition(":")
        if NAME.fullmatch(deployment) and NAME.fullmatch(service):
            return service
    elif NAME.fullmatch(source):
        return source
    raise ValueError(f"ce-source {source!r} is neither urn:lookback:<deployment>:<service> nor a "
                     "service's name")


class Delivery(BaseModel):
    """One event as a consumer receives it, whichever transport brought it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    event_type: str
    schema_version: int
    source: str
    stream_id: str
    stream_version: int
    global_position: int | None = None
    occurred_at: AwareDatetime | None = None
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    payload: dict[str, Any]

    @property
    def producer(self) -> str:
        """The service that published it, as its source names it."""
        return producer_of(self.source)

    @classmethod
    def from_recorded(cls, event: RecordedEvent, source: str) -> Delivery:
        meta = event.metadata
        return cls(
            event_id=event.event_id, event_type=event.event_type,
            schema_version=event.schema_version, source=source, stream_id=event.stream_id,
            stream_version=event.stream_version, global_position=event.global_position,
            occurred_at=meta.get("occurred_at"), correlation_id=meta.get("correlation_id"),
            causation_id=meta.get("causation_id"), payload=event.payload)

    def amqp_headers(self) -> dict[str, Any]:
        return cloud_event_headers(
            event_id=str(self.event_id), source=self.source, event_type=self.event_type,
            stream_id=self.stream_id, schema_version=self.schema_version,
            stream_version=self.stream_version, global_position=self.global_position,
            time=self.occurred_at.isoformat() if self.occurred_at else None,
            correlation_id=str(self.correlation_id) if self.correlation_id else None,
            causation_id=str(self.causation_id) if self.causation_id else None)

    def amqp_body(self) -> bytes:
        return json.dumps(self.payload, ensure_ascii=False, separators=(",", ":")).encode()

    def outgoing(self) -> Outgoing:
        return Outgoing(str(self.event_id), self.event_type, self.amqp_headers(), self.amqp_body(),
                        str(self.correlation_id or self.event_id))

    @classmethod
    def from_amqp(cls, body: bytes, headers: Mapping[str, Any] | None,
                  message_id: str | None) -> Delivery:
        """Parse a delivery; raise ValueError with a readable reason if it is not one of ours."""
        h = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in (headers or {}).items()}
        event_id = h.get(f"{CE}id") or message_id
        if not event_id:
            raise ValueError("message has neither ce-id nor message_id: cannot deduplicate")
        if h.get(f"{CE}specversion") != "1.0":
            raise ValueError(f"ce-specversion must be 1.0, got {h.get(f'{CE}specversion')!r}")
        missing = [k for k in ("type", "source", "subject") if not h.get(f"{CE}{k}")]
        if missing:
            raise ValueError(f"missing CloudEvents headers: {', '.join(CE + m for m in missing)}")
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"body is not JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise ValueError("body must be a JSON object")
        producer_of(str(h[f"{CE}source"]))  # raises with the reason if it names no producer
        try:  # header text (or, from older messages, integers) is parsed into the fields' types
            return cls.model_validate(dict(
                event_id=event_id, event_type=h[f"{CE}type"],
                schema_version=int(h.get(f"{CE}schemaversion", 1)), source=h[f"{CE}source"],
                stream_id=h[f"{CE}subject"], stream_version=int(h.get(f"{CE}streamversion", 0)),
                global_position=h.get(f"{CE}globalposition"),
                occurred_at=_parse_time(h.get(f"{CE}time")),
                correlation_id=h.get(f"{CE}correlationid"), causation_id=h.get(f"{CE}causationid"),
                payload=payload))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"bad CloudEvents attributes: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message ready to publish (the relay's hot path builds these straight from rows)."""

    event_id: str
    event_type: str
    headers: dict[str, Any]
    body: bytes
    correlation_id: str


def cloud_event_headers(*, event_id: str, source: str, event_type: str, stream_id: str,
                        schema_version: int, stream_version: int, global_position: int | None,
                        time: str | None, correlation_id: str | None,
                        causation_id: str | None) -> dict[str, str]:
    """Every attribute as a string: the RabbitMQ binding maps attributes to string headers, and a
    reader in any language (or the CloudEvents SDK) should not meet AMQP integers of a size it
    must guess."""
    headers = {
        f"{CE}specversion": "1.0",
        f"{CE}id": event_id,
        f"{CE}source": source,
        f"{CE}type": event_type,
        f"{CE}subject": stream_id,
        f"{CE}schemaversion": str(schema_version),
        f"{CE}streamversion": str(stream_version),
    }
    if time:
        headers[f"{CE}time"] = time.replace("+00:00", "Z")
    if global_position is not None:
        headers[f"{CE}globalposition"] = str(global_position)
    if correlation_id:
        headers[f"{CE}correlationid"] = correlation_id
    if causation_id:
        headers[f"{CE}causationid"] = causation_id
    return headers


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
