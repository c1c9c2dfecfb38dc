"""One error model for the whole platform.

Every failure is an `ApiError` (or is turned into one) and is rendered once, at the edge:
as a FHIR `OperationOutcome` under `/fhir`, as `application/problem+json` (RFC 9457) elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import orjson
from starlette.responses import Response

PROBLEM_JSON = "application/problem+json"
FHIR_JSON = "application/fhir+json"
FHIR_PATH_PREFIX = "/fhir"

# FHIR IssueType codes (http://hl7.org/fhir/issue-type) by HTTP status.
_ISSUE_TYPE_BY_STATUS = {
    400: "structure",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    503: "transient",
}


@dataclass(frozen=True)
class ErrorDetail:
    """One thing wrong with the input: where (a JSON pointer and a FHIRPath-style expression)
    and what."""

    message: str
    pointer: str | None = None
    expression: str | None = None
    code: str | None = None
    """The FHIR issue type of this problem, when it differs from the error's."""


@dataclass
class ApiError(Exception):
    """A failure the caller should see, with the HTTP status that describes it."""

    status: int
    detail: str
    title: str | None = None
    errors: Sequence[ErrorDetail] = field(default_factory=tuple)
    headers: Mapping[str, str] = field(default_factory=dict)
    issue_type: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    @property
    def effective_title(self) -> str:
        return self.title or HTTPStatus(self.status).phrase


def bad_request(detail: str, errors: Sequence[ErrorDetail] = ()) -> ApiError:
    return ApiError(400, detail, errors=errors)


def not_found(detail: str = "There is nothing at this address.") -> ApiError:
    return ApiError(404, detail)


def payload_too_large(limit: int) -> ApiError:
    return ApiError(413, f"The request body is larger than the limit of {limit} bytes.")


def unsupported_media_type(received: str | None, expected: str) -> ApiError:
    what = f"'{received}'" if received else "no content type"
    return ApiError(415, f"The request body was sent as {what}; send it as {expected}.")


def unprocessable(detail: str, errors: Sequence[ErrorDetail]) -> ApiError:
    return ApiError(422, detail, errors=errors)


def database_unavailable() -> ApiError:
    return ApiError(
        503,
        "The database is not reachable at the moment (a restart or failover); retry shortly.",
        headers={"Retry-After": "1"},
    )


def internal_error() -> ApiError:
    return ApiError(
        500,
        "The server failed to handle the request. It was logged under the request id; "
        "nothing was changed.",
    )


def problem_body(error: ApiError, instance: str, request_id: str | None) -> dict[str, Any]:
    """An RFC 9457 problem document of `error` at `instance` (the request's path)."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": error.effective_title,
        "status": error.status,
        "detail": error.detail,
        "instance": instance,
    }
    if request_id:
        body["request_id"] = request_id
    if error.errors:
        body["errors"] = [
            {k: v for k, v in (("detail", e.message), ("pointer", e.pointer)) if v is not None}
            for e in error.errors
        ]
    return body


def operation_outcome(error: ApiError) -> dict[str, Any]:
    severity = "fatal" if error.status >= 500 else "error"
    code = error.issue_type or _ISSUE_TYPE_BY_STATUS.get(error.status, "exception")
    issues: list[dict[str, Any]] = [
        {"severity": severity, "code": code, "diagnostics": error.detail}
    ]
    for detail in error.errors:
        issue: dict[str, Any] = {
            "severity": severity,
            "code": detail.code or code,
            "diagnostics": detail.message,
        }
        if detail.expression:
            issue["expression"] = [detail.expression]
        issues.append(issue)
    return {"resourceType": "OperationOutcome", "issue": issues}


def is_fhir_path(path: str) -> bool:
    return path == FHIR_PATH_PREFIX or path.startswith(FHIR_PATH_PREFIX + "/")


def render_error(error: ApiError, path: str, request_id: str | None) -> Response:
    """The response for `error` in the dialect of the endpoint at `path`."""
    if is_fhir_path(path):
        body = operation_outcome(error)
        media_type = FHIR_JSON
    else:
        body = problem_body(error, path, request_id)
        media_type = PROBLEM_JSON
    return Response(
        orjson.dumps(body),
        status_code=error.status,
        media_type=media_type,
        headers=dict(error.headers),
    )
