"""Shared fixtures: every test runs against a real database, SQLite by default, PostgreSQL when
TEST_POSTGRES_URL names a server (for example postgresql://postgres@127.0.0.1:5432/postgres).
Each test session creates its own databases there and drops them afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import shutil
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from medicus import migrations
from medicus.app import create_app
from medicus.core.db import utc_now
from medicus.iam.models import OrganisationRow
from medicus.messenger.homeserver import Homeserver
from medicus.platform import Platform, build_platform
from medicus.settings import Settings
from tests.support.clock import MovableClock

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL")


def pytest_collection_finish(session: pytest.Session) -> None:
    """What the modules and the collected tests hold lives for the whole session: the garbage
    collector leaves it alone from now on, and runs less often. Most tests build an app (some
    600 routes, a few hundred thousand objects); with the defaults, collections that walk all
    of the session's objects took half of that time."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _admin_url() -> str:
    assert POSTGRES_ADMIN_URL is not None
    return (
        make_url(POSTGRES_ADMIN_URL)
        .set(drivername="postgresql+asyncpg")
        .render_as_string(hide_password=False)
    )


async def _postgres(statement: str) -> None:
    engine = create_async_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def _drop_databases(names: list[str], at_once: int = 8) -> None:
    """Drop the databases `names`, `at_once` at a time: each drop waits for a checkpoint (about
    a second), and drops under way together share one."""
    slots = asyncio.Semaphore(at_once)

    async def drop(name: str) -> None:
        async with slots:
            await _postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    await asyncio.gather(*(drop(name) for name in names))


