"""The migrations build exactly the schema the models describe (a forgotten migration fails)."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

import medicus.audit.models
import medicus.fhir.models
import medicus.iam.models  # noqa: F401  (register every table)
from medicus import migrations
from medicus.core.db import Base, Database
from medicus.platform import Platform
from tests.conftest import DatabaseFactory


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_models_and_migrations_agree(fresh_platform: Platform) -> None:
    async with fresh_platform.database.snapshot() as session:
        connection = await session.connection()
        differences = await connection.run_sync(_differences)
    assert differences == []


async def test_rows_of_union_parameters_are_removed(database_factory: DatabaseFactory) -> None:
    """Migration 0006: `combo-*` rows written by earlier versions go; other rows stay."""
    url = await asyncio.to_thread(database_factory.new_url, False)
    await asyncio.to_thread(migrations.upgrade, url, "0005")
    database = Database(url)
    try:
        async with database.transaction() as session:
            for param in ("code", "combo-code", "combo-code-value-quantity$0"):
                await session.execute(
                    text(
                        "INSERT INTO fhir_token (rid, resource_type, param, system, code)"
                        " VALUES (1, 'Observation', :param, 'http://loinc.org', '718-7')"
                    ),
                    {"param": param},
                )
        await asyncio.to_thread(migrations.upgrade, url)
        async with database.snapshot() as session:
            left = (await session.execute(text("SELECT param FROM fhir_token"))).scalars().all()
        assert left == ["code"]
    finally:
        await database.dispose()
