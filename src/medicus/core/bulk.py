"""Inserting many rows at once inside a caller's transaction: on PostgreSQL one statement of
`unnest`ed arrays for all tables, elsewhere one executemany per table. The FHIR hub's new
resources with their versions and index rows, and the audit trail's sealed entries go this
way; both write hundreds of rows per transaction.

Through SQLAlchemy's INSERT, a bundle's ~1,000 index rows as parameters cost several times
what the database needs for them; a COPY per table costs two round trips each, and a bundle
fills eight tables. One INSERT … SELECT FROM unnest($1::T[], …) per table, all but the last
as data-modifying WITH clauses of one statement, is one round trip with the values sent as
arrays, encoded by asyncpg in C (measured in-process on PostgreSQL: ingest CPU 5 to 12 % below
COPY per table)."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import asyncpg
from sqlalchemy import Table
from sqlalchemy import insert as sql_insert
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

Batch = tuple[Table, Sequence[dict[str, Any]]]
"""Rows for one table: dicts with the same keys (column keys)."""

BULK_FROM_ROWS = 1
"""From this many rows PostgreSQL gets the one statement: every row, since a single
Patient create's five tables as SQLAlchemy INSERTs cost more CPU than the whole create's
other SQL. The rows give every column (no column defaults apply)."""


def in_bulk(session: AsyncSession, rows: int) -> bool:
    """Whether this many rows go in as one statement (rather than as INSERTs)."""
    return rows >= BULK_FROM_ROWS and session.get_bind().dialect.name == "postgresql"


async def insert_tables(session: AsyncSession, batches: Sequence[Batch]) -> None:
    """Insert the rows of several tables, in this order, through the tables rather than the
    ORM (whose bulk path costs ~50 µs per row); on PostgreSQL as one statement on the
    session's own connection, inside its transaction (begun here if nothing ran in it yet:
    asyncpg's begins with SQLAlchemy's first statement); on SQLite one executemany per
    table through the driver."""
    batches = [(table, rows) for table, rows in batches if rows]
    if not in_bulk(session, sum(len(rows) for _, rows in batches)):
        for table, rows in batches:
            await _executemany(session, table, rows)
        return
    statement, arguments = _unnest_statement(batches)
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    if raw is None:
        raise RuntimeError("the session's connection has no driver connection")
    if not raw.is_in_transaction():
        # SQLAlchemy's asyncpg adapter begins the transaction with its first statement.
        await connection.exec_driver_sql("SELECT 1")
    try:
        await raw.execute(statement, *arguments)
    except asyncpg.IntegrityConstraintViolationError as violation:
        # What SQLAlchemy raises for the same conflict through INSERT (a 409 upstream).
        raise IntegrityError("bulk INSERT", None, violation) from violation


async def _executemany(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """One executemany of an INSERT compiled once per table and columns, straight through
    the driver (SQLite's): through SQLAlchemy's execution each cost ~220 µs of CPU, a
    single create has five of them; through the driver ~40 µs."""
    connection = await session.connection()
    sql, columns, processors = _compiled_insert(table, tuple(rows[0]), connection.dialect)
    fields = itemgetter(*columns)
    values = list(map(fields, rows)) if len(columns) > 1 else [(fields(r),) for r in rows]
    if any(processors):
        values = [
            tuple(v if p is None else p(v) for v, p in zip(row, processors, strict=True))
            for row in values
        ]
    raw = (await connection.get_raw_connection()).driver_connection
    if raw is None:
        raise RuntimeError("the session's connection has no driver connection")
    try:
        await raw.executemany(sql, values)
    except sqlite3.IntegrityError as violation:
        # What SQLAlchemy raises for the same conflict through INSERT (a 409 upstream).
        raise IntegrityError("bulk INSERT", None, violation) from violation


@functools.cache
def _compiled_insert(
    table: Table, keys: tuple[str, ...], dialect: Dialect
) -> tuple[str, tuple[str, ...], tuple[Any, ...]]:
    """The INSERT of `keys` into `table` for `dialect`: its SQL, the keys in the order of
    its parameters (an INSERT names them by their columns' keys), and their bind
    processors (UTC datetimes as SQLite stores them)."""
    compiled = sql_insert(table).compile(dialect=dialect, column_keys=list(keys))
    names = tuple(compiled.positiontup or ())
    binds = [compiled.binds[name] for name in names]
    processors = tuple(bind.type.dialect_impl(dialect).bind_processor(dialect) for bind in binds)
    return compiled.string, names, processors


def _unnest_statement(batches: Sequence[Batch]) -> tuple[str, list[list[Any]]]:
    """The statement for `batches` and its arguments, one array per column."""
    shape = tuple((table, tuple(rows[0])) for table, rows in batches)
    arguments: list[list[Any]] = []
    for (_, columns), (_, rows) in zip(shape, batches, strict=True):
        fields = itemgetter(*columns)
        values = list(map(fields, rows)) if len(columns) > 1 else [(fields(r),) for r in rows]
        arguments.extend(list(column) for column in zip(*values, strict=True))
    return _unnest_text(shape), arguments


@functools.cache
def _unnest_text(shape: tuple[tuple[Table, tuple[str, ...]], ...]) -> str:
    """`WITH t0 AS (INSERT INTO a (…) SELECT * FROM unnest($1::T[], …)), … INSERT INTO z …`.
    Table and column names are the models' own, never input; the same tables give the same
    text, so that it is built once here and prepared once per connection by asyncpg."""
    quote = _POSTGRESQL.identifier_preparer.quote
    inserts, position = [], 0
    for table, columns in shape:
        arrays = []
        for column in columns:
            position += 1
            arrays.append(f"${position}::{_element_type(table, column)}[]")
        names = ", ".join(quote(table.c[column].name) for column in columns)
        inserts.append(
            f"INSERT INTO {quote(table.name)} ({names}) "  # noqa: S608 (names of the models)
            f"SELECT * FROM unnest({', '.join(arrays)})"
        )
    *leading, last = inserts
    clauses = ", ".join(f"t{number} AS ({insert})" for number, insert in enumerate(leading))
    return f"WITH {clauses} {last}" if leading else last


def _element_type(table: Table, column: str) -> str:
    """The column's type for an array of its values: `VARCHAR(255)`, not the collation that
    the column's own type carries (`VARCHAR(255) COLLATE "C"[]` is no type)."""
    return table.c[column].type.compile(dialect=_POSTGRESQL).partition(" COLLATE ")[0]


_POSTGRESQL = postgresql.dialect()  # type: ignore[no-untyped-call]
