"""HTTP of identity: OpenID Connect discovery, JWKS, the authorization and token endpoints,
introspection, revocation, userinfo, and the login pages people see.

OAuth endpoints answer errors in RFC 6749's format (`{"error": ..., "error_description": ...}`),
as OAuth clients expect; the login pages are server-rendered HTML with CSRF protection.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from medicus.iam.discovery import Endpoints
from medicus.iam.http import bearer_principal
from medicus.iam.keys import SigningKeys
from medicus.iam.login import LoginFailed, LoginService, Stage
from medicus.iam.oauth import AuthorizeError, OAuthError, OAuthService
from medicus.iam.pages import SESSION_COOKIE, STYLESHEET_PATH, Pages
from medicus.iam.tokens import Principal, TokenService
from medicus.iam.upstream import UpstreamLoginFailed, UpstreamLogins

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _safe_next(value: str | None) -> str:
    """Only local paths, so that the login cannot be used as an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/account"
    return value


def _with_query(url: str, parameters: dict[str, str | None]) -> str:
    query = urlencode({k: v for k, v in parameters.items() if v is not None})
    return f"{url}{'&' if urlsplit(url).query else '?'}{query}"


def _oauth_error(error: OAuthError) -> JSONResponse:
    return JSONResponse(
        {"error": error.error, "error_description": error.description},
        status_code=error.status,
        headers=_NO_STORE,
    )


async def _form(request: Request) -> dict[str, str]:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise OAuthError("invalid_request", "Send the parameters form-encoded.")
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _next_step(stage: Stage, needs_organisation: bool, next_url: str) -> str:
    query = urlencode({"next": next_url})
    if stage is Stage.SECOND_FACTOR:
        return f"/login/second-factor?{query}"
    if stage is Stage.ENROL_SECOND_FACTOR:
        return f"/login/enrol?{query}"
    if needs_organisation:
        return f"/login/organisation?{query}"
    return next_url


