"""HTTP of the FHIR hub: thin handlers that parse the request, call `FhirService` (reads,
searches) or `ResourceWriter` in one of its transactions (writes), and render FHIR JSON with
ETag, Last-Modified and Location, honouring `Prefer` and the conditional-read headers."""

from __future__ import annotations

import datetime as dt
import gzip
import re
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.convertors import StringConvertor, register_url_convertor

from medicus.core.errors import FHIR_JSON, ApiError
from medicus.core.http import is_json_media_type
from medicus.fhir.bundles import BundleService, with_entries
from medicus.fhir.fhirpath_patch import FhirPathPatch
from medicus.fhir.models import FhirVersionRow
from medicus.fhir.operations import Operations, unsupported
from medicus.fhir.resources import (
    StoredVersion,
    check_resource,
    is_version_number,
    parse_body,
)
from medicus.fhir.search.query import SearchRequest
from medicus.fhir.service import FhirService, SearchResult
from medicus.fhir.subsetting import Subset
from medicus.iam.http import bearer_principal
from medicus.iam.tokens import Principal, TokenService


class _ResourceTypeConvertor(StringConvertor):
    """A resource type in a path is letters (`Patient`): paths such as
    `/fhir/.well-known/smart-configuration` are not mistaken for a read and reach their own
    routes, which lets the FHIR routes come first in the app (Starlette tries routes in
    order, ~2 µs each). `AuditEvent` is not the hub's: the audit trail's view serves it
    (`access.routes`), read-only."""

    regex = "(?!AuditEvent(?:/|$))[A-Za-z]+"


register_url_convertor("resource_type", _ResourceTypeConvertor())


class _OperationConvertor(StringConvertor):
    """An operation's name in a path (`$lastn`): answered by its own route, or as not
    supported, never read as an id."""

    regex = r"\$[^/]*"


register_url_convertor("operation", _OperationConvertor())

# Strictly `W/"3"`; bare and unweakened versions are accepted too, as clients send them.
_ETAG = re.compile(r'^(W/)?"?(\d+)"?$')
MAX_HISTORY = 1000
MAX_PAGE = 1000
EVERYTHING_PAGE = 100
_PREFER_RETURN = ("minimal", "representation", "OperationOutcome")


def parse_etag(header: str | None, name: str) -> int | None:
    """The version in an ETag header (`W/"3"`), None without one; anything else is a 400."""
    if header is None:
        return None
    found = _ETAG.match(header.strip())
    if found is None:
        raise ApiError(400, f'{name} must be an ETag such as W/"3".', issue_type="invalid")
    return int(found.group(2))


def prefer(request: Request, key: str) -> str | None:
    """One preference of the `Prefer` header (RFC 7240), such as `return` or `handling`."""
    for part in request.headers.get("prefer", "").replace(";", ",").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip() == key:
            return value.strip().strip('"')
    return None


async def _body(request: Request) -> Any:
    """The request's JSON (decimals exact, see `parse_json`)."""
    if not is_json_media_type(request.headers.get("content-type")):
        raise ApiError(
            415, "Send the resource as application/fhir+json.", issue_type="not-supported"
        )
    return await parse_body(await request.body())


