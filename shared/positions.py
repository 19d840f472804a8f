"""Named positions in the ledger's global order (relays, local consumers, projections)."""
from __future__ import annotations

import asyncpg

from shared.store import Connection


async def get_position(conn: Connection | asyncpg.Pool, name: str) -> int:
    value = await conn.fetchval("SELECT global_position FROM es.positions WHERE name = $1", name)
    return value or 0


async def advance_position(conn: Connection | asyncpg.Pool, name: str, old: int, new: int) -> bool:
    """Compare-and-set: move `name` from `old` to `new`; False if someone else moved it."""
    moved = await conn.fetchval(
        """INSERT INTO es.positions AS p (name, global_position) VALUES ($1, $3)
           ON CONFLICT (name) DO UPDATE SET global_position = EXCLUDED.global_position
           WHERE p.global_position = $2
           RETURNING true""", name, old, new)
    return bool(moved)
