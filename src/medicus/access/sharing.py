"""Which organisations may see a person's data held by others: the sharing rule of the
data-protection concept. An organisation sees a person's data held elsewhere while

- a **sharing consent** of the person permits it: a FHIR Consent with scope `patient-privacy`,
  status `active`, base provision `permit`, covering the organisation (its `provision.actor`
  names `Organization/{organisation id}`) or every participant (no actor), within its
  `provision.period`; and no objection (a `deny` consent of that scope) is in force; and
- the organisation has a **treatment relation** with the person: an active Encounter
  (`arrived`, `triaged`, `in-progress`, `onleave`) or EpisodeOfCare (`active`) of its own for
  one of its own records of the person, or a **referral** to it: an active ServiceRequest
  (an order) that another organisation holds for its record of the person, naming this
  organisation as its one performing organisation.

A consent, treatment or referral counts only when the organisation holding it also holds the
Patient record it is about, so that nobody can grant themselves access with a resource about another
hospital's record. A nested `deny` provision excludes the organisations it names, or voids
the consent if it names none; nested `permit` provisions grant nothing more (fail closed).

The facts are kept in the writer's transaction, and the resulting shares are recomputed for
the person at once: a revoked consent or an objection takes effect on the next request."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access import repository
from medicus.access.models import ConsentTerms, Share
from medicus.access.repository import StoredConsent, StoredRecord
from medicus.core.dates import date_range

PRIVACY_SCOPE = ("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy")
ACTIVE_TREATMENT = {
    "Encounter": frozenset({"arrived", "triaged", "in-progress", "onleave"}),
    "EpisodeOfCare": frozenset({"active"}),
}
REFERRAL_INTENTS = frozenset(
    {"order", "original-order", "reflex-order", "filler-order", "instance-order"}
)
SHARING_TYPES = frozenset({"Consent", "ServiceRequest", *ACTIVE_TREATMENT})
"""The resource types whose writes change who may see a person's data (besides Patient)."""


def consent_terms(consent: dict[str, Any]) -> ConsentTerms | None:
    """What a Consent says about sharing; None if it is no active sharing consent or says
    nothing that can be relied on."""
    if consent.get("status") != "active" or not _has_privacy_scope(consent.get("scope")):
        return None
    provision = consent.get("provision")
    if not isinstance(provision, dict) or provision.get("type") not in ("permit", "deny"):
        return None
    decision = str(provision["type"])
    excluded: set[str] = set()
    for nested in _list(provision.get("provision")):
        if isinstance(nested, dict) and nested.get("type") == "deny" and decision == "permit":
            named = _organisations(nested.get("actor"))
            if not named:
                return None
            excluded |= named
    named = _organisations(provision.get("actor"))
    period = provision.get("period")
    period = period if isinstance(period, dict) else {}
    start = date_range(period["start"]) if isinstance(period.get("start"), str) else None
    end = date_range(period["end"]) if isinstance(period.get("end"), str) else None
    return ConsentTerms(
        decision,
        frozenset(named) if provision.get("actor") else None,
        frozenset(excluded),
        start[0] if start else None,
        end[1] if end else None,
    )


def is_treatment(resource_type: str, resource: dict[str, Any]) -> bool:
    """Whether an Encounter or EpisodeOfCare is a treatment relation now."""
    return resource.get("status") in ACTIVE_TREATMENT.get(resource_type, frozenset())


def referred_to(referral: dict[str, Any]) -> str | None:
    """The organisation an active ServiceRequest refers the patient to: its one performing
    `Organization/{id}`. None for anything else, and for several performing organisations
    (alternatives, of which none has taken the patient yet: fail closed)."""
    if referral.get("status") != "active" or referral.get("intent") not in REFERRAL_INTENTS:
        return None
    named = _organisations([{"reference": p} for p in _list(referral.get("performer"))])
    return next(iter(named)) if len(named) == 1 else None


def treating_organisation(resource_type: str, resource: dict[str, Any], holder: str) -> str | None:
    """The organisation that an Encounter, EpisodeOfCare (its holder) or referral (its
    performer) makes a treating one now; None if it makes none."""
    if resource_type == "ServiceRequest":
        return referred_to(resource)
    return holder if is_treatment(resource_type, resource) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _has_privacy_scope(scope: Any) -> bool:
    codings = _list(scope.get("coding")) if isinstance(scope, dict) else []
    return any(
        isinstance(c, dict) and (c.get("system"), c.get("code")) == PRIVACY_SCOPE for c in codings
    )


