"""Share links through HTTP: Alice (hospital A) shares a file or a folder of her space with
someone without an account, who opens the link's page and downloads with no login; links
expire, are revoked, run out of downloads, ask for a password and never carry patient data
out; every use is audited as the link, and the token is never logged."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.message
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from medicus.app import create_app
from medicus.collab.share_link_routes import TICKET_COOKIE, UNLOCK_COOKIE
from medicus.core.logging import configure_logging
from medicus.platform import build_platform
from tests.collab.conftest import (
    HOSPITAL_A,
    HOSPITAL_B,
    HOSPITAL_C,
    Colleague,
    Region,
    collab_settings,
    colleague,
)
from tests.iam.conftest import Mailbox, running_mailbox
from tests.support.clients import create
from tests.support.clock import MovableClock
from tests.support.database import rows
from tests.support.resources import FHIR_JSON, patient
from tests.web.conftest import csrf_of

_TOKEN_IN_URL = re.compile(r"/s/([A-Za-z0-9_-]+)$")
PASSWORD = "Praxis Dr. Weber 2026"


@pytest.fixture
async def mailed_region(
    tmp_path: Path, fresh_database_url: str, clock: MovableClock
) -> AsyncIterator[tuple[Region, Mailbox]]:
    """The region, with its mail going to a real SMTP server on loopback."""
    with running_mailbox() as mailbox:
        settings = collab_settings(
            tmp_path, fresh_database_url, smtp_url=f"smtp://127.0.0.1:{mailbox.port}"
        )
        platform = build_platform(settings, clock)
        app = create_app(settings, platform)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield (
                Region(
                    platform,
                    http,
                    await colleague(platform, "alice@klinikum-a.example", HOSPITAL_A),
                    await colleague(platform, "bob@klinikum-b.example", HOSPITAL_B),
                    await colleague(platform, "carol@klinikum-c.example", HOSPITAL_C),
                ),
                mailbox,
            )
        await platform.close()


async def _share(
    region: Region, space_id: str, node: str, who: Colleague | None = None, **terms: Any
) -> httpx.Response:
    return await region.http.post(
        f"/collab/spaces/{space_id}/nodes/{node}/links",
        json=terms,
        headers=(who or region.alice).headers,
    )


async def _link(
    region: Region, space_id: str, node: str, who: Colleague | None = None, **terms: Any
) -> tuple[str, str]:
    """A new link's id and its path (`/s/{token}`)."""
    made = await _share(region, space_id, node, who, **terms)
    assert made.status_code == 201, made.text
    return str(made.json()["id"]), _path(made.json()["url"])


def _path(url: str) -> str:
    found = _TOKEN_IN_URL.search(url)
    assert found is not None, url
    return f"/s/{found[1]}"


async def _file(region: Region, space_id: str, name: str, data: bytes, folder: str = "root") -> str:
    written = await region.upload(region.alice, space_id, name, data, folder)
    assert written.status_code == 201, written.text
    return str(written.json()["id"])


