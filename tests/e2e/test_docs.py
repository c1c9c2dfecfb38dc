"""The worked example of docs/identity.md ("A token for a backend service"), run as written
against a real server: make a key, register the client, get a token with the script, read."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.conftest import RunningServer, admin

IDENTITY = (Path(__file__).resolve().parents[2] / "docs" / "identity.md").read_text()


def _python_block(name: str) -> str:
    found = re.search(rf"```python\n(# {re.escape(name)}:.*?)```", IDENTITY, re.DOTALL)
    assert found is not None, name
    return found.group(1)


def _shell_line(prefix: str) -> list[str]:
    lines = [line for line in IDENTITY.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, prefix
    return shlex.split(lines[0])


def _run(arguments: list[str], folder: Path, server: RunningServer) -> str:
    result = subprocess.run(
        arguments,
        cwd=folder,
        env=server.environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_backend_service_example_gets_a_token(tmp_path: Path, server: RunningServer) -> None:
    (tmp_path / "make_key.py").write_text(_python_block("make_key.py"))
    (tmp_path / "get_token.py").write_text(_python_block("get_token.py"))
    register = _shell_line(".venv/bin/medicus admin create-client")
    iknr = register[register.index("--org") + 1]
    admin(server, "create-org", "Klinikum Nord", "--type", "hospital", "--iknr", iknr)

    _run([sys.executable, "make_key.py"], tmp_path, server)
    assert (tmp_path / "connector.key.jwk").stat().st_mode & 0o777 == 0o600
    client_id = _run([sys.executable, "-m", "medicus", *register[1:]], tmp_path, server)

    fetch = _shell_line("TOKEN=$(.venv/bin/python get_token.py")
    assert fetch[2:] == ["http://127.0.0.1:8080", "<client_id>", "connector.key.jwk)"]
    token = _run(
        [sys.executable, "get_token.py", server.base_url, client_id, "connector.key.jwk"],
        tmp_path,
        server,
    )
    read = httpx.get(
        f"{server.base_url}/fhir/Patient", headers={"Authorization": f"Bearer {token}"}
    )
    assert read.status_code == 200, read.text
    assert read.json()["resourceType"] == "Bundle"
