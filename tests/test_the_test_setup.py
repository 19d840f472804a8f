"""The guards of the test setup hold: a unit test cannot reach a server (even when the code under
test swallows the refusal), and a test that does not say its level, or a unit test that asks for a
database, is refused when the tests are collected."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.support.isolation import ServerTouched, marker_problems, servers_unreachable

pytestmark = pytest.mark.unit

pytest_plugins = ["pytester"]

PROJECT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("port", [5432, 5672])
def test_inside_the_guard_a_connection_to_a_server_port_is_refused_and_recorded(port: int) -> None:
    with servers_unreachable() as attempts:
        with pytest.raises(ServerTouched):
            socket.create_connection(("127.0.0.1", port), timeout=1)
        with socket.socket() as sock:
            with pytest.raises(ServerTouched):
                sock.connect_ex(("127.0.0.1", port))
    assert attempts == [repr(("127.0.0.1", port))] * 2


def test_the_guard_lets_other_ports_through_and_is_undone_afterwards() -> None:
    before = socket.socket.connect
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with servers_unreachable() as attempts, socket.create_connection(listener.getsockname()):
            pass
    assert attempts == []
    assert socket.socket.connect is before


def test_a_test_must_carry_exactly_one_level() -> None:
    assert marker_problems("t::a", ["unit"], []) == []
    assert marker_problems("t::b", ["integration", "timeout"], ["database"]) == []
    assert "has none" in marker_problems("t::c", ["timeout"], [])[0]
    assert "has e2e, integration" in marker_problems("t::d", ["integration", "e2e"], [])[0]


def test_a_unit_test_may_not_ask_for_a_database_or_broker_names() -> None:
    for fixture in ("database", "pg_pool", "template_db", "unique_prefix"):
        [problem] = marker_problems("t::e", ["unit"], ["tmp_path", fixture])
        assert fixture in problem and "mark it integration" in problem


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str) -> pytest.RunResult:
    """Run `source` as a test module under this project's conftest, in a fresh process."""
    pytester.makeconftest((PROJECT / "tests" / "conftest.py").read_text(encoding="utf-8")
                          .replace('Path(__file__).with_name("example_sql")',
                                   repr(str(PROJECT / "tests" / "example_sql"))))
    pytester.makeini("[pytest]\nasyncio_mode = auto\n"
                     "asyncio_default_fixture_loop_scope = session\n"
                     "markers =\n    unit: u\n    integration: i\n    e2e: e\n")
    pytester.makepyfile(test_probe=source)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(PROJECT),
                                                                   os.environ.get("PYTHONPATH")])))
    return pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")


def test_a_unit_test_that_reaches_the_database_fails_even_if_the_error_is_swallowed(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(pytester, monkeypatch, """
import asyncpg
import pytest

pytestmark = pytest.mark.unit

async def test_quietly_reaches_the_database():
    try:
        await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres", timeout=2)
    except Exception:
        pass  # code under test that hides the failure
""")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*this unit test tried to reach a server*5432*"])


def test_a_test_without_a_level_stops_the_run_before_anything_runs(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(pytester, monkeypatch, """
def test_says_no_level():
    assert True
""")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_says_no_level: needs exactly one of the markers*"])
