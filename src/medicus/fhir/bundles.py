"""Batch and transaction bundles (`POST /fhir`).

A transaction is one database transaction: all entries or none. Its entries are processed in
the order FHIR prescribes (DELETE, POST, PUT/PATCH, then GET), after `urn:uuid:` full URLs have
been given ids and every reference to them — and every conditional reference such as
`Patient?identifier=…` — has been rewritten to `Type/id`. A batch processes each entry on its
own and answers entry by entry.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.core.errors import ApiError, ErrorDetail, operation_outcome
from medicus.core.ids import new_id
from medicus.fhir.fhirpath_patch import FhirPathPatch
from medicus.fhir.resources import (
    StoredVersion,
    check_id,
    check_type,
    fhir_time,
    is_version_number,
    parse_json,
)
from medicus.fhir.search.query import SearchRequest
from medicus.fhir.service import FhirService
from medicus.iam.tokens import Principal

MAX_ENTRIES = 10_000
_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_REASONS = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}


@dataclass
class Entry:
    """One entry's request, parsed: `Type`, `Type/id`, `Type/id/_history/n` or `Type?query`."""

    index: int
    method: str
    resource_type: str
    fhir_id: str | None
    version: int | None
    conditions: list[tuple[str, str]] | None
    resource: Any
    full_url: str | None
    if_match: int | None
    if_none_exist: list[tuple[str, str]] | None
    outcome: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"


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


def _within(resource: str, expression: str | None) -> str:
    """A FHIRPath expression on a resource (`Patient.name[0]`, or relative: `resourceType`)
    as one on the resource at `resource`."""
    if not expression:
        return resource
    head, _, rest = expression.partition(".")
    if head[:1].isupper():  # the resource's type: replaced by where the resource is
        return f"{resource}.{rest}" if rest else resource
    return f"{resource}.{expression}"


def _etag(text: Any, index: int) -> int | None:
    if text is None:
        return None
    digits = str(text).removeprefix("W/").strip('"')
    if not digits.isdigit():
        raise _entry_error(index, f'ifMatch {text!r} is not an ETag such as W/"3".')
    return int(digits)


def _relative(url: str) -> str:
    """A request URL relative to the FHIR base (absolute URLs of this server are accepted)."""
    if url.startswith(("http://", "https://")):
        parts = urlsplit(url)
        path = parts.path.split("/fhir/", 1)[-1]
        return f"{path}?{parts.query}" if parts.query else path
    return url.lstrip("/")


