"""Disk size per resource: the same Patients and Observations (tests/support/search_data.py,
written by SQL with the index rows the hub derives) in a migrated SQLite file and, if
MEDICUS_BENCH_POSTGRES_URL names a server, a migrated PostgreSQL database; printed as JSON:
bytes per resource of each table and of its indexes, and in all.

    python -m benchmarks.fhir_size [resources]

Only FHIR tables count (the audit trail of the writes is not made here). PostgreSQL: table
(with TOAST) and index sizes after VACUUM; SQLite: pages of each table and index (dbstat)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from tests.support.search_data import load_postgres, load_sqlite

from medicus import migrations
from medicus.core.logging import configure_logging

TABLES = (
    "fhir_resource",
    "fhir_version",
    "fhir_token",
    "fhir_string",
    "fhir_reference",
    "fhir_date",
    "fhir_quantity",
    "fhir_number",
    "fhir_uri",
    "fhir_token_date",
)


def _per_resource(sizes: dict[str, tuple[int, int]], resources: int) -> dict[str, Any]:
    tables = {
        name: {"table": round(table / resources), "indexes": round(indexes / resources)}
        for name, (table, indexes) in sizes.items()
    }
    total = sum(table + indexes for table, indexes in sizes.values())
    return {"bytes_per_resource": round(total / resources), "tables": tables}


def _sqlite_sizes(path: str) -> dict[str, tuple[int, int]]:
    with sqlite3.connect(path) as connection:
        owners = dict(
            connection.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'")
        )
        pages = connection.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
    sizes = {name: [0, 0] for name in TABLES}
    for name, size in pages:
        owner = owners.get(name, name)
        if owner in sizes:
            sizes[owner][0 if owner == name else 1] += size
    return {name: (table, indexes) for name, (table, indexes) in sizes.items()}


def sqlite(resources: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "size.db")
        migrations.upgrade(f"sqlite+aiosqlite:///{path}")
        load_sqlite(path, resources // 2, resources - resources // 2)
        with sqlite3.connect(path) as connection:
            connection.execute("VACUUM")
        return _per_resource(_sqlite_sizes(path), resources)


async def _postgres_sizes(dsn: str) -> dict[str, tuple[int, int]]:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("VACUUM ANALYZE")
        found = await connection.fetch(
            "SELECT relname, pg_table_size(oid), pg_indexes_size(oid) FROM pg_class"
            " WHERE relname = any($1::text[])",
            list(TABLES),
        )
    finally:
        await connection.close()
    return {row[0]: (row[1], row[2]) for row in found}


async def postgres(server: str, resources: int) -> dict[str, Any]:
    name = f"medicus_size_{uuid.uuid4().hex[:12]}"
    admin_dsn = make_url(server).set(drivername="postgresql").render_as_string(False)
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(server).set(drivername="postgresql+asyncpg", database=name)
        rendered = url.render_as_string(hide_password=False)
        await asyncio.to_thread(migrations.upgrade, rendered)
        await load_postgres(rendered, resources // 2, resources - resources // 2)
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return _per_resource(await _postgres_sizes(dsn), resources)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    resources = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    configure_logging("WARNING", json_lines=False)  # the migrations' log lines are not JSON
    report: dict[str, Any] = {"resources": resources, "sqlite": sqlite(resources)}
    server = os.environ.get("MEDICUS_BENCH_POSTGRES_URL")
    if server:
        report["postgresql"] = asyncio.run(postgres(server, resources))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
