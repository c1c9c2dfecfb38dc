"""Who may vouch for sharing, through HTTP: an organisation that is no care provider cannot
give itself (or anyone) sight of a person's data at other hospitals by knowing the person's
KVNR; a consent opens other organisations' data only when a treating care provider
recorded it with its source; and the holding hospital's data protection officer sees whom
its records are open to, and why, and each new organisation as news."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import text

from tests.access.conftest import Region
from tests.access.test_shared_access import PERSON, Story
from tests.support import clients, resources

VENDOR = "vendor-v"


async def _vendor_service(region: Region) -> dict[str, str]:
    """A token of the app vendor's service account, allowed everything by its scopes."""
    await region.organisation(VENDOR, "app_vendor")
    return await clients.bearer(
        region.platform, VENDOR, "service", "system/*.cruds", "service", "vendor-backend"
    )


async def _post(region: Region, headers: dict[str, str], resource: dict[str, Any]) -> Any:
    return await region.http.post(
        f"/fhir/{resource['resourceType']}", content=orjson.dumps(resource), headers=headers
    )


async def _refused(region: Region, condition: str, **values: str) -> list[tuple[str, str]]:
    """(action, detail) of the refused audit entries, pending or sealed, that `condition`
    (SQL over the entry's columns) selects."""
    query = f"SELECT action, detail FROM {{}} WHERE outcome = 'denied' AND {condition}"
    async with region.platform.database.snapshot() as session:
        rows = await session.execute(
            text(f"{query.format('audit_pending')} UNION ALL {query.format('audit_entry')}"),
            values,
        )
        return sorted((action, detail) for action, detail in rows)


async def _refusals(region: Region, organisation: str) -> list[tuple[str, str]]:
    found = await _refused(region, "organisation = :o", o=organisation)
    return [(action, orjson.loads(detail)["reason"]) for action, detail in found]


async def test_an_app_vendor_cannot_give_itself_a_persons_data(region: Region) -> None:
    """The outside test's reproducer: a vendor's service account writes a Patient with the
    person's KVNR, an actor-less permit and an active EpisodeOfCare, then asks for
    `$everything`. Every step that would grant is refused, and nothing of hospital A's is
    shown to the vendor, nor to hospital B, which only has an encounter."""
    story = Story(region)
    await story.tell(consent=False)
    vendor = await _vendor_service(region)
    own = await _post(region, vendor, resources.patient(PERSON))
    assert own.status_code == 201, own.text
    v1 = own.json()["id"]

    permit = await _post(region, vendor, resources.consent(v1))
    assert permit.status_code == 403, permit.text
    assert "care providers" in permit.json()["issue"][0]["diagnostics"]
    episode = {
        "resourceType": "EpisodeOfCare",
        "status": "active",
        "patient": {"reference": f"Patient/{v1}"},
    }
    assert (await _post(region, vendor, episode)).status_code == 403
    stay = resources.encounter(v1)
    assert (await _post(region, vendor, stay)).status_code == 403
    referral = resources.referral(v1, VENDOR)
    assert (await _post(region, vendor, referral)).status_code == 403

    everything = await region.http.get(f"/fhir/Patient/{v1}/$everything", headers=vendor)
    assert everything.status_code == 200
    shown = {e["resource"]["id"] for e in everything.json().get("entry", [])}
    assert shown == {v1}
    lab = f"/fhir/Observation/{story.ids['lab']}"
    assert (await region.http.get(lab, headers=vendor)).status_code == 404
    assert await story.status("hospital-b", lab) == 404
    assert await _refusals(region, VENDOR) == [
        *[("fhir.create", "not-care-provider")] * 4,
        ("fhir.read", "other-organisation"),
    ]


async def test_an_app_vendors_physician_cannot_break_the_glass(region: Region) -> None:
    story = Story(region)
    await story.tell(consent=False)
    await region.organisation(VENDOR, "app_vendor")
    opened = await region.http.post(
        "/api/break-glass",
        json={"patient": story.ids["a1"], "reason": "Emergency, unconscious patient"},
        headers=await region.token(VENDOR, "physician"),
    )
    assert opened.status_code == 403
    assert "care providers" in opened.json()["detail"]


async def test_a_permit_without_its_source_document_is_refused(region: Region) -> None:
    story = Story(region)
    await story.tell(consent=False)
    unsourced = resources.consent(story.ids["a1"], signed=False)
    refused = await _post(region, await region.token("hospital-a"), unsourced)
    assert refused.status_code == 422
    assert "sourceAttachment" in refused.json()["issue"][0]["diagnostics"]
    referenced = {**unsourced, "sourceReference": {"reference": "DocumentReference/form-1"}}
    assert (await _post(region, await region.token("hospital-a"), referenced)).status_code == 201
    # An objection needs no form: a care provider records it as the patient says it.
    objection = {**unsourced, "provision": {"type": "deny"}}
    assert (await _post(region, await region.token("hospital-a"), objection)).status_code == 201


