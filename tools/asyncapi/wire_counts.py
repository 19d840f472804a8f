"""Before/after counts of issue 14's list about the wire (AsyncAPI documents and CloudEvents headers).

    .venv/bin/python tools/asyncapi/wire_counts.py --before <git revision>

For the working tree and for `<revision>` (its files unpacked in a temporary folder, run with
this venv), each backend service's app is built as `lookback serve` builds it, its /asyncapi.json read,
and its relay asked for the headers of one row (a stub pool stands in for the database); then the
same counts are taken from both and printed side by side.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]

PROBE = r'''
import asyncio, inspect, json, uuid
import httpx
from services.system import BACKEND_SERVICES, service_app, spec
from shared.metrics import Metrics
from shared.settings import Settings
from shared.transport import Relay

class StubPool:  # positions start at 0 and always advance; one row to publish
    def __init__(self, row): self.row = row
    async def fetchval(self, *args): return 0 if "SELECT global_position" in args[0] else True
    async def fetch(self, *args): return [self.row]

async def main():
    out = {"documents": {}, "headers": {}, "consumers": {}}
    for name in BACKEND_SERVICES:
        settings = Settings(database_url="postgresql://unused/none", tokens_json="{}",
                            amqp_url="amqp://localhost:5672/", docs_access="public")
        app = service_app(name, settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://probe") as client:
            out["documents"][name] = (await client.get("/asyncapi.json")).json()
        out["consumers"][name] = {c.name: c.event_types for c in spec(name).consumers}
        sent = []
        async def publish(message): sent.append(message)
        extra = ({"deployment": settings.deployment_name}  # as shared/service.py builds it
                 if "deployment" in inspect.signature(Relay).parameters else {})
        row = {"global_position": 7, "event_id": str(uuid.uuid4()), "event_type": f"{name}.Probe",
               "schema_version": 1, "stream_id": "probe-1", "stream_version": 3, "body": "{}",
               "time": "2024-03-08T02:00:00+00:00", "corr": str(uuid.uuid4()), "cause": str(uuid.uuid4())}
        relay = Relay(service=name, categories=["probe"], pool=StubPool(row), publish=publish,
                      metrics=Metrics(name), **extra)
        await relay.run_once()
        out["headers"][name] = {k: [type(v).__name__, v] for k, v in sent[0].headers.items()}
    print(json.dumps(out))

asyncio.run(main())
'''


def probe(tree: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=tree, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tree), "LOOKBACK_LOG_LEVEL": "ERROR",
                               "PATH": "/usr/bin:/bin"})
    if done.returncode:
        raise SystemExit(f"probing {tree} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def resolve(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def header_names(document: dict[str, Any], schema: Any) -> set[str]:
    schema = resolve(document, schema)
    if not isinstance(schema, dict):
        return set()
    names = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        names |= header_names(document, part)
    return names


def counts(probed: dict[str, Any], consumers: dict[str, dict[str, list[str]]]) -> dict[str, str]:
    documents, headers = probed["documents"], probed["headers"]
    messages = with_ce = correlated = 0
    receives = received = empty = 0
    bound = described = queues = queues_with_arguments = 0
    dead_letter_paths = archives = 0
    for service, document in documents.items():
        channels = document.get("channels", {})
        for key, message in document.get("components", {}).get("messages", {}).items():
            if key == "DeadLetter":  # not an event: what a consumer refused, headers and all
                continue
            messages += 1
            names = header_names(document, message.get("headers"))
            with_ce += any(n.startswith("ce-") for n in names)
            location = resolve(document, message.get("correlationId", {})).get("location", "")
            correlated += location.removeprefix("$message.header#/") in names
        for operation in document.get("operations", {}).values():
            if operation["action"] != "receive":
                continue
            receives += 1
            payloads = [resolve(document, resolve(document, ref).get("payload", {}))
                        for ref in operation.get("messages", [])]
            received += len(payloads)
            empty += any(not payload.get("properties") for payload in payloads)
        for consumer, event_types in consumers[service].items():
            queues += 1
            bound += len(event_types)
            channel = next((c for c in channels.values()
                            if c.get("bindings", {}).get("amqp", {}).get("queue", {}).get("name")
                            == consumer), {})
            amqp = channel.get("bindings", {}).get("amqp", {})
            shown = {b["routingKey"] for b in amqp.get("x-lookback-bindings", [])}
            shown.add(channel.get("address", ""))
            described += len(shown & set(event_types))
            arguments = amqp.get("x-lookback-queue-arguments", {})
            queues_with_arguments += (arguments.get("x-queue-type") == "quorum"
                                      and "x-dead-letter-exchange" in arguments)
        addresses = {c.get("address") for c in channels.values()}
        dead_letter_paths += {f"{service}.dlx", f"{service}.dlq"} <= addresses
        archives += f"{service}.events.archive" in addresses
    notifier = documents["notifier"]
    relative = sum(not urlsplit(str(h["ce-source"][1])).scheme for h in headers.values())
    integers = sum(kind == "int" for h in headers.values() for kind, _ in h.values())
    integer_names = sorted({k for h in headers.values() for k, (kind, _) in h.items() if kind == "int"})
    n = len(documents)
    return {
        "event messages with a headers schema naming the ce- attributes": f"{with_ce} of {messages}",
        "consumer-queue bindings described": f"{described} of {bound}",
        "receive operations with an empty payload": f"{empty} of {receives}",
        "messages the receive operations name": f"{received}",
        "consumer queues with quorum/DLX arguments described": f"{queues_with_arguments} of {queues}",
        "services with DLX and DLQ described": f"{dead_letter_paths} of {n}",
        "services with the archive stream described": f"{archives} of {n}",
        "event messages whose correlationId points at a declared header": f"{correlated} of {messages}",
        "notifier document: channels / operations / messages": (
            f"{len(notifier.get('channels', {}))} / {len(notifier.get('operations', {}))} / "
            f"{len(notifier.get('components', {}).get('messages', {}))}"),
        "relays whose ce-source is relative": f"{relative} of {n}",
        "ce- headers sent as AMQP integers (per message)": (
            f"{integers // n} ({', '.join(integer_names) or 'none'})"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision to compare with")
    args = parser.parse_args()
    after = probe(ROOT)
    with tempfile.TemporaryDirectory(prefix="wire-counts-") as folder:
        tree = Path(folder)  # the revision's files only: nothing is added to the repository
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        before = probe(tree)
    consumers = after["consumers"]
    rows = [(k, v, counts(after, consumers)[k]) for k, v in counts(before, consumers).items()]
    width = max(len(k) for k, _, _ in rows)
    print(f"{'':{width}}  {'before (' + args.before + ')':<28}  after")
    for label, old, new in rows:
        print(f"{label:{width}}  {old:<28}  {new}")


if __name__ == "__main__":
    main()