def build_router(
    endpoints: Endpoints,
    pages: Pages,
    logins: LoginService,
    oauth: OAuthService,
    tokens: TokenService,
    keys: SigningKeys,
    upstream: UpstreamLogins,
) -> APIRouter:
    router = APIRouter(tags=["identity"])
    authenticated = Depends(bearer_principal(tokens))

    @router.get("/.well-known/openid-configuration", summary="OpenID Connect discovery")
    async def openid_configuration() -> dict[str, Any]:
        return endpoints.discovery()

    @router.get("/.well-known/smart-configuration", summary="SMART App Launch discovery")
    @router.get("/fhir/.well-known/smart-configuration", include_in_schema=False)
    async def smart_configuration() -> dict[str, Any]:
        return endpoints.smart_configuration()

    @router.get("/oauth/jwks", summary="Public keys that verify medicus tokens")
    async def jwks() -> dict[str, object]:
        return (await keys.ring()).public_jwks

    def authorize_error(request: Request, error: AuthorizeError) -> Response:
        if error.redirect_uri is None:
            return pages.render(request, "error.html", 400, message=error.description)
        return RedirectResponse(
            _with_query(
                error.redirect_uri,
                {
                    "error": error.error,
                    "state": error.state,
                    "error_description": error.description,
                },
            ),
            status_code=302,
        )

    @router.get("/oauth/authorize", summary="Authorization endpoint (code flow with PKCE)")
    async def authorize(request: Request) -> Response:
        query = dict(request.query_params)
        try:
            validated = await oauth.validate_authorization(query)
        except AuthorizeError as error:
            return authorize_error(request, error)
        login = await logins.current(request.cookies.get(SESSION_COOKIE))
        here = f"{request.url.path}?{request.url.query}"
        if login is None or login.stage is not Stage.COMPLETE:
            return pages.redirect(f"/login?{urlencode({'next': here})}")
        if login.needs_organisation:
            return pages.redirect(_next_step(login.stage, True, here))
        try:
            code = await oauth.issue_code(validated, login)
        except AuthorizeError as error:
            return authorize_error(request, error)
        return RedirectResponse(
            _with_query(
                validated.redirect_uri,
                {"code": code, "state": validated.state, "iss": endpoints.issuer},
            ),
            status_code=302,
        )

    @router.get("/login", response_class=HTMLResponse, summary="Login page")
    async def login_page(request: Request, next: str | None = None) -> Response:
        return pages.render(
            request,
            "login.html",
            next=_safe_next(next),
            email="",
            providers=await upstream.providers(),
        )

    @router.get(STYLESHEET_PATH, include_in_schema=False)
    async def stylesheet() -> Response:
        return pages.stylesheet()

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
        step = _next_step(login.stage, login.needs_organisation, _safe_next(next_url))
        return pages.redirect(step, token)

    @router.get("/login/upstream/{organisation_id}", include_in_schema=False)
    async def upstream_begin(
        request: Request, organisation_id: str, next: str | None = None
    ) -> Response:
        try:
            url = await upstream.begin(organisation_id, _safe_next(next))
        except UpstreamLoginFailed as failure:
            return pages.render(request, "error.html", 404, message=str(failure))
        return pages.redirect(url)

    @router.post("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_submit(request: Request) -> Response:
        fields = await pages.form(request)
        next_url = _safe_next(fields.get("next"))
        if not pages.csrf_ok(request, fields):
            return pages.render(
                request,
                "login.html",
                400,
                next=next_url,
                email="",
                error="The form expired; please try again.",
            )
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
        return pages.redirect(_next_step(login.stage, login.needs_organisation, next_url), token)

    @router.get("/login/second-factor", response_class=HTMLResponse, include_in_schema=False)
    async def second_factor_page(request: Request, next: str | None = None) -> Response:
        return pages.render(request, "second_factor.html", next=_safe_next(next))

    @router.post("/login/second-factor", response_class=HTMLResponse, include_in_schema=False)
    async def second_factor_submit(request: Request) -> Response:
        fields = await pages.form(request)
        next_url = _safe_next(fields.get("next"))
        token = request.cookies.get(SESSION_COOKIE, "")
        if not pages.csrf_ok(request, fields):
            return pages.render(
                request,
                "second_factor.html",
                400,
                next=next_url,
                error="The form expired; please try again.",
            )
        client = request.client.host if request.client else None
        try:
            await logins.second_factor(token, fields.get("code", ""), client)
        except LoginFailed as failure:
            return pages.render(
                request, "second_factor.html", 401, next=next_url, error=str(failure)
            )
        login = await logins.current(token)
        assert login is not None
        return pages.redirect(_next_step(login.stage, login.needs_organisation, next_url))

    @router.get("/login/enrol", response_class=HTMLResponse, include_in_schema=False)
    async def enrol_page(request: Request, next: str | None = None) -> Response:
        try:
            secret, uri = await logins.begin_enrolment(request.cookies.get(SESSION_COOKIE, ""))
        except LoginFailed as failure:
            return pages.render(request, "error.html", 400, message=str(failure))
        return pages.render(request, "enrol.html", next=_safe_next(next), secret=secret, uri=uri)

    @router.post("/login/enrol", response_class=HTMLResponse, include_in_schema=False)
    async def enrol_submit(request: Request) -> Response:
        fields = await pages.form(request)
        next_url = _safe_next(fields.get("next"))
        token = request.cookies.get(SESSION_COOKIE, "")
        client = request.client.host if request.client else None
        if not pages.csrf_ok(request, fields):
            return pages.render(request, "error.html", 400, message="The form expired.")
        try:
            codes = await logins.confirm_enrolment(token, fields.get("code", ""), client)
        except LoginFailed as failure:
            return pages.render(request, "error.html", 401, message=str(failure))
        login = await logins.current(token)
        assert login is not None
        continue_to = _next_step(login.stage, login.needs_organisation, next_url)
        return pages.render(request, "recovery_codes.html", codes=codes, next=continue_to)

    @router.get("/login/organisation", response_class=HTMLResponse, include_in_schema=False)
    async def organisation_page(request: Request, next: str | None = None) -> Response:
        login = await logins.current(request.cookies.get(SESSION_COOKIE))
        if login is None or login.stage is not Stage.COMPLETE:
            return pages.redirect(f"/login?{urlencode({'next': _safe_next(next)})}")
        return pages.render(
            request, "organisation.html", next=_safe_next(next), memberships=login.memberships
        )

    @router.post("/login/organisation", response_class=HTMLResponse, include_in_schema=False)
    async def organisation_submit(request: Request) -> Response:
        fields = await pages.form(request)
        next_url = _safe_next(fields.get("next"))
        if not pages.csrf_ok(request, fields):
            return pages.render(request, "error.html", 400, message="The form expired.")
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

    @router.post("/oauth/token", summary="Token endpoint")
    async def token(request: Request) -> Response:
        try:
            issued = await oauth.token(await _form(request))
        except OAuthError as error:
            return _oauth_error(error)
        return JSONResponse(issued, headers=_NO_STORE)

    @router.post("/oauth/introspect", summary="Token introspection (RFC 7662)")
    async def introspect(request: Request) -> Response:
        try:
            return JSONResponse(await oauth.introspect(await _form(request)), headers=_NO_STORE)
        except OAuthError as error:
            return _oauth_error(error)

    @router.post("/oauth/revoke", summary="Token revocation (RFC 7009)")
    async def revoke(request: Request) -> Response:
        try:
            await oauth.revoke(await _form(request))
        except OAuthError as error:
            return _oauth_error(error)
        return Response(status_code=200, headers=_NO_STORE)

    @router.get("/api/me", summary="Who the bearer token says the caller is")
    async def me(caller: Principal = authenticated) -> dict[str, Any]:
        """The caller as the platform sees it: subject, organisation, role, granted scopes and
        expiry; answered from the token alone, for apps deciding what to offer."""
        return {
            "subject": caller.subject,
            "kind": caller.kind,
            "organisation": caller.organisation_id,
            "role": caller.role,
            "client_id": caller.client_id,
            "scope": caller.scope_text,
            "expires_at": caller.expires_at,
            "fhirUser": caller.fhir_user,
        }

    @router.get("/oauth/userinfo", summary="OpenID Connect userinfo")
    async def userinfo(caller: Principal = authenticated) -> dict[str, Any]:
        return await oauth.userinfo(caller)

    return router
