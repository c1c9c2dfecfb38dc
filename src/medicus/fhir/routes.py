"""HTTP of the FHIR hub (single-resource interactions so far): thin handlers that parse, call
`FhirService`, and render FHIR JSON with ETag, Last-Modified and Location."""

from __future__ import annotations

import datetime as dt
import re
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from medicus.core.errors import FHIR_JSON, ApiError
from medicus.core.http import is_json_media_type
from medicus.fhir.models import FhirVersionRow
from medicus.fhir.search.query import SearchRequest
from medicus.fhir.service import FhirService, SearchResult, StoredVersion
from medicus.iam.http import bearer_principal
from medicus.iam.tokens import Principal, TokenService

_ETAG = re.compile(r'^(W/)?"(\d+)"$')
MAX_HISTORY = 1000
MAX_PAGE = 1000


def _if_match(request: Request) -> int | None:
    header = request.headers.get("if-match")
    if header is None:
        return None
    found = _ETAG.match(header.strip())
    if found is None:
        raise ApiError(400, 'If-Match must be an ETag such as W/"3".', issue_type="invalid")
    return int(found.group(2))


async def _body(request: Request) -> bytes:
    if not is_json_media_type(request.headers.get("content-type")):
        raise ApiError(
            415, "Send the resource as application/fhir+json.", issue_type="not-supported"
        )
    return await request.body()


def _bounded(value: str, name: str, lowest: int, highest: int) -> int:
    if not value.isdigit() or not lowest <= int(value) <= highest:
        raise ApiError(400, f"{name} must be {lowest} to {highest}.", issue_type="invalid")
    return int(value)


def _searchset(
    request: Request,
    resource_type: str,
    parameters: list[tuple[str, str]],
    result: SearchResult,
    count: int,
    offset: int,
) -> Response:
    base = f"{request.base_url}fhir/{resource_type}"
    kept = [(k, v) for k, v in parameters if k not in ("_count", "_offset")]

    def page_link(relation: str, page_offset: int) -> dict[str, str]:
        query = urlencode([*kept, ("_count", str(count)), ("_offset", str(page_offset))])
        return {"relation": relation, "url": f"{base}?{query}"}

    links = [page_link("self", offset)]
    if result.has_more:
        links.append(page_link("next", offset + count))
    if offset > 0:
        links.append(page_link("previous", max(0, offset - count)))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links}
    if result.total is not None:
        bundle["total"] = result.total
    bundle["entry"] = [
        {
            "fullUrl": f"{base}/{fhir_id}",
            "resource": orjson.Fragment(content),
            "search": {"mode": "match"},
        }
        for fhir_id, content in result.resources
    ]
    return Response(orjson.dumps(bundle), media_type=FHIR_JSON)


def _count(request: Request) -> int:
    count = request.query_params.get("_count", "100")
    if not count.isdigit() or not 0 < int(count) <= MAX_HISTORY:
        raise ApiError(400, f"_count must be 1 to {MAX_HISTORY}.", issue_type="invalid")
    return int(count)


def _since(request: Request) -> dt.datetime | None:
    value = request.query_params.get("_since")
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(
            400, f"_since '{value}' is not a FHIR instant.", issue_type="invalid"
        ) from None
    if moment.tzinfo is None:
        raise ApiError(
            400, "_since needs a time zone, as in 2026-11-22T10:00:00Z.", issue_type="invalid"
        )
    return moment


