"""The portal's collaboration spaces over HTTP (the Browser of tests/iam logs in through the
real login pages): a physician of hospital A makes a space and invites the nurse of hospital
B, who uploads into it over the portal's tus endpoint for spaces, counted against hospital
A's quota; versions and their restore, previews only of safe types and sandboxed, share
links made in the dialog and expired by the clock, members, trash, activity, locks,
comments, search, and app passwords. Every form needs its CSRF token."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from medicus.iam.pages import CSRF_COOKIE
from medicus.iam.roles import Role
from medicus.storage.service import usage
from tests.iam.browser import Browser
from tests.iam.conftest import add_user
from tests.support import resources
from tests.support.clock import MovableClock
from tests.web.conftest import ANNA_KVNR, NURSE, Ward, sealed_entries

SURGEON = "dr.a@hospital-a.example"
"""A physician of hospital A, who owns the spaces here."""
OUTSIDER = "dr.c@hospital-c.example"
TUS = {"Tus-Resumable": "1.0.0"}
UPLOADS = "/portal/space-uploads"
PDF_1 = b"%PDF-1.7\n" + os.urandom(200_000) + b"\n%%EOF\n"
PDF_2 = b"%PDF-1.7\n" + os.urandom(300_000) + b"\n%%EOF\n"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
_SPACE = re.compile(r"/portal/spaces/([0-9a-f-]{36})")


def _csrf(browser: Browser) -> str:
    token = browser.http.cookies.get(CSRF_COOKIE)
    assert token
    return token


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass
class Team:
    a: Browser
    b: Browser
    space_id: str


@asynccontextmanager
async def _team(ward: Ward) -> AsyncIterator[Team]:
    """The surgeon of hospital A with a new space, and hospital B's nurse invited as editor."""
    async with ward.platform.database.transaction() as session:
        await add_user(ward.platform, session, SURGEON, [("hospital-a", Role.PHYSICIAN)])
        await add_user(ward.platform, session, OUTSIDER, [("hospital-c", Role.PHYSICIAN)])
    async with ward.browser_of(SURGEON) as a, ward.browser_of(NURSE) as b:
        for browser in (a, b):
            browser.http.headers["Accept-Language"] = "en"
        await a.login("/portal/spaces")
        await b.login("/portal/spaces")
        created = await a.http.post(
            "/portal/spaces", data={"csrf": _csrf(a), "name": "Tumorboard", "description": ""}
        )
        assert created.status_code == 303, created.text
        found = _SPACE.fullmatch(created.headers["location"])
        assert found is not None
        space_id = found.group(1)
        invited = await a.http.post(
            f"/portal/spaces/{space_id}/members",
            data={"csrf": _csrf(a), "email": NURSE, "role": "editor"},
        )
        assert invited.status_code == 303, invited.text
        yield Team(a, b, space_id)


