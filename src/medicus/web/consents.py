"""A patient's sharing consent in the portal: what is on record for the person's records the
user may see, and recording or withdrawing it as the user. Each is a FHIR `Consent` written
through the FHIR hub (`access` keeps shares from it, docs/access.md), so the portal's forms
and an API client write the same thing: scope `patient-privacy`, category LOINC 59284-0, a
base provision `permit` (with the signed form as its source) or `deny` (an objection, which
needs none), covering every participant. Withdrawing sets the consent's status to
`inactive`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson

from medicus.access.sharing import PRIVACY_SCOPE
from medicus.core.errors import ApiError
from medicus.fhir.search.request import SearchRequest
from medicus.fhir.service import FhirService
from medicus.web.chart import Holder
from medicus.web.users import PortalUser

SHARING_CATEGORY = {"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}
SIGNED_FORM_TITLE = "Einwilligungserklärung, unterschrieben (Papierakte)"
DECISIONS = ("permit", "deny")


@dataclass(frozen=True)
class ConsentLine:
    id: str
    patient_id: str
    decision: str
    status: str
    recorded: str
    holder: Holder

    @property
    def in_force(self) -> bool:
        return self.status == "active"


def sharing_consent(patient_id: str, decision: str, now: dt.datetime) -> dict[str, Any]:
    """The Consent the form records: a permit names the signed form as its source."""
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
        consent["sourceAttachment"] = {"title": SIGNED_FORM_TITLE}
    return consent


class Consents:
    def __init__(self, fhir: FhirService) -> None:
        self._fhir = fhir

    async def on_record(self, user: PortalUser, holders: dict[str, Holder]) -> list[ConsentLine]:
        """The sharing consents about the records `holders` names that the user may see,
        newest first."""
        if not holders:
            return []
        patients = ",".join(f"Patient/{record}" for record in holders)
        system, code = PRIVACY_SCOPE
        request = SearchRequest("Consent", [("patient", patients), ("scope", f"{system}|{code}")])
        found = await self._fhir.search(user.principal, request, 100, 0, False)
        lines = [_line(orjson.loads(content), holders) for _, content in found.resources]
        return sorted(lines, key=lambda line: line.recorded, reverse=True)

    async def record(
        self, user: PortalUser, patient_id: str, decision: str, now: dt.datetime
    ) -> None:
        """Record the patient's consent (`permit`) or objection (`deny`) as the user."""
        if decision not in DECISIONS:
            raise ApiError(400, "A consent is a permit or an objection.")
        consent = sharing_consent(patient_id, decision, now)
        await self._fhir.write(
            lambda session: self._fhir.writer.create(session, user.principal, "Consent", consent)
        )

    async def withdraw(self, user: PortalUser, consent_id: str) -> None:
        """Set a consent the user's organisation holds to `inactive` (a 403 for one held
        elsewhere, a 404 for one the user may not see)."""
        stored = await self._fhir.read(user.principal, "Consent", consent_id)
        consent = orjson.loads(stored.content or b"{}")
        consent["status"] = "inactive"
        await self._fhir.write(
            lambda session: self._fhir.writer.update(
                session, user.principal, "Consent", consent_id, consent, stored.version
            )
        )


def _line(resource: dict[str, Any], holders: dict[str, Holder]) -> ConsentLine:
    record = str((resource.get("patient") or {}).get("reference", "")).rpartition("/")[2]
    return ConsentLine(
        id=str(resource.get("id", "")),
        patient_id=record,
        decision=str((resource.get("provision") or {}).get("type", "")),
        status=str(resource.get("status", "")),
        recorded=str(resource.get("dateTime", "")),
        holder=holders.get(record, next(iter(holders.values()))),
    )
