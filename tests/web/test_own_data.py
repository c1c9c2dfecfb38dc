"""Patients as users, through HTTP as a browser uses the portal: a physician invites a patient
from the chart (by real SMTP), the patient accepts, logs in with a second factor and sees who
accessed the data of their records (those of other hospitals too), gives and withdraws their
sharing and research consents, and sees nothing else."""

from __future__ import annotations

import re

import httpx
import orjson

from medicus.access.research import MEDICAL_DATA_FOR_RESEARCH
from tests.iam.browser import Browser
from tests.iam.conftest import PASSWORD
from tests.support import resources
from tests.support.database import rows
from tests.web.conftest import ADMIN, NURSE, Ward, anna_at_both_hospitals, csrf_of

PATIENT = "anna.mueller@patient.example"


def _csrf(page: httpx.Response) -> str:
    return csrf_of(page.text)


async def _invite(ward: Ward, patient_id: str) -> httpx.Response:
    chart = await ward.http.get(f"/portal/patients/{patient_id}")
    return await ward.http.post(
        f"/portal/patients/{patient_id}/invite",
        data={"csrf": _csrf(chart), "email": PATIENT, "display_name": "Anna Müller"},
    )


async def _patient_accepts(ward: Ward, patient_id: str) -> None:
    """The physician invites Anna for record `patient_id`; she accepts (with the password
    `browser_of` logs in with)."""
    assert (await _invite(ward, patient_id)).status_code == 303
    body = ward.mailbox.messages[-1].get_payload(decode=True)
    assert isinstance(body, bytes)
    assert "patient portal" in body.decode()
    found = re.search(r"/invitation\?token=([\w-]+)", body.decode())
    assert found is not None
    async with ward.browser_of(PATIENT) as anonymous:
        page = await anonymous.http.get(found.group(0))
        accepted = await anonymous.http.post(
            "/invitation",
            data={"csrf": _csrf(page), "token": found.group(1), "password": PASSWORD},
        )
        assert accepted.status_code in (200, 303), accepted.text[:500]


async def test_a_patient_sees_who_accessed_their_data_in_every_hospital(ward: Ward) -> None:
    ids = await anna_at_both_hospitals(ward)
    await ward.physician.login("/portal")
    await ward.http.get(f"/portal/patients/{ids['b1']}")
    opened = await ward.http.post(
        f"/portal/patients/{ids['b1']}/break-glass",
        data={
            "csrf": _csrf(await ward.http.get(f"/portal/patients/{ids['b1']}")),
            "reason": "bewusstlos eingeliefert",
        },
    )
    assert opened.status_code == 303
    assert "9,1" in (await ward.http.get(f"/portal/patients/{ids['b1']}")).text
    await _patient_accepts(ward, ids["b1"])
    async with ward.browser_of(PATIENT) as browser:
        start = await browser.login("/portal")
        assert str(start.url).endswith("/portal/me"), start.url
        assert browser.totp_secret is not None, "the patient enrolled a second factor"
        assert "Ihre Daten" in start.text
        assert "hospital-a" in start.text, "the other hospital's record of the person"
        assert "hospital-b" in start.text
        await ward.platform.audit.seal_all()  # the log shows sealed entries (every 0.5 s)
        log = await browser.http.get("/portal/me/access-log")
        assert log.status_code == 200
        assert log.headers["cache-control"] == "no-store"
        assert "dr.b" in log.text
        assert "bewusstlos eingeliefert" in log.text, "the emergency's reason is shown"
        assert "den Patienten zum Portal eingeladen" in log.text
        english = await browser.http.get("/portal/me/access-log", headers={"Accept-Language": "en"})
        assert "opened the record in an emergency" in english.text
    actions = await rows(
        ward.platform,
        "SELECT action, patients FROM audit_pending WHERE action = 'audit.search' "
        "UNION ALL SELECT action, patients FROM audit_entry WHERE action = 'audit.search'",
    )
    assert any(ids["a1"] in (patients or "") for _, patients in actions), (
        "reading the own access log is audited, concerning every record of the person"
    )


async def test_a_patient_gives_and_withdraws_consents(ward: Ward) -> None:
    ids = await anna_at_both_hospitals(ward)
    await ward.physician.login("/portal")
    await _patient_accepts(ward, ids["b1"])
    async with ward.browser_of(PATIENT) as browser:
        page = await browser.login("/portal")
        csrf = _csrf(page)
        uninformed = await browser.http.post(
            "/portal/me/sharing", data={"csrf": csrf, "decision": "permit"}
        )
        assert uninformed.status_code == 422
        assert 'id="sharing-error"' in uninformed.text
        assert await _consents(ward) == []
        permitted = await browser.http.post(
            "/portal/me/sharing", data={"csrf": csrf, "decision": "permit", "informed": "yes"}
        )
        assert permitted.status_code == 303
        half = await browser.http.post(
            "/portal/me/research", data={"csrf": csrf, "patient-data": "permit", "informed": "yes"}
        )
        assert half.status_code == 422
        assert 'id="research-error"' in half.text
        research = await browser.http.post(
            "/portal/me/research",
            data={"csrf": csrf, "patient-data": "permit", "biomaterial": "deny", "informed": "yes"},
        )
        assert research.status_code == 303
        stored = await _consents(ward)
        assert len(stored) == 2
        for consent in stored:
            assert consent["patient"]["reference"] == f"Patient/{ids['b1']}"
            assert consent["sourceAttachment"]["title"] == "Im Patientenportal selbst erklärt"
        terms = await rows(ward.platform, "SELECT purpose, decision FROM access_research_consent")
        assert (MEDICAL_DATA_FOR_RESEARCH, "permit") in [tuple(t) for t in terms]
        page = await browser.http.get("/portal/me")
        assert "Biomaterial" in page.text
        withdraw = re.findall(r'action="(/portal/me/consents/[^"]+/withdraw)"', page.text)
        assert len(withdraw) == 2
        for action in withdraw:
            done = await browser.http.post(action, data={"csrf": csrf})
            assert done.status_code == 303
        assert {c["status"] for c in await _consents(ward)} == {"inactive"}
        assert await rows(ward.platform, "SELECT * FROM access_research_consent") == [], (
            "a withdrawn research consent permits nothing"
        )
    holder = await rows(
        ward.platform,
        "SELECT DISTINCT organisation_id FROM fhir_resource WHERE resource_type = 'Consent'",
    )
    assert [tuple(r) for r in holder] == [("hospital-b",)]


