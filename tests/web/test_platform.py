"""The platform administrator's pages through HTTP: the organisations (list, create, and
each one's settings) and the MPI steward's candidates (link, mark distinct). Nobody else may
use them; bad values come back next to their field; every decision is audited."""

from __future__ import annotations

from typing import Any

from tests.iam.browser import Browser
from tests.support import resources
from tests.support.database import count, rows
from tests.web.conftest import (
    ADMIN,
    PLATFORM_ADMIN,
    Ward,
    add_platform_admin,
    csrf_of,
    sealed_entries,
)

ORGANISATIONS = "/portal/platform/organisations"
MPI = "/portal/platform/mpi"


async def _entries(ward: Ward, action: str) -> list[tuple[Any, ...]]:
    """Organisation, target and outcome of the audit entries of `action`."""
    return await sealed_entries(ward, action, "organisation, target, outcome")


async def _logged_in(operator: Browser, language: str = "de") -> str:
    """Log the platform admin in; the organisations page's text."""
    operator.http.headers["Accept-Language"] = language
    start = await operator.login("/portal")
    assert f'href="{ORGANISATIONS}"' in start.text, "the navigation offers the platform pages"
    assert f'href="{MPI}"' in start.text
    page = await operator.http.get(ORGANISATIONS)
    assert page.status_code == 200
    return page.text


async def test_a_platform_admin_creates_an_organisation_and_administers_it(ward: Ward) -> None:
    await add_platform_admin(ward)
    async with ward.browser_of(PLATFORM_ADMIN) as operator:
        page = await _logged_in(operator, "en")
        assert "hospital-b" in page
        assert "Platform operator" in page
        token = csrf_of(page)
        wanted = {
            "csrf": token,
            "name": "<i>Klinikum Süd</i>",
            "type": "hospital",
            "iknr": "260100099",
            "mfa_policy": "all",
        }
        for bad, field in (
            ({"iknr": "12345"}, "o-iknr"),
            ({"name": "   "}, "o-name"),
            ({"name": "Klinik\x00Nord"}, "o-name"),
            ({"name": "x" * 201}, "o-name"),
            ({"type": "castle"}, "o-type"),
            ({"mfa_policy": "never"}, "o-mfa"),
        ):
            refused = await operator.http.post(ORGANISATIONS, data={**wanted, **bad})
            assert refused.status_code == 422, bad
            assert f'id="{field}-error"' in refused.text, bad
        before = await count(ward.platform, "organisation")
        created = await operator.http.post(ORGANISATIONS, data=wanted)
        assert created.status_code == 303
        listed = await operator.http.get(created.headers["location"])
        assert "&lt;i&gt;Klinikum Süd&lt;/i&gt; is created" in listed.text
        assert "<i>Klinikum" not in listed.text
        taken = await operator.http.post(ORGANISATIONS, data={**wanted, "name": "Doppelt"})
        assert taken.status_code == 422
        assert "exists already" in taken.text.split('id="o-iknr-error"', 1)[1][:200]
        assert await count(ward.platform, "organisation") == before + 1
        [(organisation_id, policy)] = await rows(
            ward.platform, "SELECT id, mfa_policy FROM organisation WHERE iknr = '260100099'"
        )
        assert policy == "all"
        clients = f"/portal/admin/organisations/{organisation_id}/clients"
        assert f'href="{clients}"' in listed.text
        page = await operator.http.get(clients)
        assert page.status_code == 200, "a platform admin administers any organisation"
        app = {
            "csrf": token,
            "kind": "public",
            "name": "Süd-App",
            "redirect_uris": "https://sued.example/cb",
            "scope": "openid",
        }
        assert (await operator.http.post(clients, data=app)).status_code == 303
    target = f"Organization/{organisation_id}"
    assert await _entries(ward, "iam.organisation.create") == [(organisation_id, target, "success")]
    [(created_for,)] = await rows(
        ward.platform, "SELECT organisation FROM audit_entry WHERE action = 'iam.client.create'"
    )
    assert created_for == organisation_id


async def test_the_platform_pages_speak_german(ward: Ward) -> None:
    await add_platform_admin(ward)
    async with ward.browser_of(PLATFORM_ADMIN) as operator:
        page = await _logged_in(operator)
        assert "Organisation anlegen" in page
        assert "Plattformbetreiber" in page
        mpi = await operator.http.get(MPI)
        assert "Patientenabgleich" in mpi.text


async def _candidates(ward: Ward) -> dict[str, str]:
    """Three records of different hospitals that look like one person."""
    born = "1970-01-02"
    return {
        "a": await ward.region.create(
            "hospital-a", resources.patient(None, "Müller", "Anna", born)
        ),
        "b": await ward.region.create(
            "hospital-b", resources.patient(None, "Mueller", "Anna", born)
        ),
        "c": await ward.region.create(
            "hospital-c", resources.patient(None, "Muller", "Anna", born)
        ),
    }


