"""One relational database behind one small interface: SQLite embedded, PostgreSQL at scale.

Work is done in named transactions (as Synapse's `runInteraction`): `Database.transaction()` for
work that writes, `Database.snapshot()` for reads. On SQLite a writing transaction starts with
`BEGIN IMMEDIATE`, so concurrent writers (threads or processes) queue on the database lock instead
of failing half-way when a read lock cannot be upgraded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import DateTime, MetaData, Table, event, func, select, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from medicus.core.driver import (
    AnySelect,
    Driver,
    DriverRow,
    PostgresDriver,
    SqliteDriver,
    StatementCache,
    fetch_all,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 30_000


class Reading:
    """The connection of `Database.reading()`: statements compiled once per shape, run by the
    database's driver on it (asyncpg's, or aiosqlite's inside a read transaction)."""

    def __init__(self, connection: Any, dialect_name: str, statements: StatementCache) -> None:
        self._connection = connection
        self._dialect_name = dialect_name
        self._statements = statements

    async def fetch_all(
        self, key: Hashable, build: Callable[[], AnySelect], parameters: dict[str, Any]
    ) -> list[DriverRow]:
        """The rows of the statement `build` makes, compiled once for all equal `key`s."""
        query = self._statements.compiled(key, build)
        return await fetch_all(self._connection, self._dialect_name, query, parameters)


class Base(DeclarativeBase):
    """Declarative base of every medicus table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A point in time, always timezone-aware UTC in Python, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        moment: dt.datetime = value
        return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


_UNAVAILABLE = (
    OperationalError,  # cannot connect; SQLite: locked for longer than the busy timeout
    InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    ConnectionError,
)


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` means that the database could not be reached or dropped the
    connection (a restart, a failover, a killed backend): a request may simply be retried."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, _UNAVAILABLE)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _configure_sqlite(engine: AsyncEngine, begin_statement: str) -> None:
    """Durable WAL mode, enforced foreign keys, and explicit transaction control."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin_statement)


def ensure_sqlite_directory(url: str) -> None:
    """Create the folder of a SQLite database file, so that a fresh data dir just works."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _make_engine(url: str, pool_size: int, begin_statement: str = "BEGIN") -> AsyncEngine:
    if url.startswith("sqlite"):
        ensure_sqlite_directory(url)
        engine = create_async_engine(url, hide_parameters=True, pool_size=pool_size)
        _configure_sqlite(engine, begin_statement)
        return engine
    # No pre-ping: it costs every checkout a round trip (one in three of a search's). A
    # connection that a database restart or failover broke fails its request with a 503
    # (`is_unavailable`) and SQLAlchemy then discards the pool's connections, so the next
    # request reconnects.
    return create_async_engine(
        url, hide_parameters=True, pool_size=pool_size, max_overflow=pool_size
    )


class Database:
    """The platform's database: a reader and a writer engine (the same one on PostgreSQL)."""

    def __init__(self, url: str, pool_size: int = 10, generic_plans: bool = True) -> None:
        self.url = url
        self.dialect_name = make_url(url).get_backend_name()
        self._sqlite_writer_lock: asyncio.Lock | None = None
        if self.dialect_name == "sqlite":
            self._sqlite_writer_lock = asyncio.Lock()
            self._writer = _make_engine(url, pool_size, "BEGIN IMMEDIATE")
            self._reader = _make_engine(url, pool_size, "BEGIN")
            self._statements = StatementCache(self._writer.dialect)
            self._driver: Driver = SqliteDriver(url, self._statements, SQLITE_BUSY_TIMEOUT_MS)
        else:
            self._writer = self._reader = _make_engine(url, pool_size)
            self._statements = StatementCache(self._writer.dialect)
            self._driver = PostgresDriver(url, self._statements, pool_size, generic_plans)
        self._write_sessions = async_sessionmaker(self._writer, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self._reader, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A writing transaction: committed when the block ends, rolled back if it raises."""
        async with self._writer_turn(), self._write_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def _writer_turn(self) -> AsyncIterator[None]:
        """SQLite has one writer at a time: in-process writers queue here, cheaply, instead of
        in SQLite's busy handler, which polls with sleeps of up to 100 ms."""
        if self._sqlite_writer_lock is None:
            yield
            return
        async with self._sqlite_writer_lock:
            yield

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncSession]:
        """A reading transaction, rolled back when the block ends. Rows read stay readable
        after it (closing detaches them without expiring them)."""
        async with self._read_sessions() as session:
            yield session

    @asynccontextmanager
    async def reading(self, planned_per_execution: bool = False) -> AsyncIterator[Reading]:
        """A connection for a few reads of rows (a search's page, count and includes), not ORM
        objects. PostgreSQL: one of the driver's pooled connections, in autocommit (at READ
        COMMITTED each statement of a transaction saw its own snapshot anyway), without
        SQLAlchemy's checkout and checkin; `planned_per_execution`: its statements are
        planned for their values each time, not once (see `PostgresDriver`). SQLite: a read
        transaction, one snapshot for all its statements."""
        if isinstance(self._driver, PostgresDriver):
            async with self._driver.connection(planned_per_execution) as connection:
                yield Reading(connection, self.dialect_name, self._statements)
            return
        async with self._reader.connect() as connection, connection.begin():
            raw = await connection.get_raw_connection()
            yield Reading(raw.driver_connection, self.dialect_name, self._statements)

    async def fetch_one(
        self, statement: AnySelect, parameters: dict[str, Any] | None = None
    ) -> DriverRow | None:
        """The first row of a short read (a lookup by key) in one round trip, outside any
        transaction, through the driver itself (see `driver`)."""
        return await self._driver.fetch_one(statement, parameters or {})

    async def insert_many(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert `rows` in a committed transaction of their own, through the driver itself."""
        async with self._writer_turn():
            await self._driver.insert_many(table, rows)

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        async with self._reader.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self._driver.close()
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()


async def hold_lock(session: AsyncSession, name: str) -> None:
    """Hold a lock named `name` until the transaction ends, so that writers whose outcome
    depends on the same not-yet-committed rows take turns (PostgreSQL; SQLite has a single
    writer anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(
            hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
        )
        await session.execute(select(func.pg_advisory_xact_lock(key)))