async def _patch_body(request: Request) -> Any:
    """A JSON Patch (application/json-patch+json), or a FHIRPath Patch: a Parameters resource
    in FHIR JSON."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json-patch+json"):
        return await parse_body(await request.body())
    if is_json_media_type(content_type):
        return FhirPathPatch(await parse_body(await request.body()))
    raise ApiError(
        415,
        "Send a JSON Patch as application/json-patch+json, or a FHIRPath Patch (Parameters) as "
        "application/fhir+json.",
        issue_type="not-supported",
    )


_JSON_FORMATS = frozenset(
    {"json", "application/json", "application/fhir+json", "application/json+fhir"}
)


async def _json_only(request: Request) -> None:
    """`_format` asking for what medicus does not write (XML, Turtle, HTML) is a 406: an
    answer in JSON would be read as the wrong thing. (Accept headers are not negotiated:
    clients list XML and JSON there, and all get JSON.)"""
    requested = request.query_params.get("_format")
    if requested is not None and requested.partition(";")[0].strip() not in _JSON_FORMATS:
        raise ApiError(
            406,
            f"_format={requested} is not served here; medicus speaks FHIR JSON (_format=json).",
            issue_type="not-supported",
        )


def _conditions(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query_params.multi_items() if k != "_format"]


def _if_none_exist(request: Request) -> list[tuple[str, str]] | None:
    """The condition of a conditional create: the `If-None-Exist` header, or search
    parameters in the URL of the POST (as fhirpy's `get_or_create` sends them)."""
    header = request.headers.get("if-none-exist")
    if header is None:
        return _conditions(request) or None
    return parse_qsl(header.removeprefix("?"), keep_blank_values=True)


def _bounded(value: str, name: str, lowest: int, highest: int) -> int:
    if not value.isdigit() or not lowest <= int(value) <= highest:
        raise ApiError(400, f"{name} must be {lowest} to {highest}.", issue_type="invalid")
    return int(value)


def _page_queries(
    parameters: list[tuple[str, str]], result: SearchResult, count: int, offset: int
) -> list[tuple[str, list[tuple[str, str]]]]:
    """The query of each paging link. `next` always carries a cursor (keyset paging: what is
    written between two pages does not shift them); `previous` a cursor on a cursor's page
    (the page before its first resource), an offset on an offset's page."""
    kept = [(k, v) for k, v in parameters if k not in ("_count", "_offset", "_cursor")]
    size = ("_count", str(count))
    cursor = dict(parameters).get("_cursor")
    here = ("_cursor", cursor) if cursor is not None else ("_offset", str(offset))
    queries = [("self", [*kept, size, here])]
    if result.next_cursor is not None:
        queries.append(("next", [*kept, size, ("_cursor", result.next_cursor)]))
    if result.previous_cursor is not None:
        queries.append(("previous", [*kept, size, ("_cursor", result.previous_cursor)]))
    elif cursor is None and offset > 0:
        queries.append(("previous", [*kept, size, ("_offset", str(max(0, offset - count)))]))
    return queries


def _searchset(
    base_url: str,
    resource_type: str,
    parameters: list[tuple[str, str]],
    result: SearchResult,
    subset: Subset,
    count: int,
    offset: int,
    counting: bool,
) -> Response:
    base = f"{base_url}/{resource_type}"
    queries = (
        [("self", parameters)]  # a count has no pages: its link is the search as sent
        if counting
        else _page_queries(parameters, result, count, offset)
    )
    links = [
        {"relation": relation, "url": f"{base}?{urlencode(query)}"} for relation, query in queries
    ]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links}
    if result.total is not None:
        bundle["total"] = result.total
    entries = [
        {
            "fullUrl": f"{base}/{fhir_id}",
            "resource": orjson.Fragment(subset.apply(content)),
            "search": _match(result.distances.get(fhir_id)),
        }
        for fhir_id, content in result.resources
    ] + [
        {
            "fullUrl": f"{base_url}/{kind}/{fhir_id}",
            "resource": orjson.Fragment(subset.apply(content)),
            "search": {"mode": "include"},
        }
        for kind, fhir_id, content in result.included
    ]
    return Response(orjson.dumps(with_entries(bundle, entries)), media_type=FHIR_JSON)


LOCATION_DISTANCE = "http://hl7.org/fhir/StructureDefinition/location-distance"


def _match(metres: float | None) -> dict[str, Any]:
    """A match's `entry.search`, with its distance from a `near` search's point in km."""
    if metres is None:
        return {"mode": "match"}
    kilometres = {"value": round(metres / 1000, 3), "unit": "km"}
    ucum = {"system": "http://unitsofmeasure.org", "code": "km"}
    extension = {"url": LOCATION_DISTANCE, "valueDistance": {**kilometres, **ucum}}
    return {"extension": [extension], "mode": "match"}


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


def _history_bundle(base: str, versions: list[tuple[FhirVersionRow, str]]) -> Response:
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
    bundle = {"resourceType": "Bundle", "type": "history", "total": len(entries)}
    return Response(orjson.dumps(with_entries(bundle, entries)), media_type=FHIR_JSON)


def _everything_bundle(
    request: Request,
    base: str,
    patient_id: str,
    page: list[tuple[str, str, bytes]],
    more: bool,
    referenced: list[tuple[str, str, bytes]],
    count: int,
    offset: int,
) -> Response:
    path = f"{base}/Patient/{patient_id}/$everything"
    links = [
        {"relation": "self", "url": f"{path}?{request.url.query}" if request.url.query else path}
    ]
    if more:
        kept = [
            (k, v) for k, v in request.query_params.multi_items() if k not in ("_count", "_offset")
        ]
        query = urlencode([*kept, ("_count", str(count)), ("_offset", str(offset + count))])
        links.append({"relation": "next", "url": f"{path}?{query}"})
    return _operation_bundle(base, links, page, referenced)


