"""The directory of who is reachable through the messenger (the TI-Messenger's VZD-FHIR-Directory,
inside medicus): FHIR `Organization`, `Practitioner`, `PractitionerRole`, `HealthcareService` and
`Endpoint` (connection type `tim`, address `matrix:u/@…`) for the members and services that the
organisations on the federation list put in it.

The resources are a projection of `iam` and the listings, never edited by hand: an
organisation's part is computed anew and written as a diff (only what changed gets a new
version, what is no longer listed is deleted), so it can be rebuilt at any time. They are held
by the directory's own organisation id, so that no hospital's FHIR data shows them; members read
them at `/directory/fhir` (`directory_routes`), as the directory's reader."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.core.db import Database
from medicus.fhir.service import FhirService
from medicus.iam.scopes import parse_scopes
from medicus.iam.tokens import Principal
from medicus.messenger import repository
from medicus.messenger.homeserver import Homeserver

DIRECTORY_ORGANISATION = "medicus-directory"
"""Who holds the directory's resources in the FHIR store."""
TYPES = ("Organization", "Practitioner", "PractitionerRole", "HealthcareService", "Endpoint")
CONNECTION_TYPES = "https://gematik.de/fhir/directory/CodeSystem/EndpointDirectoryConnectionType"
PAYLOAD_TYPES = "https://gematik.de/fhir/directory/CodeSystem/EndpointDirectoryPayloadType"
IKNR = "http://fhir.de/sid/arge-ik/iknr"
TELEMATIK_ID = "https://gematik.de/fhir/sid/telematik-id"
ROLES = "https://medicus.example/fhir/CodeSystem/role"
ORGANISATION_MEMBER = "https://medicus.example/fhir/sid/directory-organization"
"""A Practitioner of the directory is one organisation's listing of a person (a person listed
by two hospitals appears twice): tagged with that organisation, so that its part of the
directory is found and rebuilt on its own."""
_IDS = uuid.UUID("6f1d3c52-6a4e-4b43-9a55-2f4f0f6c7d10")
_MOST = 10_000
Key = tuple[str, str]


def directory_id(kind: str, *parts: str) -> str:
    """A stable FHIR id of a directory resource (the same from every rebuild), in the
    directory's namespace of ids (as every organisation's own ids are in theirs)."""
    return f"{DIRECTORY_ORGANISATION}.{uuid.uuid5(_IDS, chr(10).join((kind, *parts)))}"


def _principal(subject: str, kind: str, scopes: str, client_id: str) -> Principal:
    return Principal(
        subject=subject,
        kind=kind,
        organisation_id=DIRECTORY_ORGANISATION,
        role=None,
        client_id=client_id,
        scope=parse_scopes(scopes),
        scope_text=scopes,
        jti="",
        expires_at=0,
    )


WRITER = _principal(
    "messenger-directory",
    "service",
    " ".join(f"system/{kind}.cruds" for kind in TYPES),
    "medicus-messenger",
)


def reader(caller: Principal) -> Principal:
    """The caller, reading the directory (and nothing else) as the directory's reader; the
    audit trail names the caller."""
    scopes = " ".join(f"user/{kind}.rs" for kind in TYPES)
    return Principal(
        subject=caller.subject,
        kind=caller.kind,
        organisation_id=DIRECTORY_ORGANISATION,
        role=caller.role,
        client_id=caller.client_id,
        scope=parse_scopes(scopes),
        scope_text=scopes,
        jti=caller.jti,
        expires_at=caller.expires_at,
    )


def _ref(kind: str, fhir_id: str) -> dict[str, str]:
    return {"reference": f"{kind}/{fhir_id}"}


