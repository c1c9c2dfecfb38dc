"""Looking into the platform's database the way tests do: one SQL query, its rows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text

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


@contextmanager
def statements(platform: Platform) -> Iterator[list[str]]:
    """The SQL statements the platform's writing connections run inside the block (an
    executemany is one statement; PostgreSQL's one-statement bulk inserts, which go to the
    driver directly, are not seen), so that a test can bound how many a write issues."""
    seen: list[str] = []
    engine = platform.database._writer.sync_engine

    def record(*arguments: Any) -> None:
        seen.append(str(arguments[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
