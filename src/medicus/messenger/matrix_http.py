"""What the Messenger-Proxy's parts share: a refusal as Matrix answers it, and streaming of
request bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.types import Receive, Scope, Send


class Refusal(Exception):
    def __init__(self, status: int, errcode: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"errcode": errcode, "error": message, **extra}


def content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise Refusal(400, "M_UNKNOWN", "Content-Length is not a number.") from None
    return None


async def streamed(receive: Receive, limit: int | None) -> AsyncIterator[bytes]:
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise Refusal(413, "M_TOO_LARGE", f"Uploads are limited to {limit} bytes.")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def answer(send: Send, status: int, body: dict[str, object]) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
