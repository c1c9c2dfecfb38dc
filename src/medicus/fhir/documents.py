"""A document filed from an upload: bytes that arrived by a resumable upload (tus) become a
Binary and a DocumentReference of a patient, written through the FHIR hub as the uploader,
so `access` decides and the audit trail records exactly as for any FHIR write.

One writing transaction does it all: the stored object, which must be the caller's own
unowned upload in their organisation (else 404, as if it did not exist), is given its owner
`Binary/{id}` (the Binary's id chosen here, as for a moved attachment), the DocumentReference
is created, and then its Binary with the DocumentReference as `securityContext` (the hub's
way for an attachment's bytes, `stored_bytes.StoredBytes.around`). If anything fails, the
object stays unowned and nothing is written."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from medicus.core.errors import ApiError
from medicus.core.ids import new_id
from medicus.fhir.attachments import Moved
from medicus.fhir.router import FhirRequest, FhirRouter, Resource
from medicus.fhir.service import FhirService
from medicus.fhir.stored_bytes import Staged
from medicus.iam.tokens import Principal
from medicus.storage.service import ObjectStore

LOINC = "http://loinc.org"
DOCUMENT_KINDS = {
    "18842-5": "Discharge summary",
    "11488-4": "Consult note",
    "11526-1": "Pathology study",
    "18748-4": "Diagnostic imaging study",
    "34133-9": "Summary of episode note",
}
"""The LOINC document types a filed document may have (code: LOINC display)."""
TITLE_MAX = 200


@dataclass(frozen=True)
class NewDocument:
    """What the uploader says of a finished upload: whose document, what kind, its title."""

    patient_id: str
    object_id: str
    kind: str
    title: str
    author: str | None = None
    """A reference to the uploader (`Practitioner/…`), if known."""


@dataclass(frozen=True)
class FiledDocument:
    document_id: str
    binary_id: str


def _not_known(object_id: str) -> ApiError:
    return ApiError(404, f"The upload {object_id[:64]} is not known here.")


def document_reference(
    new: NewDocument, binary_id: str, content_type: str, size: int, now: dt.datetime
) -> dict[str, Any]:
    """The DocumentReference of a filed document, its attachment naming the Binary."""
    moment = now.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    coding = {"system": LOINC, "code": new.kind, "display": DOCUMENT_KINDS[new.kind]}
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"coding": [coding]},
        "subject": {"reference": f"Patient/{new.patient_id}"},
        "date": moment,
        "description": new.title,
        "content": [
            {
                "attachment": {
                    "contentType": content_type,
                    "url": f"Binary/{binary_id}",
                    "title": new.title,
                    "size": size,
                    "creation": moment,
                }
            }
        ],
    }
    if new.author:
        resource["author"] = [{"reference": new.author}]
    return resource


class Documents:
    """Filing uploads as documents of patients."""

    def __init__(self, fhir: FhirService, router: FhirRouter, storage: ObjectStore) -> None:
        self._fhir = fhir
        self._router = router
        self._storage = storage

    async def file(self, caller: Principal, new: NewDocument, now: dt.datetime) -> FiledDocument:
        """Make the caller's finished upload `new.object_id` a document of the patient; a 404
        if it is not an upload of theirs that no resource holds yet, a 422 for an unknown
        kind or a title that is empty or too long."""
        if new.kind not in DOCUMENT_KINDS:
            raise ApiError(422, "The document kind must be one of the LOINC codes offered.")
        if not new.title.strip() or len(new.title) > TITLE_MAX:
            raise ApiError(422, f"The title must have 1 to {TITLE_MAX} characters.")
        binary_id = new_id()
        async with self._fhir.writing() as session:
            adopted = await self._storage.adopt(
                session,
                new.object_id,
                caller.organisation_id,
                caller.actor[:64],
                f"Binary/{binary_id}",
            )
            if adopted is None:
                raise _not_known(new.object_id)
            resource = document_reference(new, binary_id, adopted.content_type, adopted.size, now)
            moved = Moved(binary_id, adopted.content_type, adopted.id)
            request = FhirRequest(
                "POST",
                "DocumentReference",
                body=Resource(resource),
                staged=Staged(moved=[moved]),
            )
            answer = await self._router.handle(caller, request, session)
        assert answer.version is not None
        return FiledDocument(answer.version.fhir_id, binary_id)
