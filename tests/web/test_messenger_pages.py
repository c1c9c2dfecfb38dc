"""The portal's messages page over HTTP (the Browser of tests/iam logs in through the real
login pages), with medicus in front of the session's real Synapse: the page in German and
English for staff (a patient gets 403), "Messages" in the navigation only while the messenger
is on (else the page is the 404 page), the session route that gives the page a Matrix login
token (refused without the session cookie or the page's CSRF token; the token logs in at the
Messenger-Proxy once), the page's Content-Security-Policy (compiling WebAssembly, for the Rust
crypto, allowed there and on no other page) and the crypto's .wasm served as
application/wasm, the search of whom the user may reach (colleagues, and people listed
by another organisation on the federation list: nobody else), and the backup key medicus keeps
for each user (their own only, encrypted at rest, audited without the key, bad input 422)."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from medicus.app import create_app
from medicus.core.db import utc_now
from medicus.iam.pages import CSRF_COOKIE
from medicus.iam.roles import Role
from medicus.messenger import repository
from medicus.messenger.homeserver import LOGIN_TOKEN_TYPE, Homeserver
from medicus.platform import Platform, build_platform
from tests.conftest import register_organisation
from tests.iam.browser import Browser
from tests.iam.conftest import PASSWORD, add_user
from tests.support.database import rows
from tests.support.messenger import SERVER_NAME, messenger_settings
from tests.web.conftest import Ward

ALICE = "alice@klinikum-a.example"
CAROL = "carol@klinikum-a.example"
BOB = "bob@klinikum-b.example"
BERTA = "berta@klinikum-b.example"
DAVE = "dave@klinikum-c.example"
PATIENT = "paula@example.org"
SESSION = "/portal/messages/session"
BACKUP_KEY = "/portal/messages/backup-key"


@dataclass
class Hospitals:
    platform: Platform
    ids: dict[str, str]
    secrets: dict[str, tuple[str | None, int | None]] = field(default_factory=dict)
    """Each person's authenticator (TOTP secret, last step used), learnt at enrolment."""

    @asynccontextmanager
    async def browser_of(self, email: str, language: str = "en") -> AsyncIterator[Browser]:
        app = create_app(self.platform.settings, self.platform)
        transport = httpx.ASGITransport(app=app)
        base_url = self.platform.settings.public_url
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            http.headers["Accept-Language"] = language
            browser = Browser(http, email, PASSWORD)
            browser.totp_secret, browser.last_step = self.secrets.get(email, (None, None))
            await browser.login("/portal")
            self.secrets[email] = (browser.totp_secret, browser.last_step)
            yield browser


@pytest.fixture
async def hospitals(
    tmp_path: Path, fresh_database_url: str, synapse: Homeserver
) -> AsyncIterator[Hospitals]:
    """Klinikum A (Alice, Carol) and B (Bob listed in the directory, Berta not) on the
    federation list, C (Dave, listed) not on it; a patient of A."""
    platform = build_platform(messenger_settings(tmp_path, fresh_database_url, synapse))
    assert platform.messenger is not None
    for organisation in ("klinikum-a", "klinikum-b", "klinikum-c"):
        await register_organisation(platform, organisation)
    people = [
        (ALICE, "klinikum-a", Role.PHYSICIAN),
        (CAROL, "klinikum-a", Role.NURSE),
        (BOB, "klinikum-b", Role.PHYSICIAN),
        (BERTA, "klinikum-b", Role.PHYSICIAN),
        (DAVE, "klinikum-c", Role.PHYSICIAN),
        (PATIENT, "klinikum-a", Role.PATIENT),
    ]
    ids: dict[str, str] = {}
    async with platform.database.transaction() as session:
        for email, organisation, role in people:
            ids[email] = await add_user(platform, session, email, [(organisation, role)])
        for email, organisation in ((BOB, "klinikum-b"), (DAVE, "klinikum-c")):
            await repository.set_listed(session, ids[email], organisation, "test", utc_now())
    for organisation in ("klinikum-a", "klinikum-b"):
        await platform.messenger.service.federate(organisation, True, "test")
    try:
        yield Hospitals(platform, ids)
    finally:
        await platform.close()


