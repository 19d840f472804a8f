"""Telemetry that tells the truth (docs/adr/0017): every line a process writes is JSON when JSON
logs are on; one access line per request with the route's template, never a token, a raw id or a
query string; the correlation id answered on every response and carried into the command's
events; request and process metrics beside the commands counter; no lag sample where nothing is
measured; `promtool check metrics` accepts what each service serves."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi import APIRouter
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from services.system import service_app
from shared.service import ServiceSpec, create_service_app
from tests.e2e.test_embedded_up import LOOKBACK, free_port_base, stop
from tests.example_services import EXAMPLE
from tests.registry.support import project_body
from tests.support.actors import TOKENS_JSON, auth
from tests.support.databases import fetchval
from tests.support.polling import eventually
from tests.support.services import TEST_MASTER_KEY, child_env, running, service_settings, small_pools_env

PROMTOOL = shutil.which("promtool") or "promtool"
ADMIN = auth("admin-1")
TOKEN = ADMIN["Authorization"].removeprefix("Bearer ")


def samples(text: str) -> list[Any]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def promtool_problems(text: str) -> str:
    """What `promtool check metrics` says about an exposition ('' when it is clean)."""
    assert shutil.which("promtool"), "promtool is needed (Debian: apt-get install prometheus)"
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)
    return "" if done.returncode == 0 else (done.stdout + done.stderr)


def json_lines(text: str, where: str) -> list[dict[str, Any]]:
    parsed = []
    for line in text.splitlines():
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"a line on {where} is not JSON: {line!r}") from None
        assert isinstance(parsed[-1], dict), f"a line on {where} is not a JSON object: {line!r}"
    return parsed


@pytest.mark.e2e
@pytest.mark.timeout(180)
async def test_a_service_process_writes_only_json_and_one_access_line_per_request(
        tmp_path: Path, database: str, unique_prefix: str) -> None:
    port = free_port_base()
    env = child_env()
    env.update({"LOOKBACK_PII_MASTER_KEY": TEST_MASTER_KEY, "LOOKBACK_DATABASE_URL": database,
                "LOOKBACK_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/",
                "LOOKBACK_BUS_PREFIX": unique_prefix + ".", "LOOKBACK_HTTP_PORT": str(port),
                "LOOKBACK_TOKENS_JSON": TOKENS_JSON, "LOOKBACK_LOG_JSON": "true",
                "LOOKBACK_METRICS_ACCESS": "authenticated",
                "LOOKBACK_DATA_DIR": str(tmp_path / "var"), **small_pools_env()})
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen([LOOKBACK, "serve", "registry"], stdout=stdout, stderr=stderr,
                                env=env, text=True)
    base = f"http://127.0.0.1:{port}"
    sent = uuid.uuid4()
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            await _until_ready(client, proc, out, err)
            registered = await client.post("/projects", json=project_body(), headers={
                **ADMIN, "X-Correlation-ID": str(sent)})
            assert registered.status_code == 201, registered.text
            assert registered.headers["x-correlation-id"] == str(sent)
            project_id = registered.json()["project_id"]
            found = await client.get(f"/projects/{project_id}", headers=ADMIN)
            assert found.status_code == 200
            # A caller's id that is not a UUID is replaced (it would write free text into logs).
            listed = await client.get("/projects", params={"township": "凤凰街道"},
                                      headers={**ADMIN, "X-Correlation-ID": "张三 13800012345".encode()})
            generated = uuid.UUID(listed.headers["x-correlation-id"])
            refused = await client.get("/projects")  # no token: the edge answers
            assert refused.status_code == 401
            assert uuid.UUID(refused.headers["x-correlation-id"])
            missing = await client.get("/nowhere/王某某")
            assert missing.status_code in (401, 404)
            assert uuid.UUID(missing.headers["x-correlation-id"])
            exposition = (await client.get("/metrics", headers=ADMIN)).text
        correlation = await _correlation_of_event(database, project_id)
    finally:
        code = stop(proc)
    stdout_lines = json_lines(out.read_text(encoding="utf-8"), "stdout")
    stderr_lines = json_lines(err.read_text(encoding="utf-8"), "stderr")
    assert code == 0
    everything = out.read_text(encoding="utf-8") + err.read_text(encoding="utf-8")

    # The start-up banner is JSON too; the READY line says where the service listens.
    assert any(line.get("event") == "ready" and line["listening"] == {
        "registry": f"127.0.0.1:{port}"} for line in stdout_lines)
    assert any(line.get("event") == "listening" for line in stderr_lines)

    # The caller's correlation id went into the command's event and came back in the answer.
    assert correlation == str(sent)
    handled = [line for line in stderr_lines if line.get("event") == "command_handled"]
    assert [line["correlation_id"] for line in handled] == [str(sent)]

    access = [line for line in stderr_lines if line.get("event") == "http_request"]
    by_path = {(line["method"], line["path"], line["status"]): line for line in access}
    assert ("POST", "/projects", 201) in by_path
    assert ("GET", "/projects/{project_id}", 200) in by_path
    assert ("GET", "/projects", 200) in by_path and ("GET", "/projects", 401) in by_path
    assert ("GET", "/metrics", 200) in by_path
    posted = by_path[("POST", "/projects", 201)]
    assert posted["actor"] == "admin-1" and posted["correlation_id"] == str(sent)
    assert posted["service"] == "registry" and posted["duration_ms"] >= 0
    assert by_path[("GET", "/projects", 200)]["correlation_id"] == str(generated)
    assert by_path[("GET", "/projects", 401)]["actor"] is None
    assert not [line for line in access if line["path"].startswith("/nowhere")]
    # Never the token, the raw path with an id, the query string or the refused header's text.
    for secret in (TOKEN, f"/projects/{project_id}", "township=", "张三", "王某某", "13800012345"):
        assert secret not in everything, secret

    # Requests by route template (never a raw path), the process, the commands counter.
    assert not promtool_problems(exposition), promtool_problems(exposition)
    seen = samples(exposition)
    requests = {(s.labels["method"], s.labels["handler"], s.labels["status"]): s.value
                for s in seen if s.name == "http_requests_total"}
    assert requests[("GET", "/projects/{project_id}", "200")] == 1
    assert requests[("POST", "/projects", "201")] == 1
    assert requests[("GET", "/projects", "401")] == 1
    assert not [key for key in requests if project_id in key[1] or "王某某" in key[1]]
    assert any(s.name == "process_resident_memory_bytes" and s.value > 0 for s in seen)
    assert any(s.name == "process_cpu_seconds_total" for s in seen)
    commands = {(s.labels["service"], s.labels["command"], s.labels["outcome"]): s.value
                for s in seen if s.name == "lookback_commands_total"}
    assert commands == {("registry", "RegisterProject", "accepted"): 1}


async def _until_ready(client: httpx.AsyncClient, proc: subprocess.Popen[str], out: Path,
                       err: Path) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    proc.kill()
    raise AssertionError("the service never became ready:\n" + out.read_text() + err.read_text())


async def _correlation_of_event(dsn: str, project_id: str) -> str | None:
    found: str | None = await fetchval(
        dsn, "SELECT metadata->>'correlation_id' FROM es.events WHERE stream_id = $1 "
        "ORDER BY stream_version LIMIT 1", f"project-{project_id}")
    return found


@pytest.mark.unit
def test_a_service_that_cannot_start_says_why_in_json() -> None:
    done = subprocess.run([LOOKBACK, "serve", "registry"], capture_output=True, text=True,
                          timeout=60, env=child_env(broker=False, LOOKBACK_LOG_JSON="true"))
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = json_lines(done.stderr, "stderr")
    assert line["event"] == "cannot_start" and "LOOKBACK_DATABASE_URL" in line["reason"]


@pytest.mark.unit
def test_library_warnings_and_errors_are_json_lines_without_the_errors_message() -> None:
    script = """