def parse_entry(index: int, raw: Any) -> Entry:
    """An entry of a batch or transaction, checked for everything that needs no database."""
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise _entry_error(index, "every entry needs a request (method and url).")
    request = raw["request"]
    method, url = request.get("method"), request.get("url")
    if method not in _ORDER or not isinstance(url, str) or not url:
        raise _entry_error(
            index, "request.method must be GET, POST, PUT, PATCH or DELETE, with a url."
        )
    path, _, query_text = _relative(url).partition("?")
    segments = [segment for segment in path.split("/") if segment]
    if (
        not segments
        or len(segments) not in (1, 2, 4)
        or (
            len(segments) == 4 and (segments[2] != "_history" or not is_version_number(segments[3]))
        )
    ):
        raise _entry_error(index, f"request.url {url!r} is not Type, Type/id or Type?query.")
    try:
        check_type(segments[0])
        if len(segments) > 1:
            check_id(segments[1])
    except ApiError as error:
        raise _entry_error(index, error.detail, error.status) from None
    resource = raw.get("resource")
    if method in ("POST", "PUT", "PATCH") and not isinstance(resource, dict):
        raise _entry_error(index, f"a {method} entry needs a resource.")
    conditions = parse_qsl(query_text, keep_blank_values=True) if "?" in url else None
    if_none_exist = request.get("ifNoneExist")
    return Entry(
        index=index,
        method=method,
        resource_type=segments[0],
        fhir_id=segments[1] if len(segments) > 1 else None,
        version=int(segments[3]) if len(segments) == 4 else None,
        conditions=conditions,
        resource=resource,
        full_url=raw.get("fullUrl") if isinstance(raw.get("fullUrl"), str) else None,
        if_match=_etag(request.get("ifMatch"), index),
        if_none_exist=parse_qsl(if_none_exist.removeprefix("?"), keep_blank_values=True)
        if isinstance(if_none_exist, str)
        else None,
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


def _patch_operations(entry: Entry) -> Any:
    """The patch of a PATCH entry: a Parameters resource (FHIRPath Patch), or a Binary carrying
    a JSON Patch base64-encoded."""
    if entry.resource.get("resourceType") == "Parameters":
        return FhirPathPatch(entry.resource)
    binary = entry.resource
    if binary.get("resourceType") != "Binary" or "json-patch" not in str(binary.get("contentType")):
        raise _entry_error(
            entry.index,
            "a PATCH entry carries a Parameters (FHIRPath Patch) or a Binary of "
            "application/json-patch+json.",
        )
    try:
        return parse_json(base64.b64decode(str(binary.get("data", "")), validate=True))
    except (binascii.Error, ApiError):
        raise _entry_error(entry.index, "the Binary's data is not a base64 JSON Patch.") from None


class BundleService:
    def __init__(self, fhir: FhirService) -> None:
        self._fhir = fhir
        self._writer = fhir.writer

    async def process(
        self, caller: Principal, bundle: Any, prefer_return: str | None
    ) -> dict[str, Any]:
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
        if kind == "transaction":
            entries = [parse_entry(index, raw) for index, raw in enumerate(raw_entries)]
            await self._transaction(caller, entries)
        else:
            entries = await self._batch(caller, raw_entries)
        answer = {"resourceType": "Bundle", "type": f"{kind}-response"}
        return with_entries(answer, [self._response(entry, prefer_return) for entry in entries])

    async def _transaction(self, caller: Principal, entries: list[Entry]) -> None:
        _refuse_duplicates(entries)
        ordered = sorted(entries, key=lambda entry: (_ORDER[entry.method], entry.index))
        async with self._fhir.writing() as session:
            await self._run(session, caller, [e for e in ordered if e.method == "DELETE"])
            ids = await self._assign_ids(session, caller, entries)
            for entry in ordered:
                if entry.method in ("POST", "PUT", "PATCH"):
                    await self._resolve_references(session, caller, entry, ids)
            await self._run(
                session, caller, [e for e in ordered if e.method in ("POST", "PUT", "PATCH")]
            )
        for entry in ordered:
            if entry.method in ("GET", "HEAD"):
                await self._read(caller, entry)

    async def _run(self, session: AsyncSession, caller: Principal, entries: list[Entry]) -> None:
        for entry in entries:
            try:
                await self._write(session, caller, entry)
            except ApiError as error:
                raise _in_entry(entry.index, error) from None

    async def _batch(self, caller: Principal, raw_entries: list[Any]) -> list[Entry]:
        """Each entry on its own, in its own transaction; failures are answered in place."""
        entries: list[Entry] = []
        for index, raw in enumerate(raw_entries):
            try:
                entry = parse_entry(index, raw)
            except ApiError as error:
                entries.append(_failed(index, error))
                continue
            try:
                if entry.method in ("GET", "HEAD"):
                    await self._read(caller, entry)
                else:
                    async with self._fhir.writing() as session:
                        await self._write(session, caller, entry)
            except ApiError as error:
                entry.outcome = {"error": _in_entry(index, error)}
            entries.append(entry)
        return entries

    async def _assign_ids(
        self, session: AsyncSession, caller: Principal, entries: list[Entry]
    ) -> dict[str, str]:
        """The `Type/id` each entry's fullUrl stands for: new ids for creates, the match of a
        conditional create, the id in the url of an update."""
        ids: dict[str, str] = {}
        for entry in entries:
            if entry.method == "POST":
                existing = None
                if entry.if_none_exist is not None:
                    existing = await self._writer.existing(
                        session, caller, entry.resource_type, entry.if_none_exist
                    )
                entry.outcome = {"existing": existing} if existing else {"id": new_id()}
                entry.fhir_id = existing.fhir_id if existing else entry.outcome["id"]
            if entry.full_url and entry.fhir_id and entry.method in ("POST", "PUT"):
                ids[entry.full_url] = f"{entry.resource_type}/{entry.fhir_id}"
        return ids

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

    async def _write(self, session: AsyncSession, caller: Principal, entry: Entry) -> None:
        writer, kind = self._writer, entry.resource_type
        stored: StoredVersion | None
        if entry.method == "POST":
            existing = entry.outcome.get("existing")
            stored = existing or await writer.create(
                session, caller, kind, _without_id(entry.resource), None, entry.outcome.get("id")
            )
        elif entry.method == "PUT" and entry.fhir_id:
            stored = await writer.update(
                session, caller, kind, entry.fhir_id, entry.resource, entry.if_match
            )
        elif entry.method == "PUT":
            stored = await writer.conditional_update(
                session, caller, kind, entry.conditions or [], entry.resource, entry.if_match
            )
        elif entry.method == "PATCH" and entry.fhir_id:
            stored = await writer.patch(
                session, caller, kind, entry.fhir_id, _patch_operations(entry), entry.if_match
            )
        elif entry.method == "PATCH":
            stored = await writer.conditional_patch(
                session,
                caller,
                kind,
                entry.conditions or [],
                _patch_operations(entry),
                entry.if_match,
            )
        elif entry.fhir_id:
            stored = await writer.delete(session, caller, kind, entry.fhir_id, entry.if_match)
        else:
            stored = await writer.conditional_delete(session, caller, kind, entry.conditions or [])
        entry.outcome = {"stored": stored}

    async def _read(self, caller: Principal, entry: Entry) -> None:
        """GET entries run after the writes, as a reader would see the committed result."""
        if entry.fhir_id is None:
            request = SearchRequest(entry.resource_type, entry.conditions or [])
            result = await self._fhir.search(caller, request, 50, 0, total=True)
            entry.outcome = {
                "bundle": _searchset(entry.resource_type, result.resources, result.total)
            }
            return
        entry.outcome = {
            "read": await self._fhir.read(caller, entry.resource_type, entry.fhir_id, entry.version)
        }

    def _response(self, entry: Entry, prefer_return: str | None) -> dict[str, Any]:
        outcome = entry.outcome
        if "error" in outcome:
            error: ApiError = outcome["error"]
            return {"response": {"status": str(error.status), "outcome": operation_outcome(error)}}
        if "bundle" in outcome:
            return {"resource": outcome["bundle"], "response": {"status": "200 OK"}}
        stored: StoredVersion | None = (
            outcome.get("read") or outcome.get("stored") or outcome.get("existing")
        )
        if stored is None or stored.content is None:
            return {"response": {"status": "204 No Content"}}
        path = f"{stored.resource_type}/{stored.fhir_id}"
        answer: dict[str, Any] = {
            "fullUrl": path,
            "response": {
                "status": _REASONS[stored.status],
                "location": f"{path}/_history/{stored.version}",
                "etag": stored.etag,
                "lastModified": fhir_time(stored.last_updated),
            },
        }
        if entry.method in ("GET", "HEAD") or prefer_return == "representation":
            answer["resource"] = orjson.Fragment(stored.content)
        return answer


def _without_id(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key != "id"}


def _failed(index: int, error: ApiError) -> Entry:
    entry = Entry(index, "GET", "", None, None, None, None, None, None, None)
    entry.outcome = {"error": error}
    return entry


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


def with_entries(bundle: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    """`bundle` with its `entry` list, which it has only if it has entries: R4 forbids empty
    arrays (ele-1), so a Bundle without entries has no `entry` at all."""
    return {**bundle, "entry": entries} if entries else bundle


def _searchset(
    resource_type: str, resources: list[tuple[str, bytes]], total: int | None
) -> dict[str, Any]:
    entries = [
        {
            "fullUrl": f"{resource_type}/{fhir_id}",
            "resource": orjson.Fragment(content),
            "search": {"mode": "match"},
        }
        for fhir_id, content in resources
    ]
    return with_entries({"resourceType": "Bundle", "type": "searchset", "total": total}, entries)