def _csrf(browser: Browser) -> str:
    token = browser.http.cookies.get(CSRF_COOKIE)
    assert token
    return token


async def test_the_page_in_both_languages_for_staff(hospitals: Hospitals) -> None:
    matrix_id = f"@{hospitals.ids[ALICE]}:{SERVER_NAME}"
    for language, heading, other in (
        ("de", "Nachrichten", "anderen Matrix-Client"),
        ("en", "Messages", "another Matrix client"),
    ):
        async with hospitals.browser_of(ALICE, language) as alice:
            page = await alice.http.get("/portal/messages")
            assert page.status_code == 200, page.text
            assert f"<h1>{heading}</h1>" in page.text
            assert '<a href="/portal/messages" aria-current="page">' in page.text
            assert other.lower() in page.text.lower()
            assert matrix_id in page.text
            assert hospitals.platform.settings.public_url in page.text
            assert "vendor/matrix-js-sdk-43.0.0.min." in page.text
            assert "<script>" not in page.text, "no inline script"
            policy = page.headers["content-security-policy"]
            assert "script-src 'self' 'wasm-unsafe-eval';" in policy, "the Rust crypto"
            assert "connect-src 'self'" in policy
            assert "unsafe-inline" not in policy
            assert "'unsafe-eval'" not in policy
            start = await alice.http.get("/portal/spaces")
            assert 'href="/portal/messages"' in start.text, "in the navigation of every page"
            strict = start.headers["content-security-policy"]
            assert "script-src 'self';" in strict, "every other page keeps the strict policy"
            assert "wasm" not in strict
            assert policy == strict.replace("'self';", "'self' 'wasm-unsafe-eval';", 1)
            wasm = re.search(r'data-crypto-wasm="([^"]+)"', page.text)
            assert wasm
            assert wasm[1].startswith("/portal/static/vendor/matrix-sdk-crypto-wasm-")
            served = await alice.http.get(wasm[1])
            assert served.status_code == 200
            assert served.headers["content-type"] == "application/wasm"
            assert served.content[:4] == b"\0asm", "a WebAssembly module"


async def test_a_patient_has_no_messages(hospitals: Hospitals) -> None:
    async with hospitals.browser_of(PATIENT) as patient:
        own = await patient.http.get("/portal/me")
        assert 'href="/portal/messages"' not in own.text
        page = await patient.http.get("/portal/messages")
        assert page.status_code == 403
        token = await patient.http.post(SESSION, headers={"X-CSRF-Token": _csrf(patient)})
        assert token.status_code == 403
        assert (await patient.http.get(BACKUP_KEY)).status_code == 403
        key = {"version": "1", "key": base64.b64encode(bytes(32)).decode()}
        put = await patient.http.put(BACKUP_KEY, json=key, headers={"X-CSRF-Token": _csrf(patient)})
        assert put.status_code == 403


async def test_the_session_route_needs_the_cookie_and_the_csrf_token(
    hospitals: Hospitals,
) -> None:
    async with hospitals.browser_of(ALICE) as alice:
        await alice.http.get("/portal/messages")
        csrf = _csrf(alice)
        assert (await alice.http.post(SESSION)).status_code == 403
        wrong = await alice.http.post(SESSION, headers={"X-CSRF-Token": csrf[:-2] + "xx"})
        assert wrong.status_code == 403
        assert wrong.headers["content-type"].startswith("application/problem+json")
        cookies = dict(alice.http.cookies)
        alice.http.cookies.clear()
        only_csrf = {"X-CSRF-Token": csrf, "Cookie": f"{CSRF_COOKIE}={csrf}"}
        stranger = await alice.http.post(SESSION, headers=only_csrf)
        assert stranger.status_code == 401
        alice.http.cookies.update(cookies)
        issued = await alice.http.post(SESSION, headers={"X-CSRF-Token": csrf})
        assert issued.status_code == 200, issued.text
        assert issued.headers["cache-control"] == "no-store"
        body = issued.json()
        assert body["user_id"] == f"@{hospitals.ids[ALICE]}:{SERVER_NAME}"
        assert body["homeserver"] == hospitals.platform.settings.public_url
        login = {"type": LOGIN_TOKEN_TYPE, "token": body["token"]}
        elsewhere = await alice.http.post(
            "/_matrix/client/v3/login", json={**login, "device_id": "ANOTHER"}
        )
        assert elsewhere.status_code == 403, "the token logs in the portal's device only"
        assert (await alice.http.post("/_matrix/client/v3/login", json=login)).status_code == 403
        login["device_id"] = body["device_id"]
        logged_in = await alice.http.post("/_matrix/client/v3/login", json=login)
        assert logged_in.status_code == 200, logged_in.text
        assert logged_in.json()["user_id"] == body["user_id"]
        assert logged_in.json()["device_id"] == body["device_id"]
        again = await alice.http.post("/_matrix/client/v3/login", json=login)
        assert again.status_code == 403, "a login token is good once"


