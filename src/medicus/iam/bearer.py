"""What other capabilities use to protect their routes: the bearer-token dependency."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from medicus.core.errors import ApiError
from medicus.iam.tokens import InvalidToken, Principal, TokenService


def _unauthorized(description: str) -> ApiError:
    challenge = f'Bearer error="invalid_token", error_description="{description}"'
    return ApiError(
        401, f"Authentication failed: {description}.", headers={"WWW-Authenticate": challenge}
    )


def bearer_principal(tokens: TokenService) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency that yields the caller's Principal or answers 401 (RFC 6750)."""

    async def principal(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "This request needs an access token (Authorization: Bearer ...).",
                headers={"WWW-Authenticate": 'Bearer realm="medicus"'},
            )
        try:
            return await tokens.validate(token.strip())
        except InvalidToken as error:
            raise _unauthorized(str(error)) from None

    return principal
