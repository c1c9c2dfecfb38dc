"""The `medicus` command starts fast and says things once: help never loads the platform,
migrations are summed up in one line, and `admin token` fails with one sentence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from medicus.iam import client_keys
from tests.conftest import DatabaseFactory
from tests.e2e.conftest import free_port, medicus_environment, run_medicus

# What every command's --help may not import: loading these takes seconds, not milliseconds.
_EVERY_HELP = """
import sys
import orjson
from typer.main import get_command
from medicus.cli import app

root = get_command(app)

def paths(command, prefix):
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from paths(sub, [*prefix, name])

shown = []
for path in paths(root, []):
    try:
        root.main([*path, "--help"], prog_name="medicus", standalone_mode=False)
    except SystemExit:
        pass
    shown.append(" ".join(path))
print(orjson.dumps({"shown": shown, "modules": sorted(sys.modules)}).decode())
"""
_HEAVY = ("sqlalchemy", "fastapi", "starlette", "uvicorn", "alembic", "httpx", "joserfc", "argon2")
_LIGHT_MEDICUS = {"medicus", "medicus.cli", "medicus.audit", "medicus.audit.cli", "medicus.iam"}
_LIGHT_MEDICUS |= {"medicus.iam.cli", "medicus.iam.roles", "medicus.storage", "medicus.storage.cli"}
_LIGHT_MEDICUS |= {"medicus.audit.actors", "medicus.collab", "medicus.collab.cli"}
_LIGHT_MEDICUS |= {"medicus.messenger", "medicus.messenger.cli"}


def test_help_of_every_command_loads_nothing_heavy() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _EVERY_HELP], capture_output=True, text=True, check=True
    )
    report = orjson.loads(result.stdout.splitlines()[-1])
    assert {"", "serve", "migrate", "demo", "config show", "audit verify"} <= set(report["shown"])
    assert {"admin create-client", "admin token", "collab index-text"} <= set(report["shown"])
    assert {"messenger start", "messenger status", "messenger federation add"} <= set(
        report["shown"]
    )
    loaded = set(report["modules"])
    assert not {name for name in loaded if name.split(".")[0] in _HEAVY}
    assert {name for name in loaded if name.startswith("medicus")} <= _LIGHT_MEDICUS
    assert "rich.markdown" not in loaded


def test_migrate_says_in_one_line_where_the_database_stands(
    tmp_path: Path, database_factory: DatabaseFactory
) -> None:
    environment = medicus_environment(tmp_path, database_factory.new_url(migrate=False))
    first = run_medicus("migrate", environment=environment)
    assert first.returncode == 0, first.stderr
    revision, applied = first.stdout.removeprefix("database at revision ").split(" (")
    assert applied == f"{int(revision)} migrations applied)\n"
    assert first.stderr == ""
    again = run_medicus("migrate", environment=environment)
    assert again.stdout == f"database at revision {revision} (up to date)\n"
    assert again.stderr == ""


def test_admin_token_without_the_clients_key_is_one_sentence(tmp_path: Path) -> None:
    result = run_medicus(
        "admin", "token", "--client", "nobody", environment=medicus_environment(tmp_path, None)
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"medicus: cannot read the client's key {tmp_path}/keys/clients/nobody.jwk: "
        "No such file or directory\n"
    )


def test_admin_token_without_a_server_says_what_to_start(tmp_path: Path) -> None:
    key = client_keys.new_key()
    client_keys.save_key(tmp_path, "a-client", key)
    port = free_port()
    environment = medicus_environment(tmp_path, None, MEDICUS_PORT=str(port))
    result = run_medicus("admin", "token", "--client", "a-client", environment=environment)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"medicus: cannot reach medicus at http://127.0.0.1:{port} (")
    assert lines[0].endswith("is `medicus serve` running there?")
    assert key.as_dict(private=True)["d"] not in result.stderr
