"""A patient's consents in the portal: what is on record for the person's records the user
may see, and recording or withdrawing them. Each is a FHIR `Consent` written through the FHIR
hub (`access` keeps shares and research terms from it, docs/access.md), so the portal's forms
and an API client write the same thing:

- the **sharing consent**: scope `patient-privacy`, category LOINC 59284-0, a base provision
  `permit` (with its source: the signed form, or the patient's own declaration in the portal)
  or `deny` (an objection, which needs none), covering every participant;
- the **research consent** as the Medical Informatics Initiative's Broad Consent (policy
  `urn:oid:2.16.840.1.113883.3.1937.777.24.2.1790`, v1.6.d): a base provision `deny` with a
  nested `permit` or `deny` per module purpose (`research.PURPOSES`); collecting data is
  consented for 5 years, keeping and using it for 30, as the MII's form says.

Withdrawing sets a consent's status to `inactive`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import orjson

from medicus.access.research import PURPOSES
from medicus.access.sharing import PRIVACY_SCOPE
from medicus.core.errors import ApiError
from medicus.core.ids import is_fhir_id
from medicus.fhir.search.request import SearchRequest
from medicus.fhir.service import FhirService
from medicus.web.chart import Holder
from medicus.web.users import PortalUser

SHARING_CATEGORY = {"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}
SIGNED_FORM_TITLE = "Einwilligungserklärung, unterschrieben (Papierakte)"
PORTAL_DECLARATION_TITLE = "Im Patientenportal selbst erklärt"
DECISIONS = ("permit", "deny")
RESEARCH_SCOPE = ("http://terminology.hl7.org/CodeSystem/consentscope", "research")
BROAD_CONSENT_POLICY = "urn:oid:2.16.840.1.113883.3.1937.777.24.2.1790"
RESEARCH_CATEGORY = [
    {"coding": [{"system": "http://loinc.org", "code": "57016-8"}]},
    {
        "coding": [
            {
                "system": "https://www.medizininformatik-initiative.de/fhir/modul-consent/"
                "CodeSystem/mii-cs-consent-consent_category",
                "code": "2.16.840.1.113883.3.1937.777.24.2.184",
            }
        ]
    },
]
_OID = "2.16.840.1.113883.3.1937.777.24.5.3."
RESEARCH_MODULES: dict[str, tuple[tuple[str, str, int], ...]] = {
    "patient-data": (
        (_OID + "6", "MDAT erheben", 5),
        (_OID + "7", "MDAT speichern, verarbeiten", 30),
        (_OID + "8", "MDAT wissenschaftlich nutzen EU DSGVO NIVEAU", 30),
    ),
    "biomaterial": (
        (_OID + "19", "BIOMAT erheben", 5),
        (_OID + "20", "BIOMAT lagern, verarbeiten", 30),
        (_OID + "22", "BIOMAT wissenschaftlich nutzen EU DSGVO NIVEAU", 30),
    ),
}
"""The Broad Consent's modules the forms offer: each module's purposes (code, MII display,
years it lasts)."""


@dataclass(frozen=True)
class ConsentLine:
    id: str
    patient_id: str
    decision: str
    status: str
    recorded: str
    holder: Holder
    modules: dict[str, str] = field(default_factory=dict)
    """A research consent's decision per module (`RESEARCH_MODULES`)."""

    @property
    def in_force(self) -> bool:
        return self.status == "active"


def _years_later(moment: dt.datetime, years: int) -> str:
    return moment.replace(year=moment.year + years, month=1, day=1).date().isoformat()


def sharing_consent(
    patient_id: str, decision: str, now: dt.datetime, source: str = SIGNED_FORM_TITLE
) -> dict[str, Any]:
    """The sharing Consent a form records: a permit names its `source`."""
    system, code = PRIVACY_SCOPE
    consent: dict[str, Any] = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": system, "code": code}]},
        "category": [SHARING_CATEGORY],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": now.isoformat(),
        "provision": {"type": decision},
    }
    if decision == "permit":
        consent["sourceAttachment"] = {"title": source, "creation": now.isoformat()}
    return consent


def research_consent(
    patient_id: str, modules: dict[str, str], now: dt.datetime, source: str = SIGNED_FORM_TITLE
) -> dict[str, Any]:
    """The MII Broad Consent a form records: per module of `modules` (its name: `permit` or
    `deny`) a provision for each of its purposes."""
    start = now.date().isoformat()
    provisions = [
        {
            "type": modules[module],
            "period": {"start": start, "end": _years_later(now, years)},
            "code": [{"coding": [{"system": PURPOSES, "code": code, "display": display}]}],
        }
        for module, purposes in RESEARCH_MODULES.items()
        if module in modules
        for code, display, years in purposes
    ]
    system, code = RESEARCH_SCOPE
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": system, "code": code}]},
        "category": RESEARCH_CATEGORY,
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": now.isoformat(),
        "policy": [{"uri": BROAD_CONSENT_POLICY}],
        "sourceAttachment": {"title": source, "creation": now.isoformat()},
        "provision": {
            "type": "deny",
            "period": {"start": start, "end": _years_later(now, 30)},
            "provision": provisions,
        },
    }