async def test_a_consent_its_recorder_took_without_treating_opens_nothing(
    region: Region,
) -> None:
    """Hospital A records a permit although it does not treat the person: it opens nothing
    to treating hospital B until A treats the person, and stays vouched for after A's stay
    ends."""
    story = Story(region)
    await story.tell(consent=False)
    ids, lab = story.ids, f"/fhir/Observation/{story.ids['lab']}"
    await region.create("hospital-a", resources.consent(ids["a1"]))
    assert await story.status("hospital-b", lab) == 404
    stay = await region.stay("hospital-a", ids["a1"])
    assert await story.status("hospital-b", lab) == 200
    ended = resources.encounter(ids["a1"], "finished", id=stay)
    response = await region.http.put(
        f"/fhir/Encounter/{stay}", content=orjson.dumps(ended), headers=await region.token()
    )
    assert response.status_code == 200
    assert await story.status("hospital-b", lab) == 200


async def _disclosures(region: Region, organisation: str, patient: str) -> Any:
    return await region.http.get(
        f"/api/patients/{patient}/disclosures",
        headers=await region.token(organisation, "data_protection_officer"),
    )


async def test_the_holders_dpo_sees_whom_its_records_are_open_to_and_why(
    region: Region,
) -> None:
    story = Story(region)
    await story.tell()
    ids = story.ids
    for holder, record in (("hospital-a", "a1"), ("hospital-c", "c1")):
        response = await _disclosures(region, holder, ids[record])
        assert response.status_code == 200, response.text
        [disclosure] = response.json()
        assert disclosure["organisation"] == "Organization/hospital-b"
        assert disclosure["patient"] == f"Patient/{ids[record]}"
        assert [c["consent"] for c in disclosure["consents"]] == [f"Consent/{ids['consent']}"]
        assert disclosure["consents"][0]["recorded_by"] == "hospital-a"
        assert disclosure["treatments"] == [f"Encounter/{ids['stay']}"]
        assert disclosure["ended_at"] is None
    # B's own record is B's: it is open to nobody else (A's stay has ended).
    assert (await _disclosures(region, "hospital-b", ids["b1"])).json() == []


async def test_the_dpo_is_told_of_each_new_organisation_and_of_its_end(region: Region) -> None:
    story = Story(region)
    await story.tell()
    ids = story.ids
    dpo = await region.token("hospital-a", "data_protection_officer")
    news = (await region.http.get("/api/access/disclosures", headers=dpo)).json()
    assert [(d["patient"], d["organisation"]) for d in news["disclosures"]] == [
        (f"Patient/{ids['a1']}", "Organization/hospital-b")
    ]
    revoked = {**resources.consent(ids["a1"]), "id": ids["consent"], "status": "inactive"}
    response = await region.http.put(
        f"/fhir/Consent/{ids['consent']}",
        content=orjson.dumps(revoked),
        headers=await region.token("hospital-a"),
    )
    assert response.status_code == 200
    assert (await _disclosures(region, "hospital-a", ids["a1"])).json() == []
    [ended] = (await region.http.get("/api/access/disclosures", headers=dpo)).json()["disclosures"]
    assert ended["ended_at"] is not None
    # Hospital D starts treating its own record of the person under a new consent: news.
    d1 = await region.create("hospital-d", resources.patient(PERSON))
    await region.consent_during_stay("hospital-a", resources.consent(ids["a1"]))
    await region.stay("hospital-d", d1)
    page = (await region.http.get("/api/access/disclosures?limit=1", headers=dpo)).json()
    assert [d["organisation"] for d in page["disclosures"]] == ["Organization/hospital-d"]
    following = await region.http.get(
        f"/api/access/disclosures?limit=5&cursor={page['next_cursor']}", headers=dpo
    )
    assert [d["organisation"] for d in following.json()["disclosures"]] == [
        "Organization/hospital-b",
        "Organization/hospital-b",
    ]


async def test_disclosures_are_the_holders_to_read(region: Region) -> None:
    story = Story(region)
    await story.tell()
    a1 = story.ids["a1"]
    assert (await _disclosures(region, "hospital-b", a1)).status_code == 404
    nurse = await region.http.get(
        f"/api/patients/{a1}/disclosures", headers=await region.token("hospital-a", "nurse")
    )
    assert nurse.status_code == 403
    assert nurse.headers["content-type"].startswith("application/problem+json")
    news = await region.http.get(
        "/api/access/disclosures", headers=await region.token("hospital-a", "physician")
    )
    assert news.status_code == 403
    assert sorted(await _refused_readings(region)) == [
        "access.disclosures.read",
        "access.disclosures.read",
        "access.disclosures.search",
    ]


async def _refused_readings(region: Region) -> list[str]:
    found = await _refused(region, "action LIKE 'access.disclosures%'")
    return [action for action, _ in found]


async def test_a_deleted_record_is_open_to_no_one(region: Region) -> None:
    story = Story(region)
    await story.tell()
    c1 = story.ids["c1"]
    assert len((await _disclosures(region, "hospital-c", c1)).json()) == 1
    deleted = await region.http.delete(
        f"/fhir/Patient/{c1}", headers=await region.token("hospital-c")
    )
    assert deleted.status_code in (200, 204)
    assert (await _disclosures(region, "hospital-c", c1)).json() == []
