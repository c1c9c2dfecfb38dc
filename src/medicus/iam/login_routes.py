"""HTTP of the login pages people see: password, second factor and its enrolment, a
hospital's own identity provider (upstream), the choice of organisation, the account page and
logout. Server-rendered HTML with CSRF protection; each step redirects to the next
(`next_step`) until the login is complete, then to the local page it was asked for."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from medicus.core.i18n import translatable
from medicus.iam.login import LoginFailed, LoginService, Stage
from medicus.iam.pages import SESSION_COOKIE, STYLESHEET_PATH, Pages, safe_next
from medicus.iam.upstream import UpstreamLoginFailed, UpstreamLogins

_FORM_EXPIRED = translatable("The form expired.")


def next_step(stage: Stage, needs_organisation: bool, next_url: str) -> str:
    """Where a login at `stage` goes next on its way to `next_url`."""
    query = urlencode({"next": next_url})
    if stage is Stage.SECOND_FACTOR:
        return f"/login/second-factor?{query}"
    if stage is Stage.ENROL_SECOND_FACTOR:
        return f"/login/enrol?{query}"
    if needs_organisation:
        return f"/login/organisation?{query}"
    return next_url


def build_login_router(pages: Pages, logins: LoginService, upstream: UpstreamLogins) -> APIRouter:
    router = APIRouter()
    router.include_router(_password(pages, logins, upstream))
    router.include_router(_upstream(pages, logins, upstream))
    router.include_router(_second_factor(pages, logins))
    router.include_router(_session(pages, logins))
    return router


def _password(pages: Pages, logins: LoginService, upstream: UpstreamLogins) -> APIRouter:
    """The login page (with the hospitals' own identity providers to choose) and its form:
    email and password."""
    router = APIRouter(tags=["identity"])

    @router.get("/login", response_class=HTMLResponse, summary="Login page")
    async def login_page(request: Request, next: str | None = None) -> Response:
        return pages.render(
            request,
            "login.html",
            next=safe_next(next),
            email="",
            providers=await upstream.providers(),
        )

    @router.get(STYLESHEET_PATH, include_in_schema=False)
    async def stylesheet() -> Response:
        return pages.stylesheet()

    @router.post("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_submit(request: Request) -> Response:
        fields = await pages.form(request)
        next_url = safe_next(fields.get("next"))
        if not pages.csrf_ok(request, fields):
            return pages.expired(request, "login.html", next=next_url, email="")
        client = request.client.host if request.client else None
        try:
            token = await logins.start(fields.get("email", ""), fields.get("password", ""), client)
        except LoginFailed as failure:
            return pages.render(
                request,
                "login.html",
                401,
                next=next_url,
                email=fields.get("email", ""),
                error=str(failure),
            )
        login = await logins.current(token)
        assert login is not None
        return pages.redirect(next_step(login.stage, login.needs_organisation, next_url), token)

    return router


def _upstream(pages: Pages, logins: LoginService, upstream: UpstreamLogins) -> APIRouter:
    """Login at a hospital's own identity provider: the way there and the way back."""
    router = APIRouter(tags=["identity"])

    @router.get("/login/upstream/callback", include_in_schema=False)
    async def upstream_callback(
        request: Request, state: str = "", code: str = "", error: str | None = None
    ) -> Response:
        if error is not None:
            message = "The hospital's login was cancelled or refused."
            return pages.render(request, "error.html", 400, message=message)
        client = request.client.host if request.client else None
        try:
            token, next_url = await upstream.finish(state, code, client)
        except UpstreamLoginFailed as failure:
            return pages.render(request, "error.html", 403, message=str(failure))
        login = await logins.current(token)
        assert login is not None
        step = next_step(login.stage, login.needs_organisation, safe_next(next_url))
        return pages.redirect(step, token)

    @router.get("/login/upstream/{organisation_id}", include_in_schema=False)
    async def upstream_begin(
        request: Request, organisation_id: str, next: str | None = None
    ) -> Response:
        try:
            url = await upstream.begin(organisation_id, safe_next(next))
        except UpstreamLoginFailed as failure:
            return pages.render(request, "error.html", 404, message=str(failure))
        return pages.redirect(url)

    return router


def _second_factor(pages: Pages, logins: LoginService) -> APIRouter:
    """The second factor (TOTP or a recovery code), and its enrolment."""
    router = APIRouter(tags=["identity"])

    @router.get("/login/second-factor", response_class=HTMLResponse, include_in_schema=False)
    async def second_factor_page(request: Request, next: str | None = None) -> Response:
        return pages.render(request, "second_factor.html", next=safe_next(next))

    @router.post("/login/second-factor", response_class=HTMLResponse, include_in_schema=False)
    async def second_factor_submit(request: Request) -> Response:
        fields = await pages.form(request)
        next_url = safe_next(fields.get("next"))
        token = request.cookies.get(SESSION_COOKIE, "")
        if not pages.csrf_ok(request, fields):
            return pages.expired(request, "second_factor.html", next=next_url)
        client = request.client.host if request.client else None
        try:
            await logins.second_factor(token, fields.get("code", ""), client)
        except LoginFailed as failure:
            return pages.render(
                request, "second_factor.html", 401, next=next_url, error=str(failure)
            )
        login = await logins.current(token)
        assert login is not None
        return pages.redirect(next_step(login.stage, login.needs_organisation, next_url))

    @router.get("/login/enrol", response_class=HTMLResponse, include_in_schema=False)
    async def enrol_page(request: Request, next: str | None = None) -> Response:
        try:
            secret, uri = await logins.begin_enrolment(request.cookies.get(SESSION_COOKIE, ""))
        except LoginFailed as failure:
            return pages.render(request, "error.html", 400, message=str(failure))
        return pages.render(request, "enrol.html", next=safe_next(next), secret=secret, uri=uri)

    @router.post("/login/enrol", response_class=HTMLResponse, include_in_schema=False)
    async def enrol_submit(request: Request) -> Response:
        fields = await pages.form(request)
        next_url = safe_next(fields.get("next"))
        token = request.cookies.get(SESSION_COOKIE, "")
        client = request.client.host if request.client else None
        if not pages.csrf_ok(request, fields):
            return pages.render(
                request, "error.html", 400, message=translatable("The form expired.")
            )
        try:
            codes = await logins.confirm_enrolment(token, fields.get("code", ""), client)
        except LoginFailed as failure:
            return pages.render(request, "error.html", 401, message=str(failure))
        login = await logins.current(token)
        assert login is not None
        continue_to = next_step(login.stage, login.needs_organisation, next_url)
        return pages.render(request, "recovery_codes.html", codes=codes, next=continue_to)

    return router


def _session(pages: Pages, logins: LoginService) -> APIRouter:
    """The choice of organisation, the account page and logout."""
    router = APIRouter(tags=["identity"])

    @router.get("/login/organisation", response_class=HTMLResponse, include_in_schema=False)
    async def organisation_page(request: Request, next: str | None = None) -> Response:
        login = await logins.current(request.cookies.get(SESSION_COOKIE))
        if login is None or login.stage is not Stage.COMPLETE:
            return pages.redirect(f"/login?{urlencode({'next': safe_next(next)})}")
        return pages.render(
            request, "organisation.html", next=safe_next(next), memberships=login.memberships
        )

    @router.post("/login/organisation", response_class=HTMLResponse, include_in_schema=False)
    async def organisation_submit(request: Request) -> Response:
        fields = await pages.form(request)
        next_url = safe_next(fields.get("next"))
        if not pages.csrf_ok(request, fields):
            return pages.render(
                request, "error.html", 400, message=translatable("The form expired.")
            )
        try:
            await logins.choose_organisation(
                request.cookies.get(SESSION_COOKIE, ""), fields.get("organisation", "")
            )
        except LoginFailed as failure:
            return pages.render(request, "error.html", 403, message=str(failure))
        return pages.redirect(next_url)

    @router.get("/account", response_class=HTMLResponse, include_in_schema=False)
    async def account(request: Request) -> Response:
        login = await logins.current(request.cookies.get(SESSION_COOKIE))
        if login is None or login.stage is not Stage.COMPLETE:
            return pages.redirect("/login")
        names = [
            m.organisation_name
            for m in login.memberships
            if m.organisation_id == login.organisation_id
        ]
        return pages.render(
            request, "account.html", login=login, organisation=names[0] if names else None
        )

    @router.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        fields = await pages.form(request)
        token = request.cookies.get(SESSION_COOKIE)
        if token and pages.csrf_ok(request, fields):
            await logins.logout(token)
        response = pages.redirect("/login")
        response.delete_cookie(SESSION_COOKIE)
        return response

    @router.post("/logout/everywhere", include_in_schema=False)
    async def logout_everywhere(request: Request) -> Response:
        fields = await pages.form(request)
        login = await logins.current(request.cookies.get(SESSION_COOKIE))
        if login is not None and pages.csrf_ok(request, fields):
            await logins.logout_everywhere(login.user_id, f"user:{login.user_id}")
        response = pages.redirect("/login")
        response.delete_cookie(SESSION_COOKIE)
        return response

    return router
