"""The composition root: builds every service of one medicus process from its Settings, once.
Nothing else creates engines, clients or services; routes receive what they need from here.
Longer than 500 lines because it names every capability's services in this one place."""

from __future__ import annotations

import datetime as dt
import functools
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

import medicus
from medicus import migrations
from medicus.access.breakglass import BreakGlass
from medicus.access.disclosures import Disclosures
from medicus.access.oversight import Oversight
from medicus.access.patient_accounts import PatientAccounts
from medicus.access.patients import PatientIndex
from medicus.access.policy import AccessPolicy
from medicus.access.trail_reader import AuditTrailReader
from medicus.audit.sealer import AuditSealer
from medicus.audit.service import AuditTrail
from medicus.collab.app_passwords import AppPasswords
from medicus.collab.editing import Editing
from medicus.collab.files import Files
from medicus.collab.lock_state import LockState
from medicus.collab.nodes import Nodes
from medicus.collab.permissions import SpaceGate
from medicus.collab.properties import Properties
from medicus.collab.service import Spaces
from medicus.collab.share_links import ShareLinks
from medicus.collab.tree import Tree
from medicus.collab.uploads import SpaceUploads
from medicus.collab.webdav_locks import DavLocks
from medicus.core.background import BackgroundUpdates
from medicus.core.clock import Clock
from medicus.core.crypto import SecretBox
from medicus.core.db import Database, utc_now
from medicus.core.mail import (
    LogMailSender,
    MailSender,
    SmtpMailSender,
    UnavailableMailSender,
)
from medicus.core.metrics import HttpMetrics
from medicus.fhir.bundles import BundleService
from medicus.fhir.capability import capability_statement
from medicus.fhir.definitions import resource_types
from medicus.fhir.documents import Documents
from medicus.fhir.guard import Guard
from medicus.fhir.operations import Operations
from medicus.fhir.router import FhirRouter
from medicus.fhir.search_repository import PairRows
from medicus.fhir.service import FhirService
from medicus.fhir.stored_bytes import StoredBytes
from medicus.fhir.validation import validate
from medicus.fhir.writer import ResourceWriter
from medicus.iam.admin import AdminService
from medicus.iam.discovery import Endpoints
from medicus.iam.keys import SigningKeys
from medicus.iam.login import LoginService
from medicus.iam.oauth import OAuthService
from medicus.iam.organisation_settings import OrganisationSettings
from medicus.iam.passwords import PasswordHasher
from medicus.iam.revocations import Revocations
from medicus.iam.service import IdentityService
from medicus.iam.tokens import TokenService
from medicus.iam.upstream import UpstreamLogins
from medicus.messenger.hub import MessengerHub, build_messenger
from medicus.settings import Settings
from medicus.storage.backends import Backend
from medicus.storage.keyring import LocalKeyring
from medicus.storage.maintenance import StorageMaintenance
from medicus.storage.permissions import StoragePermissions
from medicus.storage.service import ObjectStore
from medicus.storage.uploads import UploadService
from medicus.storage.work import ReplicaWork, Sweep
from medicus.updates import update_steps
from medicus.web.collab_pages import PortalCollab
from medicus.web.oversight import OversightPages
from medicus.web.own_data import OwnData
from medicus.web.service import Portal
from medicus.web.stewardship import Stewardship
from medicus.web.storage_pages import PortalStorage


@dataclass(frozen=True)
class FhirHub:
    """The FHIR capability's services, built once here."""

    service: FhirService
    router: FhirRouter
    bundles: BundleService
    operations: Operations
    guard: Guard
    capabilities: dict[str, Any]

    def router_at(self, base: str) -> FhirRouter:
        """The hub answering under another public base URL (the messenger's directory at
        `/directory/fhir`): links and paging in its answers point there."""
        return FhirRouter(
            self.service, self.operations, self.capabilities, base, self.router.stored
        )


@dataclass(frozen=True)
class Collab:
    """The collaboration spaces' services (docs/collab.md), built once here."""

    spaces: Spaces
    files: Files
    tree: Tree
    editing: Editing
    share_links: ShareLinks
    app_passwords: AppPasswords
    dav_locks: DavLocks
    uploads: SpaceUploads
    locks: LockState
    properties: Properties


