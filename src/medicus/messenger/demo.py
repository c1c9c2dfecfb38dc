"""The messenger's part of the demo data: the care organisations on the federation list, their
physicians listed in the directory, and a cardiology service on call at the university
hospital (held by its first physician)."""

from __future__ import annotations

from collections.abc import Sequence

from medicus.iam.roles import Role
from medicus.iam.scopes import parse_scopes
from medicus.iam.tokens import Principal
from medicus.messenger.service import Messenger

DEMO_SERVICE = "Kardiologie Rufdienst"


def _operator(organisation_id: str) -> Principal:
    """The demo loader, acting as a platform admin (it sets up every organisation)."""
    return Principal(
        subject="medicus-demo",
        kind="user",
        organisation_id=organisation_id,
        role=Role.PLATFORM_ADMIN,
        client_id="medicus-demo",
        scope=parse_scopes("admin"),
        scope_text="admin",
        jti="",
        expires_at=0,
    )


async def load_messenger_demo(
    messenger: Messenger,
    operator_organisation: str,
    listings: Sequence[tuple[str, Sequence[str]]],
    on_call: tuple[str, str],
) -> None:
    """`listings`: (organisation id, the user ids it lists); `on_call`: (organisation id, user
    id) of the demo's service."""
    operator = _operator(operator_organisation)
    for organisation_id, user_ids in listings:
        await messenger.federate(organisation_id, True, "system:demo")
        for user_id in user_ids:
            await messenger.set_listed(operator, organisation_id, user_id, True)
    organisation_id, user_id = on_call
    services = await messenger.services(operator, organisation_id)
    if not any(service.name == DEMO_SERVICE for service in services):
        await messenger.add_service(operator, organisation_id, DEMO_SERVICE, "Kardiologie", user_id)
