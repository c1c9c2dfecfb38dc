"""WebDAV's refusals in medicus's error model: a problem+json document (RFC 9457) with the
status and the sentence that says why, as every other medicus endpoint answers.

WsgiDAV writes an error as an HTML page, or, where RFC 4918 defines a pre- or postcondition
(`lock-token-submitted`, `no-conflicting-lock`, …), as that condition's XML, which WebDAV
clients read. `as_problems` turns the HTML pages into problem+json and leaves the XML alone.
WsgiDAV has no setting for the format of its error pages, and it writes them in several
places (a raised `DAVError`, `send_status_response`), so the page is rewritten on its way
out: it is WsgiDAV 4.4's page (`DAVError.get_response_page`), whose one paragraph holds the
status and the reason. A 5xx says no more than any medicus 500 (the page may name an
exception)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from medicus.core.errors import PROBLEM_JSON, ApiError, internal_error, problem_body
from medicus.core.http import current_request_id

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_PARAGRAPH = re.compile(rb"<p>(.*?)</p>", re.DOTALL)


def as_problems(app: WsgiApp) -> WsgiApp:
    """`app`, its HTML error pages answered as problem+json."""

    def problems(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        held: list[tuple[str, list[tuple[str, str]]]] = []

        def respond(status: str, headers: list[tuple[str, str]], *info: Any) -> Any:
            if _is_page(status, headers):
                held.append((status, headers))
                return lambda _: None
            return start_response(status, headers, *info)

        chunks = app(environ, respond)
        try:
            page = b""
            for chunk in chunks:
                if not held:
                    yield chunk
                else:
                    page += chunk
            if held:
                yield _problem(environ, start_response, *held[0], page)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    return problems


def _is_page(status: str, headers: list[tuple[str, str]]) -> bool:
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    return status[:1] in ("4", "5") and content_type.startswith("text/html")


def _problem(
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    status: str,
    headers: list[tuple[str, str]],
    page: bytes,
) -> bytes:
    code = int(status[:3])
    error = internal_error() if code >= 500 else ApiError(code, _reason(status, page))
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    body = orjson.dumps(problem_body(error, path, current_request_id()))
    kept = [(k, v) for k, v in headers if k.lower() not in ("content-type", "content-length")]
    start_response(
        status,
        [*kept, ("Content-Type", PROBLEM_JSON), ("Content-Length", str(len(body)))],
    )
    return body


def _reason(status: str, page: bytes) -> str:
    """The sentence of the page ("403 Forbidden: <why>"), else the status's phrase."""
    found = _PARAGRAPH.search(page)
    text = html.unescape(found.group(1).decode("utf-8", "replace")).strip() if found else ""
    _, colon, why = text.partition(": ")
    return why.strip() if colon and why.strip() else status[4:]