@dataclass
class Platform:
    settings: Settings
    database: Database
    metrics: HttpMetrics
    audit: AuditTrail
    audit_sealer: AuditSealer
    identity: IdentityService
    endpoints: Endpoints
    signing_keys: SigningKeys
    tokens: TokenService
    revocations: Revocations
    logins: LoginService
    oauth: OAuthService
    admin: AdminService
    organisation_settings: OrganisationSettings
    upstream: UpstreamLogins
    http_client: httpx.AsyncClient
    patients: PatientIndex
    trail_reader: AuditTrailReader
    disclosures: Disclosures
    break_glass: BreakGlass
    fhir: FhirHub
    background_updates: BackgroundUpdates
    portal: Portal
    portal_own_data: OwnData
    portal_oversight: OversightPages
    portal_stewardship: Stewardship
    portal_storage: PortalStorage
    portal_collab: PortalCollab
    storage: ObjectStore
    storage_permissions: StoragePermissions
    storage_uploads: UploadService
    storage_work: ReplicaWork
    collab: Collab
    messenger: MessengerHub | None

    async def start_background_work(self) -> None:
        """Start the loops of a server process (and register the messenger's sign-on client).
        The background updates run only on a database at this code's head: during a rolling
        release, older servers leave them to newer ones."""
        await self.signing_keys.ring()
        await self.revocations.poll()
        self.revocations.start()
        self.audit_sealer.start()
        self.storage_work.start()
        at_head = await migrations.current_revision(self.database) == migrations.head_revision()
        if self.messenger is not None:
            if at_head:
                await self.messenger.sign_on.register()
            self.messenger.upkeep.start()
        if at_head:
            self.background_updates.start()

    async def stop_background_work(self) -> None:
        await self.background_updates.stop()
        await self.revocations.stop()
        await self.audit_sealer.stop()
        await self.storage_work.stop()
        if self.messenger is not None:
            await self.messenger.upkeep.stop()

    async def close(self) -> None:
        await self.http_client.aclose()
        if self.messenger is not None:
            await self.messenger.forwarder.aclose()
        await self.database.dispose()


def build_platform(settings: Settings, clock: Clock = utc_now) -> Platform:
    """The platform of `settings`; its access rules read the time from `clock`."""
    database = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        generic_plans=settings.db_generic_plans,
    )
    audit = AuditTrail(database)
    box = SecretBox(settings.effective_secret_key())
    hasher = PasswordHasher(settings.argon2_time_cost, settings.argon2_memory_kib)
    endpoints = _endpoints(settings)
    signing_keys, revocations, tokens = _token_services(settings, database, box, endpoints)
    identity = IdentityService(audit, hasher, resource_types())
    oversight = Oversight(database, identity)
    logins = _logins(settings, database, audit, hasher, box, revocations)
    http_client = httpx.AsyncClient(timeout=10, follow_redirects=False, verify=_tls_context())
    patients = PatientIndex(database, audit, clock)
    break_glass = BreakGlass(
        database, audit, oversight, dt.timedelta(minutes=settings.break_glass_minutes), clock
    )
    storage = _storage(settings, database, box)
    fhir = _fhir_hub(database, audit, box, patients, endpoints, clock, storage)
    storage_permissions = StoragePermissions(fhir.guard, audit)
    trail_reader = AuditTrailReader(database, audit, identity, oversight)
    callback_url = f"{settings.public_url}/login/upstream/callback"
    upstream = UpstreamLogins(database, audit, logins, box, callback_url, http_client)
    admin = _admin(settings, database, audit, identity, revocations)
    accounts = PatientAccounts(database, audit, admin)
    portal = Portal(
        database, fhir, patients, break_glass, identity, accounts, endpoints.fhir_base_url
    )
    uploads = _uploads(settings, storage, storage_permissions, clock)
    collab = _collab(settings, database, audit, fhir.guard, storage, clock)
    portal_storage = _portal_storage(settings, database, audit, fhir, patients, identity, uploads)
    return Platform(
        settings=settings,
        database=database,
        metrics=HttpMetrics(),
        audit=audit,
        audit_sealer=AuditSealer(audit, settings.audit_seal_interval),
        identity=identity,
        revocations=revocations,
        endpoints=endpoints,
        signing_keys=signing_keys,
        tokens=tokens,
        logins=logins,
        oauth=_oauth(settings, database, audit, tokens, endpoints),
        admin=admin,
        organisation_settings=OrganisationSettings(
            database, audit, identity, upstream, revocations, callback_url
        ),
        upstream=upstream,
        http_client=http_client,
        patients=patients,
        trail_reader=trail_reader,
        disclosures=Disclosures(database, audit, oversight),
        break_glass=break_glass,
        fhir=fhir,
        background_updates=BackgroundUpdates(database, update_steps(patients)),
        portal=portal,
        portal_own_data=OwnData(portal, accounts, trail_reader, portal.consents),
        portal_oversight=OversightPages(database, break_glass, trail_reader, identity),
        portal_stewardship=Stewardship(database, patients, identity),
        portal_storage=portal_storage,
        portal_collab=_portal_collab(settings, database, identity, collab),
        storage=storage,
        storage_permissions=storage_permissions,
        storage_uploads=uploads,
        storage_work=ReplicaWork(
            storage, clock, sweeps=[uploads.expire_due, _trash_retention(collab.tree)]
        ),
        collab=collab,
        messenger=_messenger(
            settings, database, audit, identity, http_client, fhir, storage, clock, box
        ),
    )


