"""The hottest statements, straight through the database driver: a point read (one row by
key), a batched insert in a transaction of its own (the audit trail's group commit), and the
statements of a search (templates compiled once per shape, see `StatementCache`).

Every FHIR read is one indexed lookup plus one audit entry. Through SQLAlchemy's execution
machinery (pool checkout, execution context, ORM session, result metadata) each
cost several times what the database needs, and on SQLite each step of a transaction was a hop
to aiosqlite's thread. So these statements are compiled once per dialect from SQLAlchemy
constructs (the SQL stays written in one place, parameterised, with the column types' bind and
result processing) and run by the driver itself: `sqlite3` (reads on the event loop's thread,
a write transaction as one hop to a worker thread) or `asyncpg` (prepared statements, one round
trip). A search's statements run on the connection of `Database.reading()` (its snapshot on
SQLite) through that connection's driver. SQLAlchemy has no public "run this compiled
statement raw" path, hence this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import asyncpg
from sqlalchemy import Float, Insert, Numeric, Table
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.sql import Select
from sqlalchemy.types import TypeEngine

DriverRow = tuple[Any, ...]
AnySelect = Select[*tuple[Any, ...]]
"""A SELECT of any columns."""
Processor = Callable[[Any], Any] | None


class CompiledStatement:
    """A statement compiled for one dialect: SQL text, its parameters in order with their bind
    processors, and the result processors of its columns (naive SQLite time → aware UTC)."""

    def __init__(self, statement: AnySelect | Insert, dialect: Dialect) -> None:
        column_keys = None
        if isinstance(statement, Insert):
            column_keys = [
                column.key for column in statement.table.columns if not column.primary_key
            ]
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        if compiled.has_out_parameters or "POSTCOMPILE" in compiled.string:
            # An IN over a Python list is expanded per execution; here one bind per value.
            raise ValueError(f"cannot run this statement as compiled: {compiled.string}")
        self.sql = compiled.string
        self._names: Sequence[str] = tuple(compiled.positiontup or ())
        binds = [compiled.binds[name] for name in self._names]
        self._binders: list[Processor] = [
            bind.type.dialect_impl(dialect).bind_processor(dialect) for bind in binds
        ]
        self._fixed = {
            name: bind.value
            for name, bind in zip(self._names, binds, strict=True)
            if not bind.required
        }
        self._results: list[Processor] = (
            [_result_processor(column.type, dialect) for column in statement.selected_columns]
            if isinstance(statement, Select)
            else []
        )

    def arguments(self, parameters: dict[str, Any]) -> list[Any]:
        """Positional arguments; literal values of the statement (a LIMIT) fill the gaps."""
        given = {**self._fixed, **parameters} if self._fixed else parameters
        return [
            given[name] if bind is None else bind(given[name])
            for name, bind in zip(self._names, self._binders, strict=True)
        ]

    def row(self, values: Sequence[Any]) -> DriverRow:
        return tuple(
            value if process is None else process(value)
            for process, value in zip(self._results, values, strict=True)
        )


def _result_processor(column_type: TypeEngine[Any], dialect: Dialect) -> Processor:
    """How a value of `column_type` comes from the driver. SQLAlchemy's asyncpg numbers ask
    for the column's type code, which only a result carries: asyncpg itself returns a float
    for double precision (the only floating type here) and a Decimal for numeric."""
    implementation = column_type.dialect_impl(dialect)
    if isinstance(implementation, (Float, Numeric)) and dialect.name == "postgresql":
        return None
    return implementation.result_processor(dialect, None)


class StatementCache:
    """Statements compiled once per key: a hashable key that determines the statement
    entirely (a search template), or a module-level statement or table itself (its
    identity; kept alive here while cached, so that it is not reused). The most recently
    used `size` of them are kept."""

    def __init__(self, dialect: Dialect, size: int = 2048) -> None:
        self._dialect = dialect
        self._size = size
        self._compiled: OrderedDict[Hashable, CompiledStatement] = OrderedDict()

    def compiled(self, key: Hashable, build: Callable[[], AnySelect | Insert]) -> CompiledStatement:
        found = self._compiled.get(key)
        if found is not None:
            self._compiled.move_to_end(key)
            return found
        found = CompiledStatement(build(), self._dialect)
        self._compiled[key] = found
        if len(self._compiled) > self._size:
            self._compiled.popitem(last=False)
        return found


async def fetch_all(
    connection: Any, dialect_name: str, query: CompiledStatement, parameters: dict[str, Any]
) -> list[DriverRow]:
    """The rows of `query` on a DBAPI driver connection (asyncpg's, or aiosqlite's inside
    the transaction SQLAlchemy began on it). On PostgreSQL asyncpg prepares it once per
    connection."""
    arguments = query.arguments(parameters)
    if dialect_name == "sqlite":
        found = await connection.execute_fetchall(query.sql, arguments)
    else:
        found = await connection.fetch(query.sql, *arguments)
    return [query.row(tuple(values)) for values in found]


class Driver(Protocol):
    async def fetch_one(self, statement: AnySelect, parameters: dict[str, Any]) -> DriverRow | None:
        """The first row of `statement` with `parameters`, outside any transaction."""

    async def insert_many(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert `rows` into `table` in one committed transaction of their own. Each row
        names every column but the primary key (Python-side defaults are not applied). The
        caller takes the database's writer turn first (SQLite has one writer)."""

    async def close(self) -> None: ...


