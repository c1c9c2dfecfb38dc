"""Server-rendered pages of identity (login, second factor, invitations): templates, the
session cookie, and CSRF protection by double submit (a cookie and a form field that must match;
the cookie is SameSite=Strict and HttpOnly)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from medicus.core.crypto import constant_time_equal, new_token

SESSION_COOKIE = "medicus_session"
CSRF_COOKIE = "medicus_csrf"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


class Pages:
    """Rendering and CSRF for the login pages."""

    def __init__(self, secure_cookies: bool) -> None:
        self.secure_cookies = secure_cookies

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        csrf = request.cookies.get(CSRF_COOKIE) or new_token()
        response = _templates.TemplateResponse(
            request, name, {"csrf": csrf, "error": None, **context}, status_code=status
        )
        response.headers.update(_NO_STORE)
        response.headers["X-Frame-Options"] = "DENY"
        response.set_cookie(
            CSRF_COOKIE,
            csrf,
            httponly=True,
            samesite="strict",
            secure=self.secure_cookies,
        )
        return response

    @staticmethod
    async def form(request: Request) -> dict[str, str]:
        return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}

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
