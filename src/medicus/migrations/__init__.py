"""Alembic migrations of the one medicus database, and the calls that run and inspect them.

Revisions change the schema; the data they derive from every stored row is rebuilt by
background updates that they schedule (`scheduling`) and the server runs (`core.background`).
`upgrade` runs those inline for a while when it reaches head, so that a new or small database
is left with none pending."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from medicus.core.background import BackgroundUpdates, UpdateStatus, pending, status
from medicus.core.db import Database, ensure_sqlite_directory

_HERE = Path(__file__).parent
INLINE_SECONDS = 30.0


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes["database_url"] = database_url
    return config


def upgrade(
    database_url: str, revision: str = "head", inline_seconds: float | None = INLINE_SECONDS
) -> int:
    """Apply migrations up to `revision`; at head, run the background updates they scheduled
    for up to `inline_seconds` (None: until done). Returns how many are left pending for the
    server (none on a new or small database). Synchronous: call it outside a running event
    loop (or through `asyncio.to_thread`)."""
    ensure_sqlite_directory(database_url)
    config = alembic_config(database_url)
    command.upgrade(config, revision)
    if revision not in ("head", head_revision()):
        return 0
    return asyncio.run(run_updates(database_url, inline_seconds))


def _runner(database: Database) -> BackgroundUpdates:
    from medicus.updates import offline_update_steps  # the capabilities' code, only to run them

    return BackgroundUpdates(database, offline_update_steps(database), pause_seconds=0)


async def run_updates(database_url: str, seconds: float | None) -> int:
    """Run the pending background updates of a database at head for up to `seconds` (None:
    until done, or until the rest is leased by a running server); how many are left."""
    database = Database(database_url)
    try:
        await _runner(database).run_until_done(seconds)
        return len(await pending(database))
    finally:
        await database.dispose()


async def update_status(database: Database) -> list[UpdateStatus]:
    """The pending background updates and where each stands."""
    return await status(database, _runner(database).steps)


async def status_report(database: Database) -> list[str]:
    """What `medicus migrate status` says: the revision, and each pending background update
    with its state and progress, in the order they run."""
    revision = await current_revision(database)
    head = head_revision()
    if revision != head:
        return [f"database at revision {revision or 'none'}; head is {head}: run `medicus migrate`"]
    updates = await update_status(database)
    lines = [f"database at revision {head} (head)"]
    if not updates:
        return [*lines, "background updates: none pending"]
    lines.append(f"background updates pending: {len(updates)}")
    for update in updates:
        progress = orjson.dumps(update.progress).decode()
        held = f", by {update.lease_owner}" if update.state == "running" else ""
        lines.append(
            f"  {update.name}: {update.state}{held}; {update.batches} batches,"
            f" {update.items} items done; progress {progress}"
        )
    return lines


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
