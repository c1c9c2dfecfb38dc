"""Identity administration rules that need no HTTP."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.fhir.definitions import resource_types
from medicus.iam import token_repository
from medicus.iam.models import OrganisationRow
from medicus.iam.passwords import PasswordHasher
from medicus.iam.roles import MfaPolicy, OrganisationType
from medicus.iam.scopes import ScopeError
from medicus.iam.service import AdministrationError, IdentityService
from medicus.platform import Platform


class RecordingDirectory:
    """An OrganisationDirectory that remembers what it was told (the FHIR mirror's stand-in)."""

    def __init__(self) -> None:
        self.saved: list[tuple[str, str | None]] = []

    async def organisation_saved(
        self, session: AsyncSession, organisation: OrganisationRow
    ) -> None:
        assert session.in_transaction()
        self.saved.append((organisation.name, organisation.iknr))


async def test_directories_hear_of_new_organisations(fresh_platform: Platform) -> None:
    directory = RecordingDirectory()
    identity = IdentityService(
        fresh_platform.audit, PasswordHasher(1, 1024, 1), resource_types(), [directory]
    )
    async with fresh_platform.database.transaction() as session:
        await identity.create_organisation(
            session,
            "system:test",
            "Klinikum Ost",
            OrganisationType.HOSPITAL,
            "264400001",
            None,
            MfaPolicy.CLINICAL,
        )
    assert directory.saved == [("Klinikum Ost", "264400001")]


@pytest.mark.parametrize("iknr", ["12345678", "1234567890", "12345678x"])
async def test_ik_numbers_have_nine_digits(fresh_platform: Platform, iknr: str) -> None:
    async with fresh_platform.database.transaction() as session:
        with pytest.raises(AdministrationError, match="nine digits"):
            await fresh_platform.identity.create_organisation(
                session,
                "system:test",
                "X",
                OrganisationType.PRACTICE,
                iknr,
                None,
                MfaPolicy.CLINICAL,
            )


async def test_a_client_cannot_be_registered_for_a_type_fhir_does_not_have(
    fresh_platform: Platform,
) -> None:
    async with fresh_platform.database.transaction() as session:
        organisation = await fresh_platform.identity.create_organisation(
            session,
            "system:test",
            "Klinikum Ost",
            OrganisationType.HOSPITAL,
            "264400001",
            None,
            MfaPolicy.CLINICAL,
        )
        with pytest.raises(ScopeError, match="there is no FHIR resource type Foo"):
            await fresh_platform.identity.create_client(
                session,
                "system:test",
                "Ward app",
                organisation,
                "openid user/Foo.rs",
                redirect_uris=["https://app.example/cb"],
            )


async def test_a_platform_client_is_registered_once_and_follows_the_public_url(
    fresh_platform: Platform,
) -> None:
    identity = fresh_platform.identity

    async def register(redirect_uri: str) -> bool:
        async with fresh_platform.database.transaction() as session:
            return await identity.register_platform_client(
                session, "medicus-messenger", "medicus Messenger", redirect_uri, "openid profile"
            )

    assert await register("https://a.example/_synapse/client/oidc/callback")
    assert not await register("https://a.example/_synapse/client/oidc/callback")
    assert await register("https://b.example/_synapse/client/oidc/callback")
    async with fresh_platform.database.snapshot() as session:
        client = await token_repository.client(session, "medicus-messenger")
    assert client is not None
    assert client.organisation_id is None
    assert client.redirect_uris == '["https://b.example/_synapse/client/oidc/callback"]'


async def test_a_platform_client_id_cannot_take_over_an_organisations_client(
    fresh_platform: Platform,
) -> None:
    identity = fresh_platform.identity
    async with fresh_platform.database.transaction() as session:
        organisation = await identity.create_organisation(
            session,
            "system:test",
            "Klinikum Ost",
            OrganisationType.HOSPITAL,
            "261100099",
            None,
            MfaPolicy.CLINICAL,
        )
        client_id = await identity.create_client(
            session,
            "system:test",
            "Ward app",
            organisation,
            "openid",
            redirect_uris=["https://app.example/cb"],
        )
    with pytest.raises(AdministrationError, match="belongs to an organisation"):
        async with fresh_platform.database.transaction() as session:
            await identity.register_platform_client(
                session, client_id, "medicus Messenger", "https://evil.example/cb", "openid"
            )
