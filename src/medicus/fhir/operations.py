"""FHIR operations: `$validate` (the checks of a write, without storing), `$meta`, and
`Patient/$everything` (the patient's compartment, of what the caller may read)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from medicus.access.policy import Interaction
from medicus.core.db import Database
from medicus.core.errors import FHIR_JSON, ApiError
from medicus.fhir import repository
from medicus.fhir.definitions import patient_compartment
from medicus.fhir.resources import StoredVersion, check_id, check_resource, check_type
from medicus.fhir.service import FhirService
from medicus.fhir.writer import Validator
from medicus.iam.tokens import Principal

EVERYTHING_PAGE = 100
MAX_EVERYTHING_PAGE = 1000


class Operations:
    def __init__(self, database: Database, fhir: FhirService, validate: Validator) -> None:
        self._database = database
        self._fhir = fhir
        self._validate = validate

    async def validate(self, caller: Principal, resource_type: str, body: Any) -> dict[str, Any]:
        """An OperationOutcome of every problem of `body` (a resource, or Parameters with a
        `resource` parameter), as a create would find them."""
        check_type(resource_type)
        await self._fhir.require(caller, Interaction.SEARCH, resource_type, "$validate")
        if isinstance(body, dict) and body.get("resourceType") == "Parameters" != resource_type:
            body = next(
                (
                    p.get("resource")
                    for p in body.get("parameter") or []
                    if p.get("name") == "resource"
                ),
                None,
            )
        resource = check_resource(body, resource_type, None)
        issues = [
            {
                "severity": issue.severity,
                "code": issue.code,
                "diagnostics": issue.diagnostics,
                "expression": [issue.expression],
            }
            for issue in self._validate(resource)
        ]
        if not issues:
            issues = [
                {
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": "No problems found.",
                }
            ]
        return {"resourceType": "OperationOutcome", "issue": issues}

    @staticmethod
    def meta(stored: StoredVersion) -> dict[str, Any]:
        assert stored.content is not None
        meta = orjson.loads(stored.content).get("meta", {})
        return {"resourceType": "Parameters", "parameter": [{"name": "return", "valueMeta": meta}]}

    async def everything(self, caller: Principal, patient_id: str, request: Request) -> Response:
        """The patient and their compartment, one page at a time (`_count`, `_offset`), limited
        by `_type` and `_since`; only what the caller's organisation holds."""
        check_id(patient_id)
        await self._fhir.read(caller, "Patient", patient_id)
        await self._fhir.require(caller, Interaction.EVERYTHING, "Patient", patient_id)
        members = self._members(caller, request.query_params.get("_type"))
        count = _number(request.query_params.get("_count"), EVERYTHING_PAGE, 1, MAX_EVERYTHING_PAGE)
        offset = _number(request.query_params.get("_offset"), 0, 0, 10_000_000)
        since = _instant(request.query_params.get("_since"))
        async with self._database.snapshot() as session:
            rows = await repository.compartment(
                session, caller.organisation_id, patient_id, members, since, count + 1, offset
            )
        base = f"{request.base_url}fhir"
        links = [{"relation": "self", "url": str(request.url)}]
        if len(rows) > count:
            params = {**request.query_params, "_count": str(count), "_offset": str(offset + count)}
            query = "&".join(f"{k}={v}" for k, v in params.items())
            links.append(
                {"relation": "next", "url": f"{base}/Patient/{patient_id}/$everything?{query}"}
            )
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "link": links,
            "entry": [
                {
                    "fullUrl": f"{base}/{row.resource_type}/{row.fhir_id}",
                    "resource": orjson.Fragment(row.content),
                    "search": {"mode": "match"},
                }
                for row in rows[:count]
                if row.content
            ],
        }
        return Response(orjson.dumps(bundle), media_type=FHIR_JSON)

    def _members(self, caller: Principal, wanted: str | None) -> dict[str, tuple[str, ...]]:
        """Compartment types the caller's scopes may read (and `_type` asks for)."""
        members = patient_compartment()
        readable = self._fhir.readable_types(caller, frozenset(members))
        if wanted:
            asked = {kind.strip() for kind in wanted.split(",")}
            for kind in asked:
                check_type(kind)
            readable &= asked
        return {kind: params for kind, params in members.items() if kind in readable}


def _number(value: str | None, default: int, lowest: int, highest: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not lowest <= int(value) <= highest:
        raise ApiError(
            400,
            f"Expected a number from {lowest} to {highest}, not {value!r}.",
            issue_type="invalid",
        )
    return int(value)


def _instant(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ApiError(
            400, f"_since {value!r} is not an instant with a time zone.", issue_type="invalid"
        )
    return moment