async def test_the_portal_device_is_logged_out_when_the_browser_session_ends(
    hospitals: Hospitals,
) -> None:
    """Logging out of the portal on any page (here: the account page's form) ends the
    Matrix session the messages page kept in another tab."""
    messenger = hospitals.platform.messenger
    assert messenger is not None
    async with hospitals.browser_of(ALICE) as alice:
        await alice.http.get("/portal/messages")
        csrf = _csrf(alice)
        body = (await alice.http.post(SESSION, headers={"X-CSRF-Token": csrf})).json()
        login = {"type": LOGIN_TOKEN_TYPE, "token": body["token"], "device_id": body["device_id"]}
        matrix = (await alice.http.post("/_matrix/client/v3/login", json=login)).json()
        bearer = {"Authorization": f"Bearer {matrix['access_token']}"}
        whoami = "/_matrix/client/v3/account/whoami"
        assert (await alice.http.get(whoami, headers=bearer)).status_code == 200
        assert await messenger.service.end_portal_devices() == 0, "the session is live"

        logged_out = await alice.http.post("/logout", data={"csrf": csrf})
        assert logged_out.status_code == 303
        assert await messenger.service.end_portal_devices() == 1
        refused = await alice.http.get(whoami, headers=bearer)
        assert refused.status_code == 401
        assert refused.json()["errcode"] == "M_UNKNOWN_TOKEN"
        assert await messenger.service.end_portal_devices() == 0, "done once"