class Consents:
    def __init__(self, fhir: FhirService) -> None:
        self._fhir = fhir

    async def on_record(self, user: PortalUser, holders: dict[str, Holder]) -> list[ConsentLine]:
        """The sharing consents about the records `holders` names that the user may see,
        newest first."""
        return await self._on_record(user, holders, PRIVACY_SCOPE)

    async def research_on_record(
        self, user: PortalUser, holders: dict[str, Holder]
    ) -> list[ConsentLine]:
        """The research consents about the records `holders` names that the user may see,
        newest first."""
        return await self._on_record(user, holders, RESEARCH_SCOPE)

    async def _on_record(
        self, user: PortalUser, holders: dict[str, Holder], scope: tuple[str, str]
    ) -> list[ConsentLine]:
        if not holders:
            return []
        patients = ",".join(f"Patient/{record}" for record in holders)
        system, code = scope
        request = SearchRequest("Consent", [("patient", patients), ("scope", f"{system}|{code}")])
        found = await self._fhir.search(user.principal, request, 100, 0, False)
        lines = [_line(orjson.loads(content), holders) for _, content in found.resources]
        return sorted(lines, key=lambda line: line.recorded, reverse=True)

    async def record(
        self,
        user: PortalUser,
        patient_id: str,
        decision: str,
        now: dt.datetime,
        source: str = SIGNED_FORM_TITLE,
    ) -> None:
        """Record the patient's sharing consent (`permit`) or objection (`deny`) as the user."""
        if decision not in DECISIONS:
            raise ApiError(400, "A consent is a permit or an objection.")
        await self._create(user, sharing_consent(patient_id, decision, now, source))

    async def record_research(
        self,
        user: PortalUser,
        patient_id: str,
        modules: dict[str, str],
        now: dt.datetime,
        source: str = SIGNED_FORM_TITLE,
    ) -> None:
        """Record the patient's Broad Consent: per module, `permit` or `deny`."""
        if not modules or not set(modules) <= set(RESEARCH_MODULES):
            raise ApiError(400, "A research consent decides on the modules of the form.")
        if not set(modules.values()) <= set(DECISIONS):
            raise ApiError(400, "Each module is permitted or denied.")
        await self._create(user, research_consent(patient_id, modules, now, source))

    async def _create(self, user: PortalUser, consent: dict[str, Any]) -> None:
        await self._fhir.write(
            lambda session: self._fhir.writer.create(session, user.principal, "Consent", consent)
        )

    async def _is_about(self, user: PortalUser, consent_id: str, patient_id: str) -> bool:
        """Whether Consent `consent_id` is about Patient record `patient_id`: asked by a
        search narrowed to that record, so that another person's consent is never read (nor
        its reading recorded against that person)."""
        if not is_fhir_id(consent_id):
            return False
        request = SearchRequest(
            "Consent", [("_id", consent_id), ("patient", f"Patient/{patient_id}")]
        )
        found = await self._fhir.search(user.principal, request, 1, 0, False)
        return bool(found.resources)

    async def withdraw(
        self, user: PortalUser, consent_id: str, patient_id: str | None = None
    ) -> None:
        """Set a consent the user's organisation holds to `inactive` (a 403 for one held
        elsewhere, a 404 for one the user may not see, or that is not about `patient_id`
        where that is given)."""
        if patient_id is not None and not await self._is_about(user, consent_id, patient_id):
            raise ApiError(404, f"Consent/{consent_id} is not known here.")
        stored = await self._fhir.read(user.principal, "Consent", consent_id)
        consent = orjson.loads(stored.content or b"{}")
        consent["status"] = "inactive"
        await self._fhir.write(
            lambda session: self._fhir.writer.update(
                session, user.principal, "Consent", consent_id, consent, stored.version
            )
        )


def _patient_of(resource: dict[str, Any]) -> str:
    return str((resource.get("patient") or {}).get("reference", "")).rpartition("/")[2]


def _modules(provision: dict[str, Any]) -> dict[str, str]:
    """A Broad Consent's decision per module: the decision on the module's first purpose
    (what another client wrote may be malformed: it is then left out)."""
    decided = {}
    nested_provisions = provision.get("provision")
    for nested in nested_provisions if isinstance(nested_provisions, list) else []:
        if not isinstance(nested, dict):
            continue
        codes = {
            coding.get("code")
            for concept in nested.get("code") or []
            if isinstance(concept, dict)
            for coding in concept.get("coding") or []
            if isinstance(coding, dict)
        }
        for module, purposes in RESEARCH_MODULES.items():
            if purposes[0][0] in codes:
                decided[module] = str(nested.get("type", ""))
    return decided


def _line(resource: dict[str, Any], holders: dict[str, Holder]) -> ConsentLine:
    record = _patient_of(resource)
    provision = resource.get("provision") or {}
    return ConsentLine(
        id=str(resource.get("id", "")),
        patient_id=record,
        decision=str(provision.get("type", "")),
        status=str(resource.get("status", "")),
        recorded=str(resource.get("dateTime", "")),
        holder=holders.get(record, next(iter(holders.values()))),
        modules=_modules(provision) if isinstance(provision, dict) else {},
    )
