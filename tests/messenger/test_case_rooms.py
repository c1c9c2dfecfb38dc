"""Case rooms: a room linked to a Patient or a teleconsultation request by a member who may read
it; being in the room never shows the patient to a colleague whom `access` does not let read
the record."""

from __future__ import annotations

from urllib.parse import quote

from nio import JoinResponse, RoomCreateResponse

from tests.messenger.conftest import Region
from tests.support.clients import bearer, create


async def test_a_case_room_shows_its_patient_only_to_members_who_may_read_the_record(
    region: Region,
) -> None:
    await region.list_in_directory(region.bob)
    fhir = await bearer(region.platform, region.alice.organisation, subject=region.alice.user_id)
    patient_id = await create(
        region.http, fhir, {"resourceType": "Patient", "name": [{"family": "Fallbeispiel"}]}
    )
    alice, bob = await region.client(region.alice), await region.client(region.bob)
    try:
        room = await alice.room_create(invite=[bob.user_id], room_type="de.medicus.case")
        assert isinstance(room, RoomCreateResponse), room
        assert isinstance(await bob.join(room.room_id), JoinResponse)
        subject = f"/messenger/rooms/{quote(room.room_id, safe='')}/subject"

        linked = await region.http.put(
            subject, json={"reference": f"Patient/{patient_id}"}, headers=region.alice.headers
        )
        assert linked.status_code == 204, linked.text
        seen = await region.http.get(subject, headers=region.alice.headers)
        assert seen.json() == {"reference": f"Patient/{patient_id}"}

        hidden = await region.http.get(subject, headers=region.bob.headers)
        assert hidden.status_code == 404, "Bob is in the room but may not read the record"
        assert patient_id not in hidden.text
        record = await region.http.get(f"/fhir/Patient/{patient_id}", headers=region.bob.headers)
        assert record.status_code == 404

        outsider = await region.http.get(subject, headers=region.carol.headers)
        assert outsider.status_code == 404, "Carol may read the record but is not in the room"
        relinked = await region.http.put(
            subject, json={"reference": f"Patient/{patient_id}"}, headers=region.bob.headers
        )
        assert relinked.status_code == 404, "nobody links what they may not read"
    finally:
        await alice.close()
        await bob.close()


async def test_a_subject_must_be_a_patient_or_a_request(region: Region) -> None:
    alice = await region.client(region.alice)
    try:
        room = await alice.room_create()
        assert isinstance(room, RoomCreateResponse)
        subject = f"/messenger/rooms/{quote(room.room_id, safe='')}/subject"
        for reference in ("Observation/1", "Patient/", "Patient/../x", "nonsense"):
            answer = await region.http.put(
                subject, json={"reference": reference}, headers=region.alice.headers
            )
            assert answer.status_code == 422, reference
    finally:
        await alice.close()
