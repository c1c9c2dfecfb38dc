"""Inserting many rows at once inside a caller's transaction: COPY on PostgreSQL, one
executemany elsewhere. The FHIR hub's index rows and the audit trail's sealed entries go
this way; both write hundreds of rows per transaction."""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import asyncpg
from sqlalchemy import Table
from sqlalchemy import insert as sql_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

COPY_FROM_ROWS = 64
"""A COPY takes more round trips than an INSERT: worth it from a bundle's worth of rows."""


def copies(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> bool:
    """Whether `insert_rows` copies these rows in (rather than INSERTing them)."""
    return len(rows) >= COPY_FROM_ROWS and session.get_bind().dialect.name == "postgresql"


async def insert_rows(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` (dicts with the same keys) into `table`, through the table rather than
    the ORM (whose bulk path costs ~50 µs per row). Many rows on PostgreSQL go through COPY
    on the session's own connection, inside its transaction: a bundle's ~1,000 index rows as
    INSERT parameters cost SQLAlchemy and asyncpg several times what the copy costs. The
    caller has already run a statement in the transaction (asyncpg's transaction begins
    with SQLAlchemy's first statement, not before)."""
    if not rows:
        return
    if not copies(session, rows):
        await session.execute(sql_insert(table), list(rows))
        return
    columns = list(rows[0])
    connection = (await (await session.connection()).get_raw_connection()).driver_connection
    if connection is None or not connection.is_in_transaction():
        raise RuntimeError("COPY outside a transaction: run a statement in it first")
    fields = itemgetter(*columns)  # tuples built in C; of one column, a bare value
    records = list(map(fields, rows)) if len(columns) > 1 else [(fields(row),) for row in rows]
    try:
        await connection.copy_records_to_table(table.name, columns=columns, records=records)
    except asyncpg.IntegrityConstraintViolationError as violation:
        # What SQLAlchemy raises for the same conflict through INSERT (a 409 upstream).
        raise IntegrityError(f"COPY {table.name}", None, violation) from violation
