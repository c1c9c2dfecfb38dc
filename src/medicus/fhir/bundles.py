"""Batch and transaction bundles (`POST /fhir`).

A transaction is one database transaction: all entries or none. Its entries are processed in
the order FHIR prescribes (DELETE, POST, PUT/PATCH, then GET), after `urn:uuid:` full URLs have
been given ids and every reference to them — and every conditional reference such as
`Patient?identifier=…` — has been rewritten to `Type/id`. A batch processes each entry on its
own and answers entry by entry. Every entry runs through `FhirRouter`, as an HTTP request
does, and is answered as HTTP would answer it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, replace
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access.policy import AccessDenied
from medicus.core.errors import ApiError, ErrorDetail, operation_outcome
from medicus.core.ids import new_id
from medicus.fhir.answers import with_entries
from medicus.fhir.attachments import resolve_urls
from medicus.fhir.resources import fhir_time, parse_json
from medicus.fhir.router import (
    Body,
    FhirRequest,
    FhirResponse,
    FhirRouter,
    JsonPatch,
    Resource,
    write_answer,
)
from medicus.fhir.service import FhirService
from medicus.iam.tokens import Principal

MAX_ENTRIES = 10_000
_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass
class Entry:
    """One entry of a bundle: its request as the router takes it, and once run, its answer
    (or the error it was answered with)."""

    index: int
    request: FhirRequest
    full_url: str | None = None
    answer: FhirResponse | ApiError | None = None

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def resource_type(self) -> str:
        return self.request.path.split("/")[0]

    @property
    def fhir_id(self) -> str | None:
        """The id the url names (`Type/id…`), None for `Type` and `Type?query`."""
        segments = self.request.path.split("/")
        return segments[1] if len(segments) > 1 else None

    @property
    def resource(self) -> Any:
        body = self.request.body
        return body.value if isinstance(body, Resource) else None


def _entry_error(index: int, message: str, status: int = 400) -> ApiError:
    where = f"Bundle.entry[{index}]"
    return ApiError(
        status,
        f"{where}: {message}",
        errors=[ErrorDetail(message, expression=where)],
        issue_type="invalid" if status == 400 else None,
    )


def _in_entry(index: int, error: ApiError) -> ApiError:
    """An entry's failure as the bundle's: its message and its problems, each pointing into
    `Bundle.entry[i].resource` (`Patient.birthDate` becomes
    `Bundle.entry[i].resource.birthDate`)."""
    where = f"Bundle.entry[{index}]"
    if error.detail.startswith(f"{where}:"):
        return error
    if not error.errors:
        failed = _entry_error(index, error.detail, error.status)
        return replace(failed, issue_type=error.issue_type or failed.issue_type)
    details = [
        replace(detail, expression=_within(f"{where}.resource", detail.expression))
        for detail in error.errors
    ]
    return replace(error, detail=f"{where}: {error.detail}", errors=details)


def _located(index: int, error: ApiError) -> ApiError:
    """An entry's failure as its own answer (`entry.response.outcome`): what HTTP answers,
    its problems pointing into `Bundle.entry[i].resource`."""
    where = f"Bundle.entry[{index}].resource"
    details = [
        replace(detail, expression=_within(where, detail.expression)) for detail in error.errors
    ]
    return replace(error, errors=details)


def _within(resource: str, expression: str | None) -> str:
    """A FHIRPath expression on a resource (`Patient.name[0]`, or relative: `resourceType`)
    as one on the resource at `resource`."""
    if not expression:
        return resource
    head, _, rest = expression.partition(".")
    if head[:1].isupper():  # the resource's type: replaced by where the resource is
        return f"{resource}.{rest}" if rest else resource
    return f"{resource}.{expression}"


def _relative(url: str) -> str:
    """A request URL relative to the FHIR base (absolute URLs of this server are accepted)."""
    if url.startswith(("http://", "https://")):
        parts = urlsplit(url)
        path = parts.path.split("/fhir/", 1)[-1]
        return f"{path}?{parts.query}" if parts.query else path
    return url.lstrip("/")


_ENTRY_HEADERS = {
    "ifMatch": "if-match",
    "ifNoneMatch": "if-none-match",
    "ifModifiedSince": "if-modified-since",
    "ifNoneExist": "if-none-exist",
}


def _headers(index: int, request: dict[str, Any], prefer: str) -> dict[str, str]:
    """An entry's `request.ifMatch` … as the HTTP headers they stand for, with the bundle's
    `Prefer`. `ifModifiedSince` is a FHIR instant, the header an HTTP date."""
    headers = {"prefer": prefer} if prefer else {}
    for element, header in _ENTRY_HEADERS.items():
        value = request.get(element)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _entry_error(index, f"request.{element} must be a string.")
        headers[header] = value
    since = headers.get("if-modified-since")
    if since is not None:
        try:
            moment = dt.datetime.fromisoformat(since)
        except ValueError:
            raise _entry_error(
                index, f"request.ifModifiedSince {since!r} is not an instant."
            ) from None
        if moment.tzinfo is None:
            raise _entry_error(index, "request.ifModifiedSince needs a time zone.")
        headers["if-modified-since"] = format_datetime(moment.astimezone(dt.UTC), usegmt=True)
    return headers


def _body(index: int, method: str, resource: Any) -> Body | None:
    """The body of a write entry: its resource; a PATCH's is a Parameters resource (FHIRPath
    Patch) or a Binary carrying a JSON Patch base64-encoded."""
    if method not in ("POST", "PUT", "PATCH"):
        return None
    if not isinstance(resource, dict):
        raise _entry_error(index, f"a {method} entry needs a resource.")
    if method != "PATCH" or resource.get("resourceType") == "Parameters":
        return Resource(resource)
    if resource.get("resourceType") != "Binary" or "json-patch" not in str(
        resource.get("contentType")
    ):
        raise _entry_error(
            index,
            "a PATCH entry carries a Parameters (FHIRPath Patch) or a Binary of "
            "application/json-patch+json.",
        )
    try:
        return JsonPatch(parse_json(base64.b64decode(str(resource.get("data", "")), validate=True)))
    except (binascii.Error, ApiError):
        raise _entry_error(index, "the Binary's data is not a base64 JSON Patch.") from None


def parse_entry(index: int, raw: Any, prefer: str = "") -> Entry:
    """An entry of a batch or transaction as the router's request, checked for what needs
    no database; `prefer` is the bundle's `Prefer` header, which applies to each entry."""
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise _entry_error(index, "every entry needs a request (method and url).")
    request = raw["request"]
    method, url = request.get("method"), request.get("url")
    if method not in _ORDER or not isinstance(url, str) or not url:
        raise _entry_error(
            index, "request.method must be GET, HEAD, POST, PUT, PATCH or DELETE, with a url."
        )
    path, _, query_text = _relative(url).partition("?")
    full_url = raw.get("fullUrl")
    return Entry(
        index,
        FhirRequest(
            method=method,
            path=path.strip("/"),
            query=parse_qsl(query_text, keep_blank_values=True),
            headers=_headers(index, request, prefer),
            body=_body(index, method, raw.get("resource")),
        ),
        full_url if isinstance(full_url, str) else None,
    )