async def _consents(ward: Ward) -> list[dict[str, object]]:
    bundle = await ward.http.get("/fhir/Consent", headers=await ward.region.token("hospital-b"))
    assert bundle.status_code == 200, bundle.text
    return [entry["resource"] for entry in bundle.json().get("entry", [])]


async def test_a_patient_sees_nothing_but_their_own(ward: Ward) -> None:
    ids = await anna_at_both_hospitals(ward)
    other = await ward.region.create(
        "hospital-b", resources.patient("B987654321", "Schmidt", "Max", "1950-01-01")
    )
    staff_consent = await ward.region.create("hospital-b", resources.consent(other))
    await ward.physician.login("/portal")
    await _patient_accepts(ward, ids["b1"])
    async with ward.browser_of(PATIENT) as browser:
        page = await browser.login("/portal")
        for path in (
            "/portal/patients",
            f"/portal/patients/{ids['b1']}",
            f"/portal/patients/{other}",
            "/portal/oversight/audit",
            "/portal/admin/members",
        ):
            refused = await browser.http.get(path)
            assert refused.status_code == 403, path
        foreign = await browser.http.post(
            f"/portal/me/consents/{staff_consent}/withdraw", data={"csrf": _csrf(page)}
        )
        assert foreign.status_code == 404
        reads = await rows(
            ward.platform,
            "SELECT patients FROM audit_pending WHERE action = 'fhir.read' "
            "UNION ALL SELECT patients FROM audit_entry WHERE action = 'fhir.read'",
        )
        assert all(other not in (patients or "") for (patients,) in reads), (
            "another person's consent is not read to find it is not hers"
        )
        await ward.platform.audit.seal_all()
        log = await browser.http.get("/portal/me/access-log")
        assert "Schmidt" not in log.text
        assert other not in log.text
    assert {c["status"] for c in await _consents(ward)} == {"active"}
    staff_own = await ward.http.get("/portal/me")
    assert staff_own.status_code == 403


async def test_only_a_record_of_the_own_organisation_is_invited_for(ward: Ward) -> None:
    ids = await anna_at_both_hospitals(ward)
    await ward.physician.login("/portal")
    chart = await ward.http.get(f"/portal/patients/{ids['b1']}")
    bad = await ward.http.post(
        f"/portal/patients/{ids['b1']}/invite",
        data={"csrf": _csrf(chart), "email": "no address", "display_name": "<script>x</script>"},
    )
    assert bad.status_code == 422
    assert 'id="i-email-error"' in bad.text
    assert "<script>x</script>" not in bad.text
    elsewhere = await ward.http.post(
        f"/portal/patients/{ids['a1']}/invite",
        data={"csrf": _csrf(chart), "email": PATIENT, "display_name": "Anna Müller"},
    )
    assert elsewhere.status_code == 404
    assert ward.mailbox.messages == []
    async with ward.browser_of(NURSE) as nurse:
        await nurse.login("/portal")
        assert (await _invite_as(nurse, ids["b1"])).status_code == 303
    invitations = await rows(ward.platform, "SELECT role, patient_id FROM invitation")
    assert [tuple(i) for i in invitations] == [("patient", ids["b1"])]
    audited = await rows(
        ward.platform,
        "SELECT detail, patients FROM audit_pending WHERE action = 'iam.invitation.create' "
        "UNION ALL SELECT detail, patients FROM audit_entry "
        "WHERE action = 'iam.invitation.create'",
    )
    decided = [(orjson.loads(d).get("role"), orjson.loads(d).get("reason"), p) for d, p in audited]
    assert sorted(decided, key=str) == sorted(
        [(None, "other-organisation", None), ("patient", None, ids["b1"])], key=str
    ), "the refusal for another hospital's record and the nurse's invitation"
    assert all(PATIENT not in detail for detail, _ in audited), "no address in the trail"


async def _invite_as(browser: Browser, patient_id: str) -> httpx.Response:
    chart = await browser.http.get(f"/portal/patients/{patient_id}")
    return await browser.http.post(
        f"/portal/patients/{patient_id}/invite",
        data={"csrf": _csrf(chart), "email": PATIENT, "display_name": "Anna Müller"},
    )


async def test_the_members_page_lists_a_patient_without_a_role_to_change(ward: Ward) -> None:
    ids = await anna_at_both_hospitals(ward)
    await ward.physician.login("/portal")
    await _patient_accepts(ward, ids["b1"])
    async with ward.browser_of(ADMIN) as admin:
        await admin.login("/portal")
        page = await admin.http.get("/portal/admin/members")
        row = page.text.split(PATIENT, 1)[1].split("</tr>", 1)[0]
        assert "Patient" in row
        assert "<select" not in row, "a patient's account stays a patient's"
        assert 'value="suspend"' in row, "a patient's access can be suspended"
