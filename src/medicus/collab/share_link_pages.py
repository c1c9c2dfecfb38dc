"""The pages a share link's visitor sees (someone without an account): the shared file or
folder, the password form, and why a link does not work, in German or English (their
choice on the page, else their browser's). Like the login pages they run no script and take
their style from identity's stylesheet; they may not be framed, cached, indexed or reveal
their address to another site (`Referrer-Policy: no-referrer`: the address is the secret)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from medicus.collab.share_link_records import LinkRefused, SharedView
from medicus.core.crypto import new_token
from medicus.core.i18n import LANGUAGE_COOKIE, LANGUAGES, Language, Languages, translatable
from medicus.iam.pages import CSRF_COOKIE, STYLESHEET_PATH

PUBLIC_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}
"""Headers of every answer to a link's visitor, its downloads too."""
_PAGE_HEADERS = {
    **PUBLIC_HEADERS,
    "Pragma": "no-cache",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}
_REASONS = {
    "unknown": translatable("There is no such link. Check that it was copied in full."),
    "expired": translatable("This link has expired."),
    "revoked": translatable("This link was withdrawn by whoever shared it."),
    "used-up": translatable("This link has been used as often as it allows."),
    "unavailable": translatable("What this link shared is no longer available."),
    "outside": translatable("There is no such file or folder in this link."),
    "throttled": translatable("Too many wrong passwords: this link takes none for a while."),
    "wrong-password": translatable("The password is wrong."),
}
_UNITS = ("bytes", "KB", "MB", "GB", "TB")
_templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


class SharePages:
    """Renders the pages of share links in the visitor's language."""

    def __init__(self, languages: Languages, secure_cookies: bool) -> None:
        self.languages = languages
        self.secure_cookies = secure_cookies

    def view(self, request: Request, token: str, view: SharedView) -> Response:
        """The shared file with its download button, or a folder's listing."""
        return self._render(request, "shared.html", 200, token=token, view=view)

    def password(self, request: Request, token: str, status: int, error: str | None) -> Response:
        """The password form (`error`: why the last try failed, to be translated)."""
        return self._render(request, "shared_password.html", status, token=token, error=error)

    def refused(self, request: Request, token: str, refusal: LinkRefused) -> Response:
        """The page for a use of the link that is refused, the form if it asks for the
        password."""
        if refusal.reason in ("password-needed", "wrong-password"):
            error = _REASONS.get(refusal.reason)
            response = self.password(request, token, refusal.status, error)
        else:
            reason = _REASONS.get(refusal.reason, _REASONS["unknown"])
            response = self._render(request, "shared_problem.html", refusal.status, reason=reason)
        response.headers.update(refusal.headers)
        return response

    def _render(self, request: Request, name: str, status: int, **context: Any) -> Response:
        language = self.languages.choose(
            request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language")
        )
        csrf = request.cookies.get(CSRF_COOKIE) or new_token()
        values = {
            "csrf": csrf,
            "error": None,
            "_": language.translate,
            "language": language,
            "languages": LANGUAGES,
            "here": request.url.path,
            "stylesheet": STYLESHEET_PATH,
            "size": lambda count: _size(language, count),
            **context,
        }
        response = _templates.TemplateResponse(request, name, values, status_code=status)
        response.headers.update(_PAGE_HEADERS)
        response.set_cookie(
            CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=self.secure_cookies
        )
        return response


def _size(language: Language, count: int) -> str:
    """A file's size as people read it (`1,5 MB` in German), in units of 1,024."""
    value, unit = float(count), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    shown = round(value) if unit == 0 or value >= 100 else round(value, 1)
    return f"{language.number(shown)} {_UNITS[unit]}"
