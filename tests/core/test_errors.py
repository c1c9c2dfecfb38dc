"""The single error model, through HTTP: every failure is problem+json (or a FHIR
OperationOutcome under /fhir) with the right status, and nothing is half-done."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import BaseModel

from medicus.app import create_app
from medicus.core.errors import ApiError, ErrorDetail
from medicus.core.http import json_router
from medicus.core.logging import configure_logging
from medicus.platform import Platform
from medicus.settings import Settings
from tests.conftest import make_settings


class Probe(BaseModel):
    name: str
    count: int


def _probe_router() -> object:
    router = json_router()

    @router.post("/probe")
    async def probe(body: Probe) -> dict[str, object]:
        return body.model_dump()

    @router.post("/fhir/Probe/x/y/z")
    async def fhir_probe() -> None:
        raise ApiError(
            422,
            "The resource is invalid.",
            errors=[ErrorDetail("birthDate is not a date", expression="Patient.birthDate")],
        )

    @router.get("/explode")
    async def explode() -> None:
        raise RuntimeError("Mustermann, Erika 1964-08-12")

    return router


@pytest.fixture
async def probe_client(
    tmp_path, database_url: str, platform: Platform
) -> AsyncIterator[httpx.AsyncClient]:
    settings: Settings = make_settings(tmp_path, database_url, max_body_bytes=1024)
    app = create_app(settings, platform)
    app.include_router(_probe_router())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_valid_json_reaches_the_route(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post("/probe", json={"name": "x", "count": 2})
    assert response.status_code == 200
    assert response.json() == {"name": "x", "count": 2}


async def test_malformed_json_is_400_with_position(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post(
        "/probe", content=b'{"name": "x", "count": }', headers={"content-type": "application/json"}
    )
    body = _problem(response, 400)
    assert "not valid JSON" in str(body["detail"])
    assert "character 23" in str(body["detail"])


async def test_empty_body_is_400(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post("/probe", headers={"content-type": "application/json"})
    assert "needs a JSON body" in str(_problem(response, 400)["detail"])


async def test_wrong_types_are_422_with_pointers(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post("/probe", json={"name": 5, "count": "many"})
    body = _problem(response, 422)
    pointers = {error["pointer"] for error in body["errors"]}  # type: ignore[union-attr]
    assert pointers == {"/name", "/count"}


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_wrong_content_type_is_415(
    probe_client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await probe_client.post(
        "/probe", content=b'{"name": "x", "count": 1}', headers=headers
    )
    assert "application/json" in str(_problem(response, 415)["detail"])


async def test_json_suffix_media_types_are_accepted(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post(
        "/probe",
        content=b'{"name": "x", "count": 1}',
        headers={"content-type": "application/merge-patch+json; charset=utf-8"},
    )
    assert response.status_code == 200


async def test_announced_oversize_body_is_413(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post(
        "/probe", content=b"x" * 2048, headers={"content-type": "application/json"}
    )
    assert "1024 bytes" in str(_problem(response, 413)["detail"])


async def test_chunked_oversize_body_is_413(probe_client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b" " * 512

    response = await probe_client.post(
        "/probe", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    _problem(response, 413)


async def test_oversize_body_on_unknown_route_is_413(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.put("/nowhere", content=b"x" * 4096)
    _problem(response, 413)


async def test_non_numeric_content_length_is_400(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post(
        "/probe", content=b"{}", headers={"content-type": "application/json", "content-length": "x"}
    )
    _problem(response, 400)


async def test_unknown_route_is_404(probe_client: httpx.AsyncClient) -> None:
    body = _problem(await probe_client.get("/no/such/thing"), 404)
    assert body["instance"] == "/no/such/thing"


async def test_wrong_method_is_405_with_allow(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.delete("/healthz")
    _problem(response, 405)
    assert response.headers["allow"] == "GET"


async def test_fhir_paths_answer_with_operation_outcome(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.get("/fhir/Nothing/1/no/such/path")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/fhir+json"
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "not-found"


async def test_operation_outcome_points_at_the_element(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post("/fhir/Probe/x/y/z")
    assert response.status_code == 422
    issues = response.json()["issue"]
    assert issues[1]["expression"] == ["Patient.birthDate"]
    assert {issue["code"] for issue in issues} == {"invalid"}


@pytest.mark.parametrize("json_lines", [True, False], ids=["json", "console"])
async def test_unhandled_error_is_500_without_details(
    probe_client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str], json_lines: bool
) -> None:
    """In console format too: the frames logged under `stack` broke structlog's console
    renderer, and the error handler itself raised."""
    configure_logging("INFO", json_lines=json_lines)
    response = await probe_client.get("/explode")
    body = _problem(response, 500)
    assert "Mustermann" not in response.text
    assert "request id" in str(body["detail"])
    logged = capsys.readouterr()
    assert "RuntimeError" in logged.err + logged.out
    assert "Mustermann" not in logged.err + logged.out


async def test_request_id_is_taken_from_the_caller_when_sane(
    probe_client: httpx.AsyncClient,
) -> None:
    response = await probe_client.get("/healthz", headers={"x-request-id": "lb-1234.abc"})
    assert response.headers["x-request-id"] == "lb-1234.abc"
    response = await probe_client.get("/healthz", headers={"x-request-id": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert len(response.headers["x-request-id"]) == 32
