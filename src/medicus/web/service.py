"""The portal's clinical use cases: finding patients, a patient's chart and its `$everything`,
break-glass (the user is a `users.PortalUser`). Each reads through the same services as the
APIs (the FHIR hub's searches and reads, `access`'s break-glass), as a principal built from
the session with the scopes of the user's role: `access` decides and `audit` records exactly
as for an API call, under the portal's client id."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from medicus.access.breakglass import BreakGlass
from medicus.access.patient_accounts import PatientAccounts
from medicus.access.patients import PatientIndex
from medicus.access.repository import StoredBreakGlass
from medicus.core.db import Database
from medicus.fhir.answers import operation_bundle
from medicus.fhir.operations import Operations
from medicus.fhir.search.phonetics import search_codes
from medicus.fhir.search.request import SearchRequest
from medicus.fhir.service import FhirService
from medicus.iam.admin import Invitation, NewInvitation
from medicus.iam.service import IdentityService
from medicus.web.chart import SECTIONS, Holder, LabSeries, Line, lab_series, line, newest_first
from medicus.web.consents import Consents
from medicus.web.users import PortalUser

KVNR_SYSTEM = "http://fhir.de/sid/gkv/kvid-10"
_KVNR = re.compile(r"[A-Z][0-9]{9}", re.ASCII)
_ISO_DATE = re.compile(r"[0-9]{4}(-[0-9]{2}){0,2}", re.ASCII)
_GERMAN_DATE = re.compile(r"([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})", re.ASCII)
_FIRST_YEAR, _LAST_YEAR = 1880, 2200
"""Four digits between these are a year of birth, others a number (`4711`: a case)."""
MAX_QUERY = 200
SEARCH_PAGE = 50
CHART_PAGE = 1000
"""Resources of one type and record a chart shows (the newest)."""


def search_parameters(query: str, by_sound: bool = False) -> list[tuple[str, str]]:
    """A search box's words as FHIR Patient search parameters: a KVNR (`A123456789`), a
    birth date (`17.05.1964`, `1964-05-17`, `1964`), other digits an identifier of any
    system, anything else a name (each word a prefix of a name, accents ignored).

    `by_sound`: the search for names that sound alike instead, which `Portal.find_patients`
    runs besides: each name word as `phonetic` (a name word that sounds alike by the Kölner
    Phonetik, fhir/search/phonetics.py; a word without a sound, such as `h`, left out), the
    other words as above; none at all where no name word has a sound."""
    parameters = []
    for word in query.strip()[:MAX_QUERY].split()[:6]:
        german = _GERMAN_DATE.fullmatch(word)
        if _KVNR.fullmatch(word.upper()):
            parameters.append(("identifier", f"{KVNR_SYSTEM}|{word.upper()}"))
        elif german:
            day, month, year = (int(part) for part in german.groups())
            parameters.append(("birthdate", f"{year:04d}-{month:02d}-{day:02d}"))
        elif _ISO_DATE.fullmatch(word) and _FIRST_YEAR <= int(word[:4]) <= _LAST_YEAR:
            parameters.append(("birthdate", word))
        elif word.isdigit():
            parameters.append(("identifier", word))
        else:
            parameters.append(("name", word.strip(",;")))
    found = [(name, value) for name, value in parameters if value]
    if not by_sound:
        return found
    alike = []
    for name, value in found:
        if name == "name":
            try:
                search_codes(value)
            except ValueError:
                continue  # no sound (`h`), or more words than `phonetic` takes
        alike.append(("phonetic" if name == "name" else name, value))
    return alike if any(name == "phonetic" for name, _ in alike) else []


@dataclass(frozen=True)
class FoundPatient:
    id: str
    name: str
    birth_date: str
    gender: str
    identifiers: list[str]
    holder: Holder


@dataclass
class Chart:
    """What the chart page shows of one person: the record asked for, the records of the
    same person the caller may see (each with its holder), their sections and lab values."""

    patient: FoundPatient
    records: list[FoundPatient]
    holders: dict[str, Holder]
    """The holder of each record shown, by record id."""
    sections: dict[str, list[Line]] = field(default_factory=dict)
    labs: list[LabSeries] = field(default_factory=list)


def _name(resource: dict[str, Any]) -> str:
    names = [n for n in resource.get("name", []) if isinstance(n, dict)]
    if not names:
        return ""
    chosen = next((n for n in names if n.get("use") == "official"), names[0])
    if isinstance(chosen.get("text"), str):
        return str(chosen["text"])
    given = " ".join(g for g in chosen.get("given", []) if isinstance(g, str))
    return f"{chosen.get('family', '')}, {given}".strip(", ")


def _found(resource: dict[str, Any], holder: Holder) -> FoundPatient:
    identifiers = [
        str(i.get("value"))
        for i in resource.get("identifier", [])
        if isinstance(i, dict) and i.get("value")
    ]
    return FoundPatient(
        id=str(resource.get("id", "")),
        name=_name(resource)[:200],
        birth_date=str(resource.get("birthDate", "")),
        gender=str(resource.get("gender", "")),
        identifiers=identifiers[:5],
        holder=holder,
    )


class FhirParts(Protocol):
    """What the portal uses of the FHIR hub (`platform.FhirHub`)."""

    @property
    def service(self) -> FhirService: ...

    @property
    def operations(self) -> Operations: ...


class Portal:
    """The portal's use cases, over the FHIR hub, `access` and identity's names."""

    def __init__(
        self,
        database: Database,
        fhir: FhirParts,
        patients: PatientIndex,
        break_glass: BreakGlass,
        identity: IdentityService,
        accounts: PatientAccounts,
        fhir_base_url: str,
    ) -> None:
        self._database = database
        self._fhir = fhir.service
        self._operations = fhir.operations
        self.consents = Consents(fhir.service)
        self._base = fhir_base_url
        self._patients = patients
        self._break_glass = break_glass
        self._identity = identity
        self._accounts = accounts

    async def _holders(self, user: PortalUser, organisation_ids: set[str]) -> dict[str, Holder]:
        async with self._database.snapshot() as session:
            names = await self._identity.names(session, (), organisation_ids, ())
        own = user.principal.organisation_id
        return {
            org: Holder(org, names.organisations.get(org, org), org == own)
            for org in organisation_ids
        }

    async def holders_of_records(self, user: PortalUser, records: list[str]) -> dict[str, Holder]:
        """Who holds each of the Patient records `records` (a record not in the index yet:
        the user's organisation)."""
        owners = await self._patients.holders_of(records)
        holders = await self._holders(user, set(owners.values()))
        unknown = Holder(user.principal.organisation_id, user.organisation_name, True)
        return {record: holders.get(owners.get(record, ""), unknown) for record in records}

    async def _search(
        self, user: PortalUser, resource_type: str, parameters: list[tuple[str, str]], count: int
    ) -> list[dict[str, Any]]:
        request = SearchRequest(resource_type, parameters)
        found = await self._fhir.search(user.principal, request, count, 0, False)
        return [orjson.loads(content) for _, content in found.resources]

    async def find_patients(self, user: PortalUser, query: str) -> list[FoundPatient]:
        """Patients matching the words of a search box that the user may see (their own
        organisation's, and those shared with it), with their holders: those whose names
        start with the name words first, then those whose names sound alike (Kölner
        Phonetik: `Mayer` finds Meier), each once and at most SEARCH_PAGE in all. Two
        FHIR searches, each audited."""
        parameters = search_parameters(query)
        if not parameters:
            return []
        found = await self._search(user, "Patient", parameters, SEARCH_PAGE)
        alike = search_parameters(query, by_sound=True)
        if alike and len(found) < SEARCH_PAGE:
            known = {resource.get("id") for resource in found}
            more = await self._search(user, "Patient", alike, SEARCH_PAGE)
            found += [r for r in more if r.get("id") not in known][: SEARCH_PAGE - len(found)]
        owners = await self._patients.holders_of([str(resource.get("id")) for resource in found])
        holders = await self._holders(user, set(owners.values()))
        unknown = Holder(user.principal.organisation_id, user.organisation_name, True)
        return [
            _found(resource, holders.get(owners.get(str(resource.get("id")), ""), unknown))
            for resource in found
        ]

    async def patient(self, user: PortalUser, patient_id: str) -> FoundPatient | None:
        """The Patient record `patient_id` as a search shows it (audited), None if the user
        may not see it."""
        found = await self._search(user, "Patient", [("_id", patient_id)], 1)
        if not found:
            return None
        holders = await self.holders_of_records(user, [patient_id])
        return _found(found[0], holders[patient_id])

    async def read(self, user: PortalUser, resource_type: str, fhir_id: str) -> dict[str, Any]:
        """Resource `resource_type/fhir_id` read as the API reads it (audited with its Patient
        record): a 404 (ApiError) if there is none or the user may not see it, alike."""
        found = await self._fhir.read(user.principal, resource_type, fhir_id)
        content: dict[str, Any] = orjson.loads(found.content or b"{}")
        return content

    async def chart(self, user: PortalUser, patient_id: str) -> Chart:
        """The chart of the person of Patient record `patient_id`: a 404 (ApiError) if the
        user may not see that record; of the person's other records those `access` lets the
        user see now (consent and treatment, or break-glass)."""
        await self._fhir.read(user.principal, "Patient", patient_id)
        records = await self._patients.records_of_same_person(patient_id)
        owners = {r.patient_id: r.organisation_id for r in records} or {patient_id: ""}
        visible = await self._search(user, "Patient", [("_id", ",".join(owners))], len(owners))
        holders = await self._holders(user, {owners[str(p.get("id"))] for p in visible})
        by_record = {str(p.get("id")): holders[owners[str(p.get("id"))]] for p in visible}
        people = [_found(p, by_record[str(p.get("id"))]) for p in visible]
        asked = next(p for p in people if p.id == patient_id)
        chart = Chart(asked, people, by_record)
        subjects = [("patient", ",".join(f"Patient/{record}" for record in by_record))]
        # One search per section, at once: each is its own audited read, and none waits for
        # another (the database serves them side by side).
        *sections, labs = await asyncio.gather(
            *(self._search(user, kind, subjects, CHART_PAGE) for kind in (*SECTIONS, "Observation"))
        )
        for resource_type, found in zip(SECTIONS, sections, strict=True):
            chart.sections[resource_type] = newest_first(
                line(resource, _holder_of(resource, by_record)) for resource in found
            )
        chart.labs = lab_series((resource, _holder_of(resource, by_record)) for resource in labs)
        return chart

    async def invite_patient(
        self, user: PortalUser, patient_id: str, invited: NewInvitation
    ) -> Invitation:
        """Invite the person of Patient record `patient_id`, held by the user's organisation,
        to the portal."""
        return await self._accounts.invite(
            user.principal, patient_id, invited.email, invited.display_name
        )

    async def everything(self, user: PortalUser, patient_id: str) -> bytes:
        """The whole `$everything` of Patient record `patient_id` as one Bundle, every page
        of it read (and audited) as the API reads it."""
        page: list[tuple[str, str, bytes]] = []
        referenced: dict[tuple[str, str], bytes] = {}
        more, offset = True, 0
        while more:
            found, more, mentioned = await self._operations.everything(
                user.principal, patient_id, None, None, CHART_PAGE, offset
            )
            page.extend(found)
            referenced.update({(kind, id_): content for kind, id_, content in mentioned})
            offset += CHART_PAGE
        extra = [(kind, id_, content) for (kind, id_), content in referenced.items()]
        links = [{"relation": "self", "url": f"{self._base}/Patient/{patient_id}/$everything"}]
        return operation_bundle(self._base, links, page, extra, len(page))

    async def open_break_glass(
        self, user: PortalUser, patient_id: str, reason: str
    ) -> StoredBreakGlass:
        return await self._break_glass.open(user.principal, patient_id, reason)


def _holder_of(resource: dict[str, Any], by_record: dict[str, Holder]) -> Holder:
    """The holder of a resource of the chart: that of the Patient record it is about."""
    for element in ("subject", "patient"):
        reference = (resource.get(element) or {}).get("reference", "")
        record = str(reference).rpartition("/")[2]
        if record in by_record:
            return by_record[record]
    return next(iter(by_record.values()))