async def _folder(region: Region, space_id: str, name: str, parent: str = "root") -> str:
    made = await region.http.post(
        f"/collab/spaces/{space_id}/nodes/{parent}/folders",
        json={"name": name},
        headers=region.alice.headers,
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def _visitor(region: Region) -> httpx.AsyncClient:
    """The browser of someone without an account: cookies of its own, the region's app."""
    transport = httpx.ASGITransport(app=region.http._transport.app)  # type: ignore[attr-defined]
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _unlock(visitor: httpx.AsyncClient, path: str, password: str) -> httpx.Response:
    form = await visitor.get(path)
    return await visitor.post(path, data={"csrf": csrf_of(form.text), "password": password})


async def _audited(region: Region, link_id: str) -> list[tuple[str, str, str]]:
    await region.platform.audit.seal_all()
    found = await rows(
        region.platform,
        "SELECT action, outcome, detail FROM audit_entry WHERE actor = :actor ORDER BY seq",
        actor=f"share-link:{link_id}",
    )
    return [(action, outcome, detail) for action, outcome, detail in found]


async def test_a_file_link_opens_and_downloads_without_an_account(region: Region) -> None:
    space = await region.space()
    file_id = await _file(region, space["id"], "Arztbrief.pdf", b"%PDF letter")
    made = await _share(region, space["id"], file_id, expiresInDays=3)
    assert made.status_code == 201, made.text
    link = made.json()
    assert link["url"].startswith(f"{region.platform.settings.public_url}/s/")
    assert (link["nodeName"], link["state"], link["password"]) == ("Arztbrief.pdf", "active", False)
    expires = dt.datetime.fromisoformat(link["expiresAt"])
    assert dt.timedelta(days=2.9) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=3)
    path = _path(link["url"])
    assert len(path.removeprefix("/s/")) >= 27  # 160 bits at least, in URL-safe base64
    async with _visitor(region) as visitor:
        page = await visitor.get(path, headers={"Accept-Language": "en"})
        download = await visitor.get(f"{path}/download")
    assert page.status_code == 200, page.text
    assert "Arztbrief.pdf" in page.text
    assert "Download" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-robots-tag"].startswith("noindex")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert download.status_code == 200
    assert download.content == b"%PDF letter"
    assert "Arztbrief.pdf" in download.headers["content-disposition"]
    assert download.headers["cache-control"] == "no-store"
    assert download.headers["referrer-policy"] == "no-referrer"
    [(token_hash, downloads)] = await rows(
        region.platform, "SELECT token_hash, downloads FROM collab_share_link"
    )
    assert downloads == 1
    assert path.removeprefix("/s/") not in token_hash
    audited = await _audited(region, link["id"])
    assert [(action, outcome) for action, outcome, _ in audited] == [
        ("collab.share-link.view", "success"),
        ("collab.share-link.download", "success"),
    ]
    assert all(orjson.loads(detail)["space"] == space["id"] for _, _, detail in audited)
    [(organisation,)] = await rows(
        region.platform,
        "SELECT DISTINCT organisation FROM audit_entry WHERE actor = :actor",
        actor=f"share-link:{link['id']}",
    )
    assert organisation == HOSPITAL_A


