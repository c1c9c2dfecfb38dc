"""The portal through HTTP as a browser uses it: the login pages lead into it, a physician
finds patients and opens their chart, another hospital's data appears only where `access`
allows, break-glass opens it with a reason, and every refusal is a page, never a 500."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import orjson
import pytest

from medicus.web import pages as web_pages
from tests.support import resources
from tests.support.database import rows
from tests.web.conftest import ANNA_KVNR, Ward, anna_at_both_hospitals

KVNR = ANNA_KVNR
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def _logged_in(ward: Ward) -> httpx.Response:
    return await ward.physician.login("/portal")


async def _audited(ward: Ward) -> list[tuple[str, str]]:
    """The action and app (client) of every audit entry, sealed or pending."""
    entries = await rows(
        ward.platform,
        "SELECT action, detail FROM audit_pending UNION ALL SELECT action, detail FROM audit_entry",
    )
    return [(action, orjson.loads(detail).get("client", "")) for action, detail in entries]


async def test_a_visitor_is_sent_to_the_login_and_back(ward: Ward) -> None:
    response = await ward.http.get("/portal/patients", params={"q": "Müller"})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=%2Fportal%2Fpatients%3Fq%3D")
    partial = await ward.http.get("/portal/patients", headers={"HX-Request": "true"})
    assert partial.headers["HX-Redirect"].startswith("/login?next=")


async def test_the_login_lands_on_patient_search_in_german_by_default(ward: Ward) -> None:
    page = await _logged_in(ward)
    assert page.status_code == 200, page.text[:500]
    assert str(page.url).endswith("/portal/patients")
    assert '<html lang="de">' in page.text
    assert "Patient finden" in page.text
    english = await ward.http.get("/portal/patients", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Find a patient" in english.text


async def test_the_language_switch_is_remembered(ward: Ward) -> None:
    await _logged_in(ward)
    chosen = await ward.http.post(
        "/portal/language", data={"language": "en", "next": "/portal/patients"}
    )
    assert chosen.status_code == 303
    assert chosen.headers["location"] == "/portal/patients"
    page = await ward.http.get("/portal/patients")
    assert '<html lang="en">' in page.text
    away = await ward.http.post(
        "/portal/language", data={"language": "de", "next": "https://evil.example/"}
    )
    assert away.headers["location"] == "/portal"


async def test_pages_forbid_script_injection_framing_and_caching(ward: Ward) -> None:
    await _logged_in(ward)
    page = await ward.http.get("/portal/patients", params={"q": '<script>alert(1)</script>"'})
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["Cache-Control"] == "no-store"
    assert re.search(r"<script>(?!</script>)", page.text) is None


async def test_static_files_are_served_by_hashed_name_for_a_year(ward: Ward) -> None:
    await _logged_in(ward)
    page = await ward.http.get("/portal/patients")
    stylesheet = re.search(r'href="(/portal/static/portal\.[0-9a-f]{12}\.css)"', page.text)
    script = re.search(
        r'src="(/portal/static/vendor/htmx-2\.0\.11\.min\.[0-9a-f]{12}\.js)"', page.text
    )
    assert stylesheet
    assert script
    css = await ward.http.get(stylesheet.group(1))
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "immutable" in css.headers["Cache-Control"]
    assert (await ward.http.get(script.group(1))).status_code == 200
    plain = await ward.http.get(script.group(1), headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    zipped = await ward.http.get(script.group(1), headers={"Accept-Encoding": "gzip, br"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept-Encoding"
    assert int(zipped.headers["content-length"]) < len(plain.content) / 2
    assert zipped.content == plain.content, "httpx decompressed what was sent"
    assert (await ward.http.get("/portal/static/portal.css")).status_code == 404
    assert (await ward.http.get("/portal/static/../pages.py")).status_code == 404


async def test_search_finds_own_records_and_shared_ones_only(ward: Ward) -> None:
    ids = await anna_at_both_hospitals(ward)
    await _logged_in(ward)
    by_kvnr = await ward.http.get("/portal/patients", params={"q": KVNR})
    assert f"/portal/patients/{ids['b1']}" in by_kvnr.text
    assert f"/portal/patients/{ids['a1']}" not in by_kvnr.text
    by_name = await ward.http.get(
        "/portal/patients", params={"q": "mull 17.05.1964"}, headers={"HX-Request": "true"}
    )
    assert "<html" not in by_name.text, "an htmx request gets only the results"
    assert f"/portal/patients/{ids['b1']}" in by_name.text
    none = await ward.http.get("/portal/patients", params={"q": "Schmidt"})
    assert "Kein Patient gefunden" in none.text
    impossible = await ward.http.get("/portal/patients", params={"q": "31.02.1964"})
    assert impossible.status_code == 400, "a date that does not exist is a clear refusal"
    assert "<html" in impossible.text


async def test_another_hospitals_lab_shows_after_consent_and_treatment(ward: Ward) -> None:
    ids = await anna_at_both_hospitals(ward)
    await _logged_in(ward)
    before = await ward.http.get(f"/portal/patients/{ids['b1']}")
    assert before.status_code == 200
    assert "9,1" not in before.text
    await ward.region.stay("hospital-b", ids["b1"])
    await ward.region.consent_during_stay("hospital-a", resources.consent(ids["a1"]))
    after = await ward.http.get(f"/portal/patients/{ids['b1']}")
    assert "9,1" in after.text, "the lab value of hospital A, in German number format"
    assert 'class="elsewhere"' in after.text
    assert "<svg" in after.text
    assert "<polyline" in after.text
    other = await ward.http.get(f"/portal/patients/{ids['a1']}")
    assert other.status_code == 200, "hospital A's record itself is shared now"


async def test_another_hospitals_record_is_a_404_page(ward: Ward) -> None:
    ids = await anna_at_both_hospitals(ward)
    await _logged_in(ward)
    page = await ward.http.get(f"/portal/patients/{ids['a1']}")
    assert page.status_code == 404
    assert "nicht für Ihre Organisation freigegeben" in page.text
    assert "9,1" not in page.text
    unknown = await ward.http.get("/portal/patients/no-such-patient")
    assert unknown.status_code == 404
    bad = await ward.http.get("/portal/patients/" + "x" * 300)
    assert bad.status_code in (400, 404)


async def test_break_glass_needs_a_reason_and_opens_the_other_records(ward: Ward) -> None:
    ids = await anna_at_both_hospitals(ward)
    await _logged_in(ward)
    chart = await ward.http.get(f"/portal/patients/{ids['b1']}")
    csrf = _CSRF.search(chart.text)
    assert csrf is not None
    path = f"/portal/patients/{ids['b1']}/break-glass"
    short = await ward.http.post(path, data={"csrf": csrf.group(1), "reason": "  bitte  "})
    assert short.status_code == 422
    assert 'aria-invalid="true"' in short.text
    stale = await ward.http.post(path, data={"csrf": "stale", "reason": "Bewusstlos eingeliefert"})
    assert stale.status_code == 400
    assert "9,1" not in (await ward.http.get(f"/portal/patients/{ids['b1']}")).text
    opened = await ward.http.post(
        path, data={"csrf": csrf.group(1), "reason": "Bewusstlos eingeliefert, Vorbefunde nötig"}
    )
    assert opened.status_code == 303
    after = await ward.http.get(opened.headers["location"])
    assert "9,1" in after.text
    entries = await _audited(ward)
    assert [client for action, client in entries if action == "access.break-glass"] == [
        "medicus-portal"
    ]


async def test_chart_reads_are_audited_as_the_portal(ward: Ward) -> None:
    ids = await anna_at_both_hospitals(ward)
    await _logged_in(ward)
    await ward.http.get(f"/portal/patients/{ids['b1']}")
    actions = {action for action, client in await _audited(ward) if client == "medicus-portal"}
    assert {"fhir.read", "fhir.search"} <= actions, actions


@pytest.mark.parametrize("email", ["nurse.b@hospital-b.example", "dpo.b@hospital-b.example"])
async def test_who_sees_patient_data(ward: Ward, email: str) -> None:
    ward.physician.email = email
    await _logged_in(ward)
    page = await ward.http.get("/portal/patients", params={"q": KVNR})
    expected = 200 if email.startswith("nurse") else 403
    assert page.status_code == expected


async def test_everything_downloads_as_one_bundle(ward: Ward) -> None:
    ids = await anna_at_both_hospitals(ward)
    region = ward.region
    for number in range(3):
        lab = resources.observation(ids["b1"], when=f"2026-11-0{number + 1}T08:00:00Z")
        await region.create("hospital-b", lab)
    await _logged_in(ward)
    download = await ward.http.get(f"/portal/patients/{ids['b1']}/everything")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("application/fhir+json")
    assert download.headers["content-disposition"].startswith("attachment;")
    bundle = orjson.loads(download.content)
    kinds = sorted(entry["resource"]["resourceType"] for entry in bundle["entry"])
    assert kinds == ["Observation"] * 3 + ["Patient"]
    assert bundle["total"] == 4
    refused = await ward.http.get(f"/portal/patients/{ids['a1']}/everything")
    assert refused.status_code == 404


async def test_a_physician_records_and_withdraws_a_sharing_consent(ward: Ward) -> None:
    ids = await anna_at_both_hospitals(ward)
    await ward.region.stay("hospital-a", ids["a1"])
    await _logged_in(ward)
    chart = await ward.http.get(f"/portal/patients/{ids['b1']}")
    assert "Keine Einwilligung dokumentiert" in chart.text
    csrf = _CSRF.search(chart.text)
    assert csrf is not None
    path = f"/portal/patients/{ids['b1']}/consent"
    unsigned = await ward.http.post(path, data={"csrf": csrf.group(1), "decision": "permit"})
    assert unsigned.status_code == 422
    assert 'id="consent-error"' in unsigned.text
    odd = await ward.http.post(path, data={"csrf": csrf.group(1), "decision": "<maybe>"})
    assert odd.status_code == 422
    recorded = await ward.http.post(
        path, data={"csrf": csrf.group(1), "decision": "permit", "signed": "yes"}
    )
    assert recorded.status_code == 303
    await ward.region.stay("hospital-b", ids["b1"])
    hospital_a = await ward.region.token("hospital-a")
    shared = await ward.http.get(f"/fhir/Patient/{ids['b1']}", headers=hospital_a)
    assert shared.status_code == 200, "hospital A, treating the person, now sees B's record"
    chart = await ward.http.get(f"/portal/patients/{ids['b1']}")
    assert "Der Patient erlaubt" in chart.text
    withdraw = re.search(r'action="(/portal/patients/[^"]+/withdraw)"', chart.text)
    assert withdraw is not None
    done = await ward.http.post(withdraw.group(1), data={"csrf": csrf.group(1)})
    assert done.status_code == 303
    chart = await ward.http.get(f"/portal/patients/{ids['b1']}")
    assert "widerrufen" in chart.text
    assert (
        await ward.http.get(f"/fhir/Patient/{ids['b1']}", headers=hospital_a)
    ).status_code == 404


async def test_search_finds_names_that_sound_alike_after_those_that_start_alike(
    ward: Ward,
) -> None:
    """Typing `Mayer` finds Mayer first (by prefix), then Meier and Maier (they sound alike,
    Kölner Phonetik), each once; another hospital's Meier stays hidden. Two audited FHIR
    searches."""
    region = ward.region
    meier = await region.create(
        "hospital-b", resources.patient(None, "Meier", "Hans", "1964-05-17")
    )
    mayer = await region.create("hospital-b", resources.patient(None, "Mayer", "Eva", "1970-01-01"))
    maier = await region.create("hospital-b", resources.patient(None, "Maier", "Jo", "1964-05-17"))
    await region.create("hospital-b", resources.patient(None, "Schmidt", "Hans", "1964-05-17"))
    foreign = await region.create(
        "hospital-a", resources.patient(None, "Meier", "Hans", "1964-05-17")
    )
    await _logged_in(ward)
    before = len([entry for entry in await _audited(ward) if entry[0] == "fhir.search"])
    page = (await ward.http.get("/portal/patients", params={"q": "Mayer"})).text
    places = {
        key: page.find(f"/portal/patients/{id_}")
        for key, id_ in {"meier": meier, "mayer": mayer, "maier": maier, "foreign": foreign}.items()
    }
    assert places["foreign"] == -1
    assert -1 < places["mayer"] < min(places["meier"], places["maier"])
    assert page.count(f'/portal/patients/{mayer}"') == 1
    searches = [entry for entry in await _audited(ward) if entry[0] == "fhir.search"]
    assert searches[before:] == [("fhir.search", "medicus-portal")] * 2
    alike = (await ward.http.get("/portal/patients", params={"q": "Hans Mayer 17.5.1964"})).text
    assert f"/portal/patients/{meier}" in alike
    assert f"/portal/patients/{maier}" not in alike, "Jo is no Hans"


async def test_every_pages_help_link_leads_to_a_section_of_the_help_page(ward: Ward) -> None:
    await _logged_in(ward)
    page = await ward.http.get("/portal/help")
    assert "<title>Hilfe · medicus</title>" in page.text, "a plain title, no markup in it"
    templates = Path(web_pages.__file__).parent / "templates"
    anchors = {
        found.group(1)
        for template in templates.glob("*.html")
        for found in re.finditer(r"{% block help %}([\w-]+){% endblock %}", template.read_text())
    }
    assert {"start", "chart", "own-data", "spaces"} <= anchors
    missing = {anchor for anchor in anchors if f'<section id="{anchor}"' not in page.text}
    assert missing == set()
