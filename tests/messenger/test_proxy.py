"""The Messenger-Proxy's answers to bad input and trouble: Matrix errors with the right status,
never a 500, nothing of a request's secrets in the log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from medicus.app import create_app
from medicus.core.logging import configure_logging
from medicus.messenger.forwarding import SynapseForwarder
from medicus.messenger.homeserver import Homeserver
from medicus.messenger.proxy import MatrixProxy
from medicus.platform import build_platform
from tests.messenger.conftest import Region
from tests.support.messenger import messenger_settings
from tests.support.served import free_port


@pytest.mark.parametrize(
    ("path", "body", "status", "errcode"),
    [
        ("/_matrix/client/v3/login", b"{not json", 400, "M_NOT_JSON"),
        ("/_matrix/client/v3/login", b"[1, 2]", 400, "M_BAD_JSON"),
        ("/_matrix/client/v3/createRoom", b'{"invite": "@a:b"}', 400, "M_BAD_JSON"),
        ("/_matrix/client/v3/createRoom", b'{"invite": [1]}', 400, "M_BAD_JSON"),
        ("/_matrix/client/v3/rooms/!r:x/invite", b'{"user_id": 7}', 400, "M_BAD_JSON"),
        ("/_matrix/client/v3/rooms/!r:x/invite", b"x" * (1024 * 1024 + 1), 413, "M_TOO_LARGE"),
    ],
)
async def test_bad_bodies_get_matrix_errors(
    region: Region, path: str, body: bytes, status: int, errcode: str
) -> None:
    login = await region.http.post(
        "/_matrix/client/v3/login",
        json={
            "type": "org.matrix.login.jwt",
            "token": (await region.login_token(region.alice))["token"],
        },
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    answer = await region.http.post(path, content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.json()["errcode"] == errcode


async def test_an_invitation_without_a_token_is_refused(region: Region) -> None:
    answer = await region.http.post(
        "/_matrix/client/v3/rooms/!r:x/invite", json={"user_id": region.bob.matrix_id}
    )
    assert answer.status_code == 401
    assert answer.json()["errcode"] == "M_MISSING_TOKEN"


async def test_a_homeserver_that_does_not_answer_is_a_502_with_a_matrix_error(
    tmp_path: Path, database_url: str, synapse: Homeserver
) -> None:
    gone = Homeserver(
        synapse.server_name,
        f"http://127.0.0.1:{free_port()}",
        synapse.public_url,
        synapse.max_upload_bytes,
        tmp_path,
    )
    settings = messenger_settings(tmp_path, database_url, gone)
    platform = build_platform(settings)
    transport = httpx.ASGITransport(app=create_app(settings, platform))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://medicus") as http:
            answer = await http.get("/_matrix/client/versions")
            assert answer.status_code == 502
            assert answer.json()["errcode"] == "M_UNKNOWN"
            answer = await http.get(
                "/_matrix/client/v3/sync", headers={"Authorization": "Bearer whatever"}
            )
            assert answer.status_code == 502
    finally:
        await platform.close()


@pytest.fixture
def server_logging(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """medicus's logging at INFO, as a server runs it, with every record also kept by caplog."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("INFO", json_lines=False)
    root.addHandler(caplog.handler)
    yield caplog
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_access_tokens_in_query_strings_are_not_logged(
    region: Region, server_logging: pytest.LogCaptureFixture
) -> None:
    secret = "syt_not_logged_anywhere_0123456789"
    answer = await region.http.get(f"/_matrix/client/v3/sync?access_token={secret}&timeout=0")
    assert answer.status_code == 401
    assert answer.json()["errcode"] == "M_UNKNOWN_TOKEN"
    logged = "\n".join(record.getMessage() for record in server_logging.records)
    assert secret not in logged
    assert logging.getLogger("medicus.messenger").isEnabledFor(logging.INFO), "INFO was logged"


async def test_a_failed_token_check_is_not_remembered(
    tmp_path: Path, database_url: str, synapse: Homeserver
) -> None:
    """Synapse failing once to say who holds a token must not let that token pass unchecked
    (a suspended user's requests through) for the minutes the proxy remembers answers. A fake
    Synapse (httpx's MockTransport), since the real one cannot be made to fail on cue."""
    whoami_answers = [httpx.Response(500), httpx.Response(200, json={"user_id": "@gone:x"})]

    def fake_synapse(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/account/whoami"), "only the token check is faked"
        return whoami_answers.pop(0)

    settings = messenger_settings(tmp_path, database_url, synapse, messenger_server_name="x")
    platform = build_platform(settings)
    assert platform.messenger is not None
    fake = httpx.AsyncClient(transport=httpx.MockTransport(fake_synapse))
    hub = platform.messenger
    proxy = MatrixProxy(hub.service, hub.media, SynapseForwarder(synapse.synapse_url), fake)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=proxy), base_url="http://medicus"
        ) as http:
            headers = {"Authorization": "Bearer syt_token"}
            first = await http.get("/_matrix/client/v3/sync", headers=headers)
            assert first.status_code == 502
            second = await http.get("/_matrix/client/v3/sync", headers=headers)
            assert (second.status_code, second.json()["errcode"]) == (401, "M_USER_LOCKED")
    finally:
        await fake.aclose()
        await platform.close()