def _organisations(actors: Any) -> set[str]:
    """The platform organisations that provision actors name (`Organization/{id}`)."""
    named = set()
    for actor in _list(actors):
        reference = actor.get("reference") if isinstance(actor, dict) else None
        target = reference.get("reference") if isinstance(reference, dict) else None
        if isinstance(target, str) and target.startswith("Organization/"):
            named.add(target.removeprefix("Organization/"))
    return named


def shares(
    records: Collection[StoredRecord],
    consents: Iterable[StoredConsent],
    treating: Iterable[tuple[str, str, str]],
    now: dt.datetime,
) -> list[Share]:
    """The shares of one person: `records` are the person's records, `consents` and
    `treating` (holder, treating organisation, patient id) the facts about them."""
    holder = {record.patient_id: record.organisation_id for record in records}
    valid = [c for c in consents if holder.get(c.patient_id) == c.organisation_id]
    treating_organisations = {
        organisation
        for recorded_by, organisation, patient in treating
        if holder.get(patient) == recorded_by
    }
    objections = [c for c in valid if c.decision == "deny"]
    if any(_in_force(c, now) for c in objections):
        return []
    next_objection = min(
        (c.valid_from for c in objections if c.valid_from and c.valid_from > now), default=None
    )
    found = []
    for consent in (c for c in valid if c.decision == "permit"):
        if consent.valid_until is not None and consent.valid_until <= now:
            continue
        until = _earliest(consent.valid_until, next_objection)
        for organisation in sorted(treating_organisations):
            if _covers(consent, organisation):
                found.append(Share(organisation, consent.valid_from, until))
    return found


def _in_force(consent: StoredConsent, now: dt.datetime) -> bool:
    started = consent.valid_from is None or consent.valid_from <= now
    return started and (consent.valid_until is None or consent.valid_until > now)


def _covers(consent: StoredConsent, organisation: str) -> bool:
    listed = consent.organisations is None or organisation in consent.organisations
    return listed and organisation not in consent.excluded


def _earliest(*moments: dt.datetime | None) -> dt.datetime | None:
    return min((m for m in moments if m is not None), default=None)


async def recompute(session: AsyncSession, person_ids: Collection[str], now: dt.datetime) -> None:
    """Replace the shares of `person_ids` by what their facts say now."""
    if not person_ids:
        return
    records = await repository.records_of_persons(session, person_ids)
    patient_ids = [record.patient_id for record in records]
    consents = await repository.consents_about(session, patient_ids)
    treating = await repository.treatments_of(session, patient_ids)
    by_person: dict[str, list[StoredRecord]] = {}
    for record in records:
        by_person.setdefault(record.person_id, []).append(record)
    rows = [
        (person_id, share)
        for person_id, members in by_person.items()
        for share in shares(members, consents, treating, now)
    ]
    await repository.replace_shares(session, person_ids, rows)


async def fact_written(
    session: AsyncSession,
    resource_type: str,
    fhir_id: str,
    organisation_id: str,
    patient_id: str | None,
    resource: dict[str, Any] | None,
    created: bool,
) -> set[str]:
    """Keep the consent or treatment fact of a written resource (None: deleted; `created`:
    its first version, so there is no fact before); the persons whose shares it may change.
    Most such resources are finished encounters: their creation costs no statement."""
    terms = None
    if resource_type == "Consent":
        terms = consent_terms(resource) if resource is not None and patient_id else None
        stated = terms is not None
    else:
        treating = (
            treating_organisation(resource_type, resource, organisation_id)
            if resource is not None and patient_id is not None
            else None
        )
        stated = treating is not None
    if created and not stated:
        return set()
    before = None if created else await repository.fact_patient(session, resource_type, fhir_id)
    about = patient_id if stated else None
    if resource_type == "Consent":
        await repository.put_consent(
            session, fhir_id, organisation_id, about, terms, replacing=not created
        )
    else:
        await repository.put_treatment(
            session,
            resource_type,
            fhir_id,
            organisation_id,
            treating,
            about,
            replacing=not created,
        )
    return await repository.persons_of(session, {p for p in (before, patient_id) if p})
