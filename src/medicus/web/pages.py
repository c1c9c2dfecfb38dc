"""Rendering of the portal's pages: templates in the user's language, the security headers
of every page, CSRF by double submit (identity's cookie and check, `iam.pages`), and the
answers for a visitor who is not (or no longer) logged in.

Content-Security-Policy: scripts and styles only from our own origin (htmx and our one
script are files; no inline script or style, so htmx's own indicator style is switched off
in its config), no framing, forms posting only to ourselves. Every page shows or may show
patient data: `Cache-Control: no-store`."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from medicus.core.crypto import new_token
from medicus.core.i18n import LANGUAGE_COOKIE, LANGUAGES, Language, Languages
from medicus.iam.pages import CSRF_COOKIE
from medicus.web.assets import Assets

_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


class PortalPages:
    """Renders portal templates for one request's user and language."""

    def __init__(self, assets: Assets, languages: Languages, secure_cookies: bool) -> None:
        self.assets = assets
        self.languages = languages
        self.secure_cookies = secure_cookies

    def language(self, request: Request) -> Language:
        return self.languages.choose(
            request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language")
        )

    def render(
        self, request: Request, name: str, status_code: int = 200, **context: Any
    ) -> Response:
        language = self.language(request)
        csrf = request.cookies.get(CSRF_COOKIE) or new_token()
        values = {
            "csrf": csrf,
            "_": language.translate,
            "language": language,
            "languages": LANGUAGES,
            "asset": self.assets.url,
            "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            "user": None,
            **context,
        }
        response = _templates.TemplateResponse(request, name, values, status_code=status_code)
        response.headers.update(_HEADERS)
        response.set_cookie(
            CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=self.secure_cookies
        )
        return response

    def problem(self, request: Request, status: int, message: str, **context: Any) -> Response:
        """The error page: `message` is already in the user's language."""
        return self.render(
            request, "problem.html", status, status=status, message=message, **context
        )

    def expired(self, request: Request, user: object) -> Response:
        """The page of a form whose CSRF token did not match (it expired): nothing done."""
        _ = self.language(request).gettext
        message = _("The form expired; please go back and try again.")
        return self.problem(request, 400, message, user=user)

    @staticmethod
    def login_again(request: Request) -> Response:
        """To the login, and back here afterwards; htmx follows `HX-Redirect` instead of
        swapping the login page into a part of this one."""
        back = request.url.path
        if request.method == "GET" and request.url.query:
            back += f"?{request.url.query}"
        location = f"/login?{urlencode({'next': back})}"
        if request.headers.get("hx-request"):
            return Response(status_code=200, headers={"HX-Redirect": location, **_HEADERS})
        return RedirectResponse(location, status_code=303, headers=_HEADERS)

    def choose_language(self, code: str, back: str) -> Response:
        response = RedirectResponse(back, status_code=303)
        if code in LANGUAGES:
            response.set_cookie(
                LANGUAGE_COOKIE,
                code,
                max_age=365 * 24 * 3600,
                httponly=True,
                samesite="lax",
                secure=self.secure_cookies,
            )
        return response
