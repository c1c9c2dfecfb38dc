"""Login pages: no user enumeration, lockout with back-off, CSRF, no open redirect, audit, a
strict Content-Security-Policy."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import httpx
from sqlalchemy import text

from medicus.iam import repository
from tests.iam.browser import Browser, field_value
from tests.iam.conftest import PASSWORD, World


async def _attempt(http: httpx.AsyncClient, email: str, password: str, next_url: str = "/account"):
    page = await http.get("/login")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    return await http.post(
        "/login", data={"email": email, "password": password, "csrf": csrf, "next": next_url}
    )


def _message(response: httpx.Response) -> str:
    return response.text.split('role="alert">')[1].split("<")[0]


async def test_unknown_user_and_wrong_password_look_the_same(world: World) -> None:
    unknown = await _attempt(world.http, "nobody@klinikum-a.example", PASSWORD)
    wrong = await _attempt(world.http, "admin@klinikum-a.example", "wrong password 123456")
    assert unknown.status_code == wrong.status_code == 401
    assert _message(unknown) == _message(wrong)
    assert "medicus_session" not in unknown.cookies


async def test_lockout_after_repeated_failures(world: World) -> None:
    email = "admin@klinikum-a.example"
    for _ in range(world.platform.settings.login_attempts_before_lockout):
        assert (await _attempt(world.http, email, "wrong password 123456")).status_code == 401
    locked = await _attempt(world.http, email, PASSWORD)
    assert locked.status_code == 401
    assert _message(locked) == _message(await _attempt(world.http, "x@y.example", PASSWORD))

    async with world.platform.database.transaction() as session:
        user = await repository.user_by_email(session, email)
        assert user is not None
        assert user.locked_until is not None
        assert dt.timedelta(seconds=20) < user.locked_until - dt.datetime.now(dt.UTC)
        await repository.update_user(
            session, user.id, locked_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        )
    assert (await _attempt(world.http, email, PASSWORD)).status_code == 303


async def test_lockout_backs_off(world: World) -> None:
    email = "admin@klinikum-a.example"
    limit = world.platform.settings.login_attempts_before_lockout
    lockouts = []
    for _ in range(limit + 2):
        await _attempt(world.http, email, "wrong password 123456")
        async with world.platform.database.transaction() as session:
            user = await repository.user_by_email(session, email)
            assert user is not None
            if user.locked_until is not None:
                lockouts.append(user.locked_until - dt.datetime.now(dt.UTC))
                await repository.update_user(session, user.id, locked_until=None)
    assert len(lockouts) == 3
    assert lockouts[0] < lockouts[1] < lockouts[2]


async def test_a_login_without_the_csrf_field_is_refused(world: World) -> None:
    await world.http.get("/login")
    response = await world.http.post(
        "/login", data={"email": "admin@klinikum-a.example", "password": PASSWORD}
    )
    assert response.status_code == 400
    assert "medicus_session" not in response.cookies


async def test_next_cannot_leave_the_platform(world: World) -> None:
    response = await _attempt(
        world.http, "admin@klinikum-a.example", PASSWORD, next_url="https://evil.example/"
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/portal"


async def test_logins_are_audited_without_the_email(world: World) -> None:
    await _attempt(world.http, "nobody@klinikum-a.example", PASSWORD)
    await Browser(world.http, "admin@klinikum-a.example", PASSWORD).login()
    await world.platform.audit.seal_all()
    async with world.platform.database.snapshot() as session:
        rows = (
            await session.execute(
                text("SELECT actor, outcome, detail FROM audit_entry WHERE action = 'iam.login'")
            )
        ).all()
    assert ("anonymous", "denied") in {(row[0], row[1]) for row in rows}
    assert (f"user:{world.admin_a}", "success") in {(row[0], row[1]) for row in rows}
    assert all("nobody@" not in row[2] for row in rows)


async def test_session_cookie_is_http_only(world: World) -> None:
    response = await _attempt(world.http, "admin@klinikum-a.example", PASSWORD)
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie


_STRICT_POLICY = {
    "default-src": "'none'",
    "style-src": "'self'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
}
_TITLE = re.compile(r"<title>(.*?) · medicus</title>")
_INLINE = re.compile(r"<script|<style|\sstyle\s*=|\son[a-z]+\s*=|javascript:", re.IGNORECASE)
_URLS = re.compile(r'<(?:link|form)\b[^>]*\s(?:href|action)="([^"]*)"')


async def _obeys_the_policy(response: httpx.Response, titles: list[str]) -> None:
    """An HTML page of identity sends the strict policy and needs nothing it forbids: no
    script, no inline style, stylesheets and forms of its own origin only."""
    if not response.headers.get("content-type", "").startswith("text/html"):
        return
    await response.aread()
    policy = response.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives == _STRICT_POLICY
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    page = response.text
    assert _INLINE.search(page) is None, page
    for url in _URLS.findall(page):
        assert urlsplit(url).netloc == "", url
        assert url.startswith("/"), url
    titles.append(field_value(_TITLE, page))


async def test_every_page_sends_a_strict_policy_and_the_login_still_works(world: World) -> None:
    titles: list[str] = []

    async def check(response: httpx.Response) -> None:
        await _obeys_the_policy(response, titles)

    world.http.event_hooks["response"].append(check)
    consultant = Browser(world.http, "dr.ab@klinikum-a.example", PASSWORD)
    consultant.organisation = world.hospital_b
    assert "Signed in" in (await consultant.login()).text
    world.http.cookies.clear()
    assert "Signed in" in (await consultant.login()).text
    assert (await world.http.get("/invitation", params={"token": "unknown"})).status_code == 200
    assert (await world.http.get("/oauth/authorize")).status_code == 400
    assert titles == [
        "Sign in",
        "Set up your authenticator",
        "Recovery codes",
        "Choose organisation",
        "Account",
        "Sign in",
        "Second factor",
        "Choose organisation",
        "Account",
        "Accept invitation",
        "Cannot continue",
    ]
    stylesheet = await world.http.get("/login/pages.css")
    assert stylesheet.status_code == 200
    assert stylesheet.headers["content-type"].startswith("text/css")
    assert "font-family" in stylesheet.text


async def test_login_pages_speak_german(world: World) -> None:
    world.http.headers["Accept-Language"] = "de-DE,de;q=0.9,en;q=0.5"
    page = await world.http.get("/login")
    assert '<html lang="de">' in page.text
    assert "Bei medicus anmelden" in page.text
    refused = await _attempt(world.http, "nobody@klinikum-a.example", "wrong password 12345")
    assert _message(refused).startswith("E-Mail-Adresse oder Passwort sind falsch")