async def _upload(
    browser: Browser, space_id: str, data: bytes, name: str, kind: str, folder: str = ""
) -> httpx.Response:
    """A tus upload into the space in two PATCHes, then filed into `folder`: the filing's
    answer (201 with the file's page)."""
    headers = {**TUS, "X-CSRF-Token": _csrf(browser)}
    metadata = f"filename {_b64(name)},filetype {_b64(kind)},space {_b64(space_id)}"
    created = await browser.http.post(
        UPLOADS, headers={**headers, "Upload-Length": str(len(data)), "Upload-Metadata": metadata}
    )
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert location.startswith(f"{UPLOADS}/")
    half = len(data) // 2
    for offset, piece in ((0, data[:half]), (half, data[half:])):
        patched = await browser.http.patch(
            location,
            content=piece,
            headers={
                **headers,
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert patched.status_code == 204, patched.text
    return await browser.http.post(
        f"/portal/spaces/{space_id}/files",
        data={"csrf": _csrf(browser), "upload": location, "folder": folder},
    )


async def test_a_space_is_made_and_found_by_its_members_only(ward: Ward) -> None:
    async with _team(ward) as team:
        mine = await team.b.http.get("/portal/spaces")
        assert mine.status_code == 200
        assert "Tumorboard" in mine.text
        assert 'href="/portal/spaces"' in mine.text, "the navigation names the spaces"
        page = await team.a.http.get(f"/portal/spaces/{team.space_id}")
        assert page.status_code == 200
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        assert 'id="drop-zone"' in page.text
        members = await team.a.http.get(f"/portal/spaces/{team.space_id}/members")
        assert NURSE in members.text
        async with ward.browser_of(OUTSIDER) as outsider:
            await outsider.login("/portal/spaces")
            refused = await outsider.http.get(f"/portal/spaces/{team.space_id}")
            assert refused.status_code == 404
            assert "Tumorboard" not in refused.text
        expired = await team.a.http.post("/portal/spaces", data={"name": "x", "csrf": "forged"})
        assert expired.status_code == 400
        empty = await team.a.http.post("/portal/spaces", data={"name": " ", "csrf": _csrf(team.a)})
        assert empty.status_code == 400
        assert 'aria-invalid="true"' in empty.text


async def test_another_hospitals_member_uploads_on_the_space_owners_quota(ward: Ward) -> None:
    store = ward.platform.storage
    async with _team(ward) as team:
        before_a = (await usage(store, "hospital-a")).used_bytes
        before_b = (await usage(store, "hospital-b")).used_bytes
        filed = await _upload(team.b, team.space_id, PDF_1, "Befund.pdf", "application/pdf")
        assert filed.status_code == 201, filed.text
        assert filed.headers["location"].startswith(f"/portal/spaces/{team.space_id}/files/")
        assert (await usage(store, "hospital-a")).used_bytes == before_a + len(PDF_1)
        assert (await usage(store, "hospital-b")).used_bytes == before_b
        uploaded = filed.request.content.decode()
        again = await team.b.http.post(
            f"/portal/spaces/{team.space_id}/files",
            content=uploaded,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert again.status_code == 404, "an upload is filed once"
        listing = await team.a.http.get(f"/portal/spaces/{team.space_id}")
        assert "Befund.pdf" in listing.text
        assert "nurse.b" in listing.text, "who changed it, by name"
        content = await team.a.http.get(filed.headers["location"] + "/content")
        assert content.status_code == 200
        assert content.content == PDF_1
        assert content.headers["content-disposition"].startswith("attachment")
        uploads = await sealed_entries(ward, "collab.upload", "outcome, organisation, detail")
        assert [(outcome, organisation) for outcome, organisation, _ in uploads] == [
            ("success", "hospital-b")
        ], "the upload is audited, as the nurse's of hospital B"
        assert team.space_id in uploads[0][2]
        filings = await sealed_entries(ward, "collab.create", "detail")
        assert any('"upload"' in detail for (detail,) in filings)


async def test_who_may_not_edit_the_space_cannot_upload_or_go_on(ward: Ward) -> None:
    async with _team(ward) as team:
        headers = {**TUS, "Upload-Length": "10", "X-CSRF-Token": _csrf(team.b)}
        unnamed = await team.b.http.post(UPLOADS, headers=headers)
        assert unnamed.status_code == 400
        metadata = {"Upload-Metadata": f"space {_b64(team.space_id)}"}
        forged = await team.b.http.post(
            UPLOADS, headers={**headers, **metadata, "X-CSRF-Token": "forged"}
        )
        assert forged.status_code == 403
        created = await team.b.http.post(UPLOADS, headers={**headers, **metadata})
        assert created.status_code == 201
        location = created.headers["location"]
        async with ward.browser_of(OUTSIDER) as outsider:
            await outsider.login("/portal/spaces")
            other = {**headers, **metadata, "X-CSRF-Token": _csrf(outsider)}
            refused = await outsider.http.post(UPLOADS, headers=other)
            assert refused.status_code == 404, "not a member: the space is not there"
            patch = {
                **TUS,
                "X-CSRF-Token": _csrf(outsider),
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            }
            theirs = await outsider.http.patch(location, content=b"0123456789", headers=patch)
            assert theirs.status_code == 404, "only who began an upload goes on with it"
        chart_upload = await team.b.http.head(
            f"/portal/uploads/{location.rpartition('/')[2]}", headers=TUS
        )
        assert chart_upload.status_code == 404, "a space's upload is not a chart's"
        unfinished = await team.b.http.post(
            f"/portal/spaces/{team.space_id}/files",
            data={"csrf": _csrf(team.b), "upload": location, "folder": ""},
        )
        assert unfinished.status_code == 409


async def test_a_refused_filing_gives_the_upload_up_and_its_quota_back(ward: Ward) -> None:
    store = ward.platform.storage
    async with _team(ward) as team:
        made = await team.a.http.post(
            f"/portal/spaces/{team.space_id}/folders",
            data={"csrf": _csrf(team.a), "name": "Befund.pdf", "parent": ""},
        )
        assert made.status_code == 303
        before = (await usage(store, "hospital-a")).used_bytes
        refused = await _upload(team.b, team.space_id, PDF_1, "Befund.pdf", "application/pdf")
        assert refused.status_code == 409, "a folder has that name"
        assert (await usage(store, "hospital-a")).used_bytes == before
        filed = await _upload(team.b, team.space_id, PDF_1, "Befund (2).pdf", "application/pdf")
        assert filed.status_code == 201


async def test_versions_are_kept_and_an_older_one_restored(ward: Ward) -> None:
    async with _team(ward) as team:
        first = await _upload(team.a, team.space_id, PDF_1, "Befund.pdf", "application/pdf")
        second = await _upload(team.b, team.space_id, PDF_2, "Befund.pdf", "application/pdf")
        assert first.headers["location"] == second.headers["location"], "a new version"
        page = first.headers["location"]
        shown = await team.a.http.get(page)
        assert shown.status_code == 200
        assert "/versions/1/restore" in shown.text
        assert "/versions/2/restore" not in shown.text, "the current one is not restored"
        restored = await team.a.http.post(
            page + "/versions/1/restore", data={"csrf": _csrf(team.a)}
        )
        assert restored.status_code == 303
        content = await team.b.http.get(page + "/content")
        assert hashlib.sha256(content.content).digest() == hashlib.sha256(PDF_1).digest()
        again = await team.a.http.get(page)
        assert "/versions/3/" not in again.text or "restored from version 1" in again.text
        older = await team.b.http.get(page + "/content", params={"version": 2})
        assert older.content == PDF_2


async def test_only_safe_types_are_previewed_and_in_a_sandbox(ward: Ward) -> None:
    async with _team(ward) as team:
        image = await _upload(team.a, team.space_id, PNG, "Röntgen.png", "image/png")
        page = await team.a.http.get(image.headers["location"])
        assert "content?preview=1" in page.text
        assert "<img" in page.text
        shown = await team.a.http.get(image.headers["location"] + "/content?preview=1")
        assert shown.status_code == 200
        assert shown.headers["content-type"] == "image/png"
        assert shown.headers["content-disposition"].startswith("inline")
        assert "sandbox" in shown.headers["content-security-policy"]
        assert shown.headers["x-content-type-options"] == "nosniff"
        pdf = await _upload(team.a, team.space_id, PDF_1, "Brief.pdf", "application/pdf")
        page = await team.a.http.get(pdf.headers["location"])
        assert "<iframe" in page.text
        assert "frame-src 'self'" in page.headers["content-security-policy"]
        html = b"<!doctype html><html><script>alert(1)</script></html>"
        web = await _upload(team.a, team.space_id, html, "page.html", "text/html")
        page = await team.a.http.get(web.headers["location"])
        assert "preview=1" not in page.text
        forced = await team.a.http.get(web.headers["location"] + "/content?preview=1")
        assert forced.headers["content-disposition"].startswith("attachment")
        assert "sandbox" in forced.headers["content-security-policy"]
        svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
        drawing = await _upload(team.a, team.space_id, svg, "bild.svg", "image/svg+xml")
        forced = await team.a.http.get(drawing.headers["location"] + "/content?preview=1")
        assert forced.headers["content-disposition"].startswith("attachment")


async def test_a_share_link_is_made_listed_and_expires(ward: Ward, clock: MovableClock) -> None:
    async with _team(ward) as team:
        filed = await _upload(team.a, team.space_id, PDF_1, "Befund.pdf", "application/pdf")
        node_id = filed.headers["location"].rpartition("/")[2]
        terms = {"csrf": _csrf(team.a), "node": node_id, "days": "1", "password": "", "notify": ""}
        refused = await team.a.http.post(
            f"/portal/spaces/{team.space_id}/links", data={**terms, "days": "5"}
        )
        assert refused.status_code == 400
        assert 'id="share-problem"' in refused.text
        made = await team.a.http.post(
            f"/portal/spaces/{team.space_id}/links", data={**terms, "downloads": "3"}
        )
        assert made.status_code == 201, made.text
        found = re.search(r'id="created-link" type="text" readonly value="([^"]+)"', made.text)
        assert found is not None
        url = found.group(1)
        assert "/s/" in url
        path = url[url.index("/s/") :]
        assert (await ward.http.get(path)).status_code == 200
        listed = await team.b.http.get(filed.headers["location"])
        assert "0 of 3" in listed.text, "the link, its downloads and its limit"
        assert url not in listed.text, "the link's address is shown once"
        clock.advance(dt.timedelta(days=2))
        assert (await ward.http.get(path)).status_code == 410


async def test_folders_moves_trash_activity_locks_comments_and_search(ward: Ward) -> None:
    async with _team(ward) as team:
        space = f"/portal/spaces/{team.space_id}"
        made = await team.a.http.post(
            space + "/folders", data={"csrf": _csrf(team.a), "name": "Befunde", "parent": ""}
        )
        assert made.status_code == 303
        taken = await team.a.http.post(
            space + "/folders", data={"csrf": _csrf(team.a), "name": "befunde", "parent": ""}
        )
        assert taken.status_code == 409
        assert 'aria-invalid="true"' in taken.text
        folder_id = re.search(
            r'class="node folder" href="[^"?]+\?folder=([0-9a-f-]{36})"',
            (await team.a.http.get(space)).text,
        )
        assert folder_id is not None
        filed = await _upload(team.b, team.space_id, PDF_1, "Brief.pdf", "application/pdf")
        page = filed.headers["location"]
        node_id = page.rpartition("/")[2]
        locked = await team.a.http.post(page + "/lock", data={"csrf": _csrf(team.a)})
        assert locked.status_code == 303
        seen = await team.b.http.get(page)
        assert "surgeon" not in seen.text or "dr.a" in seen.text
        assert "Locked by" in seen.text
        move = {"csrf": _csrf(team.b), "name": "Brief 2.pdf", "parent": folder_id.group(1)}
        refused = await team.b.http.post(f"{space}/nodes/{node_id}/move", data=move)
        assert refused.status_code == 423
        unlocked = await team.a.http.post(
            page + "/lock", data={"csrf": _csrf(team.a), "action": "unlock"}
        )
        assert unlocked.status_code == 303
        moved = await team.b.http.post(
            f"{space}/nodes/{node_id}/move", data={**move, "csrf": _csrf(team.b)}
        )
        assert moved.status_code == 303
        inner = await team.a.http.get(space, params={"folder": folder_id.group(1)})
        assert "Brief 2.pdf" in inner.text
        assert 'aria-label="Breadcrumb"' in inner.text
        said = await team.a.http.post(
            page + "/comments", data={"csrf": _csrf(team.a), "body": "Bitte bis Freitag"}
        )
        assert said.status_code == 303
        assert "Bitte bis Freitag" in (await team.b.http.get(page)).text
        found = await team.a.http.get("/portal/spaces/search", params={"q": "Brief"})
        assert "Brief 2.pdf" in found.text
        fragment = await team.a.http.get(
            "/portal/spaces/search",
            params={"q": "Brief"},
            headers={"HX-Request": "true", "HX-Target": "search-results"},
        )
        assert "<html" not in fragment.text
        assert "Brief 2.pdf" in fragment.text
        trashed = await team.b.http.post(
            f"{space}/nodes/{node_id}/trash", data={"csrf": _csrf(team.b)}
        )
        assert trashed.status_code == 303
        trash = await team.a.http.get(space + "/trash")
        assert "Brief 2.pdf" in trash.text
        back = await team.a.http.post(
            f"{space}/trash/{node_id}/restore", data={"csrf": _csrf(team.a)}
        )
        assert back.status_code == 303
        older = await team.a.http.get(
            space + "/activity", params={"before": 10**9}, headers={"HX-Request": "true"}
        )
        assert "<html" not in older.text
        assert "<li>" in older.text
        feed = await team.a.http.get(space + "/activity")
        for action in ("uploaded", "for editing", "to the trash", "commented on"):
            assert action in feed.text, action


async def test_members_are_invited_and_removed(ward: Ward) -> None:
    async with _team(ward) as team:
        members = f"/portal/spaces/{team.space_id}/members"
        unknown = await team.a.http.post(
            members, data={"csrf": _csrf(team.a), "email": "nobody@x.example", "role": "viewer"}
        )
        assert unknown.status_code == 404
        assert 'id="problem"' in unknown.text
        not_manager = await team.b.http.post(
            members, data={"csrf": _csrf(team.b), "email": OUTSIDER, "role": "viewer"}
        )
        assert not_manager.status_code == 403
        page = await team.a.http.get(members)
        nurse_id = re.search(
            r"/members/([^/]+)/remove\"[^>]*>\s*<input[^>]*>\s*<button[^>]*aria-label=\"Remove",
            page.text,
        )
        assert nurse_id is not None
        removed = await team.a.http.post(
            f"{members}/{nurse_id.group(1)}/remove", data={"csrf": _csrf(team.a)}
        )
        assert removed.status_code == 303
        assert (await team.b.http.get(f"/portal/spaces/{team.space_id}")).status_code == 404


async def test_app_passwords_are_shown_once_and_revoked(ward: Ward) -> None:
    async with ward.browser_of(NURSE) as nurse:
        nurse.http.headers["Accept-Language"] = "en"
        await nurse.login("/portal/app-passwords")
        page = await nurse.http.get("/portal/app-passwords")
        assert page.status_code == 200
        assert f"{ward.platform.settings.public_url}/dav/" in page.text
        made = await nurse.http.post(
            "/portal/app-passwords", data={"csrf": _csrf(nurse), "label": "Stationsrechner"}
        )
        assert made.status_code == 201
        secret = re.search(
            r'id="new-password" type="text" readonly value="(mdav_[^"]+)"', made.text
        )
        assert secret is not None
        listed = await nurse.http.get("/portal/app-passwords")
        assert "Stationsrechner" in listed.text
        assert secret.group(1) not in listed.text
        password_id = re.search(r"/portal/app-passwords/([0-9a-f-]{36})/revoke", listed.text)
        assert password_id is not None
        revoked = await nurse.http.post(
            f"/portal/app-passwords/{password_id.group(1)}/revoke", data={"csrf": _csrf(nurse)}
        )
        assert revoked.status_code == 303
        assert "Stationsrechner" not in (await nurse.http.get("/portal/app-passwords")).text


async def test_a_file_and_a_folder_are_copied_from_their_pages(ward: Ward) -> None:
    async with _team(ward) as team:
        space = f"/portal/spaces/{team.space_id}"
        filed = await _upload(team.b, team.space_id, PDF_1, "SOP.pdf", "application/pdf")
        node_id = filed.headers["location"].rpartition("/")[2]
        page = await team.b.http.get(filed.headers["location"])
        assert f'formaction="{space}/nodes/{node_id}/copy"' in page.text
        copy = {"csrf": _csrf(team.b), "name": "SOP (Entwurf).pdf", "parent": ""}
        copied = await team.b.http.post(f"{space}/nodes/{node_id}/copy", data=copy)
        assert copied.status_code == 303
        assert copied.headers["location"].endswith("?done=copied")
        assert node_id not in copied.headers["location"], "the copy's page"
        shown = await team.b.http.get(copied.headers["location"])
        assert "SOP (Entwurf).pdf" in shown.text
        assert "This is the copy" in shown.text
        download = await team.b.http.get(copied.headers["location"].split("?")[0] + "/content")
        assert download.content == PDF_1
        again = await team.b.http.post(
            f"{space}/nodes/{node_id}/copy", data={**copy, "csrf": _csrf(team.b)}
        )
        assert again.status_code == 409
        assert "give the copy another name" in again.text
        assert 'value="SOP (Entwurf).pdf"' in again.text, "what was typed stays"
        listing = (await team.a.http.get(space)).text
        assert "SOP.pdf" in listing
        assert "SOP (Entwurf).pdf" in listing


async def test_a_manager_changes_the_settings_and_deletes_the_space(ward: Ward) -> None:
    async with _team(ward) as team:
        space = f"/portal/spaces/{team.space_id}"
        page = await team.a.http.get(space + "/settings")
        assert page.status_code == 200
        assert 'value="Tumorboard"' in page.text
        assert f'href="{space}/settings"' in (await team.a.http.get(space)).text
        assert f'href="{space}/settings"' not in (await team.b.http.get(space)).text
        assert (await team.b.http.get(space + "/settings")).status_code == 403
        bad = {
            "csrf": _csrf(team.a),
            "name": "Tumorboard Nord",
            "description": "",
            "trash_days": "0",
        }
        refused = await team.a.http.post(space + "/settings", data=bad)
        assert refused.status_code == 422
        assert 'value="Tumorboard Nord"' in refused.text, "what was typed stays"
        good = {**bad, "trash_days": "60", "description": "Fallbesprechungen"}
        saved = await team.a.http.post(space + "/settings", data=good)
        assert saved.status_code == 303
        shown = await team.a.http.get(saved.headers["location"])
        assert "The settings were saved." in shown.text
        assert 'value="Tumorboard Nord"' in shown.text
        assert "60 days" in (await team.b.http.get(space + "/trash")).text
        not_by_b = await team.b.http.post(
            space + "/delete", data={"csrf": _csrf(team.b), "confirm": "Tumorboard Nord"}
        )
        assert not_by_b.status_code == 403
        wrong = await team.a.http.post(
            space + "/delete", data={"csrf": _csrf(team.a), "confirm": "Tumorboard"}
        )
        assert wrong.status_code == 422
        assert "nothing was deleted" in wrong.text
        deleted = await team.a.http.post(
            space + "/delete", data={"csrf": _csrf(team.a), "confirm": "Tumorboard Nord"}
        )
        assert deleted.status_code == 303
        assert "The space was deleted." in (await team.a.http.get(deleted.headers["location"])).text
        assert (await team.b.http.get(space)).status_code == 404


async def test_a_file_is_linked_to_a_patient_found_from_its_page(ward: Ward) -> None:
    """The surgeon finds a patient of hospital A from the file's page and links the file:
    then it is hospital A's patient data, which hospital B's nurse does not see (no consent),
    and it is in the patient's part of the audit trail; unlinked, she sees it again."""
    async with _team(ward) as team:
        anna = resources.patient(ANNA_KVNR, "Müller", "Anna", "1964-05-17")
        record = await ward.region.create("hospital-a", anna)
        elsewhere = await ward.region.create("hospital-c", anna)
        filed = await _upload(team.a, team.space_id, PDF_1, "Befund.pdf", "application/pdf")
        page = filed.headers["location"]
        assert "Data of Anna" not in (await team.a.http.get(page)).text
        found = await team.a.http.get(page, params={"patient": "Müller 17.05.1964"})
        assert found.status_code == 200
        assert f'name="patient" value="{record}"' in found.text
        assert f'value="{elsewhere}"' not in found.text, "only records the surgeon may see"
        refused = await team.a.http.post(
            page + "/patient", data={"csrf": _csrf(team.a), "patient": elsewhere}
        )
        assert refused.status_code == 404
        assert "you may not see their records" in refused.text
        assert (await team.b.http.get(page)).status_code == 200, "not linked by the refusal"
        linked = await team.a.http.post(
            page + "/patient", data={"csrf": _csrf(team.a), "patient": record}
        )
        assert linked.status_code == 303, linked.text
        shown = await team.a.http.get(linked.headers["location"])
        assert "it is patient data now" in shown.text
        assert "Data of Müller, Anna, born" in shown.text
        assert f'href="/portal/patients/{record}"' in shown.text
        assert (await team.b.http.get(page)).status_code == 404
        folder = await team.b.http.get(f"/portal/spaces/{team.space_id}")
        assert "Befund.pdf" not in folder.text
        (link,) = await sealed_entries(ward, "collab.link", "outcome, patients")
        assert link == ("success", record)
        refusals = await sealed_entries(ward, "collab.update", "outcome, patients")
        assert [patients for outcome, patients in refusals if outcome != "success"] == [
            elsewhere
        ], "the refused link is audited with the patient"
        unlinked = await team.a.http.post(
            page + "/patient", data={"csrf": _csrf(team.a), "patient": ""}
        )
        assert unlinked.status_code == 303
        assert (await team.b.http.get(page)).status_code == 200