def _references(value: Any) -> Iterator[dict[str, Any]]:
    """Every object with a string `reference` inside a resource (contained ones included)."""
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            yield value
        for child in value.values():
            if isinstance(child, dict | list):
                yield from _references(child)
    elif isinstance(value, list):
        for child in value:
            yield from _references(child)


class BundleService:
    """Runs each entry through `FhirRouter`, as HTTP runs a request: a transaction's writes
    in its one database transaction, in FHIR's order; a batch's entries each on their own."""

    def __init__(self, fhir: FhirService, router: FhirRouter) -> None:
        self._fhir = fhir
        self._writer = fhir.writer
        self._router = router

    async def process(self, caller: Principal, bundle: Any, prefer: str | None) -> dict[str, Any]:
        """The response bundle; `prefer` is the request's `Prefer` header. Its entries
        answer writes minimally (status, location, ETag) unless it asks for
        `return=representation` or `return=OperationOutcome`."""
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise ApiError(
                400, "POST /fhir takes a Bundle of type transaction or batch.", issue_type="invalid"
            )
        kind = bundle.get("type")
        raw_entries = bundle.get("entry") or []
        if kind not in ("transaction", "batch") or not isinstance(raw_entries, list):
            raise ApiError(
                400, "The Bundle's type must be transaction or batch.", issue_type="invalid"
            )
        if len(raw_entries) > MAX_ENTRIES:
            raise ApiError(413, f"A bundle may have at most {MAX_ENTRIES} entries.")
        prefer = prefer or ""
        if "return=" not in prefer:
            prefer = f"{prefer}, return=minimal" if prefer else "return=minimal"
        if kind == "transaction":
            entries = [parse_entry(index, raw, prefer) for index, raw in enumerate(raw_entries)]
            await self._transaction(caller, entries)
        else:
            entries = await self._batch(caller, raw_entries, prefer)
        answer = {"resourceType": "Bundle", "type": f"{kind}-response"}
        return with_entries(answer, [_entry_answer(entry) for entry in entries])

    async def _transaction(self, caller: Principal, entries: list[Entry]) -> None:
        _refuse_duplicates(entries)
        # Binaries first among the writes of a kind: an attachment may name one created here.
        ordered = sorted(
            entries,
            key=lambda entry: (_ORDER[entry.method], entry.resource_type != "Binary", entry.index),
        )
        writes = [e for e in ordered if e.method in ("POST", "PUT", "PATCH")]
        stored = self._router.stored
        async with (
            stored.staging_entries(caller, entries, _in_entry),
            self._fhir.writing() as session,
        ):
            await self._writer.look_up(session, _targets(entries))
            await self._run(session, caller, [e for e in ordered if e.method == "DELETE"])
            ids = await self._assign_ids(session, caller, entries)
            for entry in writes:
                await self._resolve_references(session, caller, entry, ids)
            await self._run(session, caller, [e for e in writes if e.answer is None])
        for entry in ordered:
            if entry.method in ("GET", "HEAD"):
                await self._answer(caller, entry)

    async def _run(self, session: AsyncSession, caller: Principal, entries: list[Entry]) -> None:
        """A transaction's writes: the first failure fails them all, naming its entry."""
        for entry in entries:
            try:
                entry.answer = await self._router.handle(caller, entry.request, session)
            except ApiError as error:
                raise _in_entry(entry.index, error) from None
            except AccessDenied as denied:
                denied.error = _in_entry(entry.index, denied.error)
                raise

    async def _answer(self, caller: Principal, entry: Entry) -> None:
        """An entry on its own: its failure is its answer. (A transaction's GET entries run
        after its writes were committed, as a reader sees the result.)"""
        try:
            entry.answer = await self._router.handle(caller, entry.request)
        except ApiError as error:
            entry.answer = error if entry.resource is None else _located(entry.index, error)

    async def _batch(self, caller: Principal, raw_entries: list[Any], prefer: str) -> list[Entry]:
        """Each entry on its own, in its own transaction; failures are answered in place."""
        entries: list[Entry] = []
        for index, raw in enumerate(raw_entries):
            try:
                entry = parse_entry(index, raw, prefer)
            except ApiError as error:
                entries.append(Entry(index, FhirRequest("GET", ""), answer=error))
                continue
            await self._answer(caller, entry)
            entries.append(entry)
        return entries

    async def _assign_ids(
        self, session: AsyncSession, caller: Principal, entries: list[Entry]
    ) -> dict[str, str]:
        """The `Type/id` each entry's fullUrl stands for: new ids for creates, the match of a
        conditional create (which is then answered, not written), the id in the url of an
        update."""
        ids: dict[str, str] = {}
        for entry in entries:
            fhir_id = entry.fhir_id
            if entry.method == "POST" and not fhir_id:
                fhir_id = await self._assign_id(session, caller, entry)
            if entry.full_url and fhir_id and entry.method in ("POST", "PUT"):
                ids[entry.full_url] = f"{entry.resource_type}/{fhir_id}"
        return ids

    async def _assign_id(self, session: AsyncSession, caller: Principal, entry: Entry) -> str:
        condition = entry.request.if_none_exist
        existing = None
        if condition is not None:
            try:
                existing = await self._writer.existing(
                    session, caller, entry.resource_type, condition
                )
            except ApiError as error:
                raise _in_entry(entry.index, error) from None
        if existing is not None:
            entry.answer = write_answer(existing, entry.request)
            return existing.fhir_id
        staged = entry.request.staged  # a Binary's id is chosen with its bytes
        entry.request = replace(
            entry.request, assigned_id=(staged.fhir_id if staged else None) or new_id()
        )
        return entry.request.assigned_id or ""

    async def _resolve_references(
        self, session: AsyncSession, caller: Principal, entry: Entry, ids: dict[str, str]
    ) -> None:
        for holder in _references(entry.resource):
            reference = holder["reference"]
            if reference in ids:
                holder["reference"] = ids[reference]
            elif reference.startswith("urn:uuid:"):
                raise _entry_error(
                    entry.index, f"{reference} is not the fullUrl of an entry of this transaction."
                )
            elif "?" in reference:
                holder["reference"] = await self._conditional_reference(
                    session, caller, entry, reference
                )
        resolve_urls(entry.resource_type, entry.resource, ids)

    async def _conditional_reference(
        self, session: AsyncSession, caller: Principal, entry: Entry, reference: str
    ) -> str:
        resource_type, _, query_text = reference.partition("?")
        conditions = parse_qsl(query_text, keep_blank_values=True)
        try:
            matches = await self._writer.find(session, caller, resource_type, conditions)
        except ApiError as error:
            raise _entry_error(entry.index, f"{reference}: {error.detail}") from None
        if len(matches) != 1:
            found = "no" if not matches else "more than one"
            raise _entry_error(entry.index, f"{reference} matches {found} resource.", 412)
        return f"{resource_type}/{matches[0].fhir_id}"


