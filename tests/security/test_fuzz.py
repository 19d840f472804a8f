"""A bounded fuzz of every service's API with schemathesis: every operation of every OpenAPI
document, generated valid and invalid inputs, sent as the city admin (who may call everything),
must never be answered with a server error. The whole system runs as `lookback up` does, on a
fresh database; the number of examples is small and fixed so the run stays within minutes."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.e2e.test_embedded_up import LOOKBACK, _await_ready, free_port_base, stop
from tests.support.actors import TOKENS_JSON, auth
from tests.support.services import TEST_MASTER_KEY, child_env, small_pools_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
SERVICES = ("registry", "rectification", "inspection", "notifier")
EXAMPLES_PER_OPERATION = 8
ADMIN_AUTHORIZATION = auth("admin-1")["Authorization"]  # the city admin may call everything


@pytest.fixture(scope="module")
def system(template_db, tmp_path_factory):
    """All four services in one process on a fresh database (local transport), as the admin."""
    yield from _running_system(template_db, tmp_path_factory.mktemp("fuzz"))


def _running_system(template_db: str, data: Path):
    import asyncio

    from tests.support.databases import fresh_database

    loop = asyncio.new_event_loop()
    manager = fresh_database(template_db)
    dsn = loop.run_until_complete(manager.__aenter__())
    base = free_port_base()
    env = child_env(broker=False)
    env.update({"LOOKBACK_DATABASE_URL": dsn, "LOOKBACK_TOKENS_JSON": TOKENS_JSON,
                **small_pools_env(),
                "LOOKBACK_PII_MASTER_KEY": TEST_MASTER_KEY, "LOOKBACK_DOCS_ACCESS": "public",
                "LOOKBACK_LOG_JSON": "true", "LOOKBACK_DATA_DIR": str(data / "var")})
    proc = subprocess.Popen([LOOKBACK, "up", "--port-base", str(base), "--no-seed"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    # Where each process listens, as `lookback up` says it (the console comes first).
    proc, listening = _await_ready(proc)
    try:
        yield {service: f"http://{listening[service]}" for service in SERVICES}
    finally:
        stop(proc)
        loop.run_until_complete(manager.__aexit__(None, None, None))
        loop.close()


@pytest.mark.parametrize("service", SERVICES)
def test_no_operation_of_the_api_answers_with_a_server_error(system, service, tmp_path):
    assert shutil.which(SCHEMATHESIS), "schemathesis is a test dependency"
    report = tmp_path / "junit.xml"
    result = subprocess.run(
        [SCHEMATHESIS, "run", f"{system[service]}/openapi.json",
         "--checks", "not_a_server_error", "--max-examples", str(EXAMPLES_PER_OPERATION),
         "--generation-deterministic", "--header", f"Authorization: {ADMIN_AUTHORIZATION}",
         "--workers", "1",
         # An import may take its isolated child's whole wall-clock bound (30 s) on a busy machine:
         # an answer that slow is not a server error; no answer within 60 s would be.
         "--request-timeout", "60", "--report", "junit", "--report-junit-path", str(report),
         "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)  # its cache stays there
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    # Not vacuous: every operation of the document was exercised.
    cases = ElementTree.parse(report).getroot().iter("testcase")
    exercised = {case.get("name") for case in cases}
    document = json.loads(urllib.request.urlopen(f"{system[service]}/openapi.json").read())
    operations = {f"{method.upper()} {path}" for path, item in document["paths"].items()
                  for method in item}
    assert operations and operations <= exercised, sorted(operations - exercised)
