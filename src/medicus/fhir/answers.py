"""The bodies of the FHIR hub's answers, whoever asked (HTTP or a bundle entry): searchsets
with their paging links, histories, the bundles of operations, and what a write answers as
`Prefer: return=…` asks. Links are made on the hub's public base URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from medicus.fhir.models import VersionRow
from medicus.fhir.resources import StoredVersion
from medicus.fhir.service import SearchResult
from medicus.fhir.subsetting import Subset

LOCATION_DISTANCE = "http://hl7.org/fhir/StructureDefinition/location-distance"
Query = list[tuple[str, str]]
Found = list[tuple[str, str, bytes]]
"""Resources found by an operation: (type, id, stored JSON)."""


def with_entries(bundle: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    """`bundle` with its `entry` list, which it has only if it has entries: R4 forbids empty
    arrays (ele-1), so a Bundle without entries has no `entry` at all."""
    return {**bundle, "entry": entries} if entries else bundle


def _page_queries(
    parameters: Query, result: SearchResult, count: int, offset: int
) -> list[tuple[str, Query]]:
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


def searchset(
    base_url: str,
    resource_type: str,
    parameters: Query,
    result: SearchResult,
    subset: Subset,
    page: tuple[int, int] | None,
) -> bytes:
    """A search's Bundle; `page` is its (count, offset), None for a count (which has no
    pages: its only link is the search as sent)."""
    base = f"{base_url}/{resource_type}"
    queries = [("self", parameters)] if page is None else _page_queries(parameters, result, *page)
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
    return orjson.dumps(with_entries(bundle, entries))


def _match(metres: float | None) -> dict[str, Any]:
    """A match's `entry.search`, with its distance from a `near` search's point in km."""
    if metres is None:
        return {"mode": "match"}
    kilometres = {"value": round(metres / 1000, 3), "unit": "km"}
    ucum = {"system": "http://unitsofmeasure.org", "code": "km"}
    extension = {"url": LOCATION_DISTANCE, "valueDistance": {**kilometres, **ucum}}
    return {"extension": [extension], "mode": "match"}


def history(base: str, versions: list[tuple[VersionRow, str]]) -> bytes:
    """A history Bundle: each version as the write that made it."""
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
    return orjson.dumps(with_entries(bundle, entries))


def everything(
    base: str,
    patient_id: str,
    query: Query,
    found: tuple[Found, bool, Found],
    count: int,
    offset: int,
) -> bytes:
    """`Patient/$everything`'s page (`found`: the page, whether more follow, what the page
    refers to), with a `next` link while more follow."""
    page, more, referenced = found
    path = f"{base}/Patient/{patient_id}/$everything"
    links = [{"relation": "self", "url": f"{path}?{urlencode(query)}" if query else path}]
    if more:
        kept = [(k, v) for k, v in query if k not in ("_count", "_offset")]
        following = urlencode([*kept, ("_count", str(count)), ("_offset", str(offset + count))])
        links.append({"relation": "next", "url": f"{path}?{following}"})
    return operation_bundle(base, links, page, referenced)


def operation_bundle(
    base: str,
    links: list[dict[str, str]],
    page: Found,
    referenced: Found,
    total: int | None = None,
) -> bytes:
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
    return orjson.dumps(with_entries(bundle, entries))


def version_outcome(stored: StoredVersion) -> bytes:
    """What `Prefer: return=OperationOutcome` answers a write with."""
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
    return orjson.dumps(outcome)
