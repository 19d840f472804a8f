"""A subscriber another team could write from Lookback's published contract alone.

It uses plain aio-pika and the JSON Schemas under docs/events/schemas (docs/events.md); it imports
nothing of Lookback. It reads a producer's archive stream (`<producer>.events.archive`, every
event the producer ever published, in order) from where it left off — from the first event the
first time — so a subscriber added months later catches up on the whole history and then simply
goes on following the live events on the same stream. Each event is applied once: the subscriber
keeps the stream offset it reached and the ids it applied in its own state file, and skips an id
it has applied before (a redelivery, or a restart between applying and saving).

Run: python examples/external_subscriber.py AMQP_URL STREAM STATE_FILE
"""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aio_pika
import jsonschema

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "events" / "schemas"


class Subscriber:
    def __init__(self, amqp_url: str, stream: str, state_file: Path,
                 schemas: Path = SCHEMAS) -> None:
        self.amqp_url, self.stream, self.state_file, self.schemas = amqp_url, stream, state_file, schemas
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        self.offset: int | None = state.get("offset")
        self.applied: list[dict[str, Any]] = state.get("applied", [])
        self._seen = {event["id"] for event in self.applied}
        self.refused: list[dict[str, Any]] = []

    def _save(self) -> None:
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({"offset": self.offset, "applied": self.applied},
                                        ensure_ascii=False))
        temporary.replace(self.state_file)

    def _schema(self, event_type: str, version: int) -> dict[str, Any]:
        return json.loads((self.schemas / event_type / f"v{version}.json").read_text())

    def handle(self, headers: dict[str, Any], body: bytes, offset: int) -> None:
        """Validate against the published schema (ignoring fields it does not know) and apply."""
        event_id, event_type = str(headers["ce-id"]), str(headers["ce-type"])
        version = int(headers.get("ce-schemaversion", 1))
        if event_id not in self._seen:
            payload = json.loads(body)
            schema = self._schema(event_type, version)
            known = {k: v for k, v in payload.items() if k in schema.get("properties", {})}
            try:
                jsonschema.validate(known, {**schema, "additionalProperties": True})
            except jsonschema.ValidationError as exc:
                self.refused.append({"id": event_id, "type": event_type, "why": exc.message})
            else:
                self.applied.append({"id": event_id, "type": event_type,
                                     "subject": str(headers.get("ce-subject", "")),
                                     "position": _number(headers.get("ce-globalposition"))})
                self._seen.add(event_id)
        self.offset = offset
        self._save()

    async def run(self, stop: asyncio.Event) -> None:
        connection = await aio_pika.connect_robust(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=100)  # a stream consumer needs a prefetch
            queue = await channel.get_queue(self.stream, ensure=True)
            start: Any = "first" if self.offset is None else self.offset + 1

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                headers = dict(message.headers or {})
                self.handle({k: (v.decode() if isinstance(v, bytes) else v)
                             for k, v in headers.items()}, message.body,
                            int(headers["x-stream-offset"]))
                await message.ack()

            tag = await queue.consume(on_message, arguments={"x-stream-offset": start})
            await stop.wait()
            await queue.cancel(tag)


async def _main(amqp_url: str, stream: str, state_file: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(2, stop.set)
    await Subscriber(amqp_url, stream, Path(state_file)).run(stop)


def _number(value: Any) -> int | None:
    """An extension as a number: a string now, an AMQP integer in older archived messages."""
    return None if value is None else int(str(value.decode() if isinstance(value, bytes) else value))


if __name__ == "__main__":
    asyncio.run(_main(*sys.argv[1:4]))
