"""Break-glass through HTTP: a physician opens a person's record stating a reason, reads it
until the opening ends, alone; every read is marked in the audit trail; the organisation's
admins review the openings."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.access.conftest import Region
from tests.support import resources
from tests.support.clock import MovableClock

PERSON = "A123456780"
REASON = "Unconscious on admission, allergies unknown"


async def _person_with_a_lab(region: Region) -> tuple[str, str, str]:
    """A's record with a lab value, and C's record of the same person: (a1, lab, c1)."""
    a1 = await region.create("hospital-a", resources.patient(PERSON))
    lab = await region.create(
        "hospital-a",
        resources.observation(a1, code={"text": "Allergy test"}),
    )
    c1 = await region.create("hospital-c", resources.patient(PERSON))
    return a1, lab, c1


async def test_a_physician_reads_an_opened_record_until_it_ends(
    region: Region, clock: MovableClock
) -> None:
    a1, lab, c1 = await _person_with_a_lab(region)
    physician = await region.token("hospital-c", "physician")
    assert (await region.http.get(f"/fhir/Observation/{lab}", headers=physician)).status_code == 404

    opened = await region.http.post(
        "/api/break-glass", json={"patient": c1, "reason": REASON}, headers=physician
    )
    assert opened.status_code == 201, opened.text
    body = opened.json()
    started, ends = (dt.datetime.fromisoformat(body[key]) for key in ("started_at", "ends_at"))
    assert ends - started == dt.timedelta(minutes=240)
    assert (body["patient"], body["reason"], body["reviewed_at"]) == (f"Patient/{c1}", REASON, None)

    read = await region.http.get(f"/fhir/Observation/{lab}", headers=physician)
    assert read.status_code == 200
    found = await region.http.get(f"/fhir/Observation?subject=Patient/{a1}", headers=physician)
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [lab]
    assert await region.decisions(f"Observation/{lab}", "fhir.read") == [
        ("fhir.read", "break-glass"),
        ("fhir.read", "other-organisation"),
    ]
    deleted = await region.http.delete(f"/fhir/Observation/{lab}", headers=physician)
    assert deleted.status_code == 403, "an opened record is read, never changed"

    colleague = await region.token("hospital-c", "organisation_admin", "user/*.rs")
    assert (await region.http.get(f"/fhir/Observation/{lab}", headers=colleague)).status_code == 404

    clock.advance(dt.timedelta(minutes=239))
    assert (await region.http.get(f"/fhir/Observation/{lab}", headers=physician)).status_code == 200
    clock.advance(dt.timedelta(minutes=2))
    assert (await region.http.get(f"/fhir/Observation/{lab}", headers=physician)).status_code == 404


@pytest.mark.parametrize(
    ("role", "body", "status"),
    [
        ("nurse", {"reason": REASON}, 403),
        ("organisation_admin", {"reason": REASON}, 403),
        ("physician", {"reason": "because"}, 422),
        ("physician", {"reason": " " * 30}, 422),
        ("physician", {}, 422),
        ("physician", {"reason": REASON, "patient": "nobody"}, 404),
    ],
)
async def test_who_may_open_and_how(
    region: Region, role: str, body: dict[str, str], status: int
) -> None:
    _, lab, c1 = await _person_with_a_lab(region)
    caller = await region.token("hospital-c", role)
    response = await region.http.post(
        "/api/break-glass", json={"patient": c1, **body}, headers=caller
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    physician = await region.token("hospital-c", "physician")
    assert (await region.http.get(f"/fhir/Observation/{lab}", headers=physician)).status_code == 404


@pytest.mark.parametrize("reviewing_role", ["data_protection_officer", "organisation_admin"])
async def test_the_organisation_reviews_its_openings(region: Region, reviewing_role: str) -> None:
    _, _, c1 = await _person_with_a_lab(region)
    physician = await region.token("hospital-c", "physician")
    opened = await region.http.post(
        "/api/break-glass", json={"patient": c1, "reason": REASON}, headers=physician
    )
    reviewer = await region.token("hospital-c", reviewing_role, "")
    listed = await region.http.get("/api/break-glass?unreviewed=true", headers=reviewer)
    assert [item["id"] for item in listed.json()] == [opened.json()["id"]]
    assert listed.json()[0]["physician"] == "user:hospital-c-physician"

    other = await region.token("hospital-a", "organisation_admin", "user/*.rs")
    assert (await region.http.get("/api/break-glass", headers=other)).json() == []
    assert (await region.http.get("/api/break-glass", headers=physician)).status_code == 403
    foreign = await region.http.post(
        f"/api/break-glass/{opened.json()['id']}/review", json={"note": "ok"}, headers=other
    )
    assert foreign.status_code == 404

    blank = await region.http.post(
        f"/api/break-glass/{opened.json()['id']}/review", json={"note": "   "}, headers=reviewer
    )
    assert blank.status_code == 422
    reviewed = await region.http.post(
        f"/api/break-glass/{opened.json()['id']}/review",
        json={"note": "Emergency admission, justified."},
        headers=reviewer,
    )
    assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["reviewed_by"] == f"user:hospital-c-{reviewing_role}"
    assert (
        await region.http.get("/api/break-glass?unreviewed=true", headers=reviewer)
    ).json() == []
    assert len((await region.http.get("/api/break-glass", headers=reviewer)).json()) == 1
