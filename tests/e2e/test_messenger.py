"""The messenger's Synapse as an operator meets it: `medicus messenger start|status|stop`, the
federation list from the command line, and a `medicus serve` killed outright takes its Synapse
with it (no orphan keeps the port)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port, medicus_environment, run_medicus, serving


def _messenger_environment(data_dir: Path, database_url: str | None) -> dict[str, str]:
    return medicus_environment(
        data_dir,
        database_url,
        MEDICUS_MESSENGER="managed",
        MEDICUS_MESSENGER_SYNAPSE_URL=f"http://127.0.0.1:{free_port()}",
    )


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_matrix/client/versions", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_start_status_stop_and_the_federation_list(
    tmp_path: Path, server_database_url: str | None
) -> None:
    environment = _messenger_environment(tmp_path / "var", server_database_url)
    synapse_url = environment["MEDICUS_MESSENGER_SYNAPSE_URL"]
    assert run_medicus("messenger", "status", environment=environment).returncode == 1
    started = run_medicus("messenger", "start", environment=environment)
    try:
        assert started.returncode == 0, started.stderr
        assert _answers(synapse_url)
        status = run_medicus("messenger", "status", "--json", environment=environment)
        assert status.returncode == 0
        assert '"answering":true' in status.stdout
    finally:
        stopped = run_medicus("messenger", "stop", environment=environment)
    assert "stopped" in stopped.stdout
    assert not _answers(synapse_url)

    assert run_medicus("migrate", environment=environment).returncode == 0
    added = run_medicus("messenger", "federation", "add", "klinikum-x", environment=environment)
    assert added.stdout.strip() == "added", added.stderr
    listed = run_medicus("messenger", "federation", "list", environment=environment)
    assert listed.stdout.split() == ["klinikum-x"]
    removed = run_medicus(
        "messenger", "federation", "remove", "klinikum-x", environment=environment
    )
    assert removed.stdout.strip() == "removed"


def test_a_killed_server_takes_its_synapse_with_it(
    tmp_path: Path, server_database_url: str | None
) -> None:
    if server_database_url:
        pytest.skip("the process tree is the same on PostgreSQL; the SQLite run covers it")
    environment = _messenger_environment(tmp_path / "var", None)
    synapse_url = environment["MEDICUS_MESSENGER_SYNAPSE_URL"]
    with serving(environment) as server:
        assert _answers(server.base_url), "Synapse answers through medicus"
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
        deadline = time.monotonic() + 20
        while _answers(synapse_url) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _answers(synapse_url), "Synapse ended with the server that started it"
