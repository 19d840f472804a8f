"""Ordered plain-SQL migrations, applied once each, under an advisory lock.

Files live in `shared/sql/NNNN_name.sql` (and a service may add its own folder). Each applied file's
checksum is stored; an edited, already-applied file is refused, because history is not rewritten
here either.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import asyncpg

SHARED_SQL = Path(__file__).with_name("sql")
_LOCK_KEY = 0x4C4F4F4B  # "LOOK": one migrator at a time per database


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(*folders: Path) -> list[Migration]:
    found: dict[int, Migration] = {}
    for folder in (SHARED_SQL, *folders):
        for path in sorted(folder.glob("[0-9][0-9][0-9][0-9]_*.sql")):
            version = int(path.name[:4])
            if version in found:
                raise ValueError(f"two migrations numbered {version:04d}: {path.name}")
            found[version] = Migration(version, path.stem, path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def migrate(conn: asyncpg.Connection, *folders: Path) -> list[str]:
    """Apply what is missing, in order, each in its own transaction. Returns the names applied."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS public.lookback_migrations (
                   version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        applied = {r["version"]: r for r in await conn.fetch("SELECT * FROM public.lookback_migrations")}
        done: list[str] = []
        for migration in discover(*folders):
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise RuntimeError(
                        f"migration {migration.name} was edited after it was applied; "
                        "add a new migration instead")
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO public.lookback_migrations (version, name, checksum) VALUES ($1,$2,$3)",
                    migration.version, migration.name, migration.checksum)
            done.append(migration.name)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
