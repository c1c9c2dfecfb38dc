"""Helpers that run the real `medicus` command as a separate process (and its admin commands
in-process, where they only set up what a test needs)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from typer.testing import CliRunner

from medicus import cli
from tests.conftest import POSTGRES_ADMIN_URL, DatabaseFactory


def medicus_environment(data_dir: Path, database_url: str | None, **extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MEDICUS_")}
    environment["MEDICUS_DATA_DIR"] = str(data_dir)
    environment["MEDICUS_MESSENGER"] = "off"
    if database_url:
        environment["MEDICUS_DATABASE_URL"] = database_url
    environment.update(extra)
    return environment


def run_medicus(
    *arguments: str, environment: dict[str, str], timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medicus", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        input=stdin,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningServer:
    process: subprocess.Popen[str]
    base_url: str
    environment: dict[str, str]
    log: Path

    def output(self) -> str:
        """What the server printed so far."""
        return self.log.read_text()


@pytest.fixture
async def server_database_url(database_factory: DatabaseFactory) -> str | None:
    """PostgreSQL runs get a fresh database that every migration ran on (not a copy of the
    session's template); SQLite runs use the embedded default, so that the server has to create
    and migrate it itself."""
    if not POSTGRES_ADMIN_URL:
        return None
    return await asyncio.to_thread(database_factory.really_migrated_url)


@contextmanager
def serving(environment: dict[str, str]) -> Iterator[RunningServer]:
    """`medicus serve` on a free loopback port, ready to answer; killed on exit. Its output
    goes to a file beside its data: a pipe nobody reads fills up after some hundred log
    lines and then stops the server in the middle of a request."""
    port = free_port()
    log = Path(environment["MEDICUS_DATA_DIR"]).parent / f"serve-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "medicus", "serve", "--port", str(port)],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    running = RunningServer(process, f"http://127.0.0.1:{port}", environment, log)
    try:
        _wait_until_ready(running)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _wait_until_ready(server: RunningServer) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
        if server.process.poll() is not None:
            raise AssertionError(f"medicus serve exited early:\n{server.output()}")
    raise AssertionError("medicus serve did not become ready within 60 s")


@pytest.fixture
def server(tmp_path: Path, server_database_url: str | None) -> Iterator[RunningServer]:
    with serving(medicus_environment(tmp_path / "var", server_database_url)) as running:
        yield running


CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class Hub:
    """A running server and a backend service (SMART Backend Services) registered on it."""

    server: RunningServer
    fhir_url: str
    token_endpoint: str
    client_id: str
    key: ECKey
    scope: str

    def assertion(self) -> str:
        """A fresh private_key_jwt client assertion (ES384)."""
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_endpoint,
            "exp": now + 240,
            "iat": now,
            "jti": str(uuid.uuid4()),
        }
        header = {"alg": "ES384", "kid": self.key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.key, algorithms=["ES384"])

    def access_token(self) -> str:
        response = httpx.post(
            self.token_endpoint,
            data={
                "grant_type": "client_credentials",
                "scope": self.scope,
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": self.assertion(),
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "Bearer"
        return str(body["access_token"])


def admin(server: RunningServer, *arguments: str, stdin: str | None = None) -> dict[str, Any]:
    """`medicus admin ... --json` against the server's database (`stdin`: what the operator
    types, such as a password); its answer. It runs in this process, which spares an
    interpreter start for a set-up step whose process does not matter; the tests of the
    command's own sentences and exit codes run the real `medicus` (`run_medicus`). (In a
    thread: the command runs an event loop of its own.)"""
    settings = {k: v for k, v in server.environment.items() if k.startswith("MEDICUS_")}
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        result = thread.submit(
            CliRunner().invoke, cli.app, ["admin", *arguments, "--json"], stdin, settings
        ).result()
    assert result.exit_code == 0, (result.output, result.exception)
    answer: dict[str, Any] = orjson.loads(result.stdout)
    return answer


def register_backend_service(
    server: RunningServer, folder: Path, organisation: str, iknr: str, scope: str
) -> Hub:
    """An organisation and a backend service of it with its own key, through the operators'
    CLI, as a hospital's connector is set up."""
    admin(server, "create-org", organisation, "--type", "hospital", "--iknr", iknr)
    key = ECKey.generate_key("P-384", parameters={"kid": f"{iknr}-1"})
    jwks = folder / "jwks.json"
    jwks.write_bytes(orjson.dumps({"keys": [key.as_dict(private=False)]}))
    registered = admin(
        server,
        "create-client",
        f"{organisation} connector",
        "--org",
        iknr,
        "--jwks-file",
        str(jwks),
        "--scope",
        scope,
    )
    smart = httpx.get(f"{server.base_url}/fhir/.well-known/smart-configuration").json()
    return Hub(
        server=server,
        fhir_url=f"{server.base_url}/fhir",
        token_endpoint=smart["token_endpoint"],
        client_id=registered["client_id"],
        key=key,
        scope=scope,
    )
