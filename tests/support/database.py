"""Looking into the platform's database the way tests do: one SQL query, its rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from medicus.platform import Platform


async def rows(platform: Platform, query: str, **values: Any) -> list[tuple[Any, ...]]:
    """The rows of the SQL `query` (with bound `values`) in a snapshot of the platform's
    database, as tuples."""
    async with platform.database.snapshot() as session:
        return [tuple(row) for row in await session.execute(text(query), values)]


async def count(platform: Platform, table: str) -> int:
    """How many rows `table` holds."""
    [(found,)] = await rows(platform, f"SELECT COUNT(*) FROM {table}")
    return int(found)
