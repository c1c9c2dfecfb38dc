"""Sealed audit entries as FHIR R4 `AuditEvent` resources, in the style of IHE Basic Audit Log
Patterns (BALP): the agent who acted (and for which organisation, from which address), the
data it concerned (the target, and each Patient record as a patient entity), the purpose of
use, and the outcome with its reason.

The trail's entries are the record; these resources are a view of them, computed on reading
(id = the entry's place in the chain), never stored or written through the FHIR hub.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import RowMapping

from medicus.audit.search import ACTION_SYSTEM, OUTCOME_CODES
from medicus.audit.service import Outcome, patients_of

_FHIR_INTERACTION_ACTIONS = {
    "create": "C",
    "read": "R",
    "vread": "R",
    "history": "R",
    "everything": "R",
    "search": "E",
    "update": "U",
    "delete": "D",
}
_PURPOSES = {
    "own-organisation": ("TREAT", "treatment"),
    "consent-and-treatment": ("TREAT", "treatment"),
    "break-glass": ("ETREAT", "Emergency Treatment"),
    "research-consent": ("HRESCH", "healthcare research"),
}
CLIENT_DETAIL = "client"
"""The detail of an entry that names the app (OAuth client) through which the actor acted:
an agent of its own in the AuditEvent (BALP: the application)."""
NOT_KNOWN = "not-known"
"""The reason of a refusal because the caller has nothing by the id it named: none exists,
or none it may see. The trail shows another organisation's refusal (`other-organisation`)
as this to that organisation (`access.trail_reader`), so that its view tells no more than the
answer did."""
DECISIONS = frozenset(
    {"own-organisation", "consent-and-treatment", "break-glass", "other-organisation", "scope"}
    | {"held-elsewhere", "research-consent", "no-research-consent", NOT_KNOWN}
)
"""The reasons of access decisions, as entries of FHIR interactions carry them (`reason`);
elsewhere a `reason` is what a person stated (a break-glass opening's)."""
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
CLIENT_SYSTEM = "urn:medicus:oauth-client"
"""The identifier system of the platform's OAuth clients (apps, service accounts)."""
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"


def as_audit_event(entry: Mapping[str, Any] | RowMapping) -> dict[str, Any]:
    """The FHIR AuditEvent of a sealed entry."""
    action: str = entry["action"]
    detail: dict[str, Any] = orjson.loads(entry["detail"] or "{}")
    interaction = action.removeprefix("fhir.") if action.startswith("fhir.") else None
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(entry["seq"]),
        "type": _type(action, interaction),
        "subtype": _subtypes(action, interaction),
        "action": _FHIR_INTERACTION_ACTIONS.get(interaction or "", "E"),
        "recorded": entry["occurred_at"].isoformat(),
        "outcome": OUTCOME_CODES[Outcome(entry["outcome"])],
        "agent": _agents(entry, detail.get(CLIENT_DETAIL)),
        "source": {
            "site": "medicus",
            "observer": {"display": "medicus"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
        "entity": _entities(entry, detail),
    }
    decision = detail.get("reason") if detail.get("reason") in DECISIONS else None
    if decision is not None and entry["outcome"] != Outcome.SUCCESS:
        event["outcomeDesc"] = decision
    purpose = _PURPOSES.get("break-glass" if action == "access.break-glass" else decision or "")
    if purpose is not None and entry["outcome"] == Outcome.SUCCESS:
        event["purposeOfEvent"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                        "code": purpose[0],
                        "display": purpose[1],
                    }
                ]
            }
        ]
    return event


def who(actor: str) -> dict[str, Any]:
    """The reference (users are Practitioners) or identifier naming a trail actor."""
    kind, _, subject = actor.partition(":")
    if kind == "user":
        return {"reference": f"Practitioner/{subject}"}
    if kind == "service":
        return {"reference": f"Device/{subject}", "display": "service account"}
    return {"identifier": {"system": "urn:medicus:actor", "value": actor}}


def _type(action: str, interaction: str | None) -> dict[str, str]:
    if interaction is not None:
        return {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        }
    if action.startswith("access."):
        return {"system": _DCM, "code": "110110", "display": "Patient Record"}
    if action.startswith(("iam.login", "iam.logout", "iam.token")):
        return {"system": _DCM, "code": "110114", "display": "User Authentication"}
    return {"system": _DCM, "code": "110100", "display": "Application Activity"}


def _subtypes(action: str, interaction: str | None) -> list[dict[str, str]]:
    found = [{"system": ACTION_SYSTEM, "code": action}]
    if interaction in _FHIR_INTERACTION_ACTIONS and interaction != "everything":
        found.append({"system": "http://hl7.org/fhir/restful-interaction", "code": interaction})
    return found


def _agents(entry: Mapping[str, Any] | RowMapping, client: Any) -> list[dict[str, Any]]:
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "IRCP",
                    "display": "information recipient",
                }
            ]
        },
        "who": who(entry["actor"]),
        "requestor": True,
    }
    if entry["client_address"]:
        agent["network"] = {"address": entry["client_address"], "type": "2"}
    agents = [agent]
    if entry["organisation"]:
        agents.append(
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass",
                            "code": "PROV",
                            "display": "healthcare provider",
                        }
                    ]
                },
                "who": {"reference": f"Organization/{entry['organisation']}"},
                "requestor": False,
            }
        )
    if isinstance(client, str):
        agents.append(
            {
                "type": {"coding": [{"system": _DCM, "code": "110150", "display": "Application"}]},
                "who": {"identifier": {"system": CLIENT_SYSTEM, "value": client}},
                "requestor": False,
            }
        )
    return agents


def _entities(
    entry: Mapping[str, Any] | RowMapping, detail: dict[str, Any]
) -> list[dict[str, Any]]:
    """The target (a resource, a type searched, or what else the action touched), with the
    entry's other details, the request (its X-Request-Id), then each Patient record
    concerned."""
    target: str | None = entry["target"]
    entities: list[dict[str, Any]] = []
    if target:
        entity: dict[str, Any] = {
            "what": {"reference": target} if "/" in target else {"display": target},
            "type": {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"},
        }
        if "query" in detail:
            entity["role"] = {"system": _OBJECT_ROLE, "code": "24", "display": "Query"}
            entity["query"] = base64.b64encode(str(detail["query"]).encode()).decode()
        shown = {
            key: value
            for key, value in detail.items()
            if key not in ("query", CLIENT_DETAIL) and not (key == "reason" and value in DECISIONS)
        }
        if shown:
            entity["detail"] = [
                {"type": key, "valueString": str(value)} for key, value in sorted(shown.items())
            ]
        entities.append(entity)
    if entry["request_id"]:
        entities.append(
            {
                "what": {"identifier": {"value": entry["request_id"]}},
                "type": {
                    "system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType",
                    "code": "XrequestId",
                },
            }
        )
    entities += [
        {
            "what": {"reference": f"Patient/{patient}"},
            "type": {"system": _ENTITY_TYPE, "code": "1", "display": "Person"},
            "role": {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"},
        }
        for patient in patients_of(entry)
    ]
    return entities
