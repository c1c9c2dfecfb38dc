"""The FHIR hub's interactions, independent of the web framework: a `FhirRequest` (method,
path below the FHIR base, query, the headers FHIR defines, a parsed body) in, a
`FhirResponse` out. The HTTP routes adapt Starlette's requests to it and every entry of a
batch or transaction runs through it too, so that a read, search, history, write or
operation behaves the same — parameters, paging, errors, audit entries — whichever way it
came (Medplum's fhir-router is the model: one router, and the bundle calls it per entry).

A request runs its writes in a transaction of its own, or in the `session` it is given (a
transaction bundle's, which commits all its entries at once).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.core.errors import ApiError
from medicus.core.http import is_json_media_type
from medicus.fhir import answers
from medicus.fhir.fhirpath_patch import FhirPathPatch
from medicus.fhir.operations import Operations, unsupported
from medicus.fhir.resources import StoredVersion, check_resource, is_version_number, parse_body
from medicus.fhir.search.request import SearchRequest
from medicus.fhir.service import FhirService
from medicus.fhir.subsetting import Subset
from medicus.iam.tokens import Principal

if TYPE_CHECKING:
    from medicus.fhir.stored_bytes import Staged, StoredBytes

Query = list[tuple[str, str]]

# Strictly `W/"3"`; bare and unweakened versions are accepted too, as clients send them.
_ETAG = re.compile(r'^(W/)?"?(\d+)"?$')
MAX_HISTORY = 1000
MAX_PAGE = 1000
EVERYTHING_PAGE = 100
_JSON_FORMATS = frozenset(
    {"json", "application/json", "application/fhir+json", "application/json+fhir"}
)
_READS = ("GET", "HEAD")


@dataclass(frozen=True)
class Resource:
    """A body that is a JSON value (a resource, or the Parameters of a FHIRPath Patch)."""

    value: Any


@dataclass(frozen=True)
class JsonPatch:
    """A body that is a JSON Patch (RFC 6902)."""

    operations: Any


@dataclass(frozen=True)
class Form:
    """A form-encoded body: the parameters of a `POST Type/_search`."""

    parameters: Query


@dataclass(frozen=True)
class Unparsed:
    """A body as HTTP received it: parsed, by its content type, only by an interaction that
    takes a body (an operation that is not supported answers so without reading it)."""

    content_type: str
    data: bytes


Body = Resource | JsonPatch | Form | Unparsed


async def _parsed(body: Body | None) -> Body | None:
    """The body as the interaction takes it (decimals exact, see `parse_json`); None for a
    content type that no FHIR interaction takes."""
    if not isinstance(body, Unparsed):
        return body
    if body.content_type.startswith("application/json-patch+json"):
        return JsonPatch(await parse_body(body.data))
    if is_json_media_type(body.content_type):
        return Resource(await parse_body(body.data))
    if body.content_type.startswith("application/x-www-form-urlencoded"):
        text = body.data.decode(errors="replace")
        return Form(parse_qsl(text, keep_blank_values=True))
    return None


@dataclass(frozen=True)
class FhirRequest:
    """One FHIR interaction as asked. `headers` has lower-case names and only those FHIR
    gives a meaning (`if-match`, `if-none-match`, `if-modified-since`, `if-none-exist`,
    `prefer`); a bundle entry's `request.ifMatch` … arrive here as those headers.
    `assigned_id` is the id a transaction chose for a create before its entries ran;
    `staged` what a write keeps in storage (`StoredBytes`)."""

    method: str
    path: str
    query: Query = field(default_factory=list)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Body | None = None
    assigned_id: str | None = None
    staged: Staged | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def preference(self, key: str) -> str | None:
        """One preference of the `Prefer` header (RFC 7240), such as `return` or `handling`."""
        for part in (self.header("prefer") or "").replace(";", ",").split(","):
            name, _, value = part.strip().partition("=")
            if name.strip() == key:
                return value.strip().strip('"')
        return None

    @property
    def conditions(self) -> Query:
        """The query as the condition of a conditional interaction."""
        return [(k, v) for k, v in self.query if k != "_format"]

    @property
    def if_none_exist(self) -> Query | None:
        """The condition of a conditional create: the `If-None-Exist` header, or search
        parameters in the URL of the POST (as fhirpy's `get_or_create` sends them)."""
        header = self.header("if-none-exist")
        if header is None:
            return self.conditions or None
        return parse_qsl(header.removeprefix("?"), keep_blank_values=True)


@dataclass(frozen=True)
class FhirResponse:
    """An interaction's answer: its status, its FHIR JSON (None: no body), and the version
    it is about, which gives ETag, Last-Modified and, for a creation, the Location."""

    status: int
    body: bytes | None = None
    version: StoredVersion | None = None


def parse_etag(header: str | None, name: str) -> int | None:
    """The version in an ETag header (`W/"3"`), None without one; anything else is a 400."""
    if header is None:
        return None
    found = _ETAG.match(header.strip())
    if found is None:
        raise ApiError(400, f'{name} must be an ETag such as W/"3".', issue_type="invalid")
    return int(found.group(2))


def check_format(query: Query) -> None:
    """`_format` asking for what medicus does not write (XML, Turtle, HTML) is a 406: an
    answer in JSON would be read as the wrong thing. (Accept headers are not negotiated:
    clients list XML and JSON there, and all get JSON.)"""
    requested = dict(query).get("_format")
    if requested is not None and requested.partition(";")[0].strip() not in _JSON_FORMATS:
        raise ApiError(
            406,
            f"_format={requested} is not served here; medicus speaks FHIR JSON (_format=json).",
            issue_type="not-supported",
        )


def _bounded(value: str, name: str, lowest: int, highest: int) -> int:
    if not value.isdigit() or not lowest <= int(value) <= highest:
        raise ApiError(400, f"{name} must be {lowest} to {highest}.", issue_type="invalid")
    return int(value)


def _history_count(request: FhirRequest) -> int:
    count = dict(request.query).get("_count", "100")
    if not count.isdigit() or not 0 < int(count) <= MAX_HISTORY:
        raise ApiError(400, f"_count must be 1 to {MAX_HISTORY}.", issue_type="invalid")
    return int(count)


def _since(request: FhirRequest) -> dt.datetime | None:
    value = dict(request.query).get("_since")
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


async def _resource_body(request: FhirRequest) -> Any:
    body = await _parsed(request.body)
    if not isinstance(body, Resource):
        raise ApiError(
            415, "Send the resource as application/fhir+json.", issue_type="not-supported"
        )
    return body.value


async def _patch_body(request: FhirRequest) -> Any:
    """A JSON Patch, or a FHIRPath Patch: a Parameters resource in FHIR JSON."""
    body = await _parsed(request.body)
    if isinstance(body, JsonPatch):
        return body.operations
    if isinstance(body, Resource):
        return FhirPathPatch(body.value)
    raise ApiError(
        415,
        "Send a JSON Patch as application/json-patch+json, or a FHIRPath Patch (Parameters) as "
        "application/fhir+json.",
        issue_type="not-supported",
    )


def _not_modified(stored: StoredVersion, request: FhirRequest) -> bool:
    """`If-None-Match` (the same version) or `If-Modified-Since` (not changed since then)."""
    etag = parse_etag(request.header("if-none-match"), "If-None-Match")
    if etag is not None:
        return etag == stored.version
    since = request.header("if-modified-since")
    if since is None:
        return False
    try:
        moment = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        raise ApiError(
            400, "If-Modified-Since must be an HTTP date.", issue_type="invalid"
        ) from None
    return stored.last_updated.replace(microsecond=0) <= moment


def _read_answer(stored: StoredVersion, request: FhirRequest) -> FhirResponse:
    if _not_modified(stored, request):
        return FhirResponse(304, None, stored)
    assert stored.content is not None
    subset = Subset.of(dict(request.query))
    if subset.summary == "count":
        raise ApiError(400, "_summary=count applies to searches only.", issue_type="invalid")
    return FhirResponse(200, subset.apply(stored.content), stored)


def write_answer(stored: StoredVersion | None, request: FhirRequest) -> FhirResponse:
    """The answer to a write, shaped by `Prefer: return=…` (representation by default)."""
    if stored is None or stored.content is None:
        return FhirResponse(204)
    wanted = request.preference("return")
    if wanted == "minimal":
        return FhirResponse(stored.status, None, stored)
    if wanted == "OperationOutcome":
        return FhirResponse(stored.status, answers.version_outcome(stored), stored)
    return FhirResponse(stored.status, stored.content, stored)


class FhirRouter:
    """Every FHIR interaction of the hub: `handle` finds the one a request asks for."""

    def __init__(
        self,
        fhir: FhirService,
        operations: Operations,
        capabilities: dict[str, Any],
        base: str,
        stored: StoredBytes,
    ) -> None:
        """`base` is the hub's public base URL, the root of every URL in answers; `stored`
        keeps the bytes of Binaries and large attachments in storage."""
        self._fhir = fhir
        self.stored = stored
        self._writer = fhir.writer
        self._operations = operations
        self.capabilities = orjson.dumps(capabilities)
        self._base = base

    async def handle(
        self, caller: Principal, request: FhirRequest, session: AsyncSession | None = None
    ) -> FhirResponse:
        check_format(request.query)
        path = [segment for segment in request.path.split("/") if segment]
        if path[:1] == ["AuditEvent"]:
            raise _not_the_hubs(request)
        answer = await self._dispatch(caller, request, path, session)
        if request.method == "HEAD":
            return FhirResponse(answer.status, None, answer.version)
        return answer

    async def _dispatch(
        self,
        caller: Principal,
        request: FhirRequest,
        path: list[str],
        session: AsyncSession | None = None,
    ) -> FhirResponse:
        read = request.method in _READS
        match (request.method, path):
            case ("GET" | "HEAD", ["metadata"]):
                return FhirResponse(200, self.capabilities)
            case ("GET" | "HEAD", ["_history"]):
                return await self._history_of_many(caller, request, None)
            case ("GET" | "HEAD", [kind, "_history"]):
                return await self._history_of_many(caller, request, kind)
            case ("GET" | "HEAD", [kind]):
                return await self._search(caller, request, kind, request.query)
            case ("POST", [kind, "_search"]):
                return await self._search_by_form(caller, request, kind)
            case ("POST", [kind, "$validate"]):
                outcome = await self._operations.validate(
                    caller, kind, await _resource_body(request)
                )
                return FhirResponse(200, orjson.dumps(outcome))
            case ("GET" | "HEAD", ["Patient", fhir_id, "$everything"]):
                return await self._everything(caller, request, fhir_id)
            case ("GET" | "HEAD", [kind, fhir_id, "$meta"]):
                stored = await self._fhir.read(caller, kind, fhir_id)
                return FhirResponse(200, orjson.dumps(self._operations.meta(stored)))
            case ("GET" | "HEAD", ["Observation", "$lastn"]):
                return await self._lastn(caller, request)
            case ("GET" | "HEAD" | "POST", [kind, operation] | [kind, _, operation]) if (
                operation.startswith("$")
            ):
                self._fhir.check_type(kind)
                raise unsupported(kind, operation)
            case ("GET" | "HEAD", ["Binary", fhir_id]):
                return _read_answer(await self.stored.reader.read(caller, fhir_id), request)
            case ("GET" | "HEAD", [kind, fhir_id]):
                return _read_answer(await self._fhir.read(caller, kind, fhir_id), request)
            case ("GET" | "HEAD", [kind, fhir_id, "_history"]):
                versions = await self._fhir.history(caller, kind, fhir_id, _history_count(request))
                return FhirResponse(200, answers.history(self._base, versions))
            case ("GET" | "HEAD", [kind, fhir_id, "_history", version]):
                return await self._vread(caller, request, kind, fhir_id, version)
            case (_, [_, *_]) if not read:
                return await self._change(caller, request, path, session)
        raise _no_interaction(request)

    async def _change(
        self,
        caller: Principal,
        request: FhirRequest,
        path: list[str],
        session: AsyncSession | None,
    ) -> FhirResponse:
        """Creates, updates, patches and deletes, plain and conditional: in `session`, or in
        a writing transaction of their own."""
        async with self.stored.staging(caller, request, path, session is None) as request:
            work = await self._change_work(caller, request, path)
            work = self.stored.around(caller, request, path, work)
            stored = await work(session) if session is not None else await self._fhir.write(work)
        return write_answer(stored, request)

    async def _change_work(
        self, caller: Principal, request: FhirRequest, path: list[str]
    ) -> Callable[[AsyncSession], Awaitable[StoredVersion | None]]:
        """The writer's call a change asks for: on one resource (`Type/id`) or on the one
        a condition finds (`Type?query`)."""
        kind, one = path[0], len(path) == 2
        self._fhir.check_type(kind)
        if len(path) > 2 or (request.method == "POST" and one):
            raise _no_interaction(request)
        writer, if_match = self._writer, parse_etag(request.header("if-match"), "If-Match")
        common: dict[str, Any] = {"caller": caller, "resource_type": kind}
        target: dict[str, Any] = {"fhir_id": path[1]} if one else {"conditions": request.conditions}
        if request.method == "POST":
            resource = check_resource(await _resource_body(request), kind, None)
            return partial(
                writer.create,
                **common,
                resource={key: value for key, value in resource.items() if key != "id"},
                if_none_exist=None if request.assigned_id else request.if_none_exist,
                fhir_id=request.assigned_id or (request.staged.fhir_id if request.staged else None),
            )
        if request.method == "PUT":
            resource = await _resource_body(request)
            if one:
                resource = check_resource(resource, kind, path[1])
            update = writer.update if one else writer.conditional_update
            return partial(update, **common, **target, resource=resource, if_match=if_match)
        if request.method == "PATCH":
            patch = writer.patch if one else writer.conditional_patch
            operations = await _patch_body(request)
            return partial(patch, **common, **target, operations=operations, if_match=if_match)
        if request.method == "DELETE" and one:
            return partial(writer.delete, **common, **target, if_match=if_match)
        if request.method == "DELETE":
            return partial(writer.conditional_delete, **common, **target)
        raise _no_interaction(request)

    async def _vread(
        self, caller: Principal, request: FhirRequest, kind: str, fhir_id: str, version: str
    ) -> FhirResponse:
        if not is_version_number(version):
            raise ApiError(400, f"'{version}' is not a version number.", issue_type="invalid")
        if kind == "Binary":
            return _read_answer(
                await self.stored.reader.read(caller, fhir_id, int(version)), request
            )
        return _read_answer(await self._fhir.read(caller, kind, fhir_id, int(version)), request)

    async def _history_of_many(
        self, caller: Principal, request: FhirRequest, kind: str | None
    ) -> FhirResponse:
        versions = await self._fhir.history_of_many(
            caller, kind, _since(request), _history_count(request)
        )
        return FhirResponse(200, answers.history(self._base, versions))

    async def _search_by_form(
        self, caller: Principal, request: FhirRequest, kind: str
    ) -> FhirResponse:
        body = await _parsed(request.body)
        if not isinstance(body, Form):
            raise ApiError(
                415, "Send the search parameters form-encoded.", issue_type="not-supported"
            )
        return await self._search(caller, request, kind, body.parameters + request.query)

    async def _search(
        self, caller: Principal, request: FhirRequest, kind: str, parameters: Query
    ) -> FhirResponse:
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
        lenient = request.preference("handling") == "lenient"
        result = await self._fhir.search(
            caller,
            SearchRequest(kind, searched, lenient),
            count,
            offset,
            total=values.get("_total") == "accurate",
        )
        page = None if counting else (count, offset)
        return FhirResponse(
            200, answers.searchset(self._base, kind, parameters, result, subset, page)
        )

    async def _everything(
        self, caller: Principal, request: FhirRequest, fhir_id: str
    ) -> FhirResponse:
        values = dict(request.query)
        count = _bounded(values.get("_count", str(EVERYTHING_PAGE)), "_count", 1, MAX_PAGE)
        offset = _bounded(values.get("_offset", "0"), "_offset", 0, 10_000_000)
        found = await self._operations.everything(
            caller, fhir_id, values.get("_type"), _since(request), count, offset
        )
        body = answers.everything(self._base, fhir_id, request.query, found, count, offset)
        return FhirResponse(200, body)

    async def _lastn(self, caller: Principal, request: FhirRequest) -> FhirResponse:
        found = await self._operations.lastn(caller, request.query)
        path = f"{self._base}/Observation/$lastn"
        self_link = [{"relation": "self", "url": f"{path}?{urlencode(request.query)}"}]
        return FhirResponse(
            200, answers.operation_bundle(self._base, self_link, found, [], len(found))
        )


def _not_the_hubs(request: FhirRequest) -> ApiError:
    """AuditEvents are the audit trail's, read-only through its own view (`GET
    /fhir/AuditEvent`, `access.routes`): the hub neither stores nor answers them, so that no
    client can plant an AuditEvent beside the real trail (through a bundle, the only way
    that reaches this router)."""
    writing = request.method not in _READS
    return ApiError(
        405 if writing else 501,
        "AuditEvent is the audit trail's: read-only, and read at /fhir/AuditEvent itself, "
        "not as a bundle entry.",
        issue_type="not-supported",
    )


def _no_interaction(request: FhirRequest) -> ApiError:
    return ApiError(
        404,
        f"{request.method} {request.path or '/'} is not a FHIR interaction of this server.",
        issue_type="not-supported",
    )
