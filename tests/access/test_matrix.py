"""The decision matrix, through HTTP: every role, same or other organisation, the other
organisation's type (a hospital or an app vendor), consent state and source (none; active,
recorded during a stay at its holder; revoked; expired; recorded without the holder ever
treating the person; without a source document), treatment relation or not, break-glass or
not, and interaction (read, search, include, history, $everything, write, delete); each cell
against the expected decision.

Hospital A holds a person's record `a1` and a lab value about it; organisation B holds its
own record `b1` of the same person (same KVNR). The caller works for A (same organisation)
or B (other organisation)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from tests.access.conftest import Region
from tests.support import resources

PERSON = "A123456780"
"""The KVNR of the person whose records A and B hold."""
ROLE_SCOPES = {
    "physician": "user/*.cruds",
    "nurse": "user/*.crus",
    "medical_assistant": "user/*.rs user/Patient.cru user/Appointment.cruds",
}
INTERACTIONS = ("read", "search", "include", "history", "everything", "write", "delete")
CONSENTS = ("none", "active", "revoked", "expired", "unvouched", "unsourced")
CARE_PROVIDER, APP_VENDOR = "hospital", "app_vendor"


@dataclass(frozen=True)
class Cell:
    role: str
    organisation: str  # "same" or "other"
    other_type: str  # the other organisation's type
    consent: str
    treatment: bool
    break_glass: bool
    interaction: str


def expected(cell: Cell) -> bool:
    """The rules of docs/access.md, cell by cell."""
    scope = ROLE_SCOPES[cell.role]
    permission = {"write": "u", "delete": "d", "search": "s", "include": "s"}.get(
        cell.interaction, "r"
    )
    allowed_by_scope = any(
        part.startswith("user/*.") and permission in part.split(".")[1] for part in scope.split()
    )
    if not allowed_by_scope:
        return False
    if cell.organisation == "same":
        return True
    if cell.interaction in ("write", "delete"):
        return False
    cares = cell.other_type == CARE_PROVIDER
    shared = cell.consent == "active" and cell.treatment and cares
    opened = cell.break_glass and cell.role == "physician" and cares
    return shared or opened


def _consent(patient: str, state: str) -> dict[str, Any]:
    provision: dict[str, Any] = {"type": "permit"}
    if state == "expired":
        provision["period"] = {"start": "2020-01-01", "end": "2021-01-01"}
    return resources.consent(
        patient,
        signed=state != "unsourced",
        status="inactive" if state == "revoked" else "active",
        provision=provision,
    )


class World:
    def __init__(self, region: Region) -> None:
        self.region = region

    async def build(self, consent: str, treatment: bool, other_type: str) -> None:
        region = self.region
        await region.organisation("hospital-b", other_type)
        self.a1 = await region.create("hospital-a", resources.patient(PERSON))
        self.lab_body = resources.observation(self.a1)
        self.lab = await region.create("hospital-a", self.lab_body)
        self.b1 = await region.create("hospital-b", resources.patient(PERSON))
        if treatment:
            recorded = await region.http.post(
                "/fhir/Encounter",
                content=orjson.dumps(resources.encounter(self.b1)),
                headers=await region.token("hospital-b"),
            )
            assert recorded.status_code == (201 if other_type == CARE_PROVIDER else 403)
        if consent in ("active", "expired"):
            await region.consent_during_stay("hospital-a", _consent(self.a1, consent))
        elif consent in ("revoked", "unvouched"):
            await region.create("hospital-a", _consent(self.a1, consent))
        elif consent == "unsourced":
            refused = await region.http.post(
                "/fhir/Consent",
                content=orjson.dumps(_consent(self.a1, consent)),
                headers=await region.token("hospital-a"),
            )
            assert refused.status_code == 422, refused.text

    async def headers(self, cell: Cell) -> dict[str, str]:
        organisation = "hospital-a" if cell.organisation == "same" else "hospital-b"
        return await self.region.token(organisation, cell.role, ROLE_SCOPES[cell.role])

    async def open_glass(self, cell: Cell) -> None:
        response = await self.region.http.post(
            "/api/break-glass",
            json={"patient": self.b1, "reason": "Emergency, unconscious patient"},
            headers=await self.headers(cell),
        )
        opens = cell.role == "physician" and cell.other_type == CARE_PROVIDER
        assert response.status_code == (201 if opens else 403), response.text

    async def allowed(self, cell: Cell) -> bool:
        """Whether the interaction reached the lab value."""
        http, headers = self.region.http, await self.headers(cell)
        lab = f"/fhir/Observation/{self.lab}"
        if cell.interaction == "read":
            return (await http.get(lab, headers=headers)).status_code == 200
        if cell.interaction == "history":
            return (await http.get(f"{lab}/_history", headers=headers)).status_code == 200
        if cell.interaction == "search":
            found = await http.get(f"/fhir/Observation?subject=Patient/{self.a1}", headers=headers)
            return self.lab in _ids(found)
        if cell.interaction == "include":
            found = await http.get(
                f"/fhir/Observation?_id={self.lab}&_include=Observation:subject", headers=headers
            )
            return self.a1 in _ids(found) and self.lab in _ids(found)
        if cell.interaction == "everything":
            mine = self.a1 if cell.organisation == "same" else self.b1
            found = await http.get(f"/fhir/Patient/{mine}/$everything", headers=headers)
            return self.lab in _ids(found)
        if cell.interaction == "write":
            body = orjson.dumps({**self.lab_body, "id": self.lab})
            return (await http.put(lab, content=body, headers=headers)).status_code == 200
        # A delete of what the caller cannot see answers as one of a free id: 204 either way.
        await http.delete(lab, headers=headers)
        holder = await self.region.token("hospital-a")
        return (await http.get(lab, headers=holder)).status_code == 410


def _ids(response: Any) -> set[str]:
    if response.status_code != 200:
        return set()
    return {entry["resource"]["id"] for entry in response.json().get("entry", [])}


@pytest.mark.parametrize(
    ("other_type", "consent", "treatment", "break_glass"),
    [
        *itertools.product((CARE_PROVIDER,), CONSENTS, (False, True), (False, True)),
        # An app vendor gains nothing, even where a hospital would.
        *itertools.product((APP_VENDOR,), ("active",), (False, True), (False, True)),
    ],
)
async def test_every_cell_decides_as_expected(
    region: Region, other_type: str, consent: str, treatment: bool, break_glass: bool
) -> None:
    world = World(region)
    await world.build(consent, treatment, other_type)
    if break_glass:
        for role in ROLE_SCOPES:
            await world.open_glass(
                Cell(role, "other", other_type, consent, treatment, True, "read")
            )
    cells = [
        Cell(role, organisation, other_type, consent, treatment, break_glass, interaction)
        for interaction in INTERACTIONS
        for organisation in ("other", "same")
        # Deleting last, and by the physician last of all: it ends the lab value.
        for role in ("medical_assistant", "nurse", "physician")
    ]
    wrong = [
        (cell.role, cell.organisation, cell.interaction, outcome)
        for cell in cells
        if (outcome := await world.allowed(cell)) != expected(cell)
    ]
    assert wrong == []
    assert sum(expected(cell) for cell in cells) > 0
