"""FHIR operations: `$validate` (the checks of a write, without storing), `$meta`,
`Patient/$everything` (the patient's compartment and what it refers to, of what the caller
may read) and `Observation/$lastn` (the newest Observations of each patient and code)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import orjson

from medicus.access.policy import Interaction
from medicus.audit.service import Outcome
from medicus.core.db import Database
from medicus.core.errors import ApiError
from medicus.fhir import search_repository
from medicus.fhir.definitions import patient_compartment, resource_types
from medicus.fhir.resources import StoredVersion, check_id, check_resource, check_type
from medicus.fhir.search.match import invalid
from medicus.fhir.search.request import SearchRequest, is_result_parameter
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
        await self._fhir.record(
            await self._fhir.allowed(caller, Interaction.SEARCH, resource_type, "$validate")
        )
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
    ) -> tuple[list[tuple[str, str, bytes]], bool, list[tuple[str, str, bytes]]]:
        """One page of the patient and their compartment (type, id, content), limited to
        `types` (`_type`) and `since`, whether more follow, and the resources that page
        refers to outside the compartment (the Practitioner of an Encounter, a Medication,
        the Organization), with the same limits; only what the caller's organisation holds
        and the caller's scopes may read."""
        check_id(patient_id)
        await self._fhir.read(caller, "Patient", patient_id)
        event = await self._fhir.allowed(caller, Interaction.EVERYTHING, "Patient", patient_id)
        members = self._members(caller, types)
        targets = self._targets(caller, types)
        viewpoint = self._fhir.viewpoint(caller)
        async with self._database.reading() as reading:
            rows = await search_repository.compartment(
                reading,
                viewpoint,
                patient_id,
                members,
                since,
                count + 1,
                offset,
            )
            found = await search_repository.referenced(reading, rows[:count], viewpoint, targets)
        referenced = [row for row in found if since is None or row.last_updated >= since]
        await self._fhir.record(
            event.about(patient_id, *(row.patient_id for row in rows[:count])),
            *self._fhir.included_events(caller, referenced, "$everything"),
        )
        return _entries(rows[:count]), len(rows) > count, _entries(referenced)

    async def lastn(
        self, caller: Principal, parameters: Sequence[tuple[str, str]]
    ) -> list[tuple[str, str, bytes]]:
        """`Observation/$lastn`: of the Observations that the search `parameters` find among
        what the caller may see, the `max` (default 1) newest of each patient and code,
        newest first (type, id, content). Asked of `access` and audited like a search: one entry
        naming the Patient records of the Observations returned."""
        event = await self._fhir.allowed(caller, Interaction.SEARCH, "Observation", "$lastn")
        event = event.noting(query=urlencode(parameters))
        readable = self._fhir.readable_types(caller, resource_types())
        try:
            newest, searched = _lastn_parameters(parameters)
            request = SearchRequest(
                "Observation",
                searched,
                readable=None if readable == resource_types() else readable,
            )
            pairs = await self._fhir.pair_rows.complete()
            async with self._database.reading() as reading:
                rows = await search_repository.lastn(
                    reading, request, self._fhir.viewpoint(caller), newest, MAX_LASTN + 1, pairs
                )
            if len(rows) > MAX_LASTN:
                raise invalid(
                    f"$lastn finds more than {MAX_LASTN} Observations; narrow it (code, date).",
                    "$lastn",
                )
        except ApiError:
            await self._fhir.record(replace(event, outcome=Outcome.FAILED))
            raise
        await self._fhir.record(event.about(*(row.patient_id for row in rows)))
        return _entries(rows)

    def _members(self, caller: Principal, wanted: str | None) -> dict[str, tuple[str, ...]]:
        """Compartment types the caller's scopes may read (and `_type` asks for)."""
        members = patient_compartment()
        readable = self._fhir.readable_types(caller, frozenset(members)) & _asked(wanted)
        return {kind: params for kind, params in members.items() if kind in readable}

    def _targets(self, caller: Principal, wanted: str | None) -> frozenset[str]:
        """Types of referenced resources the caller may read (and `_type` asks for), outside
        the compartment's types: a member the page refers to (the Patient, an Encounter) is
        a match on its own page, so it would come twice."""
        outside = resource_types() - frozenset(patient_compartment())
        return self._fhir.readable_types(caller, outside) & _asked(wanted)


MAX_LASTN = 1000
"""Observations one `$lastn` answers at most (its answer has no pages): more are a 400."""
MAX_NEWEST = 100
"""The largest `max` of `$lastn`."""
_SUBJECTS = frozenset({"patient", "subject"})
_CODES = ("category", "code", "combo-code")
_LASTN_RESULT = frozenset({"_format", "_pretty"})


def _lastn_parameters(
    parameters: Sequence[tuple[str, str]],
) -> tuple[int, list[tuple[str, str]]]:
    """`max` and the search parameters of `$lastn`. R4 requires a subject (`patient` or
    `subject`) and a category or a parameter on the code (`code`, `code-value-quantity`,
    `combo-code`…); the answer is every group at once, so paging and sorting do not apply."""
    wanted = [value for name, value in parameters if name == "max"]
    if len(wanted) > 1 or (wanted and not (wanted[0].isascii() and wanted[0].isdigit())):
        raise invalid(f"max must be a whole number from 1 to {MAX_NEWEST}.", "max")
    newest = int(wanted[0]) if wanted else 1
    if not 1 <= newest <= MAX_NEWEST:
        raise invalid(f"max must be a whole number from 1 to {MAX_NEWEST}.", "max")
    searched = [(name, value) for name, value in parameters if name != "max"]
    codes = [name.split(":")[0].split(".")[0] for name, _ in searched]
    if not _SUBJECTS & set(codes):
        raise invalid("$lastn needs the patient or subject parameter.", "$lastn")
    if not any(code.startswith(_CODES) for code in codes):
        raise invalid("$lastn needs a category or a code parameter.", "$lastn")
    for name, _ in searched:
        if is_result_parameter(name) and name not in _LASTN_RESULT:
            raise invalid(f"{name} does not apply to $lastn, which answers in one Bundle.", name)
    return newest, searched


def unsupported(resource_type: str, operation: str) -> ApiError:
    """The answer to an operation medicus does not have (on this type or this way)."""
    return ApiError(
        501,
        f"operation {operation} is not supported on {resource_type} (medicus has "
        "POST [type]/$validate, GET [type]/[id]/$meta, GET Patient/[id]/$everything and "
        "GET Observation/$lastn).",
        issue_type="not-supported",
    )


def _asked(wanted: str | None) -> frozenset[str]:
    """The types `_type` names (all types without it); an unknown one is a 400."""
    if not wanted:
        return resource_types()
    asked = frozenset(kind.strip() for kind in wanted.split(","))
    for kind in asked:
        check_type(kind)
    return asked


def _entries(rows: Sequence[Any]) -> list[tuple[str, str, bytes]]:
    return [(row.resource_type, row.fhir_id, row.content.encode()) for row in rows if row.content]
