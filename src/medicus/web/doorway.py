"""The door of every portal page: the user behind the session cookie runs the page's
handler; a visitor without a finished login goes to the login and comes back; what `access`
refuses (an ApiError of 4xx) becomes the matching page in the user's language (403, 404 and
410 in words of their own, so that they tell no more than the API's answer; others with the
service's message)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response

from medicus.core.errors import ApiError
from medicus.iam.login import LoginService
from medicus.iam.pages import SESSION_COOKIE, Pages
from medicus.web.pages import PortalPages
from medicus.web.users import PortalUser, portal_user

Handler = Callable[[Request, PortalUser], Awaitable[Response]]
FormHandler = Callable[[Request, PortalUser, dict[str, str]], Awaitable[Response]]


class Doorway:
    """`enter` for pages, `submit` for forms (which also checks the form's CSRF token)."""

    def __init__(self, logins: LoginService, pages: PortalPages) -> None:
        self._logins = logins
        self._pages = pages

    async def enter(self, request: Request, handler: Handler) -> Response:
        user = portal_user(await self._logins.current(request.cookies.get(SESSION_COOKIE)))
        if user is None:
            return self._pages.login_again(request)
        try:
            return await handler(request, user)
        except ApiError as error:
            if not 400 <= error.status < 500:
                raise
            _ = self._pages.language(request).gettext
            message = {
                403: _("You may not see this."),
                404: _("Not found, or not shared with your organisation."),
                410: _("This was deleted."),
            }.get(error.status, _(error.detail))
            return self._pages.problem(request, error.status, message, user=user)

    async def submit(self, request: Request, handler: FormHandler) -> Response:
        """Run a form's handler with its fields; a form whose CSRF token does not match (it
        expired) gets the "form expired" page and changes nothing."""

        async def checked(request: Request, user: PortalUser) -> Response:
            fields = await Pages.form(request)
            if not Pages.csrf_ok(request, fields):
                return self._pages.expired(request, user)
            return await handler(request, user, fields)

        return await self.enter(request, checked)