def _operation_bundle(
    base: str,
    links: list[dict[str, str]],
    page: list[tuple[str, str, bytes]],
    referenced: list[tuple[str, str, bytes]],
    total: int | None = None,
) -> Response:
    """The searchset an operation answers with: its matches, then what they refer to."""
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links}
    if total is not None:
        bundle["total"] = total
    entries = [
        {
            "fullUrl": f"{base}/{kind}/{fhir_id}",
            "resource": orjson.Fragment(content),
            "search": {"mode": mode},
        }
        for mode, found in (("match", page), ("include", referenced))
        for kind, fhir_id, content in found
    ]
    return Response(orjson.dumps(with_entries(bundle, entries)), media_type=FHIR_JSON)


def _headers(stored: StoredVersion, base: str) -> dict[str, str]:
    headers = {
        "ETag": stored.etag,
        "Last-Modified": format_datetime(stored.last_updated, usegmt=True),
    }
    if stored.created:
        headers["Location"] = (
            f"{base}/{stored.resource_type}/{stored.fhir_id}/_history/{stored.version}"
        )
    return headers


def _render_write(stored: StoredVersion | None, request: Request, base: str) -> Response:
    """The answer to a write, shaped by `Prefer: return=…` (representation by default)."""
    if stored is None or stored.content is None:
        return Response(status_code=204)
    headers = _headers(stored, base)
    wanted = prefer(request, "return")
    if wanted == "minimal":
        return Response(status_code=stored.status, headers=headers)
    if wanted == "OperationOutcome":
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": f"{stored.resource_type}/{stored.fhir_id} is at version "
                    f"{stored.version}.",
                }
            ],
        }
        return Response(
            orjson.dumps(outcome), status_code=stored.status, media_type=FHIR_JSON, headers=headers
        )
    return Response(
        stored.content, status_code=stored.status, media_type=FHIR_JSON, headers=headers
    )


def _not_modified(stored: StoredVersion, request: Request) -> bool:
    """`If-None-Match` (the same version) or `If-Modified-Since` (not changed since then)."""
    etag = parse_etag(request.headers.get("if-none-match"), "If-None-Match")
    if etag is not None:
        return etag == stored.version
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        moment = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        raise ApiError(
            400, "If-Modified-Since must be an HTTP date.", issue_type="invalid"
        ) from None
    return stored.last_updated.replace(microsecond=0) <= moment


def _render_read(stored: StoredVersion, request: Request, base: str) -> Response:
    headers = _headers(stored, base)
    if _not_modified(stored, request):
        return Response(status_code=304, headers=headers)
    assert stored.content is not None
    subset = Subset.of(dict(request.query_params))
    if subset.summary == "count":
        raise ApiError(400, "_summary=count applies to searches only.", issue_type="invalid")
    content = subset.apply(stored.content)
    return Response(content, media_type=FHIR_JSON, headers=headers)


