"""`medicus storage ...` as an operator runs it, against the database and backends of a
running platform: readable reports, JSON for scripts, the exit codes (0 well, 1 problems
found or left, 2 refused) and one sentence when a command is refused."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner, Result

from medicus.cli import app
from medicus.platform import Platform
from medicus.storage.config import BackendConfig
from tests.conftest import register_organisation
from tests.support.clock import MovableClock
from tests.support.storage_objects import (
    ORG,
    MiB,
    file_of,
    folder,
    local,
    put,
    read,
    states,
    storage_platform,
)


class Operator:
    """Runs `medicus storage ...` in this process, configured as the test's platform is."""

    def __init__(self, data_dir: Path, database_url: str, backends: list[BackendConfig]) -> None:
        configured = [
            {"name": config.name, "url": config.url} | _options(config) for config in backends
        ]
        self.environment = {
            "MEDICUS_DATA_DIR": str(data_dir),
            "MEDICUS_DATABASE_URL": database_url,
            "MEDICUS_STORAGE_BACKENDS": orjson.dumps(configured).decode(),
            "MEDICUS_LOG_LEVEL": "WARNING",
        }

    def __call__(self, replicas: int, *arguments: str) -> Result:
        environment = {**self.environment, "MEDICUS_STORAGE_REPLICAS": str(replicas)}
        return CliRunner().invoke(app, ["storage", *arguments], env=environment)

    async def run(self, replicas: int, *arguments: str) -> Result:
        return await asyncio.to_thread(self, replicas, *arguments)


def _options(config: BackendConfig) -> dict[str, object]:
    return {"options": {k: v.get_secret_value() for k, v in config.options.items()}}


@pytest.fixture
def backends(tmp_path: Path) -> list[BackendConfig]:
    return [local(tmp_path, "one"), local(tmp_path, "two")]


@pytest.fixture
async def platform(
    tmp_path: Path,
    fresh_database_url: str,
    clock: MovableClock,
    backends: list[BackendConfig],
) -> AsyncIterator[Platform]:
    built = storage_platform(tmp_path, fresh_database_url, clock, backends)
    yield built
    await built.close()


@pytest.fixture
def operator(tmp_path: Path, fresh_database_url: str, backends: list[BackendConfig]) -> Operator:
    return Operator(tmp_path, fresh_database_url, backends)


async def test_status_shows_each_backend_and_the_usage(
    platform: Platform, operator: Operator
) -> None:
    await put(platform, os.urandom(3 * MiB))
    shown = await operator.run(2, "status")
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0] == "1 objects, each kept on 2 backend(s)"
    assert lines[2].split() == [
        "backend",
        "state",
        "reachable",
        "objects",
        "size",
        "pending",
        "corrupt",
        "deleting",
    ]
    assert lines[3].split() == ["one", "active", "yes", "1", "3.0", "MB", "0", "0", "0"]
    assert lines[-1].split() == [ORG, "3.0", "MB", "500.0", "GB", "(default)"]

    as_json = orjson.loads((await operator.run(2, "status", "--json")).stdout)
    assert [b["name"] for b in as_json["backends"]] == ["one", "two"]
    assert as_json["organisations"][0]["used_bytes"] == 3 * MiB


async def test_verify_exits_with_1_on_a_problem_and_repair_mends_it(
    platform: Platform, operator: Operator
) -> None:
    object_id = await put(platform, os.urandom(2 * MiB))
    file_of(platform, "two", object_id).unlink()

    found = await operator.run(2, "verify")
    assert found.exit_code == 1, found.output
    assert f"  {object_id} on two: missing (the backend does not hold it)" in found.stdout
    assert "medicus storage repair" in found.stdout
    as_json = orjson.loads((await operator.run(2, "verify", "--json")).stdout)
    assert as_json["counts"] == {"awaiting repair": 1}
    assert as_json["problems"][0]["object_id"] == object_id

    repaired = await operator.run(2, "repair")
    assert repaired.exit_code == 0, repaired.output
    assert repaired.stdout.startswith("repair: 0 replica(s) added, 1 copied, 0 deleted, 0 failed")
    clean = await operator.run(2, "verify", "--deep")
    assert clean.exit_code == 0, clean.output
    assert clean.stdout.startswith("verified 1 objects (2 replicas checked, deep): 2 good")


async def test_migrate_moves_every_object_and_refuses_in_one_sentence(
    platform: Platform, operator: Operator, backends: list[BackendConfig]
) -> None:
    data = [os.urandom(size) for size in (10, MiB, 3 * MiB)]
    ids = [await put(platform, item) for item in data]

    unknown = await operator.run(1, "migrate", "--from", "one", "--to", "elsewhere")
    assert unknown.exit_code == 2
    assert unknown.stderr == (
        "medicus: there is no storage backend 'elsewhere' in the configuration "
        "(configured: one, two)\n"
    )
    itself = await operator.run(1, "migrate", "--from", "one", "--to", "one")
    assert (itself.exit_code, itself.stderr) == (
        2,
        "medicus: the source and the target are the same backend\n",
    )

    moved = await operator.run(1, "migrate", "--from", "one", "--to", "two")
    assert moved.exit_code == 0, moved.output
    assert moved.stdout.splitlines() == [
        "migrate one -> two: 0 object(s) copied, 3 were there already; 0 left on one",
        "one holds no objects and takes no new ones; it can be removed from the configuration",
    ]
    for object_id, item in zip(ids, data, strict=True):
        assert await states(platform, object_id) == {"two": "present"}
        assert await read(platform, object_id) == item
    assert [path for path in folder(backends[0]).rglob("*") if path.is_file()] == []


async def test_quota_and_rotate_key(platform: Platform, operator: Operator) -> None:
    object_id = await put(platform, os.urandom(1000))
    nobody = await operator.run(2, "quota", "--org", ORG, "--gb", "2")
    assert (nobody.exit_code, nobody.stderr) == (2, f"medicus: there is no organisation '{ORG}'\n")
    await register_organisation(platform, ORG)
    given = await operator.run(2, "quota", "--org", ORG, "--gb", "2")
    assert (given.exit_code, given.stdout) == (0, f"quota of {ORG}: 2.0 GB\n")
    status = orjson.loads((await operator.run(2, "status", "--json")).stdout)
    assert status["organisations"][0]["quota_bytes"] == 2 * 1024**3
    reset = await operator.run(2, "quota", "--org", ORG, "--default")
    assert reset.stdout == f"quota of {ORG}: the platform's default\n"
    neither = await operator.run(2, "quota", "--org", ORG)
    assert (neither.exit_code, neither.stderr) == (2, "medicus: give either --gb N or --default\n")

    rotated = await operator.run(2, "rotate-key", "--org", ORG)
    assert rotated.exit_code == 0, rotated.output
    assert rotated.stdout.endswith("data keys re-wrapped: 1 object(s), 0 upload(s) under way\n")
    assert len(await read(platform, object_id)) == 1000
    unknown = await operator.run(2, "rotate-key", "--org", "nobody")
    assert (unknown.exit_code, unknown.stderr) == (
        2,
        "medicus: organisation 'nobody' has no storage key: it never kept an object\n",
    )