def _messenger(
    settings: Settings,
    database: Database,
    audit: AuditTrail,
    identity: IdentityService,
    http: httpx.AsyncClient,
    fhir: FhirHub,
    storage: ObjectStore,
    clock: Clock,
    box: SecretBox,
) -> MessengerHub | None:
    directory_hub = fhir.router_at(f"{settings.public_url}/directory/fhir")
    return build_messenger(
        settings, database, audit, identity, http, fhir.service, directory_hub, storage, clock, box
    )


def _token_services(
    settings: Settings, database: Database, box: SecretBox, endpoints: Endpoints
) -> tuple[SigningKeys, Revocations, TokenService]:
    """The signing keys, the revocation list and the token service over them."""
    token_lifetime = dt.timedelta(seconds=settings.access_token_seconds)
    signing_keys = SigningKeys(
        database, box, token_lifetime, dt.timedelta(days=settings.signing_key_rotation_days)
    )
    revocations = Revocations(database, token_lifetime, settings.revocation_poll_seconds)
    tokens = TokenService(
        database,
        signing_keys,
        revocations,
        endpoints.issuer,
        endpoints.fhir_base_url,
        token_lifetime,
    )
    return signing_keys, revocations, tokens


def _endpoints(settings: Settings) -> Endpoints:
    return Endpoints(
        issuer=settings.public_url,
        fhir_base_url=f"{settings.public_url}/fhir",
        secure_cookies=settings.public_url.startswith("https://"),
    )


def _admin(
    settings: Settings,
    database: Database,
    audit: AuditTrail,
    identity: IdentityService,
    revocations: Revocations,
) -> AdminService:
    return AdminService(
        database,
        audit,
        identity,
        revocations,
        _mail_sender(settings),
        settings.public_url,
        dt.timedelta(days=settings.invitation_days),
    )


def _logins(
    settings: Settings,
    database: Database,
    audit: AuditTrail,
    hasher: PasswordHasher,
    box: SecretBox,
    revocations: Revocations,
) -> LoginService:
    return LoginService(
        database,
        audit,
        hasher,
        box,
        issuer_name="medicus",
        session_lifetime=dt.timedelta(seconds=settings.session_seconds),
        attempts_before_lockout=settings.login_attempts_before_lockout,
        revocations=revocations,
    )


def _oauth(
    settings: Settings,
    database: Database,
    audit: AuditTrail,
    tokens: TokenService,
    endpoints: Endpoints,
) -> OAuthService:
    return OAuthService(
        database,
        audit,
        tokens,
        token_endpoint=endpoints.token,
        fhir_base_url=endpoints.fhir_base_url,
        refresh_lifetime=dt.timedelta(seconds=settings.refresh_token_seconds),
        resource_types=resource_types(),
    )


def _fhir_hub(
    database: Database,
    audit: AuditTrail,
    box: SecretBox,
    patients: PatientIndex,
    endpoints: Endpoints,
    clock: Clock,
    storage: ObjectStore,
) -> FhirHub:
    """The FHIR hub; Binaries and large attachments keep their bytes in `storage`."""
    guard = Guard(AccessPolicy(), clock)
    writer = ResourceWriter(guard, audit, validate, patients)
    service = FhirService(database, guard, audit, writer, box, PairRows(database))
    operations = Operations(database, service, validate)
    capabilities = capability_statement(
        endpoints.fhir_base_url, endpoints.issuer, medicus.__version__
    )
    base = endpoints.fhir_base_url
    stored = StoredBytes(database, guard, audit, writer, storage, base)
    router = FhirRouter(service, operations, capabilities, base, stored)
    bundles = BundleService(service, router)
    return FhirHub(service, router, bundles, operations, guard, capabilities)