def _accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header admits gzip (`gzip`, `*`, not with `q=0`)."""
    for item in accept_encoding.split(","):
        coding, _, parameters = item.partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            weight = parameters.strip().removeprefix("q=").strip() if parameters else "1"
            return weight not in ("0", "0.0", "0.00", "0.000")
    return False


def build_router(
    fhir: FhirService,
    bundles: BundleService,
    operations: Operations,
    tokens: TokenService,
    capabilities: dict[str, Any],
    base: str,
) -> APIRouter:
    """The FHIR routes; `base` is the hub's public base URL (`MEDICUS_PUBLIC_URL` + `/fhir`),
    the root of every URL in answers, whatever `Host` a request names."""
    router = APIRouter(prefix="/fhir", tags=["fhir"], dependencies=[Depends(_json_only)])
    caller = Depends(bearer_principal(tokens))
    capability_bytes = orjson.dumps(capabilities)
    capability_gzipped = gzip.compress(capability_bytes)
    writer = fhir.writer

    @router.get("/metadata", summary="CapabilityStatement")
    async def metadata(request: Request) -> Response:
        """~700 KB of JSON (every parameter and include of every type), which clients fetch
        at start: compressed once (~25 KB) for those that accept gzip."""
        vary = {"Vary": "Accept-Encoding"}
        if _accepts_gzip(request.headers.get("accept-encoding", "")):
            headers = {**vary, "Content-Encoding": "gzip"}
            return Response(capability_gzipped, media_type=FHIR_JSON, headers=headers)
        return Response(capability_bytes, media_type=FHIR_JSON, headers=vary)

    @router.post("", summary="transaction or batch")
    @router.post("/", include_in_schema=False)
    async def bundle(request: Request, principal: Principal = caller) -> Response:
        answer = await bundles.process(principal, await _body(request), prefer(request, "return"))
        return Response(orjson.dumps(answer), media_type=FHIR_JSON)

    @router.get("/_history", summary="history of everything the caller may read")
    async def system_history(request: Request, principal: Principal = caller) -> Response:
        versions = await fhir.history_of_many(principal, None, _since(request), _count(request))
        return _history_bundle(base, versions)

    @router.get("/{resource_type:resource_type}/_history", summary="history of one resource type")
    async def type_history(
        request: Request, resource_type: str, principal: Principal = caller
    ) -> Response:
        versions = await fhir.history_of_many(
            principal, resource_type, _since(request), _count(request)
        )
        return _history_bundle(base, versions)

    @router.post("/{resource_type:resource_type}/$validate", summary="validate without storing")
    async def validate(
        request: Request, resource_type: str, principal: Principal = caller
    ) -> Response:
        outcome = await operations.validate(principal, resource_type, await _body(request))
        return Response(orjson.dumps(outcome), media_type=FHIR_JSON)

    @router.get("/Patient/{fhir_id}/$everything", summary="everything about a patient")
    async def everything(request: Request, fhir_id: str, principal: Principal = caller) -> Response:
        values = request.query_params
        count = _bounded(values.get("_count", str(EVERYTHING_PAGE)), "_count", 1, MAX_PAGE)
        offset = _bounded(values.get("_offset", "0"), "_offset", 0, 10_000_000)
        page, more, referenced = await operations.everything(
            principal, fhir_id, values.get("_type"), _since(request), count, offset
        )
        return _everything_bundle(request, base, fhir_id, page, more, referenced, count, offset)

    @router.get("/{resource_type:resource_type}/{fhir_id}/$meta", summary="the meta of a resource")
    async def meta(resource_type: str, fhir_id: str, principal: Principal = caller) -> Response:
        stored = await fhir.read(principal, resource_type, fhir_id)
        return Response(orjson.dumps(operations.meta(stored)), media_type=FHIR_JSON)

    @router.get("/Observation/$lastn", summary="the newest observations of each code")
    async def lastn(request: Request, principal: Principal = caller) -> Response:
        found = await operations.lastn(principal, list(request.query_params.multi_items()))
        path = f"{base}/Observation/$lastn"
        self_link = [{"relation": "self", "url": f"{path}?{request.url.query}"}]
        return _operation_bundle(base, self_link, found, [], len(found))

    @router.api_route(
        "/{resource_type:resource_type}/{operation:operation}",
        methods=["GET", "POST"],
        include_in_schema=False,
    )
    @router.api_route(
        "/{resource_type:resource_type}/{fhir_id}/{operation:operation}",
        methods=["GET", "POST"],
        include_in_schema=False,
    )
    async def other_operation(
        resource_type: str, operation: str, principal: Principal = caller
    ) -> Response:
        fhir.check_type(resource_type)
        raise unsupported(resource_type, operation)

    @router.post(
        "/{resource_type:resource_type}", summary="create (conditional with If-None-Exist)"
    )
    async def create(
        request: Request, resource_type: str, principal: Principal = caller
    ) -> Response:
        resource = check_resource(await _body(request), resource_type, None)
        resource.pop("id", None)
        stored = await fhir.write(
            lambda session: writer.create(
                session, principal, resource_type, resource, _if_none_exist(request)
            )
        )
        return _render_write(stored, request, base)

    @router.put("/{resource_type:resource_type}", summary="conditional update")
    async def conditional_update(
        request: Request, resource_type: str, principal: Principal = caller
    ) -> Response:
        body = await _body(request)
        if_match = parse_etag(request.headers.get("if-match"), "If-Match")
        stored = await fhir.write(
            lambda session: writer.conditional_update(
                session, principal, resource_type, _conditions(request), body, if_match
            )
        )
        return _render_write(stored, request, base)

    @router.patch(
        "/{resource_type:resource_type}", summary="conditional patch (JSON or FHIRPath Patch)"
    )
    async def conditional_patch(
        request: Request, resource_type: str, principal: Principal = caller
    ) -> Response:
        operations_ = await _patch_body(request)
        if_match = parse_etag(request.headers.get("if-match"), "If-Match")
        stored = await fhir.write(
            lambda session: writer.conditional_patch(
                session, principal, resource_type, _conditions(request), operations_, if_match
            )
        )
        return _render_write(stored, request, base)

    @router.delete("/{resource_type:resource_type}", status_code=204, summary="conditional delete")
    async def conditional_delete(
        request: Request, resource_type: str, principal: Principal = caller
    ) -> Response:
        await fhir.write(
            lambda session: writer.conditional_delete(
                session, principal, resource_type, _conditions(request)
            )
        )
        return Response(status_code=204)

    @router.get("/{resource_type:resource_type}", summary="search")
    async def search(
        request: Request, resource_type: str, principal: Principal = caller
    ) -> Response:
        return await _search(
            request, resource_type, list(request.query_params.multi_items()), principal
        )

    @router.post("/{resource_type:resource_type}/_search", summary="search with a form body")
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
        count = _bounded(values.get("_count", "50"), "_count", 0, MAX_PAGE)
        offset = _bounded(values.get("_offset", "0"), "_offset", 0, 1_000_000)
        subset = Subset.of(values)
        counting = count == 0 or subset.summary == "count"
        searched = parameters
        if count == 0:  # FHIR: `_count=0` asks for the total only, as `_summary=count` does
            searched = [(k, v) for k, v in parameters if k != "_summary"]
            searched.append(("_summary", "count"))
            count = 1
        lenient = prefer(request, "handling") == "lenient"
        search_request = SearchRequest(resource_type, searched, lenient)
        result = await fhir.search(
            principal, search_request, count, offset, total=values.get("_total") == "accurate"
        )
        return _searchset(base, resource_type, parameters, result, subset, count, offset, counting)

    @router.get("/{resource_type:resource_type}/{fhir_id}", summary="read")
    async def read(
        request: Request, resource_type: str, fhir_id: str, principal: Principal = caller
    ) -> Response:
        return _render_read(await fhir.read(principal, resource_type, fhir_id), request, base)

    @router.get("/{resource_type:resource_type}/{fhir_id}/_history/{version}", summary="vread")
    async def vread(
        request: Request,
        resource_type: str,
        fhir_id: str,
        version: str,
        principal: Principal = caller,
    ) -> Response:
        if not is_version_number(version):
            raise ApiError(400, f"'{version}' is not a version number.", issue_type="invalid")
        stored = await fhir.read(principal, resource_type, fhir_id, int(version))
        return _render_read(stored, request, base)

    @router.put(
        "/{resource_type:resource_type}/{fhir_id}", summary="update (or create with this id)"
    )
    async def update(
        request: Request, resource_type: str, fhir_id: str, principal: Principal = caller
    ) -> Response:
        resource = check_resource(await _body(request), resource_type, fhir_id)
        if_match = parse_etag(request.headers.get("if-match"), "If-Match")
        stored = await fhir.write(
            lambda session: writer.update(
                session, principal, resource_type, fhir_id, resource, if_match
            )
        )
        return _render_write(stored, request, base)

    @router.patch(
        "/{resource_type:resource_type}/{fhir_id}", summary="patch (JSON or FHIRPath Patch)"
    )
    async def patch(
        request: Request, resource_type: str, fhir_id: str, principal: Principal = caller
    ) -> Response:
        operations_ = await _patch_body(request)
        if_match = parse_etag(request.headers.get("if-match"), "If-Match")
        stored = await fhir.write(
            lambda session: writer.patch(
                session, principal, resource_type, fhir_id, operations_, if_match
            )
        )
        return _render_write(stored, request, base)

    @router.delete("/{resource_type:resource_type}/{fhir_id}", status_code=204, summary="delete")
    async def delete(
        request: Request, resource_type: str, fhir_id: str, principal: Principal = caller
    ) -> Response:
        if_match = parse_etag(request.headers.get("if-match"), "If-Match")
        await fhir.write(
            lambda session: writer.delete(session, principal, resource_type, fhir_id, if_match)
        )
        return Response(status_code=204)

    @router.get(
        "/{resource_type:resource_type}/{fhir_id}/_history", summary="history of one resource"
    )
    async def history(
        request: Request, resource_type: str, fhir_id: str, principal: Principal = caller
    ) -> Response:
        versions = await fhir.history(principal, resource_type, fhir_id, _count(request))
        return _history_bundle(base, versions)

    return router