class DatabaseFactory:
    """Makes fresh databases of the dialect under test. A migrated one is a copy of a template
    that the session migrates once, the first time one is wanted (a file copy on SQLite,
    `CREATE DATABASE ... TEMPLATE` on PostgreSQL): migrating costs half a second or more a
    database, a copy a few milliseconds on SQLite and about a tenth of a second on
    PostgreSQL. The migration tests and the end-to-end tests migrate for real (`empty_url`,
    `really_migrated_url`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.created: list[str] = []
        self._template: str | None = None

    @property
    def dialect(self) -> str:
        return "postgresql" if POSTGRES_ADMIN_URL else "sqlite"

    def new_url(self, migrate: bool = True) -> str:
        """A database of its own: at the head revision (`migrate`), or empty."""
        if not migrate:
            return self.empty_url()
        if self._template is None:
            self._template = self._template_url()
        return self._copy(self._template)

    def empty_url(self) -> str:
        return self._create(f"medicus_test_{uuid.uuid4().hex[:12]}")

    def really_migrated_url(self) -> str:
        """A database migrated to the head revision by running every migration (the one place
        that brings a test database up to date: the template is made here too)."""
        url = self.empty_url()
        migrations.upgrade(url)
        return url

    def _template_url(self) -> str:
        """The database every migrated test database is a copy of (SQLite: its write-ahead log
        folded into the file, so that a copy of the file is the whole database)."""
        url = self.really_migrated_url()
        if not POSTGRES_ADMIN_URL:
            with contextlib.closing(sqlite3.connect(make_url(url).database or "")) as template:
                template.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return url

    def _create(self, name: str, template: str | None = None) -> str:
        if not POSTGRES_ADMIN_URL:
            return f"sqlite+aiosqlite:///{(self.folder / name).as_posix()}.db"
        copying = f' TEMPLATE "{template}"' if template else ""
        asyncio.run(_postgres(f'CREATE DATABASE "{name}"{copying}'))
        self.created.append(name)
        return make_url(_admin_url()).set(database=name).render_as_string(hide_password=False)

    def _copy(self, template_url: str) -> str:
        name = f"medicus_test_{uuid.uuid4().hex[:12]}"
        template = make_url(template_url).database or ""
        if POSTGRES_ADMIN_URL:
            return self._create(name, template)
        url = self._create(name)
        shutil.copyfile(template, make_url(url).database or "")
        return url

    def drop_all(self) -> None:
        asyncio.run(_drop_databases(self.created))


@pytest.fixture(scope="session")
def database_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(tmp_path_factory.mktemp("databases"))
    yield factory
    factory.drop_all()


@pytest.fixture(scope="session")
async def database_url(database_factory: DatabaseFactory) -> str:
    """One migrated database shared by the tests that do not need a pristine one.
    (Set-up runs in a thread because migrations start an event loop of their own.)"""
    return await asyncio.to_thread(database_factory.new_url)


@pytest.fixture
async def fresh_database_url(database_factory: DatabaseFactory) -> str:
    """A database of its own, for tests that tamper with it or count everything in it."""
    return await asyncio.to_thread(database_factory.new_url)


CHEAP_PASSWORD_HASHING = {"argon2_time_cost": 1, "argon2_memory_kib": 1024}


def make_settings(data_dir: Path, database_url: str, **overrides: object) -> Settings:
    """Settings for a test: its own data dir and database, cheap argon2 (tests log in often),
    no messenger unless asked for (tests/messenger runs one Synapse for all)."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        **{**CHEAP_PASSWORD_HASHING, "messenger": "off", **overrides},  # type: ignore[arg-type]
    )


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeserver]:
    """A real Synapse on a free loopback port for the whole session, configured and started
    by medicus's own code for the tests' platform secret (tests/support/messenger.py); in the
    PostgreSQL run on PostgreSQL (`MEDICUS_MESSENGER_DATABASE_URL`), else on SQLite."""
    from medicus.messenger import synapse_process
    from tests.support.messenger import SECRET, SERVER_NAME
    from tests.support.served import free_port

    database = f"medicus_test_synapse_{uuid.uuid4().hex[:12]}" if POSTGRES_ADMIN_URL else None
    if database is not None:
        # Synapse insists on C collation (its text ordering); a database of its own.
        asyncio.run(
            _postgres(
                f"CREATE DATABASE \"{database}\" TEMPLATE template0 ENCODING 'UTF8' "
                "LC_COLLATE 'C' LC_CTYPE 'C'"
            )
        )
    homeserver = Homeserver(
        server_name=SERVER_NAME,
        synapse_url=f"http://127.0.0.1:{free_port()}",
        public_url="http://medicus.test",
        max_upload_bytes=600 * 1024 * 1024,
        directory=tmp_path_factory.mktemp("synapse"),
        database_url=""
        if database is None
        else make_url(_admin_url())
        .set(drivername="postgresql", database=database)
        .render_as_string(hide_password=False),
    )
    synapse_process.start(homeserver, SECRET.encode(), with_parent=True)
    yield homeserver
    synapse_process.stop(homeserver)
    if database is not None:
        asyncio.run(_drop_databases([database]))


@pytest.fixture
def clock() -> MovableClock:
    """The clock of the test's platform: the real time until the test moves it on."""
    return MovableClock()


@pytest.fixture
async def platform(settings: Settings, clock: MovableClock) -> AsyncIterator[Platform]:
    built = build_platform(settings, clock)
    yield built
    await built.close()


@pytest.fixture
async def fresh_platform(
    tmp_path: Path, fresh_database_url: str, clock: MovableClock
) -> AsyncIterator[Platform]:
    built = build_platform(make_settings(tmp_path, fresh_database_url), clock)
    yield built
    await built.close()


@pytest.fixture
async def client(settings: Settings, platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, platform)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def register_organisation(
    platform: Platform, organisation_id: str, kind: str = "hospital"
) -> None:
    """Make `organisation_id` an organisation of type `kind` unless it is one already (tests
    mint tokens for organisations by id; only care providers record treatment relations)."""
    async with platform.database.transaction() as session:
        if await session.get(OrganisationRow, organisation_id) is None:
            session.add(
                OrganisationRow(
                    id=organisation_id, name=organisation_id, type=kind, created_at=utc_now()
                )
            )


async def hang_up_mid_body(
    app: Any, path: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> list[dict[str, Any]]:
    """Send a POST of which only `body` arrives before the client hangs up, straight to the
    ASGI `app` (as the ASGI server reports it: `http.disconnect` while the body is read);
    the messages the app sent back."""
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": body, "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    await app(scope, receive, send)
    return sent
