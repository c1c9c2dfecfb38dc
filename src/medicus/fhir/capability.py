"""The CapabilityStatement at /fhir/metadata: it states what this server does today, no more."""

from __future__ import annotations

import datetime as dt
from typing import Any

from medicus.fhir.definitions import resource_types
from medicus.fhir.search.parameters import INDEXED_TYPES, parameters_of

INTERACTIONS = (
    "search-type",
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "history-type",
    "create",
)


def _search_params(resource_type: str) -> list[dict[str, str]]:
    """The parameters this server really searches on (others answer 400)."""
    return [
        {"name": code, "type": parameter.type}
        for code, parameter in sorted(parameters_of(resource_type).items())
        if parameter.type in INDEXED_TYPES or code in ("_id", "_lastUpdated")
    ]


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
                "interaction": [{"code": "history-system"}],
                "resource": [
                    {
                        "type": resource_type,
                        "interaction": [{"code": code} for code in INTERACTIONS],
                        "versioning": "versioned-update",
                        "readHistory": True,
                        "updateCreate": True,
                        "searchParam": _search_params(resource_type),
                    }
                    for resource_type in sorted(resource_types())
                ],
            }
        ],
    }