class SqliteDriver:
    """Reads: one read-only connection used on the event loop's thread only (in WAL mode a
    read never waits for the writer; a point query costs less than a hop to another thread;
    short busy timeout, as it blocks the loop). Writes: one connection used by one worker
    thread at a time (callers hold the writer turn), durable like the engine's."""

    def __init__(self, url: str, statements: StatementCache, busy_timeout_ms: int) -> None:
        self._statements = statements
        self._path = make_url(url).database or ":memory:"
        self._busy_timeout_ms = busy_timeout_ms
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None

    def _connect(self, *pragmas: str) -> sqlite3.Connection:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        for pragma in pragmas:
            connection.execute(pragma)
        return connection

    async def fetch_one(self, statement: AnySelect, parameters: dict[str, Any]) -> DriverRow | None:
        if self._reader is None:
            self._reader = self._connect("PRAGMA busy_timeout = 1000", "PRAGMA query_only = ON")
        query = self._statements.compiled(statement, lambda: statement)
        values = self._reader.execute(query.sql, query.arguments(parameters)).fetchone()
        return None if values is None else query.row(values)

    async def insert_many(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        insert = self._statements.compiled(table, table.insert)
        await asyncio.to_thread(self._write, insert.sql, [insert.arguments(row) for row in rows])

    def _write(self, sql: str, arguments: list[list[Any]]) -> None:
        if self._writer is None:
            self._writer = self._connect(
                f"PRAGMA busy_timeout = {self._busy_timeout_ms}",
                "PRAGMA synchronous = FULL",
                "PRAGMA foreign_keys = ON",
            )
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            self._writer.executemany(sql, arguments)
        except BaseException:
            self._writer.execute("ROLLBACK")
            raise
        self._writer.execute("COMMIT")

    async def close(self) -> None:
        for connection in (self._reader, self._writer):
            if connection is not None:
                connection.close()
        self._reader = self._writer = None


class PostgresDriver:
    """A small asyncpg pool of autocommit connections, opened on first use inside the running
    loop; asyncpg prepares each statement once per connection. Nothing here leaves session
    state behind, so connections go back to the pool without asyncpg's reset round trip."""

    def __init__(
        self, url: str, statements: StatementCache, size: int, generic_plans: bool = True
    ) -> None:
        self._statements = statements
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._size = size
        # The statements run here are templates, prepared once per connection: with generic
        # plans PostgreSQL plans each once too, instead of anew for executions it judges a
        # custom plan worth it. Measured side by side: searches whose planning outweighed
        # their execution (access conditions, a day of encounters) ran 1.5-2.4x as often.
        self._settings = {"plan_cache_mode": "force_generic_plan"} if generic_plans else {}
        custom, generic = "; SET plan_cache_mode = force_", ("custom_plan", "generic_plan")
        self._per_execution = BROAD_SEARCH_SETTINGS + (custom + generic[0] if generic_plans else "")
        self._usual = USUAL_SETTINGS + (custom + generic[1] if generic_plans else "")
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _opened(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=self._size,
                    connection_class=_StatelessConnection,
                    server_settings=self._settings,
                )
        return self._pool

    async def fetch_one(self, statement: AnySelect, parameters: dict[str, Any]) -> DriverRow | None:
        query = self._statements.compiled(statement, lambda: statement)
        async with self.connection() as connection:
            values = await connection.fetchrow(query.sql, *query.arguments(parameters))
        return None if values is None else query.row(tuple(values))

    async def insert_many(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """asyncpg's executemany is atomic: one transaction, one pipelined round trip."""
        insert = self._statements.compiled(table, table.insert)
        async with self.connection() as connection:
            await connection.executemany(insert.sql, [insert.arguments(row) for row in rows])

    @asynccontextmanager
    async def connection(
        self, planned_per_execution: bool = False
    ) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; `planned_per_execution`: with custom plans while it is lent
        (for statements whose best plan depends on their values), and a random page read
        priced as on SSDs (`BROAD_SEARCH_SETTINGS`). asyncpg raises its
        InternalClientError when its own state of a connection broke — seen when the server
        closed the connection under it (a restart, a killed backend): the connection is
        discarded and the error is a lost connection, which the platform answers with a 503."""
        pool = self._pool or await self._opened()
        async with pool.acquire() as connection:
            try:
                if planned_per_execution:
                    await connection.execute(self._per_execution)
                try:
                    yield connection
                finally:
                    if planned_per_execution:
                        await _back_to_usual_plans(connection, self._usual)
            except asyncpg.InternalClientError as error:
                connection.terminate()
                raise asyncpg.ConnectionDoesNotExistError(
                    "the database connection broke"
                ) from error

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


BROAD_SEARCH_SETTINGS = "SET random_page_cost = 1.1; SET enable_mergejoin = off"
"""How broad searches are planned: they walk an index, newest first, and stop at a page.
PostgreSQL's default cost of a random page read (4, set for spinning disks) made it read
whole tables instead: measured on 100,000 patients, the first page of `Observation?code=…`
for a clinician who sees 1 % took 93-120 ms with it and 3.9-4.4 ms with 1.1 (the usual
value for SSDs). Only for them: the other statements were measured with the server's value
(the MPI's matching blocks, for one, became slower with 1.1). Merge joins are off for them
too: a merge join of the type's rows with a parameter's index rows reads both indexes from
their start; on an estimate too high (a date range of one parameter, whose histogram it
shares with every other date parameter) it read 15,844 rows for a page of 20
(`code=…&date=lt…` on 20,000 Observations), where a nested loop reads the page."""
USUAL_SETTINGS = "RESET random_page_cost; RESET enable_mergejoin"


async def _back_to_usual_plans(connection: asyncpg.Connection, usual: str) -> None:
    """Undo a lent connection's planning for one broad search. If it broke meanwhile the
    pool drops it; one given back unchanged all the same would only plan differently."""
    if not connection.is_closed():
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await connection.execute(usual)


class _StatelessConnection(asyncpg.Connection):  # type: ignore[misc]
    def get_reset_query(self) -> str:
        """Reads, searches and single-statement inserts leave no session state to reset."""
        return ""