def _history_bundle(request: Request, versions: list[tuple[FhirVersionRow, str]]) -> Response:
    base = f"{request.base_url}fhir"
    entries: list[dict[str, Any]] = []
    for version, path in versions:
        deleted = version.content is None
        entry: dict[str, Any] = {
            "fullUrl": f"{base}/{path}",
            "request": {
                "method": "DELETE" if deleted else "PUT",
                "url": f"{path}/_history/{version.version}",
            },
            "response": {"status": "204" if deleted else "200", "etag": f'W/"{version.version}"'},
        }
        if version.content is not None:
            entry["resource"] = orjson.Fragment(version.content)
        entries.append(entry)
    bundle = {"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries}
    return Response(orjson.dumps(bundle), media_type=FHIR_JSON)


def _render(stored: StoredVersion, request: Request, status: int = 200) -> Response:
    headers = {
        "ETag": stored.etag,
        "Last-Modified": format_datetime(stored.last_updated, usegmt=True),
    }
    if status == 201:
        headers["Location"] = (
            f"{request.base_url}fhir/{stored.resource_type}/{stored.fhir_id}"
            f"/_history/{stored.version}"
        )
    if request.headers.get("prefer", "").replace(" ", "") == "return=minimal":
        return Response(status_code=status, headers=headers)
    return Response(stored.content, status_code=status, media_type=FHIR_JSON, headers=headers)


def build_router(
    fhir: FhirService, tokens: TokenService, capabilities: dict[str, Any]
) -> APIRouter:
    router = APIRouter(prefix="/fhir", tags=["fhir"])
    caller = Depends(bearer_principal(tokens))
    capability_bytes = orjson.dumps(capabilities)

    @router.get("/metadata", summary="CapabilityStatement")
    async def metadata() -> Response:
        return Response(capability_bytes, media_type=FHIR_JSON)

    @router.get("/_history", summary="history of everything the caller may read")
    async def system_history(request: Request, principal: Principal = caller) -> Response:
        versions = await fhir.history_of_many(principal, None, _since(request), _count(request))
        return _history_bundle(request, versions)

    @router.get("/{resource_type}/_history", summary="history of one resource type")
    async def type_history(
        request: Request, resource_type: str, principal: Principal = caller
    ) -> Response:
        versions = await fhir.history_of_many(
            principal, resource_type, _since(request), _count(request)
        )
        return _history_bundle(request, versions)

    @router.post("/{resource_type}", summary="create")
    async def create(
        request: Request, resource_type: str, principal: Principal = caller
    ) -> Response:
        stored = await fhir.create(principal, resource_type, await _body(request))
        return _render(stored, request, 201)

    @router.get("/{resource_type}", summary="search")
    async def search(
        request: Request, resource_type: str, principal: Principal = caller
    ) -> Response:
        return await _search(
            request, resource_type, list(request.query_params.multi_items()), principal
        )

    @router.post("/{resource_type}/_search", summary="search with a form body")
    async def search_by_post(
        request: Request, resource_type: str, principal: Principal = caller
    ) -> Response:
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            raise ApiError(
                415, "Send the search parameters form-encoded.", issue_type="not-supported"
            )
        form = await request.form()
        parameters = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        parameters += list(request.query_params.multi_items())
        return await _search(request, resource_type, parameters, principal)

    async def _search(
        request: Request,
        resource_type: str,
        parameters: list[tuple[str, str]],
        principal: Principal,
    ) -> Response:
        values = dict(parameters)
        count = _bounded(values.get("_count", "50"), "_count", 1, MAX_PAGE)
        offset = _bounded(values.get("_offset", "0"), "_offset", 0, 1_000_000)
        lenient = "handling=lenient" in request.headers.get("prefer", "").replace(" ", "")
        search_request = SearchRequest(resource_type, parameters, lenient)
        result = await fhir.search(
            principal, search_request, count, offset, total=values.get("_total") == "accurate"
        )
        return _searchset(request, resource_type, parameters, result, count, offset)

    @router.get("/{resource_type}/{fhir_id}", summary="read")
    async def read(
        request: Request, resource_type: str, fhir_id: str, principal: Principal = caller
    ) -> Response:
        return _render(await fhir.read(principal, resource_type, fhir_id), request)

    @router.get("/{resource_type}/{fhir_id}/_history/{version}", summary="vread")
    async def vread(
        request: Request,
        resource_type: str,
        fhir_id: str,
        version: str,
        principal: Principal = caller,
    ) -> Response:
        if not version.isdigit():
            raise ApiError(400, f"'{version}' is not a version number.", issue_type="invalid")
        return _render(await fhir.read(principal, resource_type, fhir_id, int(version)), request)

    @router.put("/{resource_type}/{fhir_id}", summary="update (or create with this id)")
    async def update(
        request: Request, resource_type: str, fhir_id: str, principal: Principal = caller
    ) -> Response:
        stored = await fhir.update(
            principal, resource_type, fhir_id, await _body(request), _if_match(request)
        )
        return _render(stored, request, 201 if stored.created else 200)

    @router.delete("/{resource_type}/{fhir_id}", status_code=204, summary="delete")
    async def delete(
        request: Request, resource_type: str, fhir_id: str, principal: Principal = caller
    ) -> Response:
        await fhir.delete(principal, resource_type, fhir_id, _if_match(request))
        return Response(status_code=204)

    @router.get("/{resource_type}/{fhir_id}/_history", summary="history of one resource")
    async def history(
        request: Request, resource_type: str, fhir_id: str, principal: Principal = caller
    ) -> Response:
        versions = await fhir.history(principal, resource_type, fhir_id, _count(request))
        return _history_bundle(request, versions)

    return router
