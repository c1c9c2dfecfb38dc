"""A scripted browser for the login pages: follows redirects by hand, carries cookies and CSRF
fields, enrols or answers the second factor, picks an organisation."""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_NEXT = re.compile(r'name="next" value="([^"]*)"')
_SECRET = re.compile(r'data-testid="totp-secret">([A-Z2-7]+)<')
_CODES = re.compile(r"<li>([a-z0-9-]+)</li>")
_ORGANISATION = re.compile(r'name="organisation" value="([^"]+)"')
_GET_ACTION = re.compile(r'<form method="get" action="([^"]+)"')


def field_value(pattern: re.Pattern[str], page: str) -> str:
    found = pattern.search(page)
    assert found is not None, f"{pattern.pattern} not on the page:\n{page[:2000]}"
    return html.unescape(found.group(1))


@dataclass
class Browser:
    """One person's browser. `totp_secret` is learnt at enrolment and used afterwards."""

    http: httpx.AsyncClient
    email: str
    password: str
    totp_secret: str | None = None
    recovery_codes: list[str] = field(default_factory=list)
    organisation: str | None = None
    last_step: int | None = None

    async def login(self, next_url: str = "/account") -> httpx.Response:
        """Log in from the login page; returns the response the flow ends on."""
        page = await self.http.get("/login", params={"next": next_url})
        response = await self.http.post(
            "/login",
            data={
                "email": self.email,
                "password": self.password,
                "csrf": field_value(_CSRF, page.text),
                "next": next_url,
            },
        )
        return await self.follow(response)

    async def follow(self, response: httpx.Response) -> httpx.Response:
        """Follow redirects inside medicus and act on each login page on the way; returns the
        first response that is neither (a page of the app, or a redirect to the client)."""
        for _ in range(12):
            if response.status_code in (302, 303):
                location = response.headers["location"]
                if not location.startswith("/"):
                    return response
                response = await self.http.get(location)
                continue
            acted = await self._act_on(response)
            if acted is None:
                return response
            response = acted
        raise AssertionError("the login did not finish within 12 steps")

    async def _act_on(self, page: httpx.Response) -> httpx.Response | None:
        text = page.text
        if page.status_code != 200:
            return None
        if 'action="/login"' in text:
            return await self.http.post(
                "/login",
                data={
                    "email": self.email,
                    "password": self.password,
                    "csrf": field_value(_CSRF, text),
                    "next": field_value(_NEXT, text),
                },
            )
        if 'action="/login/enrol"' in text:
            self.totp_secret = field_value(_SECRET, text)
            return await self._post(page, "/login/enrol", self.fresh_code())
        if 'data-testid="recovery-codes"' in text:
            self.recovery_codes = _CODES.findall(text)
            return await self.http.get(field_value(_GET_ACTION, text))
        if 'action="/login/second-factor"' in text:
            return await self._post(page, "/login/second-factor", self.fresh_code())
        if 'action="/login/organisation"' in text:
            choice = self.organisation or field_value(_ORGANISATION, text)
            return await self.http.post(
                "/login/organisation",
                data={
                    "organisation": choice,
                    "csrf": field_value(_CSRF, text),
                    "next": field_value(_NEXT, text),
                },
            )
        return None

    def fresh_code(self) -> str:
        """A TOTP code of a time step not used yet (the server refuses replays): the current
        step, or the next one, which the server still accepts for clock drift."""
        assert self.totp_secret is not None, "this user has no authenticator yet"
        step = int(time.time() // 30)
        if self.last_step is not None and step <= self.last_step:
            step = self.last_step + 1
        self.last_step = step
        return pyotp.TOTP(self.totp_secret).at(step * 30)

    async def _post(self, page: httpx.Response, action: str, code: str) -> httpx.Response:
        return await self.http.post(
            action,
            data={
                "code": code,
                "csrf": field_value(_CSRF, page.text),
                "next": field_value(_NEXT, page.text),
            },
        )


def query_of(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
