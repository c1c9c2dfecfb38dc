"""The portal's use cases of storage: filing a finished upload as a document of a patient's
chart (`fhir.documents`, as the user: `access` decides and the audit trail records it as any
FHIR write), and the platform operator's overview of the storage (backends, replication,
each organisation's usage against its quota; `storage.maintenance.StorageMaintenance`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from medicus.access.patients import PatientIndex
from medicus.core.db import Database, utc_now
from medicus.core.errors import ApiError
from medicus.core.i18n import Language
from medicus.fhir.documents import Documents, FiledDocument, NewDocument
from medicus.fhir.service import FhirService
from medicus.fhir.stored_bytes import StoredBytes
from medicus.iam.scopes import Context
from medicus.iam.service import IdentityService
from medicus.storage.maintenance import StorageMaintenance
from medicus.storage.reports import BackendStatus
from medicus.storage.uploads import UploadService
from medicus.web.users import PortalUser

_OBJECT_ID = re.compile(r"(?:.*/)?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
KINDS = {"file": "local", "s3": "s3", "az": "azure", "azure": "azure", "abfs": "azure", "gs": "gcs"}
"""A backend's kind by the scheme of its url."""


def may_file_documents(user: PortalUser) -> bool:
    """Whether the user's role may write documents and their bytes (physicians and nurses;
    a medical assistant's role reads them only)."""
    scope = user.principal.scope
    return all(scope.allows(Context.USER, kind, "c") for kind in ("DocumentReference", "Binary"))


def object_id_of(given: str) -> str | None:
    """The object id in what the browser sends: the id, or the upload's `Medicus-Object`
    (`/storage/objects/{id}`)."""
    found = _OBJECT_ID.fullmatch(given.strip())
    return None if found is None else found.group(1)


@dataclass(frozen=True)
class BackendLine:
    status: BackendStatus
    kind: str


@dataclass(frozen=True)
class UsageLine:
    organisation_id: str
    name: str
    used_bytes: int
    quota_bytes: int | None
    default_quota: bool

    @property
    def share(self) -> float | None:
        """How much of the quota is used (0 to 1), None without a quota."""
        if not self.quota_bytes:
            return None
        return min(1.0, self.used_bytes / self.quota_bytes)


@dataclass(frozen=True)
class StorageOverview:
    replicas: int
    objects: int
    backends: list[BackendLine]
    organisations: list[UsageLine]


class PortalStorage:
    def __init__(
        self,
        database: Database,
        fhir: FhirService,
        documents: Documents,
        patients: PatientIndex,
        identity: IdentityService,
        maintenance: StorageMaintenance,
        backend_urls: dict[str, str],
        uploads: UploadService,
        stored_bytes: StoredBytes,
    ) -> None:
        """`backend_urls`: each configured backend's url by name (for its kind only);
        `uploads` and `stored_bytes` are served as they are (tus, Binary downloads)."""
        self.uploads = uploads
        self.stored_bytes = stored_bytes
        self._database = database
        self._fhir = fhir
        self._documents = documents
        self._patients = patients
        self._identity = identity
        self._maintenance = maintenance
        self._kinds = {
            name: KINDS.get(url.partition(":")[0], url.partition(":")[0])
            for name, url in backend_urls.items()
        }

    async def file_document(
        self, user: PortalUser, patient_id: str, uploaded: str, kind: str, title: str
    ) -> FiledDocument:
        """File the user's finished upload `uploaded` as a document of Patient record
        `patient_id`, which their organisation must hold (404 otherwise, as for a record
        they may not see; reading it is audited)."""
        await self._fhir.read(user.principal, "Patient", patient_id)
        holders = await self._patients.holders_of([patient_id])
        if holders.get(patient_id, user.principal.organisation_id) != (
            user.principal.organisation_id
        ):
            raise ApiError(404, f"Patient/{patient_id} is not a record of your organisation.")
        object_id = object_id_of(uploaded)
        if object_id is None:
            raise ApiError(404, "The upload is not known here.")
        new = NewDocument(patient_id, object_id, kind, " ".join(title.split()))
        return await self._documents.file(user.principal, new, utc_now())

    async def overview(self, user: PortalUser) -> StorageOverview:
        """The storage's state, for platform administrators only (403 for anyone else). It
        holds no patient data, and is not audited (as `GET /storage/usage`)."""
        if not user.runs_platform:
            raise ApiError(403, "Only platform administrators see the storage.")
        status = await self._maintenance.status()
        ids = {usage.organisation_id for usage in status.organisations}
        async with self._database.snapshot() as session:
            names = (await self._identity.names(session, (), ids, ())).organisations
        organisations = sorted(
            (
                UsageLine(
                    usage.organisation_id,
                    names.get(usage.organisation_id, usage.organisation_id),
                    usage.used_bytes,
                    usage.quota_bytes,
                    usage.default_quota,
                )
                for usage in status.organisations
            ),
            key=lambda line: line.name.casefold(),
        )
        backends = [
            BackendLine(backend, self._kinds.get(backend.name, "")) for backend in status.backends
        ]
        return StorageOverview(status.replicas, status.objects, backends, organisations)


_UNITS = ("bytes", "KB", "MB", "GB", "TB", "PB")


def human_bytes(language: Language, count: int) -> str:
    """A byte count as people read it (`1,5 GB` in German, `1.5 GB` in English; below a
    kilobyte the bytes themselves). Units of 1,024, as the settings count them
    (`storage_quota_gb = 500` is shown as 500 GB)."""
    value, unit = float(count), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    shown = round(value) if unit == 0 or value >= 100 else round(value, 1)
    return f"{language.number(shown)} {_UNITS[unit]}"
