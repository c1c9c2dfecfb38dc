"""Access lines: every request, a sample, or only errors and slow requests, as the operator
chooses; the audit trail records every access to data whatever the access log writes."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import httpx
import orjson
import pytest
import structlog

from medicus.app import create_app
from medicus.core.logging import AccessLog, configure_logging
from medicus.platform import build_platform
from tests.conftest import make_settings
from tests.support.clients import bearer, create
from tests.support.database import rows
from tests.support.resources import patient


def _requests(captured: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    logged = captured.readouterr()
    lines = [orjson.loads(line) for line in (logged.out + logged.err).splitlines()]
    return [line for line in lines if line.get("event") == "request"]


def test_sampled_logs_a_share_and_always_errors_and_slow_requests() -> None:
    unlucky = AccessLog("sampled", sample_rate=0.01, slow_ms=1000, chance=lambda: 0.5)
    lucky = AccessLog("sampled", sample_rate=0.01, slow_ms=1000, chance=lambda: 0.001)
    assert not unlucky.wanted(200, 3.0)
    assert lucky.wanted(200, 3.0)
    assert unlucky.wanted(404, 3.0)
    assert unlucky.wanted(500, 3.0)
    assert unlucky.wanted(200, 1500.0)


def test_errors_mode_logs_no_successful_request_and_all_mode_each() -> None:
    errors = AccessLog("errors", chance=lambda: 0.0)
    assert not errors.wanted(201, 3.0)
    assert errors.wanted(403, 3.0)
    assert AccessLog("all", chance=lambda: 0.99).wanted(200, 0.1)
    assert not AccessLog("all", enabled=False).wanted(500, 0.1)


def test_a_json_line_carries_the_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    structlog.contextvars.bind_contextvars(request_id="r-1")
    try:
        AccessLog("all", json_lines=True).write("GET", "/fhir/{resource_type}", 200, 1.5)
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    [line] = _requests(capsys)
    assert line["request_id"] == "r-1"
    assert line["route"] == "/fhir/{resource_type}"
    assert line["status"] == 200
    assert line["level"] == "info"
    assert str(line["timestamp"]).endswith("Z")


async def test_an_unlogged_read_is_still_audited(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(
        tmp_path, database_url, env="production", secret_key="s" * 32, access_log="errors"
    )
    configure_logging("INFO", json_lines=True)
    platform = build_platform(settings)
    try:
        transport = httpx.ASGITransport(app=create_app(settings, platform))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            headers = await bearer(platform, "hospital-a")
            fhir_id = await create(http, headers, patient("Logless"))
            read = await http.get(f"/fhir/Patient/{fhir_id}", headers=headers)
            missing = await http.get("/fhir/Patient/not-there", headers=headers)
        assert (read.status_code, missing.status_code) == (200, 404)
        assert [line["status"] for line in _requests(capsys)] == [404]
        await platform.audit.seal_all()
        audited = await rows(
            platform,
            "SELECT action FROM audit_entry WHERE target = :target",
            target=f"Patient/{fhir_id}",
        )
        assert ("fhir.read",) in audited
    finally:
        await platform.close()


def test_lines_go_to_the_standard_error_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server thread that outlives the code that configured logging (a test whose captured
    stream is closed since) writes to the stream of the moment, without a logging error."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("INFO", json_lines=True)
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("medicus.test").info("after the first stream closed")
    assert "after the first stream closed" in second.getvalue()
    assert "Logging error" not in second.getvalue()
