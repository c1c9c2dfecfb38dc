"""Server-rendered pages of identity (login, second factor, invitations): templates, the
session cookie, CSRF protection by double submit (a cookie and a form field that must match;
the cookie is SameSite=Strict and HttpOnly), and a strict Content-Security-Policy: the pages run
no script at all, take their style from one stylesheet of ours, and may not be framed.

The policy has no `form-action`: Chromium and Safari apply it to the redirects that follow a
submitted form too, and a login that continues an authorization request ends in a redirect to
the app's registered redirect URI, which `form-action 'self'` would block. The forms post only
to our own paths, and with no script and `base-uri 'none'` nothing on a page can change that."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from medicus.core.crypto import constant_time_equal, new_token
from medicus.core.i18n import LANGUAGE_COOKIE, LANGUAGES, Languages, translatable

SESSION_COOKIE = "medicus_session"
CSRF_COOKIE = "medicus_csrf"
STYLESHEET_PATH = "/login/pages.css"
_HERE = Path(__file__).parent
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_STYLESHEET = (_HERE / "static" / "pages.css").read_bytes()
_templates = Jinja2Templates(directory=_HERE / "templates")
_templates.env.globals["stylesheet"] = STYLESHEET_PATH


HOME = "/portal"
"""Where a login lands when it was not asked for a page."""


def safe_next(value: str | None) -> str:
    """Only local paths, so that the login cannot be used as an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return HOME
    return value


class Pages:
    """Rendering and CSRF for the login pages."""

    def __init__(self, secure_cookies: bool, languages: Languages | None = None) -> None:
        self.secure_cookies = secure_cookies
        self.languages = languages or Languages()

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        """Template `name` in the visitor's language (`core.i18n`); `error` and `message`
        are translated where the catalogue knows them."""
        csrf = request.cookies.get(CSRF_COOKIE) or new_token()
        language = self.languages.choose(
            request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language")
        )
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        values = {
            "csrf": csrf,
            "error": None,
            "_": language.translate,
            "language": language,
            "languages": LANGUAGES,
            "here": here,
            **context,
        }
        response = _templates.TemplateResponse(request, name, values, status_code=status)
        response.headers.update(_PAGE_HEADERS)
        response.set_cookie(
            CSRF_COOKIE,
            csrf,
            httponly=True,
            samesite="strict",
            secure=self.secure_cookies,
        )
        return response

    @staticmethod
    def stylesheet() -> Response:
        return Response(
            _STYLESHEET,
            media_type="text/css",
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    @staticmethod
    async def form(request: Request) -> dict[str, str]:
        return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}

    def expired(self, request: Request, name: str, **context: Any) -> Response:
        """The form `name` again, refused: its CSRF token did not match (the form expired)."""
        return self.render(
            request, name, 400, **context, error=translatable("The form expired; please try again.")
        )

    @staticmethod
    def csrf_ok(request: Request, form: dict[str, str]) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        return bool(cookie) and constant_time_equal(cookie, form.get("csrf", ""))

    def redirect(self, location: str, session_token: str | None = None) -> RedirectResponse:
        response = RedirectResponse(location, status_code=303)
        if session_token is not None:
            response.set_cookie(
                SESSION_COOKIE,
                session_token,
                httponly=True,
                samesite="lax",
                secure=self.secure_cookies,
            )
        return response