async def test_the_steward_links_and_marks_distinct(ward: Ward) -> None:
    ids = await _candidates(ward)
    await add_platform_admin(ward)
    async with ward.browser_of(PLATFORM_ADMIN) as operator:
        await _logged_in(operator, "en")
        page = await operator.http.get(MPI)
        assert page.status_code == 200
        for record in ids.values():
            assert f"Patient/{record}" in page.text
        assert "hospital-a" in page.text, "the holders are named"
        assert "Anna" not in page.text, "the names are not shown"
        assert "Family name" in page.text
        token = csrf_of(page.text)
        stale = await operator.http.post(
            f"{MPI}/decisions",
            data={"csrf": "stale", "patient": ids["a"], "other": ids["b"], "decision": "link"},
        )
        assert stale.status_code == 400
        for bad in ({"decision": "merge"}, {"other": "bad$id"}):
            fields = {"csrf": token, "patient": ids["a"], "other": ids["b"], "decision": "link"}
            refused = await operator.http.post(f"{MPI}/decisions", data={**fields, **bad})
            assert refused.status_code == 400
        assert await count(ward.platform, "mpi_link") == 0
        linked = await operator.http.post(
            f"{MPI}/decisions",
            data={"csrf": token, "patient": ids["a"], "other": ids["b"], "decision": "link"},
            headers={"HX-Request": "true"},
        )
        assert linked.status_code == 200
        assert linked.text.lstrip().startswith("<tr>"), "htmx swaps the pair's row"
        assert "are linked" in linked.text
        distinct = await operator.http.post(
            f"{MPI}/decisions",
            data={"csrf": token, "patient": ids["c"], "other": ids["b"], "decision": "distinct"},
        )
        assert distinct.status_code == 303
        after = await operator.http.get(distinct.headers["location"])
        assert "marked as different persons" in after.text
        assert after.text.count("<tr>") == 1 + 1, "only A and C are left to decide"
        again = await operator.http.post(
            f"{MPI}/decisions",
            data={"csrf": token, "patient": ids["b"], "other": ids["c"], "decision": "distinct"},
        )
        assert "decided on already" in (await operator.http.get(again.headers["location"])).text
    pair = sorted((ids["a"], ids["b"]))
    assert await _entries(ward, "access.mpi.link") == [
        ("platform", f"Patient/{pair[0]}", "success")
    ]
    first = min(ids["b"], ids["c"])
    assert await _entries(ward, "access.mpi.distinct") == [
        ("platform", f"Patient/{first}", "success")
    ]


async def test_candidates_of_one_record_and_an_unknown_one(ward: Ward) -> None:
    ids = await _candidates(ward)
    await add_platform_admin(ward)
    async with ward.browser_of(PLATFORM_ADMIN) as operator:
        await _logged_in(operator, "en")
        of_c = await operator.http.get(MPI, params={"patient": ids["c"]})
        assert of_c.status_code == 200
        assert of_c.text.count("<tr>") == 1 + 2, "the header and C's two pairs"
        for unknown in ("nobody", "<script>"):
            refused = await operator.http.get(MPI, params={"patient": unknown})
            assert refused.status_code == 422
            assert 'id="f-patient-error"' in refused.text
            assert "<script>" not in refused.text.split("<main", 1)[1]


async def test_others_may_not_use_the_platform_pages(ward: Ward) -> None:
    ids = await _candidates(ward)
    async with ward.browser_of(ADMIN) as admin:
        page = await admin.login("/portal")
        assert f'href="{ORGANISATIONS}"' not in page.text, "not in the navigation"
        assert f'href="{MPI}"' not in page.text
        token = csrf_of(page.text)
        for path in (ORGANISATIONS, MPI):
            refused = await admin.http.get(path)
            assert refused.status_code == 403, path
        created = await admin.http.post(
            ORGANISATIONS,
            data={"csrf": token, "name": "Eigenbau", "type": "hospital", "mfa_policy": "all"},
        )
        assert created.status_code == 403
        linked = await admin.http.post(
            f"{MPI}/decisions",
            data={"csrf": token, "patient": ids["a"], "other": ids["b"], "decision": "link"},
        )
        assert linked.status_code == 403
    await ward.physician.login("/portal")
    assert (await ward.http.get(MPI)).status_code == 403
    assert await count(ward.platform, "mpi_link") == 0
    assert await rows(ward.platform, "SELECT id FROM organisation WHERE name = 'Eigenbau'") == []
    assert [e[2] for e in await _entries(ward, "iam.organisation.create")] == ["denied"]
    assert [e[2] for e in await _entries(ward, "access.mpi.link")] == ["denied"]
