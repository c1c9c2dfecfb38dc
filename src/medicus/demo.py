"""Demo data for `make run`, for development only (`medicus demo` refuses production): two
hospitals, a practice, their staff, and a backend client of the first hospital whose private key
is written to the data directory, so that `medicus admin token` gets a token for it.
Idempotent: a second run finds everything in place and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from medicus.demo_records import load_demo_records
from medicus.iam import client_keys
from medicus.iam.roles import MfaPolicy, OrganisationType, Role
from medicus.iam.service import Provisioned
from medicus.messenger.demo import load_messenger_demo
from medicus.platform import Platform

DEMO_ACTOR = "system:demo"
# Development only (`medicus demo` refuses production): every demo person's password.
DEMO_PASSWORD = "medicus demo passphrase 2026"  # noqa: S105
DEMO_CLIENT_NAME = "Demo connector (development only)"
DEMO_CLIENT_SCOPE = "system/*.cruds"


@dataclass(frozen=True)
class DemoOrganisation:
    name: str
    kind: OrganisationType
    iknr: str
    telematik_id: str
    staff: tuple[tuple[str, str, Role], ...]
    patients: tuple[tuple[str, str, str], ...] = ()
    """Patients invited to the portal: e-mail, name, their record (`<organisation id>.<key>`,
    `demo_records`)."""
    mfa_policy: MfaPolicy = MfaPolicy.CLINICAL


DEMO_ORGANISATIONS = (
    DemoOrganisation(
        "Universitätsklinikum Nordstadt",
        OrganisationType.UNIVERSITY_HOSPITAL,
        "260100011",
        "5-2-260100011",
        (
            ("admin@uk-nordstadt.example", "Petra Admin", Role.ORGANISATION_ADMIN),
            ("dr.berg@uk-nordstadt.example", "Dr. Anna Berg", Role.PHYSICIAN),
            ("dr.yilmaz@uk-nordstadt.example", "Dr. Deniz Yilmaz", Role.PHYSICIAN),
            ("pfleger.lang@uk-nordstadt.example", "Tom Lang", Role.NURSE),
        ),
        (("anna.mueller@patient.example", "Anna Müller", "anna"),),
    ),
    DemoOrganisation(
        "Kreiskrankenhaus Südheim",
        OrganisationType.HOSPITAL,
        "260200022",
        "5-2-260200022",
        (
            ("admin@kkh-suedheim.example", "Jan Admin", Role.ORGANISATION_ADMIN),
            ("dr.koch@kkh-suedheim.example", "Dr. Lena Koch", Role.PHYSICIAN),
            ("datenschutz@kkh-suedheim.example", "Eva Datenschutz", Role.DATA_PROTECTION_OFFICER),
            # A consultant who works at both hospitals.
            ("dr.yilmaz@uk-nordstadt.example", "Dr. Deniz Yilmaz", Role.PHYSICIAN),
        ),
    ),
    DemoOrganisation(
        "Hausarztpraxis Dr. Weber",
        OrganisationType.PRACTICE,
        "260300033",
        "1-2-260300033",
        (
            ("dr.weber@praxis-weber.example", "Dr. Klaus Weber", Role.PHYSICIAN),
            ("mfa.schulz@praxis-weber.example", "Mia Schulz", Role.MEDICAL_ASSISTANT),
        ),
    ),
    DemoOrganisation(
        "medicus Plattformbetrieb",
        OrganisationType.PLATFORM_OPERATOR,
        "260900099",
        "9-260900099",
        (("betrieb@medicus-plattform.example", "Ole Betrieb", Role.PLATFORM_ADMIN),),
        mfa_policy=MfaPolicy.ALL,
    ),
)


@dataclass(frozen=True)
class DemoSummary:
    organisations_created: int
    users_created: int
    memberships_created: int
    client: Provisioned
    patients_created: bool


async def load_demo(platform: Platform) -> DemoSummary:
    """Create whatever of the demo data is missing, in one transaction."""
    identity = platform.identity
    organisations = users = memberships = 0
    ids: list[str] = []
    physicians: list[tuple[str, list[str]]] = []
    async with platform.database.transaction() as session:
        for demo in DEMO_ORGANISATIONS:
            organisation = await identity.ensure_organisation(
                session,
                DEMO_ACTOR,
                demo.name,
                demo.kind,
                demo.iknr,
                demo.telematik_id,
                demo.mfa_policy,
            )
            organisations += organisation.created
            ids.append(organisation.id)
            people: list[tuple[str, str, Role, str | None]] = [
                (email, name, role, None) for email, name, role in demo.staff
            ]
            people += [
                (email, name, Role.PATIENT, f"{organisation.id}.{record}")
                for email, name, record in demo.patients
            ]
            physicians.append((organisation.id, []))
            for email, display_name, role, record in people:
                user = await identity.ensure_user(session, DEMO_ACTOR, email, display_name)
                users += user.created
                if role == Role.PHYSICIAN and demo.kind != OrganisationType.PLATFORM_OPERATOR:
                    physicians[-1][1].append(user.id)
                if user.created:
                    await identity.set_password(session, DEMO_ACTOR, user.id, DEMO_PASSWORD)
                memberships += await identity.ensure_membership(
                    session, DEMO_ACTOR, user.id, organisation.id, role, record
                )
        client = await _ensure_backend_client(platform, session, ids[0])
    patients = await load_demo_records(platform, ids[0], ids[1])
    if platform.messenger is not None:
        listed = [(organisation, people) for organisation, people in physicians if people]
        on_call = (ids[0], physicians[0][1][0])
        await load_messenger_demo(platform.messenger.service, ids[-1], listed, on_call)
    return DemoSummary(organisations, users, memberships, client, patients)


async def _ensure_backend_client(
    platform: Platform, session: AsyncSession, organisation_id: str
) -> Provisioned:
    """The demo's backend client whose private key is in the data directory. When no such key
    is found (a fresh data directory next to a kept PostgreSQL database), a new client with a
    new key is registered."""
    data_dir = platform.settings.data_dir
    named = await platform.identity.client_ids_named(session, organisation_id, DEMO_CLIENT_NAME)
    for client_id in named:
        if client_keys.key_path(data_dir, client_id).exists():
            return Provisioned(client_id, created=False)
    key = client_keys.new_key()
    client_id = await platform.identity.create_client(
        session,
        DEMO_ACTOR,
        DEMO_CLIENT_NAME,
        organisation_id,
        DEMO_CLIENT_SCOPE,
        client_keys.public_jwks(key),
    )
    client_keys.save_key(data_dir, client_id, key)
    return Provisioned(client_id, created=True)


def describe(summary: DemoSummary, platform: Platform, command: str) -> list[str]:
    """What was loaded and how to use it: the lines `medicus demo` prints. `command` is how
    the user runs medicus (`.venv/bin/medicus`), so that what we print works as shown."""
    hospital = DEMO_ORGANISATIONS[0]
    admin, physician = hospital.staff[0][0], hospital.staff[1][0]
    district_physician = DEMO_ORGANISATIONS[1].staff[1][0]
    issuer, fhir = platform.endpoints.issuer, platform.endpoints.fhir_base_url
    return [
        f"demo data in place (development only): {summary.organisations_created} organisations, "
        f"{summary.users_created} users, {summary.memberships_created} memberships created, "
        f"backend client {'created' if summary.client.created else 'in place'}, demo patients "
        f"{'created' if summary.patients_created else 'in place'}",
        f"portal: {issuer}/portal (as {district_physician}, search 'Müller' or 'Schmidt'; as "
        f"the patient {hospital.patients[0][0]}, who sees who accessed her data; as "
        f"{DEMO_ORGANISATIONS[-1].staff[0][0]}, the platform's operator)",
        f"log in at {issuer}/login as {physician} (physician) or {admin} (organisation admin), "
        f"password '{DEMO_PASSWORD}'; physicians set up a second factor at their first login, "
        "so have an authenticator app (TOTP) at hand",
        f"FHIR API as the demo backend client of {hospital.name} ({DEMO_CLIENT_SCOPE}; a token "
        f"lasts {platform.settings.access_token_seconds} s, its key is in "
        f"{client_keys.key_path(platform.settings.data_dir, summary.client.id)}):",
        f'  curl -H "Authorization: Bearer $({command} admin token --client {summary.client.id})"'
        f" {fhir}/Patient",
        *_messenger_lines(platform),
    ]


def _messenger_lines(platform: Platform) -> list[str]:
    if platform.messenger is None:
        return []
    issuer = platform.endpoints.issuer
    return [
        f"messenger: Matrix clients use {issuer} as their homeserver, logging in with a token "
        f"from POST {issuer}/messenger/login-token; the physicians are listed in the directory "
        f"at {issuer}/directory/fhir (docs/messenger.md)"
    ]
