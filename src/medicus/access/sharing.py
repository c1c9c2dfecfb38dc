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

Who may vouch for these facts (anyone who knows a KVNR can write a Patient record with it):
- only **care providers** (hospitals, university hospitals, practices, laboratories) record
  sharing consents and treatment relations, and only they become treating organisations;
- a consent, treatment or referral counts only when the organisation holding it also holds
  the Patient record it is about, so that nobody can grant themselves access with a
  resource about another hospital's record;
- a permit names its **source document** (`sourceAttachment`, `sourceReference`) and opens
  other organisations' data only once it is **vouched for**: on record while the care
  provider that recorded it treats the person (from then on, also after the treatment).

A nested `deny` provision excludes the organisations it names, or voids the consent if it
names none; nested `permit` provisions grant nothing more (fail closed). An objection
counts from any care provider holding a record of the person.

Every organisation that gains sight of a record is registered with its reasons
(`access_disclosure`) for the holder's data protection officer.

The facts are kept in the writer's transaction, and the resulting shares are recomputed for
the person at once: a revoked consent or an objection takes effect on the next request."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access import repository
from medicus.access.models import ConsentTerms, Share
from medicus.access.repository import StoredConsent, StoredRecord, TreatmentFact
from medicus.core.dates import date_range
from medicus.iam.roles import OrganisationType

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
CARE_PROVIDERS = frozenset(
    {
        OrganisationType.HOSPITAL,
        OrganisationType.UNIVERSITY_HOSPITAL,
        OrganisationType.PRACTICE,
        OrganisationType.LABORATORY,
    }
)
"""The organisation types that treat patients: only they record sharing consents and
treatment relations, and only they become treating organisations. App vendors, research
institutes and the platform operator never do."""


def consent_terms(consent: dict[str, Any]) -> ConsentTerms | None:
    """What a Consent says about sharing; None if it is no active sharing consent or says
    nothing that can be relied on (a permit must name its source document)."""
    if not is_sharing_consent(consent):
        return None
    provision = consent.get("provision")
    if not isinstance(provision, dict) or provision.get("type") not in ("permit", "deny"):
        return None
    decision = str(provision["type"])
    if decision == "permit" and not has_source(consent):
        return None
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


def is_sharing_consent(consent: dict[str, Any]) -> bool:
    """Whether a Consent is an active consent (or objection) to sharing."""
    return consent.get("status") == "active" and _has_privacy_scope(consent.get("scope"))


def has_source(consent: dict[str, Any]) -> bool:
    """Whether a Consent names its source: the signed form (`sourceAttachment`) or the
    document or statement it was taken from (`sourceReference`)."""
    attachment = consent.get("sourceAttachment")
    reference = consent.get("sourceReference")
    return (isinstance(attachment, dict) and bool(attachment)) or (
        isinstance(reference, dict) and isinstance(reference.get("reference"), str)
    )


def states_relation(resource_type: str, resource: dict[str, Any]) -> bool:
    """Whether a resource, as written, would be a sharing consent or a treatment relation:
    what only care providers may record."""
    if resource_type == "Consent":
        return is_sharing_consent(resource)
    if resource_type == "ServiceRequest":
        return referred_to(resource) is not None
    return is_treatment(resource_type, resource)


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


@dataclass(frozen=True)
class Grant:
    """Why an organisation may see a person's data held elsewhere, and when: one consent
    that covers it, and the treatment relations that make it a treating organisation."""

    organisation_id: str
    consent_id: str
    treatments: tuple[str, ...]
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None


class Facts(NamedTuple):
    """What the shares of a set of persons are made from."""

    records: list[StoredRecord]
    consents: list[StoredConsent]
    treating: list[TreatmentFact]
    care_providers: frozenset[str]


def _counting(facts: Facts) -> tuple[list[StoredConsent], dict[str, list[TreatmentFact]]]:
    """The consents and treatment relations that count: recorded by a care provider about
    a record it holds (treatment relations also only making care providers treating ones),
    by treating organisation."""
    holder = {record.patient_id: record.organisation_id for record in facts.records}
    care = facts.care_providers
    consents = [
        c
        for c in facts.consents
        if c.organisation_id in care and holder.get(c.patient_id) == c.organisation_id
    ]
    treating: dict[str, list[TreatmentFact]] = {}
    for fact in facts.treating:
        recorded = fact.holder in care and holder.get(fact.patient_id) == fact.holder
        if recorded and fact.treating in care:
            treating.setdefault(fact.treating, []).append(fact)
    return consents, treating


def newly_vouched(facts: Facts) -> list[str]:
    """The permits not yet vouched for whose recorders treat the person now: from now on
    they open other organisations' data (also once the treatment has ended)."""
    consents, treating = _counting(facts)
    return [
        c.consent_id
        for c in consents
        if c.decision == "permit" and not c.vouched and c.organisation_id in treating
    ]