async def test_the_page_speaks_german_unless_the_browser_asks_for_english(
    region: Region,
) -> None:
    space = await region.space()
    file_id = await _file(region, space["id"], "a.txt", b"a")
    _, path = await _link(region, space["id"], file_id)
    async with _visitor(region) as visitor:
        german = await visitor.get(path)
        english = await visitor.get(path, headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert "Herunterladen" in german.text
    assert 'lang="de"' in german.text
    assert "Download" in english.text
    assert 'lang="en"' in english.text


async def test_a_folder_link_shows_only_what_lies_below_the_folder(region: Region) -> None:
    space = await region.space()
    shared = await _folder(region, space["id"], "Für Praxis Weber")
    inner = await _folder(region, space["id"], "Labor", shared)
    report = await _file(region, space["id"], "Befund.txt", b"inside", inner)
    await _file(region, space["id"], "Übersicht.txt", b"top", shared)
    outside = await _file(region, space["id"], "Intern.txt", b"not shared")
    other_space = await region.space("Another")
    elsewhere = await _file(region, other_space["id"], "Else.txt", b"elsewhere")
    _, path = await _link(region, space["id"], shared)
    async with _visitor(region) as visitor:
        top = await visitor.get(path)
        below = await visitor.get(f"{path}/folders/{inner}")
        got = await visitor.get(f"{path}/download/{report}")
        escapes = [
            await visitor.get(f"{path}/download/{outside}"),
            await visitor.get(f"{path}/download/{elsewhere}"),
            await visitor.get(f"{path}/folders/{space['root']}"),
            await visitor.get(f"{path}/download/..%2F{outside}"),
            await visitor.get(f"{path}/folders/{'x' * 500}"),
            await visitor.get(f"{path}/download"),
        ]
    assert top.status_code == 200
    assert "Labor/" in top.text
    assert "Übersicht.txt" in top.text
    assert "Intern.txt" not in top.text
    assert "Befund.txt" not in top.text
    assert below.status_code == 200
    assert "Befund.txt" in below.text
    assert "Übersicht.txt" not in below.text
    assert f'href="{path}"' in below.text  # back up, to the shared folder and no further
    assert space["root"] not in below.text
    assert (got.status_code, got.content) == (200, b"inside")
    assert [answer.status_code for answer in escapes] == [404] * 6
    assert all("Intern.txt" not in answer.text for answer in escapes)
    _, whole_space = await _link(region, space["id"], "root")
    async with _visitor(region) as visitor:
        everything = await visitor.get(whole_space)
    assert "Für Praxis Weber/" in everything.text
    assert "Intern.txt" in everything.text


async def test_patient_data_is_never_shared_by_link(region: Region) -> None:
    space = await region.space()
    folder = await _folder(region, space["id"], "Fälle")
    file_id = await _file(region, space["id"], "CT-Befund.pdf", b"patient data", folder)
    plain = await _file(region, space["id"], "SOP.pdf", b"plain", folder)
    patient_id = await create(region.http, {**region.alice.headers, **FHIR_JSON}, patient())
    _, folder_path = await _link(region, space["id"], folder)
    _, plain_path = await _link(region, space["id"], plain)
    for node in (file_id, plain):
        linked = await region.http.put(
            f"/collab/spaces/{space['id']}/nodes/{node}/patient",
            json={"patient": patient_id},
            headers=region.alice.headers,
        )
        assert linked.status_code == 200, linked.text
    refused = await _share(region, space["id"], file_id)
    assert refused.status_code == 403
    assert "patient data" in refused.json()["detail"]
    async with _visitor(region) as visitor:
        listing = await visitor.get(folder_path)
        direct = await visitor.get(f"{folder_path}/download/{file_id}")
        became_patient_data = await visitor.get(f"{plain_path}/download")
    assert listing.status_code == 200
    assert "CT-Befund.pdf" not in listing.text
    assert direct.status_code == 404
    assert became_patient_data.status_code == 410
    space_links = f"/collab/spaces/{space['id']}/links"
    by_bob = await region.http.get(space_links, headers=region.bob.headers)
    by_alice = await region.http.get(space_links, headers=region.alice.headers)
    assert "SOP.pdf" not in by_bob.text, "its name became patient data"
    assert "Fälle" in by_bob.text
    assert "SOP.pdf" in by_alice.text


async def test_a_password_is_asked_for_and_checked(region: Region) -> None:
    space = await region.space()
    file_id = await _file(region, space["id"], "Arztbrief.pdf", b"letter")
    link_id, path = await _link(region, space["id"], file_id, password=PASSWORD)
    async with _visitor(region) as visitor:
        asked = await visitor.get(path)
        not_without = await visitor.get(f"{path}/download")
        wrong = await _unlock(visitor, path, "Praxis Dr. Weber 2025")
        forged = await visitor.post(path, data={"csrf": "forged", "password": PASSWORD})
        right = await _unlock(visitor, path, PASSWORD)
        assert visitor.cookies.get(UNLOCK_COOKIE) is not None
        page = await visitor.get(path)
        download = await visitor.get(f"{path}/download")
    assert asked.status_code == 401
    assert 'type="password"' in asked.text
    assert "Arztbrief.pdf" not in asked.text
    assert not_without.status_code == 401
    assert not_without.content != b"letter"
    assert wrong.status_code == 403
    assert 'type="password"' in wrong.text
    assert forged.status_code == 400
    assert right.status_code == 303
    assert right.headers["location"] == path
    assert page.status_code == 200
    assert "Arztbrief.pdf" in page.text
    assert (download.status_code, download.content) == (200, b"letter")
    async with _visitor(region) as stranger:
        stranger.cookies.set(UNLOCK_COOKIE, "9999999999.forged")
        assert (await stranger.get(f"{path}/download")).status_code == 401
    outcomes = [(action, outcome) for action, outcome, _ in await _audited(region, link_id)]
    assert ("collab.share-link.unlock", "denied") in outcomes
    assert ("collab.share-link.unlock", "success") in outcomes
    [(stored,)] = await rows(region.platform, "SELECT password_hash FROM collab_share_link")
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_ten_wrong_passwords_close_the_link_for_fifteen_minutes(
    region: Region, clock: MovableClock
) -> None:
    space = await region.space()
    file_id = await _file(region, space["id"], "a.txt", b"a")
    _, path = await _link(region, space["id"], file_id, password=PASSWORD)
    async with _visitor(region) as visitor:
        answers = [
            (await _unlock(visitor, path, f"wrong guess {n}")).status_code for n in range(10)
        ]
        closed = await _unlock(visitor, path, PASSWORD)
        clock.advance(dt.timedelta(minutes=16))
        open_again = await _unlock(visitor, path, PASSWORD)
    assert answers == [403] * 9 + [429]
    assert closed.status_code == 429
    assert int(closed.headers["retry-after"]) > 0
    assert open_again.status_code == 303


async def test_guesses_sent_at_once_get_no_more_than_ten_tries(region: Region) -> None:
    space = await region.space()
    file_id = await _file(region, space["id"], "a.txt", b"a")
    _, path = await _link(region, space["id"], file_id, password=PASSWORD)
    async with _visitor(region) as visitor:
        await visitor.get(path)
        guesses = await asyncio.gather(
            *(_unlock(visitor, path, f"wrong guess {n}") for n in range(30))
        )
        right_after = await _unlock(visitor, path, PASSWORD)
    answers = sorted(answer.status_code for answer in guesses)
    assert answers.count(403) <= 9, answers
    assert set(answers) == {403, 429}, answers
    assert right_after.status_code == 429, "the tenth wrong one closed the link"


async def test_a_download_limit_ends_the_link_but_not_a_download_being_resumed(
    region: Region,
) -> None:
    space = await region.space()
    file_id = await _file(region, space["id"], "Serie.zip", b"0123456789")
    _, path = await _link(region, space["id"], file_id, maxDownloads=2)
    async with _visitor(region) as first:
        before = await first.get(path)
        assert "Verbleibende Downloads: 2" in before.text
        assert "Dieser Link gilt bis" in before.text
        start = await first.get(f"{path}/download", headers={"Range": "bytes=0-3"})
        assert first.cookies.get(TICKET_COOKIE) is not None
        rest = await first.get(f"{path}/download", headers={"Range": "bytes=4-"})
    assert (start.status_code, start.content) == (206, b"0123")
    assert (rest.status_code, rest.content) == (206, b"456789")
    async with _visitor(region) as second:
        whole = await second.get(f"{path}/download")
        again = await second.get(f"{path}/download")
        part = await second.get(f"{path}/download", headers={"Range": "bytes=4-"})
        page = await second.get(path)
    assert (whole.status_code, whole.content) == (200, b"0123456789")
    assert again.status_code == 410
    assert "text/html" in again.headers["content-type"]
    assert (part.status_code, part.content) == (206, b"456789")  # its ticket still holds
    assert page.status_code == 410
    async with _visitor(region) as third:
        assert (
            await third.get(f"{path}/download", headers={"Range": "bytes=4-"})
        ).status_code == 410
    [(downloads,)] = await rows(region.platform, "SELECT downloads FROM collab_share_link")
    assert downloads == 2
    listed = await region.http.get(
        f"/collab/spaces/{space['id']}/links", headers=region.alice.headers
    )
    assert listed.json()["links"][0]["state"] == "used-up"


async def test_an_expired_link_is_gone(region: Region, clock: MovableClock) -> None:
    space = await region.space()
    file_id = await _file(region, space["id"], "a.txt", b"a")
    link_id, path = await _link(region, space["id"], file_id, expiresInDays=1)
    clock.advance(dt.timedelta(days=1, minutes=1))
    async with _visitor(region) as visitor:
        page = await visitor.get(path)
        download = await visitor.get(f"{path}/download")
    assert (page.status_code, download.status_code) == (410, 410)
    assert "abgelaufen" in page.text
    audited = await _audited(region, link_id)
    assert [orjson.loads(detail)["reason"] for _, outcome, detail in audited] == ["expired"] * 2


async def test_a_revoked_link_is_gone_and_only_its_creator_or_a_manager_revokes(
    region: Region,
) -> None:
    space = await region.space()
    file_id = await _file(region, space["id"], "a.txt", b"a")
    alices, alices_path = await _link(region, space["id"], file_id)
    bobs, bobs_path = await _link(region, space["id"], file_id, region.bob)
    links = f"/collab/spaces/{space['id']}/links"
    by_editor = await region.http.delete(f"{links}/{alices}", headers=region.bob.headers)
    own = await region.http.delete(f"{links}/{bobs}", headers=region.bob.headers)
    by_manager = await region.http.delete(f"{links}/{alices}", headers=region.alice.headers)
    again = await region.http.delete(f"{links}/{alices}", headers=region.alice.headers)
    unknown = await region.http.delete(f"{links}/nothing", headers=region.alice.headers)
    assert (by_editor.status_code, own.status_code, by_manager.status_code) == (403, 204, 204)
    assert (again.status_code, unknown.status_code) == (204, 404)
    async with _visitor(region) as visitor:
        for path in (alices_path, bobs_path):
            assert (await visitor.get(path)).status_code == 410
            assert (await visitor.get(f"{path}/download")).status_code == 410
    activity = await region.http.get(
        f"/collab/spaces/{space['id']}/activity", headers=region.alice.headers
    )
    actions = [entry["action"] for entry in activity.json()["activity"]]
    assert actions.count("link.created") == 2
    assert actions.count("link.revoked") == 2


async def test_a_link_to_a_trashed_file_is_gone(region: Region) -> None:
    space = await region.space()
    file_id = await _file(region, space["id"], "a.txt", b"a")
    _, path = await _link(region, space["id"], file_id)
    trashed = await region.http.delete(
        f"/collab/spaces/{space['id']}/nodes/{file_id}", headers=region.alice.headers
    )
    assert trashed.status_code == 204
    async with _visitor(region) as visitor:
        assert (await visitor.get(path)).status_code == 410
        assert (await visitor.get(f"{path}/download")).status_code == 410


async def test_a_link_ends_when_its_creator_may_no_longer_share(region: Region) -> None:
    space = await region.space()
    file_id = await _file(region, space["id"], "a.txt", b"a")
    _, path = await _link(region, space["id"], file_id, region.bob)
    demoted = await region.http.put(
        f"/collab/spaces/{space['id']}/members",
        json={"email": region.bob.email, "role": "viewer"},
        headers=region.alice.headers,
    )
    assert demoted.status_code == 200
    async with _visitor(region) as visitor:
        assert (await visitor.get(path)).status_code == 410


async def test_only_editors_and_managers_of_the_space_make_links(region: Region) -> None:
    space = await region.space()
    file_id = await _file(region, space["id"], "a.txt", b"a")
    stranger = await _share(region, space["id"], file_id, region.carol)
    assert stranger.status_code == 404
    invited = await region.http.put(
        f"/collab/spaces/{space['id']}/members",
        json={"email": region.carol.email, "role": "viewer"},
        headers=region.alice.headers,
    )
    assert invited.status_code == 200
    viewer = await _share(region, space["id"], file_id, region.carol)
    assert viewer.status_code == 403
    editor = await _share(region, space["id"], file_id, region.bob)
    assert editor.status_code == 201
    listed = await region.http.get(
        f"/collab/spaces/{space['id']}/links", headers=region.carol.headers
    )
    assert [link["createdBy"] for link in listed.json()["links"]] == [region.bob.user_id]
    assert "url" not in listed.json()["links"][0]
    unknown = await _share(region, space["id"], "no-such-node")
    assert unknown.status_code == 404


async def test_bad_terms_are_refused_with_a_problem(region: Region) -> None:
    space = await region.space()
    file_id = await _file(region, space["id"], "a.txt", b"a")
    now = dt.datetime.now(dt.UTC)
    cases: list[tuple[dict[str, Any], int]] = [
        ({"password": "x" * 100_000}, 422),
        ({"password": "short"}, 400),
        ({"maxDownloads": -1}, 422),
        ({"maxDownloads": 0}, 422),
        ({"expiresInDays": 0}, 422),
        ({"expiresInDays": 91}, 422),
        ({"expiresAt": (now - dt.timedelta(minutes=1)).isoformat()}, 400),
        ({"expiresAt": (now + dt.timedelta(days=91)).isoformat()}, 400),
        ({"expiresAt": "2030-01-01T00:00:00"}, 422),
        ({"expiresAt": "tomorrow"}, 422),
        ({"expiresInDays": 2, "expiresAt": (now + dt.timedelta(days=1)).isoformat()}, 400),
        ({"notify": ["not an address"]}, 400),
        ({"notify": [f"p{n}@praxis.example" for n in range(21)]}, 422),
        ({"notify": "p@praxis.example"}, 422),
        ({"unknown": 1}, 422),
    ]
    for terms, status in cases:
        answer = await _share(region, space["id"], file_id, **terms)
        assert answer.status_code == status, (terms, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    [(count,)] = await rows(region.platform, "SELECT COUNT(*) FROM collab_share_link")
    assert count == 0


async def test_unknown_tokens_are_not_found(region: Region) -> None:
    async with _visitor(region) as visitor:
        for path in ("/s/unknown-token-of-some-length", "/s/x", "/s/%00%ff", "/s/a/download"):
            answer = await visitor.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["cache-control"] == "no-store"


async def test_the_link_is_mailed_to_whom_the_creator_names(
    mailed_region: tuple[Region, Mailbox],
) -> None:
    region, mailbox = mailed_region
    space = await region.space()
    file_id = await _file(region, space["id"], "Arztbrief.pdf", b"letter")
    mailbox.messages.clear()  # Bob's invitation into the space
    made = await _share(
        region,
        space["id"],
        file_id,
        password=PASSWORD,
        notify=["praxis@weber.example", "PRAXIS@weber.example", "empfang@weber.example"],
    )
    assert made.status_code == 201, made.text
    assert made.json()["unsent"] == []
    received: list[email.message.Message] = mailbox.messages
    assert sorted(message["To"] for message in received) == [
        "empfang@weber.example",
        "praxis@weber.example",
    ]
    body = received[0].get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert made.json()["url"] in body
    assert "Arztbrief.pdf" in body
    assert PASSWORD not in body
    mailbox.refusing = True
    refused = await _share(region, space["id"], file_id, notify=["praxis@weber.example"])
    assert refused.status_code == 201
    assert refused.json()["unsent"] == ["praxis@weber.example"]


@pytest.fixture
def own_log_handlers() -> Iterator[None]:
    """The test run's log handlers again after a test that configures the platform's."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("own_log_handlers")
async def test_the_token_is_never_logged(
    tmp_path: Path, fresh_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = collab_settings(tmp_path, fresh_database_url, log_level="INFO")
    configure_logging("INFO", json_lines=True)
    platform = build_platform(settings)
    try:
        transport = httpx.ASGITransport(app=create_app(settings, platform))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            region = Region(
                platform,
                http,
                await colleague(platform, "alice@klinikum-a.example", HOSPITAL_A),
                await colleague(platform, "bob@klinikum-b.example", HOSPITAL_B),
                await colleague(platform, "carol@klinikum-c.example", HOSPITAL_C),
            )
            space = await region.space()
            file_id = await _file(region, space["id"], "a.txt", b"a")
            _, path = await _link(region, space["id"], file_id, password=PASSWORD)
            async with _visitor(region) as visitor:
                await visitor.get(path)
                await _unlock(visitor, path, "wrong password here")
                await _unlock(visitor, path, PASSWORD)
                await visitor.get(f"{path}/download")
                await visitor.get(f"{path}/download/{'y' * 40}")
                await visitor.get(f"{path}x")
    finally:
        await platform.close()
    logged = capsys.readouterr()
    lines = [orjson.loads(line) for line in (logged.out + logged.err).splitlines()]
    # The test's own HTTP client logs the URLs it asks for; the platform must not.
    platform_lines = [line for line in lines if line.get("logger") != "httpx"]
    assert any(line.get("route") == "/s/{token}" for line in platform_lines)
    assert path.removeprefix("/s/") not in orjson.dumps(platform_lines).decode()