class Directory:
    def __init__(self, database: Database, fhir: FhirService, homeserver: Homeserver) -> None:
        self._database = database
        self._fhir = fhir
        self._homeserver = homeserver

    async def sync_organisation(self, organisation_id: str) -> int:
        """Bring the organisation's part of the directory up to date; how many resources were
        written or deleted."""
        async with self._database.snapshot() as session:
            desired = await self._desired(session, organisation_id)
        organisation_fid = directory_id("Organization", organisation_id)
        writer = self._fhir.writer

        async def work(session: AsyncSession) -> int:
            existing = await self._existing(session, organisation_fid)
            changed = 0
            for (kind, fhir_id), resource in desired.items():
                if existing.get((kind, fhir_id)) != resource:
                    await writer.update(session, WRITER, kind, fhir_id, resource)
                    changed += 1
            for kind, fhir_id in existing.keys() - desired.keys():
                await writer.delete(session, WRITER, kind, fhir_id)
                changed += 1
            return changed

        return await self._fhir.write(work)

    async def sync_everywhere(self, organisation_ids: Iterable[str]) -> int:
        changed = 0
        for organisation_id in sorted(set(organisation_ids)):
            changed += await self.sync_organisation(organisation_id)
        return changed

    async def _desired(self, session: AsyncSession, organisation_id: str) -> dict[Key, Any]:
        """The organisation's directory resources as they should be (none when it is not on
        the federation list: nobody elsewhere may reach its members)."""
        found = await repository.organisation(session, organisation_id)
        if found is None or organisation_id not in await repository.federation(session):
            return {}
        staff = await repository.listed_staff(session, organisation_id)
        services = await repository.services(session, organisation_id)
        if not staff and not services:
            return {}
        org_fid = directory_id("Organization", organisation_id)
        identifiers = [{"system": IKNR, "value": found.iknr}] if found.iknr else []
        if found.telematik_id:
            identifiers.append({"system": TELEMATIK_ID, "value": found.telematik_id})
        organisation: dict[str, Any] = {
            "resourceType": "Organization",
            "id": org_fid,
            "active": True,
            "name": found.name,
        }
        if identifiers:
            organisation["identifier"] = identifiers
        desired: dict[Key, Any] = {("Organization", org_fid): organisation}
        for user_id, name, role in staff:
            person_fid = directory_id("Practitioner", organisation_id, user_id)
            endpoint_fid = directory_id("Endpoint", organisation_id, user_id)
            desired[("Practitioner", person_fid)] = {
                "resourceType": "Practitioner",
                "id": person_fid,
                "active": True,
                "name": [{"text": name}],
                "identifier": [{"system": ORGANISATION_MEMBER, "value": org_fid}],
            }
            desired[("Endpoint", endpoint_fid)] = self._endpoint(
                endpoint_fid, org_fid, user_id, name
            )
            role_fid = directory_id("PractitionerRole", organisation_id, user_id)
            desired[("PractitionerRole", role_fid)] = {
                "resourceType": "PractitionerRole",
                "id": role_fid,
                "active": True,
                "practitioner": _ref("Practitioner", person_fid),
                "organization": _ref("Organization", org_fid),
                "code": [{"coding": [{"system": ROLES, "code": role}]}],
                "endpoint": [_ref("Endpoint", endpoint_fid)],
            }
        for service in services:
            service_fid = directory_id("HealthcareService", service.id)
            endpoint_fid = directory_id("Endpoint", organisation_id, "service", service.id)
            desired[("Endpoint", endpoint_fid)] = self._endpoint(
                endpoint_fid, org_fid, service.user_id, service.name
            )
            entry: dict[str, Any] = {
                "resourceType": "HealthcareService",
                "id": service_fid,
                "active": True,
                "providedBy": _ref("Organization", org_fid),
                "name": service.name,
                "endpoint": [_ref("Endpoint", endpoint_fid)],
            }
            if service.specialty:
                entry["specialty"] = [{"text": service.specialty}]
            desired[("HealthcareService", service_fid)] = entry
        return desired

    def _endpoint(self, fhir_id: str, org_fid: str, user_id: str, name: str) -> dict[str, Any]:
        return {
            "resourceType": "Endpoint",
            "id": fhir_id,
            "status": "active",
            "connectionType": {"system": CONNECTION_TYPES, "code": "tim"},
            "payloadType": [{"coding": [{"system": PAYLOAD_TYPES, "code": "tim-chat"}]}],
            "name": name,
            "managingOrganization": _ref("Organization", org_fid),
            "address": f"matrix:u/{self._homeserver.matrix_id(user_id)}",
        }

    async def _existing(self, session: AsyncSession, org_fid: str) -> dict[Key, Any]:
        """The organisation's directory resources as stored (without their `meta`)."""
        reference = f"Organization/{org_fid}"
        found: dict[Key, Any] = {}
        lookups = [
            ("Organization", [("_id", org_fid)]),
            ("Practitioner", [("identifier", f"{ORGANISATION_MEMBER}|{org_fid}")]),
            ("PractitionerRole", [("organization", reference)]),
            ("Endpoint", [("organization", reference)]),
            ("HealthcareService", [("organization", reference)]),
        ]
        for kind, conditions in lookups:
            rows = await self._fhir.writer.find(session, WRITER, kind, conditions, limit=_MOST)
            for row in rows:
                if row.content is None:
                    continue
                resource = orjson.loads(row.content)
                resource.pop("meta", None)
                found[(kind, row.fhir_id)] = resource
        return found
