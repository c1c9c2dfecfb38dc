"""HTTP plumbing shared by every capability: request ids, body limits, JSON bodies, errors."""

from __future__ import annotations

import contextvars
import re
import time
import traceback
import uuid
from collections.abc import Callable, Coroutine
from email.message import Message
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, APIRouter
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from medicus.core.db import is_unavailable
from medicus.core.errors import (
    ApiError,
    ErrorDetail,
    bad_request,
    database_unavailable,
    internal_error,
    payload_too_large,
    render_error,
    unprocessable,
    unsupported_media_type,
)
from medicus.core.logging import AccessLog, get_logger
from medicus.core.metrics import UNMATCHED_ROUTE, HttpMetrics

REQUEST_ID_HEADER = "x-request-id"
CLIENT_CLOSED_REQUEST = 499
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
client_address_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "client_address", default=None
)
log = get_logger("medicus.http")


def current_request_id() -> str | None:
    return request_id_var.get()


def current_client_address() -> str | None:
    """The address of the client of the request being served: the peer's, or, behind a
    reverse proxy that the server trusts (`FORWARDED_ALLOW_IPS`, see operations.md), the
    one the proxy names in `X-Forwarded-For`."""
    return client_address_var.get()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _stack_without_values(exc: BaseException) -> list[str]:
    """Where an error happened, without its message: messages of database and validation
    errors can quote the data being processed, which may be personal data. Hand-written
    because logging's and structlog's traceback renderers always include the message."""
    frames = traceback.extract_tb(exc.__traceback__)
    return [f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in frames[-12:]]


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", UNMATCHED_ROUTE)


async def _send_error(error: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
    response = render_error(error, scope.get("path", ""), current_request_id())
    await response(scope, receive, send)


class RequestObserver:
    """Outermost middleware: gives every request an id, measures it, writes one access line,
    and turns an unhandled exception into a logged 500 in the platform's error model."""

    def __init__(
        self, app: ASGIApp, metrics: HttpMetrics, access_log: AccessLog | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log or AccessLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, REQUEST_ID_HEADER.encode())
        request_id = incoming if incoming and _VALID_REQUEST_ID.match(incoming) else None
        request_id = request_id or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        client = scope.get("client")
        address = client_address_var.set(str(client[0])[:64] if client else None)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        started = False
        begin = time.perf_counter()

        async def send_with_id(message: AsgiMessage) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client hung up before its body was read: no fault of the server, and
            # nobody to answer. Recorded as 499, the status nginx logs for this.
            status = CLIENT_CLOSED_REQUEST
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("database unavailable", error_type=type(exc).__name__)
                error = database_unavailable()
            else:
                log.error(
                    # Not `stack`: structlog's console renderer takes that key for a string.
                    "unhandled error",
                    error_type=type(exc).__name__,
                    frames=_stack_without_values(exc),
                )
                error = internal_error()
            if not started:
                await _send_error(error, scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - begin
            route = _route_template(scope)
            self.metrics.in_progress.dec()
            self.metrics.observe(scope["method"], route, status, seconds)
            self.access_log.write(scope["method"], route, status, round(seconds * 1000, 2))
            structlog.contextvars.unbind_contextvars("request_id")
            request_id_var.reset(token)
            client_address_var.reset(address)


class BodySizeLimit:
    """Refuses bodies over the limit with 413 before any handler acts on them, both when
    Content-Length announces them and when a chunked body grows past the limit.

    Starlette's RequestBodyLimitMiddleware answers an announced oversize body in plain text
    when the route does not read it; this one answers in the platform's error model."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, streaming_prefixes: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streaming_prefixes = streaming_prefixes
        """Paths whose routes stream bodies of any size to storage and set their own limits."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.streaming_prefixes):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                error = bad_request("The Content-Length header is not a number.")
                await _send_error(error, scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                await _send_error(payload_too_large(self.max_bytes), scope, receive, send)
                return
        received = 0

        async def counting_receive() -> AsgiMessage:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException, because FastAPI turns other errors raised while it
                    # reads the body into a 400.
                    too_large = payload_too_large(self.max_bytes)
                    raise HTTPException(413, too_large.detail)
            return message

        await self.app(scope, counting_receive, send)


def is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    parsed = Message()
    parsed["content-type"] = content_type
    subtype = parsed.get_content_subtype()
    return parsed.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def require_json_body(request: Request) -> None:
    """Raise 415 unless the request declares a JSON body (application/json or */*+json)."""
    content_type = request.headers.get("content-type")
    if not is_json_media_type(content_type):
        raise unsupported_media_type(content_type, "application/json")


class JsonRoute(APIRoute):
    """Route class of every JSON API: a route that takes a body accepts only JSON (415 else);
    FastAPI's own parsing and validation then apply, with errors mapped by `install_errors`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def json_only(request: Request) -> Response:
            require_json_body(request)
            # Read here, so that a client hanging up mid-body reaches `RequestObserver` as
            # what it is: FastAPI would turn it into a 400 while it reads the body itself.
            await request.body()
            return await handler(request)

        return json_only


def json_router(**options: Any) -> APIRouter:
    """The router every capability builds its JSON API on."""
    return APIRouter(route_class=JsonRoute, **options)


def _pointer(location: tuple[Any, ...]) -> str:
    return "/" + "/".join(str(part) for part in location[1:]) if len(location) > 1 else ""


def _from_validation_error(exc: RequestValidationError) -> ApiError:
    errors = list(exc.errors())
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "malformed JSON")
            position = error["loc"][1] if len(error["loc"]) > 1 else "?"
            return bad_request(f"The body is not valid JSON ({reason} at character {position}).")
        if error.get("type") == "missing" and tuple(error["loc"]) == ("body",):
            return bad_request("This request needs a JSON body.")
    details = [
        ErrorDetail(
            message=str(error["msg"]),
            pointer=_pointer(tuple(error["loc"])) if error["loc"][0] == "body" else None,
            expression=".".join(str(part) for part in error["loc"]),
        )
        for error in errors
    ]
    return unprocessable("The request is well-formed but some values are invalid.", details)


def install_errors(app: FastAPI) -> None:
    """Render every error through the platform's single error model."""

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return render_error(exc, request.url.path, current_request_id())

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            detail = f"There is no resource at {request.url.path}."
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed here."
        else:
            detail = str(exc.detail)
        error = ApiError(exc.status_code, detail, headers=exc.headers or {})
        return render_error(error, request.url.path, current_request_id())

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return render_error(_from_validation_error(exc), request.url.path, current_request_id())

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
