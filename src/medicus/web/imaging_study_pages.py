"""The portal's study page as a use case: one ImagingStudy read as the signed-in user through
the FHIR hub (so `access` decides and `audit` records the read with its Patient record), the
patient it is about as the chart's search shows them, and the link to share it.

The link is `{public URL}/portal/imaging-studies/{id}`: the study's opaque FHIR id and nothing
else, so that a message carrying it tells Synapse (which stores messages) nothing about the
patient; whoever follows it gets the page only if `access` lets them read the study."""

from __future__ import annotations

from dataclasses import dataclass

from medicus.web.imaging_study import Study, study
from medicus.web.service import FoundPatient, Portal
from medicus.web.users import PortalUser

STUDY_PATH = "/portal/imaging-studies/"


def study_link(public_url: str, study_id: str) -> str:
    """The absolute address of a study's page, as it is shared in a message."""
    return f"{public_url.rstrip('/')}{STUDY_PATH}{study_id}"


@dataclass(frozen=True)
class StudyPage:
    study: Study
    patient: FoundPatient | None
    """The Patient record the study is about, None if it is about none (or, which `access`
    does not allow with a readable study, one the user may not see)."""
    link: str


class PortalImaging:
    """Imaging studies in the portal, over the portal's reads of the FHIR hub."""

    def __init__(self, portal: Portal, public_url: str) -> None:
        self._portal = portal
        self._public_url = public_url

    async def study(self, user: PortalUser, study_id: str) -> StudyPage:
        """The study page of ImagingStudy `study_id`: a 404 (ApiError) if there is none or
        the user may not see it, the same 404 in both cases."""
        found = study(await self._portal.read(user, "ImagingStudy", study_id))
        patient = None
        if found.patient_id is not None:
            patient = await self._portal.patient(user, found.patient_id)
        return StudyPage(found, patient, study_link(self._public_url, found.id))
