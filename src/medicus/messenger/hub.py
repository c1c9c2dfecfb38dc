"""The messenger's services, built once by the composition root (`platform`) from the settings:
nothing when the messenger is off."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from medicus.audit.service import AuditTrail
from medicus.core.clock import Clock
from medicus.core.crypto import SecretBox
from medicus.core.db import Database
from medicus.fhir.router import FhirRouter
from medicus.fhir.service import FhirService
from medicus.iam.service import IdentityService
from medicus.messenger.directory import Directory
from medicus.messenger.forwarding import SynapseForwarder
from medicus.messenger.homeserver import Homeserver
from medicus.messenger.media import MessengerMedia
from medicus.messenger.media_proxy import MediaRoutes
from medicus.messenger.service import Messenger
from medicus.messenger.sign_on import SignOnClient
from medicus.messenger.synapse_admin import SynapseAdmin
from medicus.messenger.upkeep import MessengerUpkeep
from medicus.settings import Settings
from medicus.storage.service import ObjectStore


@dataclass(frozen=True)
class MessengerHub:
    """The use-cases, the media routes, the client the Messenger-Proxy streams through (no time
    limits: a sync waits, an upload takes minutes), the upkeep loop, and the FHIR hub answering
    at `/directory/fhir`."""

    service: Messenger
    media: MediaRoutes
    forwarder: SynapseForwarder
    upkeep: MessengerUpkeep
    directory_hub: FhirRouter
    sign_on: SignOnClient


def build_messenger(
    settings: Settings,
    database: Database,
    audit: AuditTrail,
    identity: IdentityService,
    http_client: httpx.AsyncClient,
    fhir: FhirService,
    directory_hub: FhirRouter,
    storage: ObjectStore,
    clock: Clock,
    box: SecretBox,
) -> MessengerHub | None:
    if settings.messenger == "off":
        return None
    homeserver = Homeserver.from_settings(settings)
    secret = settings.effective_secret_key()
    synapse = SynapseAdmin(homeserver, secret, http_client)
    directory = Directory(database, fhir, homeserver)
    service = Messenger(database, audit, homeserver, synapse, directory, fhir, secret, box, clock)
    media = MediaRoutes(
        MessengerMedia(database, storage, audit, homeserver, clock), homeserver.max_upload_bytes
    )
    upkeep = MessengerUpkeep(service, clock)
    forwarder = SynapseForwarder(homeserver.synapse_url)
    sign_on = SignOnClient(database, identity, homeserver)
    return MessengerHub(service, media, forwarder, upkeep, directory_hub, sign_on)
