"""Alembic environment: runs migrations over the async engine medicus uses."""

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import medicus.access.models
import medicus.audit.models
import medicus.collab.models
import medicus.core.background
import medicus.fhir.models
import medicus.iam.models
import medicus.messenger.models
import medicus.storage.models  # noqa: F401  (register the tables on the metadata)
from medicus.core.db import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(
        config.attributes["database_url"], poolclass=pool.NullPool, hide_parameters=True
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("medicus migrations run online only: use `medicus migrate`.")
asyncio.run(_run_online())
