"""The CapabilityStatement at /fhir/metadata: it states what this server does today, no more."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from medicus.audit.search import MAX_PAGE
from medicus.fhir.definitions import resource_types
from medicus.fhir.search.geo import DEFAULT_DISTANCE
from medicus.fhir.search.parameters import parameters_of

INTERACTIONS = (
    "search-type",
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "patch",
)


_CHAINING = (
    "Chaining ({code}.param, {code}:Type.param, several levels) and _include/_revinclude "
    "are supported; chains only look into the caller's organisation."
)
_RESULT_PARAMETERS = (
    (
        "_sort",
        "special",
        "Several keys, '-' descending: string, token, uri, reference, "
        "number, quantity and date parameters, _id, _lastUpdated.",
    ),
    ("_total", "special", "none, estimate (counts up to 10000), accurate."),
    ("_count", "number", "1-1000, default 50; next and previous links carry cursors."),
    ("_summary", "special", "count returns only the total."),
    ("_has", "special", "Reverse chaining: _has:Type:reference:parameter, nested."),
    (
        "_list",
        "special",
        "_list=id: the resources List/id refers to in entry.item, if that List is the "
        "caller's organisation's. Functional lists ($current-allergies...) are not supported.",
    ),
)
_NEAR = (
    "latitude|longitude|distance|units (WGS84 degrees; distance along the surface, "
    "great-circle): units a UCUM length (km if none: m, km, [mi_i], [nmi_i]...); without a "
    f"distance {DEFAULT_DISTANCE / 1000:g} km. _sort=near orders by distance from one point."
)


def _search_params(resource_type: str) -> list[dict[str, str]]:
    """The parameters this server really searches on (others answer 400)."""
    params = []
    for code, parameter in sorted(parameters_of(resource_type).items()):
        if not parameter.searchable:
            continue
        entry = {"name": code, "type": parameter.type}
        if parameter.type == "reference":
            entry["documentation"] = _CHAINING.format(code=code)
        if parameter.type == "special":
            entry["documentation"] = _NEAR
        params.append(entry)
    return params + [
        {"name": name, "type": kind, "documentation": text}
        for name, kind, text in _RESULT_PARAMETERS
    ]


def _includes(resource_type: str) -> list[str]:
    references = [
        code
        for code, parameter in parameters_of(resource_type).items()
        if parameter.type == "reference" and parameter.searchable
    ]
    return ["*"] + [f"{resource_type}:{code}" for code in sorted(references)]


@functools.cache
def _reverse_includes() -> dict[str, list[str]]:
    """For each type, `Source:param` of every reference parameter that may refer to it."""
    found: dict[str, list[str]] = {}
    for source in sorted(resource_types()):
        for code, parameter in sorted(parameters_of(source).items()):
            if parameter.type == "reference" and parameter.searchable:
                for target in parameter.targets or sorted(resource_types()):
                    found.setdefault(target, []).append(f"{source}:{code}")
    return found


_AUDIT_EVENT = {
    "type": "AuditEvent",
    "documentation": "The audit trail (IHE BALP style), read-only: platform admins read all "
    "of it, organisation admins what their staff did and what was done to their Patient "
    "records. Newest first; entries appear once sealed (within a second).",
    "interaction": [{"code": "read"}, {"code": "search-type"}],
    "searchParam": [
        {"name": "patient", "type": "reference", "documentation": "Patient/id, commas: any"},
        {"name": "agent", "type": "reference", "documentation": "Practitioner/id or Device/id"},
        {"name": "date", "type": "date", "documentation": "eq, ge, gt, le, lt; twice: a range"},
        {"name": "outcome", "type": "token", "documentation": "0 success, 4 refused, 8 failed"},
        {"name": "subtype", "type": "token", "documentation": "read, search... or fhir.read"},
        {"name": "entity", "type": "reference", "documentation": "the target, Type/id"},
        {"name": "_count", "type": "number", "documentation": f"1-{MAX_PAGE}"},
    ],
}


_BINARY = {
    "documentation": "The bytes are kept in storage (encrypted), not in the resource: POST "
    "them in their own Content-Type (X-Security-Context names the securityContext) or a "
    "Binary with data; a read answers the bytes unless FHIR is asked for (Accept or "
    "_format), then the resource with data up to 1 MiB. Read as its securityContext is "
    "read when the Binary's holder holds that resource. Replaced with PUT; no patch, no "
    "conditional update or delete.",
    "conditionalUpdate": False,
    "conditionalDelete": "not-supported",
}
"""What differs for Binary (`fhir.stored_bytes`)."""


def _resource(resource_type: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": resource_type,
        "interaction": [{"code": code} for code in INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "full-support",
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "searchParam": _search_params(resource_type),
        "searchInclude": _includes(resource_type),
        "searchRevInclude": _reverse_includes().get(resource_type, []),
    }
    if resource_type == "Binary":
        entry.update(_BINARY)
        entry["interaction"] = [{"code": code} for code in INTERACTIONS if code != "patch"]
    return entry


def capability_statement(fhir_base_url: str, issuer: str, version: str) -> dict[str, Any]:
    smart = {
        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
        "extension": [
            {"url": "authorize", "valueUri": f"{issuer}/oauth/authorize"},
            {"url": "token", "valueUri": f"{issuer}/oauth/token"},
            {"url": "revoke", "valueUri": f"{issuer}/oauth/revoke"},
            {"url": "introspect", "valueUri": f"{issuer}/oauth/introspect"},
        ],
    }
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": dt.date.today().isoformat(),
        "kind": "instance",
        "software": {"name": "medicus", "version": version},
        "implementation": {"description": "medicus FHIR hub", "url": fhir_base_url},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        # JSON Patch, and FHIRPath Patch (a Parameters resource in FHIR JSON)
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "extension": [smart],
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                },
                "interaction": [
                    {"code": code} for code in ("transaction", "batch", "history-system")
                ],
                "operation": [
                    {
                        "name": "everything",
                        "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                    },
                    {
                        "name": "validate",
                        "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
                    },
                    {
                        "name": "meta",
                        "definition": "http://hl7.org/fhir/OperationDefinition/Resource-meta",
                    },
                    {
                        "name": "lastn",
                        "definition": "http://hl7.org/fhir/OperationDefinition/Observation-lastn",
                    },
                ],
                "resource": [
                    _resource(resource_type)
                    for resource_type in sorted(resource_types() - {"AuditEvent"})
                ]
                + [_AUDIT_EVENT],
            }
        ],
    }