def grants(facts: Facts, now: dt.datetime) -> list[Grant]:
    """Who may see the data of one person (`facts.records` its records), why and when."""
    consents, treating = _counting(facts)
    objections = [c for c in consents if c.decision == "deny"]
    if any(_in_force(c, now) for c in objections):
        return []
    next_objection = min(
        (c.valid_from for c in objections if c.valid_from and c.valid_from > now), default=None
    )
    found = []
    for consent in (c for c in consents if c.decision == "permit" and c.vouched):
        if consent.valid_until is not None and consent.valid_until <= now:
            continue
        until = _earliest(consent.valid_until, next_objection)
        for organisation in sorted(treating):
            if _covers(consent, organisation):
                relations = tuple(sorted(fact.resource for fact in treating[organisation]))
                found.append(
                    Grant(organisation, consent.consent_id, relations, consent.valid_from, until)
                )
    return found


def shares(facts: Facts, now: dt.datetime) -> list[Share]:
    """The shares of one person: when each organisation may see its data held elsewhere."""
    return [Share(g.organisation_id, g.valid_from, g.valid_until) for g in grants(facts, now)]


def disclosures(facts: Facts, now: dt.datetime) -> dict[tuple[str, str], dict[str, Any]]:
    """Whom each record of one person is open to, beyond its holder: (record, organisation)
    with the reasons (the consents, who recorded them and for when; the treatment
    relations)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    recorders = {c.consent_id: c.organisation_id for c in facts.consents}
    for grant in grants(facts, now):
        for record in facts.records:
            if record.organisation_id == grant.organisation_id:
                continue
            reasons = found.setdefault(
                (record.patient_id, grant.organisation_id), {"consents": [], "treatments": []}
            )
            reasons["consents"].append(
                {
                    "consent": f"Consent/{grant.consent_id}",
                    "recorded_by": recorders[grant.consent_id],
                    "valid_from": _moment(grant.valid_from),
                    "valid_until": _moment(grant.valid_until),
                }
            )
            reasons["treatments"] = sorted({*reasons["treatments"], *grant.treatments})
    return found


def _moment(at: dt.datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _in_force(consent: StoredConsent, now: dt.datetime) -> bool:
    started = consent.valid_from is None or consent.valid_from <= now
    return started and (consent.valid_until is None or consent.valid_until > now)


def _covers(consent: StoredConsent, organisation: str) -> bool:
    listed = consent.organisations is None or organisation in consent.organisations
    return listed and organisation not in consent.excluded


def _earliest(*moments: dt.datetime | None) -> dt.datetime | None:
    return min((m for m in moments if m is not None), default=None)


async def facts_of(session: AsyncSession, person_ids: Collection[str]) -> Facts:
    """The facts about the records of `person_ids`."""
    records = await repository.records_of_persons(session, person_ids)
    patient_ids = [record.patient_id for record in records]
    consents = await repository.consents_about(session, patient_ids)
    treating = await repository.treatments_of(session, patient_ids)
    involved = {c.organisation_id for c in consents}
    involved |= {organisation for fact in treating for organisation in fact[:2]}
    care = await repository.of_types(session, involved, CARE_PROVIDERS)
    return Facts(records, consents, treating, frozenset(care))


async def recompute(session: AsyncSession, person_ids: Collection[str], now: dt.datetime) -> None:
    """Replace the shares of `person_ids` by what their facts say now, vouching for the
    permits whose recorders treat the person now, and keep the register of whom each record
    is open to (`access_disclosure`)."""
    if not person_ids:
        return
    facts = await facts_of(session, person_ids)
    vouched = newly_vouched(facts)
    if vouched:
        await repository.vouch_for(session, vouched, now)
        facts = facts._replace(
            consents=[
                c._replace(vouched=c.vouched or c.consent_id in vouched) for c in facts.consents
            ]
        )
    by_person: dict[str, list[StoredRecord]] = {}
    for record in facts.records:
        by_person.setdefault(record.person_id, []).append(record)
    rows: list[tuple[str, Share]] = []
    open_to: dict[tuple[str, str], dict[str, Any]] = {}
    for person_id, members in by_person.items():
        person = facts._replace(records=members)
        rows.extend((person_id, share) for share in shares(person, now))
        open_to.update(disclosures(person, now))
    await repository.replace_shares(session, person_ids, rows)
    await _register(session, facts.records, open_to, now)


async def _register(
    session: AsyncSession,
    records: list[StoredRecord],
    open_to: dict[tuple[str, str], dict[str, Any]],
    now: dt.datetime,
) -> None:
    """Bring the disclosure register of `records` up to `open_to`: a new organisation is a
    new entry (the news for the holder's data protection officer), one no longer covered
    is ended, changed reasons are restated."""
    holder = {record.patient_id: record.organisation_id for record in records}
    registered = await repository.open_disclosures(session, holder)
    known = {(d.patient_id, d.organisation_id): d for d in registered}
    await repository.end_disclosures(
        session, [d.id for key, d in known.items() if key not in open_to], now
    )
    for key, reasons in open_to.items():
        if key in known and known[key].reasons != reasons:
            await repository.restate_disclosure(session, known[key].id, reasons)
    await repository.add_disclosures(
        session,
        [
            (holder[patient_id], patient_id, organisation, reasons)
            for (patient_id, organisation), reasons in open_to.items()
            if (patient_id, organisation) not in known
        ],
        now,
    )


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
