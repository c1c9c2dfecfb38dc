"""FHIR operations: `$validate` (the checks of a write, without storing), `$meta`, and
`Patient/$everything` (the patient's compartment, of what the caller may read)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from medicus.access.policy import Interaction
from medicus.core.db import Database
from medicus.fhir import repository
from medicus.fhir.definitions import patient_compartment
from medicus.fhir.resources import StoredVersion, check_id, check_resource, check_type
from medicus.fhir.service import FhirService
from medicus.fhir.writer import Validator
from medicus.iam.tokens import Principal


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

    async def everything(
        self,
        caller: Principal,
        patient_id: str,
        types: str | None,
        since: dt.datetime | None,
        count: int,
        offset: int,
    ) -> tuple[list[tuple[str, str, bytes]], bool]:
        """One page of the patient and their compartment (type, id, content), limited to
        `types` (`_type`) and `since`, and whether more follow; only what the caller's
        organisation holds and the caller's scopes may read."""
        check_id(patient_id)
        await self._fhir.read(caller, "Patient", patient_id)
        await self._fhir.require(caller, Interaction.EVERYTHING, "Patient", patient_id)
        members = self._members(caller, types)
        async with self._database.snapshot() as session:
            rows = await repository.compartment(
                session, caller.organisation_id, patient_id, members, since, count + 1, offset
            )
        page = [
            (row.resource_type, row.fhir_id, row.content.encode())
            for row in rows[:count]
            if row.content
        ]
        return page, len(rows) > count

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
