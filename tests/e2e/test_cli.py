"""The `medicus` command as operators run it: clear sentences and exit codes, no tracebacks."""

from __future__ import annotations

from pathlib import Path

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import POSTGRES_ADMIN_URL
from tests.e2e.conftest import medicus_environment, run_medicus


def _one_line_error(result_stderr: str) -> str:
    lines = [line for line in result_stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result_stderr
    assert "Traceback" not in result_stderr
    return lines[0]


def test_wrong_configuration_stops_with_one_sentence(tmp_path: Path) -> None:
    environment = medicus_environment(tmp_path, None, MEDICUS_PORT="eighty")
    result = run_medicus("serve", environment=environment)
    assert result.returncode == 2
    line = _one_line_error(result.stderr)
    assert line.startswith("medicus: configuration error: setting MEDICUS_PORT is invalid")


def test_unreachable_database_is_one_sentence(tmp_path: Path) -> None:
    url = "postgresql://medicus:topsecret@127.0.0.1:1/medicus"
    result = run_medicus("migrate", environment=medicus_environment(tmp_path, url))
    assert result.returncode == 3
    line = _one_line_error(result.stderr)
    assert line.startswith("medicus: cannot use the database at postgresql+asyncpg://medicus:***@")
    assert "topsecret" not in result.stderr + result.stdout


def test_commands_on_an_unmigrated_database_say_what_to_do(tmp_path: Path) -> None:
    result = run_medicus("demo", environment=medicus_environment(tmp_path, None))
    assert result.returncode == 3
    line = _one_line_error(result.stderr)
    assert line.endswith("run `medicus migrate` first")


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    environment = medicus_environment(
        tmp_path,
        "postgresql://medicus:topsecret@db.example:5432/medicus",
        MEDICUS_SECRET_KEY="s" * 40,
    )
    result = run_medicus("config", "show", "--json", environment=environment)
    assert result.returncode == 0, result.stderr
    shown = orjson.loads(result.stdout)
    assert shown["secret_key"] == "********"
    assert shown["database_url"] == "postgresql+asyncpg://medicus:***@db.example:5432/medicus"
    assert "topsecret" not in result.stdout
    assert "sssss" not in result.stdout


async def test_audit_verify_names_the_tampered_entry(
    tmp_path: Path, fresh_database_url: str
) -> None:
    environment = medicus_environment(tmp_path, fresh_database_url)
    assert run_medicus("demo", environment=environment).returncode == 0
    assert run_medicus("audit", "verify", environment=environment).returncode == 0

    engine = create_async_engine(fresh_database_url)
    async with engine.begin() as connection:
        if POSTGRES_ADMIN_URL:
            await connection.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER ALL"))
        else:
            await connection.execute(text("DROP TRIGGER audit_entry_no_update"))
        await connection.execute(text("UPDATE audit_entry SET outcome = 'denied' WHERE seq = 5"))
    await engine.dispose()

    result = run_medicus("audit", "verify", environment=environment)
    assert result.returncode == 1
    assert "entry 5 was altered" in _one_line_error(result.stderr)
