"""Research consent: what a patient allowed researchers to do with the data of a record, as the
Medical Informatics Initiative's Broad Consent states it. Research never uses the treatment
rules (own organisation, sharing, break-glass): the `research` capability puts
`policy.research_permitted` into the query of each export or count, decides with
`AccessPolicy.decide(..., purpose=Purpose.RESEARCH)`, and works on pseudonyms.

A Broad Consent is a FHIR Consent with scope `research` (or the MII's policy), status
`active`, a base provision `deny` and nested provisions that permit or deny single purposes,
each coded in `urn:oid:2.16.840.1.113883.3.1937.777.24.5.3` (such as `…5.3.8`, "use medical
data for research at EU GDPR level") and each with its own period. Choices where the MII is
silent or a platform needs more:

- a research consent covers the data of the record it is about, held by the organisation that
  recorded it (a Broad Consent is given to one site; it releases nothing another hospital
  holds about the same person);
- a `deny` of a purpose, in any active research consent about the record (a withdrawal),
  overrides every permit of that purpose while it lasts;
- kept in the writer's transaction: a withdrawal takes effect with the next request.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access import repository
from medicus.access.models import ResearchTerm
from medicus.core.dates import date_range

PURPOSES = "urn:oid:2.16.840.1.113883.3.1937.777.24.5.3"
"""The MII's code system of consent purposes (`Consent.provision.provision.code`)."""
MEDICAL_DATA_FOR_RESEARCH = "2.16.840.1.113883.3.1937.777.24.5.3.8"
"""MDAT wissenschaftlich nutzen (EU-DSGVO-Niveau): medical data may be used for research."""
_RESEARCH_SCOPE = ("http://terminology.hl7.org/CodeSystem/consentscope", "research")
_MII_POLICIES = "urn:oid:2.16.840.1.113883.3.1937.777.24.2."


def research_terms(consent: dict[str, Any]) -> list[ResearchTerm]:
    """What an active research consent permits and denies, purpose by purpose; nothing for
    any other Consent, and nothing from provisions it cannot read (fail closed)."""
    if consent.get("status") != "active" or not _is_research(consent):
        return []
    base = consent.get("provision")
    if not isinstance(base, dict):
        return []
    terms = []
    for provision in _list(base.get("provision")):
        if not isinstance(provision, dict) or provision.get("type") not in ("permit", "deny"):
            continue
        period = provision.get("period")
        period = period if isinstance(period, dict) else {}
        start = _moment(period.get("start"), 0)
        end = _moment(period.get("end"), 1)
        for purpose in _purposes(provision.get("code")):
            terms.append(ResearchTerm(purpose, str(provision["type"]), start, end))
    return terms


def _is_research(consent: dict[str, Any]) -> bool:
    scope = consent.get("scope")
    codings = _list(scope.get("coding")) if isinstance(scope, dict) else []
    scoped = any(
        isinstance(c, dict) and (c.get("system"), c.get("code")) == _RESEARCH_SCOPE for c in codings
    )
    policies = [p.get("uri") for p in _list(consent.get("policy")) if isinstance(p, dict)]
    return scoped or any(isinstance(u, str) and u.startswith(_MII_POLICIES) for u in policies)


def _purposes(codes: Any) -> set[str]:
    """The MII purposes a provision's codes name (`2.16.840.1.113883.3.1937.777.24.5.3.8`)."""
    found = set()
    for concept in _list(codes):
        for coding in _list(concept.get("coding")) if isinstance(concept, dict) else []:
            if isinstance(coding, dict) and coding.get("system") == PURPOSES:
                code = coding.get("code")
                if isinstance(code, str) and 0 < len(code) <= 64:
                    found.add(code)
    return found


def _moment(value: Any, end: int) -> dt.datetime | None:
    """The start (`end` 0) or end (1) of a FHIR dateTime's range; None if there is none."""
    found = date_range(value) if isinstance(value, str) else None
    return None if found is None else found[end]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


async def consent_written(
    session: AsyncSession,
    consent_id: str,
    organisation_id: str,
    patient_id: str | None,
    consent: dict[str, Any] | None,
    created: bool,
) -> None:
    """Keep what a written Consent (None: deleted) says about research, in the writer's
    transaction. A new Consent that is no research consent costs no statement."""
    terms = research_terms(consent) if consent is not None and patient_id is not None else []
    if created and not terms:
        return
    await repository.put_research_terms(
        session, consent_id, organisation_id, patient_id, terms, replacing=not created
    )
