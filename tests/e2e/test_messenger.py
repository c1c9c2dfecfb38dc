"""The messenger's Synapse as an operator meets it: `medicus messenger start|status|stop`, the
federation list from the command line, a `medicus serve` killed outright takes its Synapse
with it (no orphan keeps the port), and a person's Matrix client signs in with medicus
(Synapse's single sign-on against medicus's OpenID Connect)."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    RunningServer,
    admin,
    free_port,
    medicus_environment,
    run_medicus,
    serving,
)
from tests.iam.browser import Browser

PASSWORD = "a long and unusual passphrase 7"
CLIENT_URL = "http://127.0.0.1:9/element/"
"""Where the Matrix client (Element, say) wants the login token delivered."""
_LOGIN_TOKEN = re.compile(r"loginToken=([A-Za-z0-9_\-]+)")
_SESSION_COOKIE = re.compile(r"oidc_session=[^;]+")


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


def _member(server: RunningServer, email: str, role: str = "physician") -> str:
    user = admin(
        server,
        *("create-user", email, "--org", "262200077", "--role", role),
        *("--name", "Dr. Single Sign-On", "--password-stdin"),
        stdin=PASSWORD + "\n",
    )
    return str(user["id"])


async def _sign_on(http: httpx.AsyncClient, browser: Browser, base_url: str) -> str:
    """A browser goes through Synapse's single sign-on: Synapse sends it to medicus's
    authorization endpoint, medicus logs the person in (password and second factor), Synapse
    takes the code back and hands the client a login token; returns that token."""
    response = await http.get(
        "/_matrix/client/v3/login/sso/redirect/oidc-medicus", params={"redirectUrl": CLIENT_URL}
    )
    # Synapse's session cookie is `Secure`: browsers send it to http://127.0.0.1 (a secure
    # context), Python's cookie jar only over https, so the test carries it by hand.
    found = _SESSION_COOKIE.search(response.headers.get("set-cookie", ""))
    assert found is not None, response.headers
    session = {"Cookie": found.group(0)}
    visited = []
    for _ in range(4):
        location = response.headers.get("location", "")
        visited.append((response.status_code, location[:120]))
        if location.startswith(CLIENT_URL) or response.status_code not in (302, 303):
            break  # at the client, or on Synapse's page asking to continue to it
        assert location.startswith(base_url), visited
        path = location.removeprefix(base_url)
        headers = session if path.startswith("/_synapse/client/oidc/") else None
        response = await browser.follow(await http.get(path, headers=headers))
    found = _LOGIN_TOKEN.search(location or response.text)
    assert found is not None, ("no login token", visited, response.text[:2000])
    return found.group(1)


async def test_a_matrix_client_signs_in_with_medicus(
    tmp_path: Path, server_database_url: str | None
) -> None:
    environment = _messenger_environment(tmp_path / "var", server_database_url)
    with serving(environment) as server:
        admin(server, "create-org", "Klinikum SSO", "--type", "hospital", "--iknr", "262200077")
        email = "dr.sso@klinikum-sso.example"
        user_id = _member(server, email)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            flows = (await http.get("/_matrix/client/v3/login")).json()["flows"]
            sso = next(flow for flow in flows if flow["type"] == "m.login.sso")
            assert [p["id"] for p in sso["identity_providers"]] == ["oidc-medicus"]

            token = await _sign_on(http, Browser(http, email, PASSWORD), server.base_url)
            login = await http.post(
                "/_matrix/client/v3/login", json={"type": "m.login.token", "token": token}
            )
            assert login.status_code == 200, login.text
            matrix_id = login.json()["user_id"]
            assert matrix_id.startswith(f"@{user_id}:"), "the same Matrix ID as token logins"
            bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
            name = await http.get(f"/_matrix/client/v3/profile/{matrix_id}/displayname")
            assert name.json()["displayname"] == "Dr. Single Sign-On"
            whoami = await http.get("/_matrix/client/v3/account/whoami", headers=bearer)
            assert whoami.json()["user_id"] == matrix_id

            replayed = await http.post(
                "/_matrix/client/v3/login", json={"type": "m.login.token", "token": token}
            )
            assert replayed.status_code == 403

            # An account made by single sign-on is medicus's to lock and erase.
            # As an operator's shell has it: the public URL the server runs under (it names
            # the Matrix server), which `serve --port` set for the server alone.
            operator = {**server.environment, "MEDICUS_PUBLIC_URL": server.base_url}
            erased = run_medicus("messenger", "erase", user_id, environment=operator)
            assert erased.stdout.strip() == "erased", (erased.stdout, erased.stderr)
            gone = await http.get("/_matrix/client/v3/account/whoami", headers=bearer)
            assert gone.status_code == 401

            http.cookies.clear()
            patient = "patientin@klinikum-sso.example"
            _member(server, patient, role="patient")
            with pytest.raises(AssertionError, match="no login token"):
                await _sign_on(http, Browser(http, patient, PASSWORD), server.base_url)
