"""HTTP of identity: OpenID Connect discovery, JWKS, the authorization and token endpoints,
introspection, revocation, userinfo, and (from login_routes.py) the login pages people see.

OAuth endpoints answer errors in RFC 6749's format (`{"error": ..., "error_description": ...}`),
as OAuth clients expect; the login pages are server-rendered HTML with CSRF protection.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from medicus.iam.bearer import bearer_principal
from medicus.iam.discovery import Endpoints
from medicus.iam.keys import SigningKeys
from medicus.iam.login import LoginService, Stage
from medicus.iam.login_routes import build_login_router, next_step
from medicus.iam.oauth import AuthorizeError, OAuthError, OAuthService
from medicus.iam.pages import SESSION_COOKIE, Pages
from medicus.iam.tokens import Principal, TokenService
from medicus.iam.upstream import UpstreamLogins

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


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
    router.include_router(_discovery(endpoints, keys))
    router.include_router(_authorization(endpoints, pages, logins, oauth))
    router.include_router(build_login_router(pages, logins, upstream))
    router.include_router(_tokens(oauth, authenticated))
    return router


def _discovery(endpoints: Endpoints, keys: SigningKeys) -> APIRouter:
    """What a client reads before it starts: OpenID Connect and SMART discovery, the public
    keys."""
    router = APIRouter(tags=["identity"])

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

    return router


def _authorization(
    endpoints: Endpoints, pages: Pages, logins: LoginService, oauth: OAuthService
) -> APIRouter:
    """The authorization endpoint: a person logs in (login_routes.py), the client gets a
    code."""
    router = APIRouter(tags=["identity"])

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
            return pages.redirect(next_step(login.stage, True, here))
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

    return router


def _tokens(oauth: OAuthService, authenticated: Any) -> APIRouter:
    """The token endpoint, introspection, revocation, and who a token says its bearer is."""
    router = APIRouter(tags=["identity"])

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