def _targets(entries: list[Entry]) -> list[tuple[str, str]]:
    """The (type, id) of the stored resources that entries update, patch or delete."""
    return [
        (entry.resource_type, entry.fhir_id)
        for entry in entries
        if entry.method in ("PUT", "PATCH", "DELETE") and entry.fhir_id
    ]


def _refuse_duplicates(entries: list[Entry]) -> None:
    """Two entries of one transaction may not change the same resource, nor share a fullUrl
    (references to it would be ambiguous) — FHIR's rules."""
    targets: set[str] = set()
    full_urls: set[str] = set()
    for entry in entries:
        if entry.method in ("PUT", "PATCH", "DELETE") and entry.fhir_id:
            target = f"{entry.resource_type}/{entry.fhir_id}"
            if target in targets:
                raise _entry_error(entry.index, f"{target} is changed by more than one entry.")
            targets.add(target)
        if entry.full_url and entry.resource is not None:
            if entry.full_url in full_urls:
                raise _entry_error(entry.index, f"fullUrl {entry.full_url} is not unique.")
            full_urls.add(entry.full_url)


def _entry_answer(entry: Entry) -> dict[str, Any]:
    """An entry of the response bundle: what HTTP would answer, as FHIR carries it in
    `entry.response` (status, location, etag, lastModified, outcome) and `entry.resource`.
    Urls are relative to the FHIR base, as in the request."""
    answer = entry.answer
    if isinstance(answer, ApiError):
        return {"response": {"status": str(answer.status), "outcome": operation_outcome(answer)}}
    assert answer is not None
    response: dict[str, Any] = {"status": f"{answer.status} {HTTPStatus(answer.status).phrase}"}
    result: dict[str, Any] = {}
    stored = answer.version
    if stored is not None:
        path = f"{stored.resource_type}/{stored.fhir_id}"
        result["fullUrl"] = path
        response["location"] = f"{path}/_history/{stored.version}"
        response["etag"] = stored.etag
        response["lastModified"] = fhir_time(stored.last_updated)
    if answer.body is not None:
        outcome = entry.method not in ("GET", "HEAD") and (
            entry.request.preference("return") == "OperationOutcome"
        )
        body = orjson.Fragment(answer.body)
        if outcome:
            response["outcome"] = body
        else:
            result["resource"] = body
    result["response"] = response
    return result