import logging, warnings
from shared.logging import configure_logging, get_logger
configure_logging(json=True)
logging.getLogger("aio_pika.robust_connection").warning("Connection attempt failed: %s", "x")
logging.getLogger("uvicorn.error").info("Uvicorn running on http://127.0.0.1:1")
logging.getLogger("httpx").info('HTTP Request: GET http://127.0.0.1:1/projects?q=张某某 "200 OK"')
warnings.warn("a library's deprecation", DeprecationWarning, stacklevel=1)
try:
    raise ValueError("王某某 13800012345")
except ValueError:
    logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    get_logger().error("ours", exc_info=True)
print(end="", flush=True)
"""
    done = subprocess.run([sys.executable, "-W", "always", "-c", script], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = json_lines(done.stderr, "stderr")
    by_event = {line["event"]: line for line in lines}
    assert by_event["Connection attempt failed: x"]["logger"] == "aio_pika.robust_connection"
    assert by_event["Connection attempt failed: x"]["level"] == "warning"
    assert any("a library's deprecation" in line["event"] and line["logger"] == "py.warnings"
               for line in lines)
    failed = by_event["Exception in ASGI application"]
    assert failed["error_type"] == "ValueError" and failed["frames"]
    assert by_event["ours"]["error_type"] == "ValueError"
    assert "王某某" not in done.stderr and "13800012345" not in done.stderr
    # uvicorn's start-up chatter is said once by our own lines (`service_started`, `listening`).
    assert "Uvicorn running on http://127.0.0.1:1" not in by_event
    # httpx's request lines carry the query string (a searched name): held back like uvicorn's.
    assert "张某某" not in done.stderr


@pytest.mark.integration
@pytest.mark.timeout(120)
@pytest.mark.parametrize("service", ["registry", "rectification", "inspection", "notifier"])
async def test_each_service_serves_metrics_promtool_accepts_and_no_lag_it_does_not_measure(
        database: str, service: str) -> None:
    # The local transport: no relay runs in this process, so it has no relay lag to tell.
    app = service_app(service, service_settings(database, metrics_interval=0.05))
    async with running(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        history = await client.get("/audit/history/project-王某某", headers=ADMIN)
        assert history.status_code == 200, history.text

        async def measured() -> str | None:
            text = (await client.get("/metrics")).text
            return text if any(s.name == "lookback_sequencer_lag_events"
                               for s in samples(text)) else None

        exposition = await eventually(measured, what="the sampler's first measurement")
    assert not promtool_problems(exposition), promtool_problems(exposition)
    seen = samples(exposition)
    names = {s.name for s in seen}
    assert "lookback_relay_lag_events" not in names  # absent, not a 0 that means "unknown"
    assert "lookback_ledger_head_position" in names  # what the sampler measured, it tells
    handlers = {s.labels["handler"] for s in seen if s.name == "http_requests_total"}
    assert {"/healthz", "/audit/history/{subject}"} <= handlers
    assert "王某某" not in exposition
    assert {"process_resident_memory_bytes", "process_open_fds", "python_info"} <= names


def _exploding_spec() -> ServiceSpec[None]:
    router = APIRouter()

    @router.get("/things/{thing_id}/explode")
    async def explode(thing_id: str) -> None:
        raise RuntimeError(f"王某某 13800012345 {thing_id}")  # what an error message may quote

    return dataclasses.replace(EXAMPLE, router=router)


@pytest.mark.integration
@pytest.mark.timeout(60)
async def test_an_unhandled_error_answers_500_with_the_correlation_id_and_one_access_line(
        database: str) -> None:
    app = create_service_app(_exploding_spec(), service_settings(database))
    sent = uuid.uuid4()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
                failed = await client.get("/things/t-1/explode",
                                          headers={**ADMIN, "X-Correlation-ID": str(sent)})
            exposition = (await client.get("/metrics")).text
    assert failed.status_code == 500
    assert failed.json()["error"] == "internal_error"
    assert failed.headers["x-correlation-id"] == str(sent)
    access = [line for line in logs if line["event"] == "http_request"]
    assert [(a["path"], a["status"], a["actor"]) for a in access] == [
        ("/things/{thing_id}/explode", 500, "admin-1")]
    error = next(line for line in logs if line["event"] == "unhandled_error")
    assert error["correlation_id"] == str(sent)  # every line of the request carries it
    assert "王某某" not in repr(logs)
    assert any(s.name == "http_requests_total" and s.labels["status"] == "500"
               and s.labels["handler"] == "/things/{thing_id}/explode"
               for s in samples(exposition))


@pytest.mark.integration
@pytest.mark.timeout(60)
async def test_a_command_carries_the_requests_correlation_id_into_its_events(database: str) -> None:
    app = create_service_app(EXAMPLE, service_settings(database))
    async with running(app) as client:
        answered = await client.post("/things", json={"thing_id": "t-1", "name": "one", "unit": "echeng"},
                                     headers=ADMIN)
        assert answered.status_code == 201, answered.text
        exposition = (await client.get("/metrics")).text
    generated = answered.headers["x-correlation-id"]
    stored = await fetchval(database, "SELECT metadata->>'correlation_id' FROM es.events "
                                      "WHERE stream_id = 'example-t-1'")
    assert stored == generated
    assert ('lookback_commands_total{command="RegisterThing",outcome="accepted",'
            'service="example"} 1.0') in exposition
