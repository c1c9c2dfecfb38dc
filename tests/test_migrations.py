"""The migrations build exactly the schema the models describe (a forgotten migration fails)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

import medicus.audit.models
import medicus.fhir.models
import medicus.iam.models  # noqa: F401  (register every table)
from medicus.core.db import Base
from medicus.platform import Platform


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_models_and_migrations_agree(fresh_platform: Platform) -> None:
    async with fresh_platform.database.snapshot() as session:
        connection = await session.connection()
        differences = await connection.run_sync(_differences)
    assert differences == []