async def test_medicus_keeps_each_users_own_backup_key(hospitals: Hospitals) -> None:
    """The decryption key of the user's room-key backup: none at first, kept encrypted with the
    platform's key, given back to that user alone; both ways audited, without the key."""
    key = bytes(range(7, 39))
    sent = {"version": "12", "key": base64.b64encode(key).decode()}
    async with hospitals.browser_of(ALICE) as alice:
        await alice.http.get("/portal/messages")
        csrf = {"X-CSRF-Token": _csrf(alice)}
        none = await alice.http.get(BACKUP_KEY)
        assert none.status_code == 404
        assert none.headers["content-type"].startswith("application/problem+json")
        assert (await alice.http.put(BACKUP_KEY, json=sent)).status_code == 403, "no CSRF token"
        bad_bodies: list[bytes | dict[str, object]] = [
            b"not json",
            b"\xff\xfe",
            {"version": 12, "key": sent["key"]},
            {"version": "12"},
            {"version": "12", "key": "not base64!"},
            {"version": "12", "key": base64.b64encode(key[:31]).decode()},
            {"version": "12", "key": base64.b64encode(key * 2).decode()},
            {"version": "x" * 65, "key": sent["key"]},
            {"version": "1 2", "key": sent["key"]},
            {"version": "", "key": sent["key"]},
        ]
        for bad in bad_bodies:
            body = {"content": bad} if isinstance(bad, bytes) else {"json": bad}
            refused = await alice.http.put(BACKUP_KEY, headers=csrf, **body)  # type: ignore[arg-type]
            assert refused.status_code == 422, (bad, refused.text)
            assert refused.headers["content-type"].startswith("application/problem+json")
        assert (await alice.http.put(BACKUP_KEY, json=[1], headers=csrf)).status_code == 422
        kept = await alice.http.put(BACKUP_KEY, json=sent, headers=csrf)
        assert kept.status_code == 204, kept.text
        assert kept.headers["cache-control"] == "no-store"
        read = await alice.http.get(BACKUP_KEY)
        assert read.status_code == 200
        assert read.headers["cache-control"] == "no-store"
        assert read.json() == sent
        alice.http.cookies.delete(CSRF_COOKIE)
        assert (await alice.http.put(BACKUP_KEY, json=sent, headers=csrf)).status_code == 403
    transport = httpx.ASGITransport(app=create_app(hospitals.platform.settings, hospitals.platform))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as anonymous:
        assert (await anonymous.get(BACKUP_KEY)).status_code == 401
        anonymous.cookies.set(CSRF_COOKIE, "x")
        refused = await anonymous.put(BACKUP_KEY, json=sent, headers={"X-CSRF-Token": "x"})
        assert refused.status_code == 401
    async with hospitals.browser_of(CAROL) as carol:
        assert (await carol.http.get(BACKUP_KEY)).status_code == 404, "her own: none"

    platform = hospitals.platform
    [(version, sealed)] = await rows(
        platform,
        "SELECT version, sealed_key FROM messenger_backup_key WHERE user_id = :u",
        u=hospitals.ids[ALICE],
    )
    assert version == "12"
    assert sent["key"] not in sealed, "encrypted at rest"
    assert key.hex() not in sealed
    assert base64.urlsafe_b64encode(key).decode().rstrip("=") not in sealed
    await platform.audit.seal_all()
    audit = await rows(
        platform,
        "SELECT action, actor, target, detail FROM audit_entry "
        "WHERE action LIKE 'messenger.backup_key.%' ORDER BY seq",
    )
    expected = [("read", ALICE), ("write", ALICE), ("read", ALICE), ("read", CAROL)]
    assert [(action, actor) for action, actor, _, _ in audit] == [
        (f"messenger.backup_key.{what}", f"user:{hospitals.ids[who]}") for what, who in expected
    ]
    for _, _, _, detail in audit:
        assert sent["key"] not in detail, "no key in the trail"
        assert key.hex() not in detail


async def test_the_search_finds_whom_the_user_may_reach(hospitals: Hospitals) -> None:
    async with hospitals.browser_of(ALICE) as alice:
        everyone = await alice.http.get("/portal/messages/contacts")
        assert everyone.status_code == 200
        found = {c["user_id"]: c for c in everyone.json()["contacts"]}
        ids = {email: f"@{uid}:{SERVER_NAME}" for email, uid in hospitals.ids.items()}
        assert set(found) == {ids[CAROL], ids[BOB]}
        assert found[ids[BOB]] == {"user_id": ids[BOB], "name": "bob", "organisation": "klinikum-b"}
        by_name = await alice.http.get("/portal/messages/contacts", params={"q": "BO"})
        assert [c["user_id"] for c in by_name.json()["contacts"]] == [ids[BOB]]
        by_mail = await alice.http.get("/portal/messages/contacts", params={"q": "klinikum-a"})
        assert [c["user_id"] for c in by_mail.json()["contacts"]] == [ids[CAROL]]
        nobody = await alice.http.get("/portal/messages/contacts", params={"q": "%"})
        assert nobody.json()["contacts"] == []
    async with hospitals.browser_of(DAVE) as dave:
        answer = await dave.http.get("/portal/messages/contacts")
        assert answer.json()["contacts"] == [], "not on the federation list: no one else"
    transport = httpx.ASGITransport(app=create_app(hospitals.platform.settings, hospitals.platform))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as anonymous:
        assert (await anonymous.get("/portal/messages/contacts")).status_code == 401


async def test_nothing_of_it_while_the_messenger_is_off(ward: Ward) -> None:
    await ward.physician.login("/portal")
    start = await ward.http.get("/portal/spaces")
    assert start.status_code == 200
    assert 'href="/portal/messages"' not in start.text
    page = await ward.http.get("/portal/messages")
    assert page.status_code == 404
    csrf = ward.http.cookies.get(CSRF_COOKIE) or ""
    session = await ward.http.post(SESSION, headers={"X-CSRF-Token": csrf})
    assert session.status_code == 404