def _storage(settings: Settings, database: Database, box: SecretBox) -> ObjectStore:
    """The object storage on the configured backends; the embedded keyring's file lies in
    the data directory beside the platform's secret."""
    gigabyte = 1024**3
    quota = settings.storage_quota_gb
    return ObjectStore(
        database,
        [Backend.from_config(config) for config in settings.effective_storage_backends()],
        LocalKeyring(settings.data_dir / "keys" / "storage_keys.json", box),
        settings.effective_storage_replicas(),
        None if quota is None else int(quota * gigabyte),
        int(settings.storage_max_object_gb * gigabyte),
    )


def _collab(
    settings: Settings,
    database: Database,
    audit: AuditTrail,
    guard: Guard,
    storage: ObjectStore,
    clock: Clock,
) -> Collab:
    """The collaboration spaces, whose files are stored objects of the space's organisation."""
    gate = SpaceGate(database, audit, guard)
    nodes = Nodes(database, gate, storage, clock)
    return Collab(
        spaces=Spaces(database, gate, storage, _mail_sender(settings), settings.public_url, clock),
        files=Files(nodes),
        tree=Tree(nodes),
        editing=Editing(nodes),
        share_links=ShareLinks(
            nodes,
            audit,
            PasswordHasher(settings.argon2_time_cost, settings.argon2_memory_kib),
            SecretBox(settings.effective_secret_key()),
            _mail_sender(settings),
            settings.public_url,
        ),
        app_passwords=AppPasswords(database, audit, clock),
        dav_locks=DavLocks(nodes),
        properties=Properties(nodes),
        uploads=SpaceUploads(
            storage,
            StoragePermissions(guard, audit),
            settings.data_dir / "uploads",
            dt.timedelta(hours=settings.storage_upload_hours),
            gate,
            nodes,
            clock,
        ),
        locks=LockState(nodes),
    )


def _portal_collab(
    settings: Settings, database: Database, identity: IdentityService, collab: Collab
) -> PortalCollab:
    """The portal's pages of the spaces, over the collaboration services."""
    return PortalCollab(
        database,
        identity,
        collab.spaces,
        collab.files,
        collab.tree,
        collab.editing,
        collab.uploads,
        collab.share_links,
        collab.app_passwords,
        collab.locks,
        settings.public_url,
    )


def _trash_retention(tree: Tree) -> Sweep:
    """The collaboration spaces' trash emptied of what lay there past its space's retention,
    as a sweep of the background work (the tree reads the same clock)."""

    async def purge(_now: dt.datetime) -> int:
        return await tree.purge_expired()

    return purge


def _portal_storage(
    settings: Settings,
    database: Database,
    audit: AuditTrail,
    fhir: FhirHub,
    patients: PatientIndex,
    identity: IdentityService,
    uploads: UploadService,
) -> PortalStorage:
    """The portal's uploads, documents and storage page, over the FHIR hub's stored bytes."""
    stored = fhir.router.stored
    documents = Documents(fhir.service, fhir.router, stored.storage)
    urls = {backend.name: backend.url for backend in settings.effective_storage_backends()}
    maintenance = StorageMaintenance(stored.storage, audit)
    return PortalStorage(
        database, fhir.service, documents, patients, identity, maintenance, urls, uploads, stored
    )


def _uploads(
    settings: Settings, storage: ObjectStore, permissions: StoragePermissions, clock: Clock
) -> UploadService:
    """Resumable uploads, staged in the data directory until complete."""
    lifetime = dt.timedelta(hours=settings.storage_upload_hours)
    return UploadService(storage, permissions, settings.data_dir / "uploads", lifetime, clock)


def _mail_sender(settings: Settings) -> MailSender:
    if settings.smtp_url is not None:
        return SmtpMailSender(settings.smtp_url.get_secret_value(), settings.mail_from)
    return UnavailableMailSender() if settings.env == "production" else LogMailSender()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The TLS settings of medicus's outgoing calls (an upstream identity provider, an app's
    keys), read once per process: loading the system's CA certificates takes ~25 ms."""
    return httpx.create_ssl_context()
