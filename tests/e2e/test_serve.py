"""The real `medicus serve` process, spoken to over HTTP on a free port."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.conftest import (
    RunningServer,
    medicus_environment,
    register_backend_service,
    run_medicus,
    serving,
)


def test_the_server_is_ready_and_answers_in_the_error_model(server: RunningServer) -> None:
    ready = httpx.get(f"{server.base_url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert len(ready.headers["x-request-id"]) == 32

    missing = httpx.post(f"{server.base_url}/nowhere", content=b"{", timeout=5)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["request_id"] == missing.headers["x-request-id"]

    huge = httpx.post(f"{server.base_url}/healthz", content=b"x" * (33 * 1024 * 1024), timeout=30)
    assert huge.status_code == 413


def test_the_server_stops_cleanly_and_logs_no_paths(server: RunningServer) -> None:
    httpx.get(f"{server.base_url}/patients/Erika-Mustermann?kvnr=A123456780")
    server.process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal for the process manager to see.
    assert server.process.wait(15) in (0, -signal.SIGTERM)
    output = server.output()
    assert "Application shutdown complete" in output
    assert "route=<unmatched> status=404" in output
    assert "Mustermann" not in output
    assert "A123456780" not in output


def test_demo_and_audit_verify_against_the_served_data(server: RunningServer) -> None:
    first = run_medicus("demo", environment=server.environment)
    assert first.returncode == 0, first.stderr
    assert "4 organisations" in first.stdout
    again = run_medicus("demo", environment=server.environment)
    assert "0 organisations, 0 users, 0 memberships created" in again.stdout

    verified = run_medicus("audit", "verify", "--json", environment=server.environment)
    assert verified.returncode == 0, verified.stderr
    report = orjson.loads(verified.stdout)
    assert report["intact"] is True
    assert report["entries"] > 0
    assert report["pending"] == 0


def test_worker_processes_share_keys_and_data(
    tmp_path: Path, server_database_url: str | None
) -> None:
    """`--workers 2`: tokens issued by either process are accepted by both, and what one
    process stores the other reads. Each request opens a new connection, so the kernel hands
    them to both workers."""
    environment = medicus_environment(tmp_path / "var", server_database_url, MEDICUS_WORKERS="2")
    with serving(environment) as server:
        children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
        assert len(children.read_text().split()) >= 2
        hub = register_backend_service(
            server, tmp_path, "Klinikum Worker", "260100023", "system/*.cruds"
        )
        tokens = [hub.access_token() for _ in range(6)]
        created = httpx.post(
            f"{hub.fhir_url}/Patient",
            content=orjson.dumps({"resourceType": "Patient", "gender": "female"}),
            headers={
                "Authorization": f"Bearer {tokens[0]}",
                "Content-Type": "application/fhir+json",
            },
        )
        assert created.status_code == 201, created.text
        location = f"{hub.fhir_url}/Patient/{created.json()['id']}"
        statuses = {
            httpx.get(location, headers={"Authorization": f"Bearer {token}"}).status_code
            for token in tokens * 5
        }
        assert statuses == {200}


def test_workers_exit_when_their_supervisor_is_killed(
    tmp_path: Path, server_database_url: str | None
) -> None:
    """A supervisor killed outright (SIGKILL, the OOM killer) cannot stop its workers: they
    must notice by themselves, or they keep serving the port, unsupervised, for ever."""
    environment = medicus_environment(tmp_path / "var", server_database_url, MEDICUS_WORKERS="2")
    with serving(environment) as server:
        pid = server.process.pid
        workers = [
            int(child)
            for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            if "--multiprocessing-fork" in Path(f"/proc/{child}/cmdline").read_text()
        ]
        assert len(workers) == 2
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        deadline = time.monotonic() + 20
        while any(Path(f"/proc/{worker}").exists() for worker in workers):
            assert time.monotonic() < deadline, "workers outlived their supervisor"
            time.sleep(0.2)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.base_url}/healthz", timeout=2)
