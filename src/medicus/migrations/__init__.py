"""Alembic migrations of the one medicus database, and the calls that run and inspect them."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from medicus.core.db import Database, ensure_sqlite_directory

_HERE = Path(__file__).parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision`. Synchronous: call it outside a running event loop
    (or through `asyncio.to_thread`)."""
    ensure_sqlite_directory(database_url)
    command.upgrade(alembic_config(database_url), revision)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None
    return head


async def current_revision(database: Database) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""
    async with database.snapshot() as session:
        try:
            result = await session.execute(text("SELECT version_num FROM alembic_version"))
        except SQLAlchemyError:
            return None
        return result.scalar_one_or_none()


def revisions_between(lower: str | None, upper: str) -> int:
    """How many migrations lead from revision `lower` (None: an empty database) to `upper`."""
    script = ScriptDirectory.from_config(alembic_config(""))
    return sum(1 for _ in script.iterate_revisions(upper, lower or "base"))
