"""Migrations: ordered, applied once, never edited after the fact, never rewriting es.events."""
from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import pytest

from services.system import migration_folders as all_migration_folders
from shared.migrations import discover, migrate

FORBIDDEN_ON_EVENTS = [
    r"DROP\s+TABLE[^;]*\bes\.events\b",
    r"ALTER\s+TABLE[^;]*\bes\.events\b[^;]*\b(DROP|ALTER\s+COLUMN|RENAME|SET\s+DATA\s+TYPE)\b",
    r"UPDATE\s+es\.events\b",
    r"DELETE\s+FROM\s+es\.events\b",
    r"(^|;)\s*TRUNCATE[^;]*\bes\.events\b",
    r"DISABLE\s+TRIGGER",
]


@pytest.mark.unit
def test_no_migration_rewrites_or_unprotects_the_events_table():
    migrations = discover(*all_migration_folders())
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})
    for migration in migrations:
        sql = re.sub(r"--[^\n]*", "", migration.sql)
        for pattern in FORBIDDEN_ON_EVENTS:
            assert not re.search(pattern, sql, re.IGNORECASE | re.DOTALL), (migration.name, pattern)


@pytest.mark.unit
def test_the_lint_would_catch_a_rewrite(tmp_path: Path):
    for sql in ("ALTER TABLE es.events ALTER COLUMN payload TYPE text;",
                "SELECT 1;\nTRUNCATE es.events;", "DELETE FROM es.events WHERE true;"):
        assert any(re.search(p, sql, re.IGNORECASE | re.DOTALL) for p in FORBIDDEN_ON_EVENTS), sql


@pytest.mark.integration
async def test_migrations_apply_once_and_refuse_an_edited_file(database, tmp_path: Path):
    conn = await asyncpg.connect(database)
    try:
        assert await migrate(conn, *all_migration_folders()) == []  # the template has them all
        extra = tmp_path / "sql"
        extra.mkdir()
        (extra / "0990_extra.sql").write_text("CREATE TABLE public.extra_thing (id int);")
        assert await migrate(conn, *all_migration_folders(), extra) == ["0990_extra"]
        assert await migrate(conn, *all_migration_folders(), extra) == []
        (extra / "0990_extra.sql").write_text("CREATE TABLE public.extra_thing (id bigint);")
        with pytest.raises(RuntimeError, match="edited after it was applied"):
            await migrate(conn, *all_migration_folders(), extra)
    finally:
        await conn.close()
