"""A DICOM study shared in the messenger as a link: Alice (Klinikum A) copies the link from
her study page and sends it to Bob (Klinikum B) through Synapse; Bob reads it with his
Matrix client and follows it with his portal session. The message carries the study's
opaque id and nothing of the patient; the link opens only once `access` lets Bob read the
study (his hospital treats the patient, who consented to sharing): before, it is the 404
page of a study that does not exist."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
from nio import AsyncClient, RoomSendResponse

from tests.iam.browser import Browser
from tests.iam.conftest import PASSWORD
from tests.messenger.conftest import Member, Region
from tests.messenger.test_conversations import _joined_by_invitation, _next_text
from tests.support import clients, resources
from tests.support.resources import CHEST_XRAY_UID, FHIR_JSON

KVNR = "M123456781"
_LINK_FIELD = re.compile(r'<input id="study-link" type="url" readonly value="([^"]+)"')


async def _create(region: Region, who: Member, resource: dict[str, Any]) -> str:
    return await clients.create(region.http, {**who.headers, **FHIR_JSON}, resource)


async def _portal(region: Region, email: str) -> Browser:
    """A person's browser, logged in to the portal of the served medicus (password, TOTP)."""
    browser = Browser(httpx.AsyncClient(base_url=region.base_url, timeout=60), email, PASSWORD)
    page = await browser.login("/portal")
    assert page.status_code == 200, page.text[:500]
    return browser


async def _follow(region: Region, browser: Browser, link: str) -> httpx.Response:
    """Follow a link to medicus with `browser`: the link names medicus's public address,
    which in the tests is served at `region.base_url`."""
    public_url = region.platform.settings.public_url
    assert link.startswith(public_url + "/"), link
    return await browser.http.get(link.removeprefix(public_url))


async def test_a_study_link_sent_to_another_hospital_opens_once_access_allows(
    region: Region,
) -> None:
    anna = resources.patient(KVNR, "Müller", "Anna", "1964-05-17")
    at_a = await _create(region, region.alice, anna)
    at_b = await _create(region, region.bob, anna)
    study_id = await _create(region, region.alice, resources.chest_xray(at_a))
    alice_portal = await _portal(region, "alice@klinikum-a.example")
    bob_portal = await _portal(region, "bob@klinikum-b.example")
    await region.list_in_directory(region.bob)
    alice, bob = await region.client(region.alice), await region.client(region.bob)
    try:
        page = await alice_portal.http.get(f"/portal/imaging-studies/{study_id}")
        assert page.status_code == 200, page.text[:500]
        found = _LINK_FIELD.search(page.text)
        assert found is not None, "the study page offers its link to copy"
        link = html.unescape(found.group(1))

        await alice.sync(timeout=1000)
        await bob.sync(timeout=1000)
        room_id = await _joined_by_invitation(alice, bob, is_direct=True)
        sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": link})
        assert isinstance(sent, RoomSendResponse), sent
        (received,) = await _next_text(bob, room_id)
        assert received == link
        for patient_data in ("Müller", "Anna", "1964", KVNR, at_a, CHEST_XRAY_UID):
            assert patient_data not in received, "the message tells Synapse nothing of her"

        refused = await _follow(region, bob_portal, received)
        unknown = await bob_portal.http.get("/portal/imaging-studies/no-such-study")
        assert refused.status_code == unknown.status_code == 404
        assert refused.text.replace(study_id, "ID") == unknown.text.replace(
            "no-such-study", "ID"
        ), "Bob cannot tell the study from one that does not exist"
        assert "Müller" not in refused.text

        stay = resources.encounter(at_b)
        await _create(region, region.bob, stay)
        await _consent_during_a_stay(region, at_a)
        opened = await _follow(region, bob_portal, received)
        assert opened.status_code == 200, opened.text[:500]
        assert CHEST_XRAY_UID in opened.text
        assert "Röntgen Thorax" in opened.text
    finally:
        await _close(alice, bob, alice_portal, bob_portal)


async def _consent_during_a_stay(region: Region, record: str) -> None:
    """Klinikum A records Anna's sharing consent while she stays there (so that it is
    vouched for)."""
    await _create(region, region.alice, resources.encounter(record))
    await _create(region, region.alice, resources.consent(record))


async def _close(*closing: AsyncClient | Browser) -> None:
    for each in closing:
        await (each.http.aclose() if isinstance(each, Browser) else each.close())
