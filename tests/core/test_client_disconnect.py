"""A client that hangs up while it sends its body is no fault of the server: no 500 is sent or
logged as an unhandled error; the request is logged with status 499."""

from __future__ import annotations

import orjson
import pytest
from pydantic import BaseModel

from medicus.app import create_app
from medicus.core.http import json_router
from medicus.core.logging import configure_logging
from medicus.platform import Platform
from medicus.settings import Settings
from tests.conftest import hang_up_mid_body


class Note(BaseModel):
    text: str


async def test_hang_up_mid_body_of_a_json_route(
    settings: Settings, platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", json_lines=True)
    app = create_app(settings, platform)
    reached: list[Note] = []
    router = json_router()

    @router.post("/notes")
    async def note(body: Note) -> dict[str, str]:
        reached.append(body)
        return {"text": body.text}

    app.include_router(router)
    sent = await hang_up_mid_body(
        app,
        "/notes",
        [(b"content-type", b"application/json"), (b"content-length", b"40")],
        b'{"text": "half',
    )
    logged = capsys.readouterr()
    lines = [orjson.loads(line) for line in (logged.out + logged.err).splitlines()]
    assert [line["status"] for line in lines if line.get("event") == "request"] == [499]
    assert not [line for line in lines if line.get("event") == "unhandled error"]
    assert [m for m in sent if m["type"] == "http.response.start"] == []
    assert reached == []
