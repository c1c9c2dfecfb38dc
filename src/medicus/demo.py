"""Demo data for `make run`: two hospitals, a practice and their staff. Idempotent: a second
run finds everything in place and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from medicus.iam.roles import OrganisationType, Role
from medicus.platform import Platform

DEMO_ACTOR = "system:demo"
# Development only (`medicus demo` refuses production): every demo person's password.
DEMO_PASSWORD = "medicus demo passphrase 2026"  # noqa: S105


@dataclass(frozen=True)
class DemoOrganisation:
    name: str
    kind: OrganisationType
    iknr: str
    telematik_id: str
    staff: tuple[tuple[str, str, Role], ...]


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
    ),
    DemoOrganisation(
        "Kreiskrankenhaus Südheim",
        OrganisationType.HOSPITAL,
        "260200022",
        "5-2-260200022",
        (
            ("admin@kkh-suedheim.example", "Jan Admin", Role.ORGANISATION_ADMIN),
            ("dr.koch@kkh-suedheim.example", "Dr. Lena Koch", Role.PHYSICIAN),
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
)


@dataclass(frozen=True)
class DemoSummary:
    organisations_created: int
    users_created: int
    memberships_created: int


async def load_demo(platform: Platform) -> DemoSummary:
    """Create whatever of the demo data is missing, in one transaction."""
    identity = platform.identity
    organisations = users = memberships = 0
    async with platform.database.transaction() as session:
        for demo in DEMO_ORGANISATIONS:
            organisation = await identity.ensure_organisation(
                session, DEMO_ACTOR, demo.name, demo.kind, demo.iknr, demo.telematik_id
            )
            organisations += organisation.created
            for email, display_name, role in demo.staff:
                user = await identity.ensure_user(session, DEMO_ACTOR, email, display_name)
                users += user.created
                if user.created:
                    await identity.set_password(session, DEMO_ACTOR, user.id, DEMO_PASSWORD)
                memberships += await identity.ensure_membership(
                    session, DEMO_ACTOR, user.id, organisation.id, role
                )
    return DemoSummary(organisations, users, memberships)
