"""The data-protection officer's pages through HTTP: the break-glass review queue, the audit
trail browser with its filters, the chain's check; and who may not use them."""

from __future__ import annotations

import re

from tests.support import resources
from tests.web.conftest import DPO, Ward

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
REASON = "Bewusstlos eingeliefert, Vorbefunde nötig"


async def _opened(ward: Ward) -> str:
    """A physician of hospital B opens the record of a person of theirs by break-glass."""
    patient = await ward.region.create("hospital-b", resources.patient("A123456780", "Müller"))
    await ward.physician.login("/portal")
    chart = await ward.http.get(f"/portal/patients/{patient}")
    csrf = _CSRF.search(chart.text)
    assert csrf is not None
    opened = await ward.http.post(
        f"/portal/patients/{patient}/break-glass", data={"csrf": csrf.group(1), "reason": REASON}
    )
    assert opened.status_code == 303
    return patient


async def test_the_dpo_reviews_an_opening(ward: Ward) -> None:
    patient = await _opened(ward)
    async with ward.browser_of(DPO) as dpo:
        start = await dpo.login("/portal")
        assert "Notfallzugriffe prüfen" in start.text, "the navigation offers the queue"
        assert "/portal/patients" not in start.text, "and no patient search"
        queue = await dpo.http.get("/portal/oversight/break-glass")
        assert queue.status_code == 200
        assert REASON in queue.text
        assert patient in queue.text
        action = re.search(r'action="(/portal/oversight/break-glass/[^"]+/review)"', queue.text)
        csrf = _CSRF.search(queue.text)
        assert action is not None
        assert csrf is not None
        empty = await dpo.http.post(action.group(1), data={"csrf": csrf.group(1), "note": "  "})
        assert empty.status_code == 422
        assert 'aria-invalid="true"' in empty.text
        stale = await dpo.http.post(action.group(1), data={"csrf": "old", "note": "geprüft"})
        assert stale.status_code == 400
        done = await dpo.http.post(
            action.group(1), data={"csrf": csrf.group(1), "note": "Notfall bestätigt"}
        )
        assert done.status_code == 303
        assert REASON not in (await dpo.http.get("/portal/oversight/break-glass")).text
        everything = await dpo.http.get("/portal/oversight/break-glass", params={"shown": "all"})
        assert "Notfall bestätigt" in everything.text


async def test_the_dpo_filters_the_audit_trail_and_checks_the_chain(ward: Ward) -> None:
    patient = await _opened(ward)
    await ward.platform.audit.seal_all()  # the trail shows sealed entries (every 0.5 s)
    async with ward.browser_of(DPO) as dpo:
        await dpo.login("/portal")
        by_patient = await dpo.http.get("/portal/oversight/audit", params={"patient": patient})
        assert by_patient.status_code == 200
        assert "access.break-glass" in by_patient.text
        assert "fhir.read" in by_patient.text
        by_user = await dpo.http.get(
            "/portal/oversight/audit",
            params={"user": "dr.b@hospital-b.example", "outcome": "success", "since": "2020-01-01"},
        )
        assert "access.break-glass" in by_user.text
        nobody = await dpo.http.get("/portal/oversight/audit", params={"user": "x@nowhere.example"})
        assert "Keine Einträge" in nobody.text
        bad = await dpo.http.get(
            "/portal/oversight/audit", params={"since": "gestern", "outcome": "<b>"}
        )
        assert bad.status_code == 422
        assert 'id="f-since-error"' in bad.text
        assert "<b>" not in bad.text
        page = await dpo.http.get("/portal/oversight/audit")
        csrf = _CSRF.search(page.text)
        assert csrf is not None
        report = await dpo.http.post("/portal/oversight/audit/verify", data={"csrf": csrf.group(1)})
        assert report.status_code == 200
        assert "Die Kette ist unversehrt" in report.text


async def test_a_physician_may_not_oversee(ward: Ward) -> None:
    await ward.physician.login("/portal")
    for path in ("/portal/oversight/break-glass", "/portal/oversight/audit"):
        page = await ward.http.get(path)
        assert page.status_code == 403, path
        assert "Das dürfen Sie nicht sehen" in page.text
