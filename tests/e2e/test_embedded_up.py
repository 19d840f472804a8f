"""`lookback up` as a newcomer runs it: a real process, the embedded PostgreSQL, the console and
the four services."""
from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from shared.hosting import ready_addresses
from tests.support.services import AMQP_URL, SMALL_POOLS, TEST_MASTER_KEY, child_env, small_pools_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

LOOKBACK = str(Path(sys.executable).with_name("lookback"))


def free_port_base() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
    return base if base < 60000 else 20000


def start(data_dir: Path, port_base: int, **settings: str) -> tuple[subprocess.Popen, dict[str, str]]:
    env = child_env(broker="amqp_url" in settings, LOOKBACK_LOG_JSON="true")
    env.update({f"LOOKBACK_{k.upper()}": v for k, v in settings.items()})
    proc = subprocess.Popen([LOOKBACK, "up", "--port-base", str(port_base), "--data-dir", str(data_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    return _await_ready(proc)


def _await_ready(proc: subprocess.Popen) -> tuple[subprocess.Popen, dict[str, str]]:
    """Wait for the READY line (JSON when JSON logs are on); the addresses it announces."""
    # A reader thread, not select(): the text wrapper buffers lines select() cannot see.
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if (addresses := ready_addresses(line)) is not None:
            return proc, addresses
    proc.kill()
    raise AssertionError("lookback up never said READY:\n" + "".join(seen[-40:]))


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_lookback_up_runs_all_four_services_on_the_embedded_database(tmp_path):
    base = free_port_base()
    proc, listening = start(tmp_path / "var", base)
    try:
        # The console comes first, on the first port, and a demo account signs in to it.
        assert list(listening.items())[0] == ("console", f"127.0.0.1:{base}")
        console = f"http://127.0.0.1:{base}"
        demo = tmp_path / "var" / "demo-accounts.txt"
        assert demo.stat().st_mode & 0o077 == 0
        account, password = next(line for line in demo.read_text(encoding="utf-8").splitlines()
                                 if not line.startswith("#")).split("\t")[:2]
        with httpx.Client(base_url=console, timeout=10) as browser:
            assert "登录" in browser.get("/login").text
            signed_in = browser.post("/login", data={"username": account, "password": password})
            assert signed_in.status_code == 303, signed_in.text
            assert "工作台" in browser.get("/").text
        for i, service in enumerate(("registry", "rectification", "inspection", "notifier"), 1):
            assert listening[service] == f"127.0.0.1:{base + i}"
            url = f"http://127.0.0.1:{base + i}"
            assert httpx.get(f"{url}/healthz", timeout=5).json()["service"] == service
            ready = httpx.get(f"{url}/readyz", timeout=5)
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["database"] == "ok"
            assert httpx.get(f"{url}/openapi.json", timeout=5).status_code == 200
    finally:
        assert stop(proc) == 0
    assert (tmp_path / "var" / "pgdata" / "PG_VERSION").exists()
    assert (tmp_path / "var" / "demo-tokens.txt").stat().st_mode & 0o077 == 0
    assert (tmp_path / "var" / "keys" / "checkpoint.key").stat().st_mode & 0o077 == 0
    # The data folder survives a restart: a second start reuses it.
    proc, _ = start(tmp_path / "var", base)
    assert stop(proc) == 0


def test_lookback_up_with_urls_runs_on_postgresql_and_rabbitmq(tmp_path, database, unique_prefix):
    base = free_port_base()
    proc, _ = start(tmp_path / "var", base, database_url=database, amqp_url=AMQP_URL,
                    bus_prefix=unique_prefix + ".", tokens_json="{}",
                    **{name: str(size) for name, size in SMALL_POOLS.items()})
    try:
        for i, _service in enumerate(("registry", "rectification", "inspection", "notifier"), 1):
            url = f"http://127.0.0.1:{base + i}"
            ready = httpx.get(f"{url}/readyz", timeout=5)
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["transport"] == "ok"
    finally:
        assert stop(proc) == 0
    assert not (tmp_path / "var" / "pgdata").exists()  # no embedded database in this mode


def test_lookback_serve_runs_one_service_process_and_stops_gracefully(tmp_path, database, unique_prefix):
    port = free_port_base()
    env = child_env()
    env.update({"LOOKBACK_PII_MASTER_KEY": TEST_MASTER_KEY,
                "LOOKBACK_DATABASE_URL": database, "LOOKBACK_AMQP_URL": AMQP_URL,
                "LOOKBACK_BUS_PREFIX": unique_prefix + ".", "LOOKBACK_HTTP_PORT": str(port),
                "LOOKBACK_TOKENS_JSON": "{}", "LOOKBACK_LOG_JSON": "true",
                "LOOKBACK_DATA_DIR": str(tmp_path / "var"),
                **small_pools_env()})
    proc = subprocess.Popen([LOOKBACK, "serve", "rectification"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, text=True)
    proc, listening = _await_ready(proc)
    try:
        assert listening == {"rectification": f"127.0.0.1:{port}"}
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert httpx.get(f"http://127.0.0.1:{port}/problems", timeout=5).status_code == 401
    finally:
        assert stop(proc) == 0
