"""Logging in to Matrix through medicus: a login token from medicus, redeemed once through the
Messenger-Proxy; forged, expired, replayed and other users' tokens are refused."""

from __future__ import annotations

import asyncio
import time
import uuid

from joserfc import jwt
from joserfc.jwk import ECKey

from medicus.messenger.homeserver import LOGIN_ISSUER, LOGIN_TOKEN_TYPE, login_signing_key
from tests.messenger.conftest import Region
from tests.support.messenger import SECRET, SERVER_NAME


async def _login(region: Region, token: str) -> tuple[int, dict[str, object]]:
    answer = await region.http.post(
        "/_matrix/client/v3/login", json={"type": LOGIN_TOKEN_TYPE, "token": token}
    )
    return answer.status_code, answer.json()


def _signed(claims: dict[str, object], key: ECKey | None = None) -> str:
    key = key or ECKey.import_key(login_signing_key(SECRET.encode()))
    return jwt.encode({"alg": "ES256"}, claims, key)


async def test_a_user_logs_in_once_with_a_token_from_medicus(region: Region) -> None:
    issued = await region.login_token(region.alice)
    assert issued["user_id"] == region.alice.matrix_id
    assert issued["type"] == LOGIN_TOKEN_TYPE
    status, body = await _login(region, issued["token"])
    assert status == 200, body
    assert body["user_id"] == region.alice.matrix_id
    profile = await region.http.get(f"/_matrix/client/v3/profile/{region.alice.matrix_id}")
    assert profile.json()["displayname"] == "alice"

    status, body = await _login(region, issued["token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_forged_expired_and_unknown_tokens_are_refused(region: Region) -> None:
    now = int(time.time())
    claims = {"iss": LOGIN_ISSUER, "aud": SERVER_NAME, "sub": region.alice.user_id, "iat": now}
    forged_key = ECKey.generate_key("P-256")
    forged = _signed({**claims, "exp": now + 60, "jti": uuid.uuid4().hex}, forged_key)
    no_expiry = _signed({**claims, "jti": uuid.uuid4().hex})
    not_issued = _signed({**claims, "exp": now + 60, "jti": uuid.uuid4().hex})
    for token in (forged, no_expiry, not_issued, "not-a-token"):
        status, body = await _login(region, token)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), token


async def test_an_expired_token_is_refused_although_synapse_allows_two_minutes(
    region: Region,
) -> None:
    issued = await region.login_token(region.alice)
    claims = jwt.decode(issued["token"], ECKey.import_key(login_signing_key(SECRET.encode())))
    late = {**claims.claims, "exp": int(time.time()) - 5}
    status, body = await _login(region, _signed(late))
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_a_token_for_another_user_is_refused(region: Region) -> None:
    """Alice's token id, with Bob's name in it (as if Alice's token were re-signed): the id
    was issued to Alice, so it does not log in Bob."""
    issued = await region.login_token(region.alice)
    key = ECKey.import_key(login_signing_key(SECRET.encode()))
    claims = jwt.decode(issued["token"], key).claims
    status, body = await _login(region, _signed({**claims, "sub": region.bob.user_id}))
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await _login(region, issued["token"])
    assert status == 200, body


async def test_only_staff_get_login_tokens(region: Region) -> None:
    answer = await region.http.post("/messenger/login-token")
    assert answer.status_code == 401
    stranger = {"Authorization": region.alice.headers["Authorization"][:-4] + "AAAA"}
    answer = await region.http.post("/messenger/login-token", headers=stranger)
    assert answer.status_code == 401


async def test_a_token_sent_five_times_at_once_logs_in_once(region: Region) -> None:
    issued = await region.login_token(region.alice)
    answers = await asyncio.gather(*(_login(region, issued["token"]) for _ in range(5)))
    assert sorted(status for status, _body in answers) == [200, 403, 403, 403, 403]
