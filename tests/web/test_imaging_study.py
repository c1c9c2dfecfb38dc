"""An imaging study's page in the portal, through HTTP: a physician whom `access` lets read
the study sees it (and the read is audited with the patient), anyone else gets the 404 page
of a study that does not exist, until consent and treatment (or break-glass) open it; the
chart lists the person's studies; the page in German and English; and the rules of what
the page says of an ImagingStudy, alone."""

from __future__ import annotations

import datetime as dt
import re

import orjson

from medicus.web.chart import Holder, line
from medicus.web.imaging_study import study
from tests.support import resources
from tests.support.resources import CHEST_XRAY_UID, chest_xray
from tests.web.conftest import Ward, anna_at_both_hospitals, csrf_of, sealed_entries

STUDY = "/portal/imaging-studies/"


async def _study_of_b1(ward: Ward) -> tuple[dict[str, str], str]:
    """Anna's records at both hospitals, and a chest X-ray of hospital B (the physician's)."""
    ids = await anna_at_both_hospitals(ward)
    return ids, await ward.region.create("hospital-b", chest_xray(ids["b1"]))


async def test_a_physician_of_the_hospital_opens_its_study_and_the_read_is_audited(
    ward: Ward,
) -> None:
    ids, study_id = await _study_of_b1(ward)
    await ward.physician.login("/portal")
    page = await ward.http.get(STUDY + study_id)
    assert page.status_code == 200, page.text[:500]
    text = page.text
    for shown in (
        "Röntgen Thorax p.a. und seitlich",
        "DX",
        CHEST_XRAY_UID,
        "Thorax seitlich",
        "51185008 (Thorax)",
        "Dr. Weber, Innere Medizin",
        "Müller, Anna",
        "17.05.1964",
        "02.11.2026",
    ):
        assert shown in text, shown
    assert f'href="/portal/patients/{ids["b1"]}"' in text, "the patient's chart is a click away"
    link = f"{ward.platform.settings.public_url}{STUDY}{study_id}"
    assert f'value="{link}"' in text, "the link to share: the study's id and nothing else"
    assert re.search(r"<script>(?!</script>)", text) is None, "no inline script (CSP)"
    assert re.search(r'src="/portal/static/copy-link\.[0-9a-f]{12}\.js"', text)
    reads = await sealed_entries(ward, "fhir.read", "target, patients, detail")
    (read,) = [entry for entry in reads if entry[0] == f"ImagingStudy/{study_id}"]
    assert read[1] == ids["b1"], "the read names the patient whose study it was"
    assert orjson.loads(read[2])["client"] == "medicus-portal"


async def test_another_hospitals_study_is_a_404_like_an_unknown_one_until_access_allows(
    ward: Ward,
) -> None:
    ids = await anna_at_both_hospitals(ward)
    study_id = await ward.region.create("hospital-a", chest_xray(ids["a1"]))
    await ward.physician.login("/portal")
    refused = await ward.http.get(STUDY + study_id)
    unknown = await ward.http.get(STUDY + "no-such-study")
    assert refused.status_code == unknown.status_code == 404
    assert refused.text.replace(study_id, "ID") == unknown.text.replace("no-such-study", "ID"), (
        "nothing tells a study one may not see from one that does not exist"
    )
    assert "Müller" not in refused.text
    assert "Röntgen" not in (await ward.http.get(f"/portal/patients/{ids['b1']}")).text
    await ward.region.stay("hospital-b", ids["b1"])
    await ward.region.consent_during_stay("hospital-a", resources.consent(ids["a1"]))
    opened = await ward.http.get(STUDY + study_id)
    assert opened.status_code == 200
    assert CHEST_XRAY_UID in opened.text
    assert "hospital-a" in opened.text, "held by the other hospital"
    chart = (await ward.http.get(f"/portal/patients/{ids['b1']}")).text
    assert f'href="{STUDY}{study_id}"' in chart, "the chart lists the study, linked"


async def test_break_glass_opens_another_hospitals_study(ward: Ward) -> None:
    ids = await anna_at_both_hospitals(ward)
    study_id = await ward.region.create("hospital-a", chest_xray(ids["a1"]))
    await ward.physician.login("/portal")
    assert (await ward.http.get(STUDY + study_id)).status_code == 404
    chart = await ward.http.get(f"/portal/patients/{ids['b1']}")
    reason = "Bewusstlos eingeliefert, Voraufnahmen nötig"
    opened = await ward.http.post(
        f"/portal/patients/{ids['b1']}/break-glass",
        data={"csrf": csrf_of(chart.text), "reason": reason},
    )
    assert opened.status_code == 303
    assert (await ward.http.get(STUDY + study_id)).status_code == 200


async def test_the_study_page_speaks_german_and_english(ward: Ward) -> None:
    _, study_id = await _study_of_b1(ward)
    await ward.physician.login("/portal")
    german = (await ward.http.get(STUDY + study_id)).text
    assert '<html lang="de">' in german
    for words in ("Link für Nachricht kopieren", "Modalität", "Serien", "Körperregion"):
        assert words in german, words
    english = await ward.http.get(STUDY + study_id, headers={"Accept-Language": "en"})
    assert '<html lang="en">' in english.text
    for words in ("Copy link for a message", "Modality", "Series", "Body site", "Nov 2, 2026"):
        assert words in english.text, words


async def test_only_clinical_roles_see_studies(ward: Ward) -> None:
    _, study_id = await _study_of_b1(ward)
    ward.physician.email = "dpo.b@hospital-b.example"
    await ward.physician.login("/portal")
    assert (await ward.http.get(STUDY + study_id)).status_code == 403


def test_counts_and_modalities_come_from_the_series_where_the_study_does_not_say() -> None:
    resource = chest_xray("p1", id="s1")
    for stated in ("numberOfSeries", "numberOfInstances", "modality", "description"):
        del resource[stated]
    resource["procedureCode"] = [{"text": "Röntgen Thorax"}]
    resource["series"][1]["numberOfInstances"] = None
    resource["series"][1]["instance"] = [{"uid": "1.2.3"}, {"uid": "1.2.4"}]
    found = study(resource)
    assert (found.number_of_series, found.number_of_instances) == (2, 3)
    assert found.modalities == ["DX"]
    assert found.description == "Röntgen Thorax"
    assert found.uid == CHEST_XRAY_UID, "without its urn:oid: prefix"
    assert found.patient_id == "p1"


def test_a_study_of_no_patient_and_with_odd_values_still_reads() -> None:
    found = study(
        {
            "resourceType": "ImagingStudy",
            "id": "s2",
            "subject": {"reference": "Group/7"},
            "started": "not a date",
            "numberOfSeries": -1,
            "identifier": [{"system": "urn:dicom:uid", "value": 42}],
            "endpoint": [{"reference": "Endpoint/pacs"}],
            "series": [{"modality": "CT"}, "junk"],
        }
    )
    assert found.patient_id is None
    assert found.started is None
    assert found.number_of_series == 1, "a negative count is no count"
    assert found.uid == ""
    assert found.endpoints == ["Endpoint/pacs"]
    assert found.series[0].modality == ""


def test_the_charts_line_of_a_study_says_what_and_which_modality() -> None:
    found = line(chest_xray("p1", id="s1"), Holder("hospital-b", "Klinikum B", True))
    assert (found.when, found.what, found.detail, found.status) == (
        dt.date(2026, 11, 2),
        "Röntgen Thorax p.a. und seitlich",
        "DX",
        "available",
    )
