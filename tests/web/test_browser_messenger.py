"""The portal's messages page in a real browser (Debian's chromium, Playwright, as
tests/web/test_browser.py), in German and in English: medicus in front of the session's real
Synapse, served by uvicorn in a thread of this process. A physician of the university
hospital finds a physician of the district hospital (both hospitals on the federation list,
she listed in the directory) by the page's search and starts a chat, end-to-end encrypted
(her page, reloaded, goes on with the same Matrix session and crypto store: her message
still reads); the other, whose device did not exist when it was sent, sees that it cannot be
decrypted, accepts the invitation, answers, and sends a file (its progress bar reaches
100 %), which the first downloads and decrypts: the same bytes. Her answer reads on his
side. The server holds ciphertext only: the room's events as Synapse gives them out (and its
database), and the uploaded file as the media API serves it and storage keeps it. Logging
out of the portal logs the page's Matrix session out and deletes its crypto store, and
nothing was kept in localStorage. The same physician, logged in again in a fresh browser (a new
Matrix device), reads the whole chat: the page restored the room keys from the account's key
backup with the key medicus keeps for her. axe-core and Tab on the page; screenshots to
`build/screenshots/`."""

from __future__ import annotations

import asyncio
import hashlib
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page

from medicus.core.db import utc_now
from medicus.demo import DEMO_PASSWORD
from medicus.iam.roles import Role
from medicus.messenger import repository
from medicus.messenger.homeserver import Homeserver
from medicus.platform import build_platform
from medicus.settings import Settings
from tests.conftest import DatabaseFactory, register_organisation
from tests.messenger.test_attachments import _files_containing
from tests.support.messenger import messenger_settings, synapse_database_holds
from tests.support.served import free_port, serving
from tests.web.test_browser import (  # noqa: F401 (fixtures used by name)
    Authenticator,
    _accessible,
    _context,
    _keep_errors,
    _keyboard_reachable,
    _log_in,
    _shot,
    browser,
    language,
    t,
)

NORTH, SOUTH = "uk-nordstadt", "kkh-suedheim"
NAMES = {"de": ("Dr. Nora Nord", "Dr. Sven Süd"), "en": ("Dr. Nick North", "Dr. Sophie South")}
FILE_SIZE = 2 * 1024 * 1024
_FILE = bytes((i * 13 + 7) % 251 for i in range(FILE_SIZE))
SESSION = "/portal/messages/session"
_STORED_SESSION = "() => JSON.parse(sessionStorage.getItem('medicus.messenger.session'))"
_CRYPTO_STORES = """async () => (await indexedDB.databases())
  .map(d => d.name).filter(n => n.startsWith('medicus.messenger.crypto:'))"""
_CURRENT_ROOM = "() => document.querySelector('#room-list button[aria-current]').dataset.room"
_UPLOAD = "/_matrix/media/v3/upload"
_STUDY = "e737f2ae-57ca-4b51-bc5e-12a0c3d1f0aa"
"""An imaging study's id, shared as a link in a message (no study needs to exist for the link)."""
_BACKUP = "/_matrix/client/v3/room_keys/version"
_NO_BACKUP = ("/_matrix/client/v3/room_keys/", "/portal/messages/backup-key")
_KEPT_VERSION = "async () => (await (await fetch('/portal/messages/backup-key')).json()).version"


@dataclass
class Person:
    email: str
    name: str


@dataclass
class MessengerServer:
    base_url: str
    people: dict[str, tuple[Person, Person]]
    """By language: (the university's physician, the district hospital's physician)."""
    objects: Path
    """Storage's objects (the attachments)."""
    synapse: Homeserver


async def _set_up(settings: Settings) -> dict[str, tuple[Person, Person]]:
    """Two hospitals on the federation list; per language a physician of each, the district
    hospital's listed in the directory."""
    platform = build_platform(settings)
    assert platform.messenger is not None
    people: dict[str, tuple[Person, Person]] = {}
    try:
        for organisation in (NORTH, SOUTH):
            await register_organisation(platform, organisation)
            await platform.messenger.service.federate(organisation, True, "test")
        identity = platform.identity
        async with platform.database.transaction() as session:
            for language, (north_name, south_name) in NAMES.items():
                north = Person(f"nord.{language}@uk-nordstadt.example", north_name)
                south = Person(f"sued.{language}@kkh-suedheim.example", south_name)
                for person, organisation in ((north, NORTH), (south, SOUTH)):
                    user = await identity.ensure_user(
                        session, "system:test", person.email, person.name
                    )
                    await identity.ensure_membership(
                        session, "system:test", user.id, organisation, Role.PHYSICIAN
                    )
                    await identity.set_password(session, "system:test", user.id, DEMO_PASSWORD)
                    if organisation == SOUTH:
                        await repository.set_listed(session, user.id, SOUTH, "test", utc_now())
                people[language] = (north, south)
    finally:
        await platform.close()
    return people


@pytest.fixture(scope="module")
def messenger_server(
    tmp_path_factory: pytest.TempPathFactory,
    database_factory: DatabaseFactory,
    synapse: Homeserver,
) -> Iterator[MessengerServer]:
    port = free_port()
    settings = messenger_settings(
        tmp_path_factory.mktemp("messenger-portal"),
        database_factory.new_url(),
        synapse,
        host="127.0.0.1",
        port=port,
    )
    people = asyncio.run(_set_up(settings))
    with serving(settings, port, graceful_seconds=1) as base_url:
        yield MessengerServer(base_url, people, settings.data_dir / "objects", synapse)


@pytest.fixture(scope="module")
def authenticators(messenger_server: MessengerServer) -> dict[str, Authenticator]:
    return {}


def _open_messages(page: Page, words: Callable[..., str]) -> None:
    nav = page.get_by_role("navigation", name=words("Main"))
    nav.get_by_role("link", name=words("Messages")).click()
    page.wait_for_selector("h1")
    assert page.inner_text("h1") == words("Messages")
    page.locator("#messenger-status", has_text=words("Connected.")).wait_for(timeout=20_000)


def test_two_hospitals_chat_and_send_a_file(
    messenger_server: MessengerServer,
    browser: Browser,  # noqa: F811
    authenticators: dict[str, Authenticator],
    language: str,  # noqa: F811
    t: Callable[..., str],  # noqa: F811
) -> None:
    base_url = messenger_server.base_url
    north, south = messenger_server.people[language]
    a_context, b_context = _context(browser, language), _context(browser, language)
    a, b = a_context.new_page(), b_context.new_page()
    errors: list[str] = []
    for page in (a, b):
        page.on("console", lambda message: _keep_unexpected(errors, message))
    sessions: list[str] = []
    a.on("request", lambda r: sessions.append(r.method) if r.url.endswith(SESSION) else None)
    _log_in(a, base_url, authenticators, north.email)
    _open_messages(a, t)
    assert t("No chats yet. Find someone below to start one.") in a.inner_text("#room-list")
    a.locator("details.other-clients summary").click()
    assert base_url in a.inner_text("details.other-clients")
    _accessible(a, "messages")
    _keyboard_reachable(a, "messages")
    _shot(a, f"{language}-messages-empty")

    a.fill("#contact-query", south.name.split()[1])
    a.get_by_role("button", name=t("Search"), exact=True).click()
    found = a.locator("#contact-list li")
    found.first.wait_for()
    assert found.count() == 1
    assert SOUTH in found.inner_text()
    found.get_by_role("button").click()
    a.locator("#composer").wait_for(state="visible")
    encrypted = t("End-to-end encrypted. The devices in this chat are not verified.")
    a.locator("#room-security", has_text=encrypted).wait_for()
    a.fill("#composer-text", "Guten Tag, haben Sie die CT-Bilder von Frau Müller?")
    a.keyboard.press("Enter")
    a.locator("#timeline li.message.own:not(.pending)", has_text="CT-Bilder").wait_for()
    room_id = a.evaluate(_CURRENT_ROOM)
    stores = a.evaluate(_CRYPTO_STORES)
    assert len(stores) == 2, stores
    a.reload()
    a.locator("#messenger-status", has_text=t("Connected.")).wait_for(timeout=20_000)
    a.locator("#room-list button.room", has_text=south.name).wait_for(timeout=20_000)
    assert sessions == ["POST"], "the reloaded page goes on with its Matrix session"
    a.locator("#room-list button.room").click()
    a.locator("#timeline li.message.own", has_text="CT-Bilder").wait_for()
    assert a.evaluate(_CRYPTO_STORES) == stores, "and with its crypto store"

    _log_in(b, base_url, authenticators, south.email)
    _open_messages(b, t)
    accept = b.locator("#room-list button.accept")
    accept.wait_for(timeout=20_000)
    _shot(b, f"{language}-messages-invitation")
    accept.click()
    undecryptable = t("This message cannot be decrypted on this device.")
    b.locator("#timeline li.message", has_text=undecryptable).wait_for(timeout=20_000)
    assert north.name in b.inner_text("#timeline")
    assert "CT-Bilder" not in b.inner_text("#timeline"), "sent before this device existed"
    study = f"{messenger_server.base_url}/portal/imaging-studies/{_STUDY}"
    b.fill(
        "#composer-text",
        f"Ja, der Befund kommt als Datei. Die Aufnahme: {study}. Anleitung: https://example.org/x",
    )
    b.get_by_role("button", name=t("Send"), exact=True).click()
    with b.expect_response(lambda answer: _UPLOAD in answer.url) as uploaded:
        b.set_input_files(
            "#composer-file",
            files=[{"name": "Befund.pdf", "mimeType": "application/pdf", "buffer": _FILE}],
        )
    content_uri = uploaded.value.json()["content_uri"]
    b.locator("#file-progress-status", has_text=t("Sent.")).wait_for(timeout=30_000)
    assert b.locator("#file-progress-bar").evaluate("bar => bar.value") == 100
    _accessible(b, "conversation")
    _keyboard_reachable(b, "conversation")
    _shot(b, f"{language}-messages-file-sent")

    download = a.get_by_role("button", name=t("Download %(name)s", name="Befund.pdf"))
    download.wait_for(timeout=20_000)
    assert "Ja, der Befund kommt" in a.inner_text("#timeline")
    assert a.locator(f'#timeline a[href="{study}"]').count() == 1, "a portal link opens"
    assert a.locator('#timeline a[href^="https://example.org"]').count() == 0, "others stay text"
    with a.expect_download() as started:
        download.click()
    saved = Path(started.value.path())
    assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(_FILE).digest()
    assert started.value.suggested_filename == "Befund.pdf"
    _accessible(a, "conversation with a file")
    a.fill("#composer-text", "Danke, ist angekommen.")
    a.keyboard.press("Enter")
    b.locator("#timeline li.message", has_text="Danke, ist angekommen.").wait_for(timeout=20_000)
    _shot(a, f"{language}-messages-conversation")

    stored = a.evaluate(_STORED_SESSION)
    _only_ciphertext(messenger_server, stored["access_token"], room_id, content_uri)
    assert a.evaluate("() => localStorage.length") == 0, "nothing in localStorage"
    headers = {"Authorization": f"Bearer {stored['access_token']}"}
    whoami = f"{base_url}/_matrix/client/v3/account/whoami"
    assert httpx.get(whoami, headers=headers).status_code == 200
    _keys_backed_up(base_url, headers, a.evaluate(_KEPT_VERSION), room_id)
    assert errors == [], errors
    a.get_by_role("button", name=t("Log out")).click()
    a.wait_for_url(lambda url: not url.endswith("/portal/messages"))  # after the keys went
    a.wait_for_load_state()
    deadline = time.monotonic() + 10
    while httpx.get(whoami, headers=headers).status_code == 200:
        assert time.monotonic() < deadline, "the portal's logout ends the Matrix session"
        time.sleep(0.2)
    assert not [e for e in errors if "Content Security Policy" in e], errors
    assert a.evaluate(_CRYPTO_STORES) == [], "the keys go with the session"
    a_context.close()
    b_context.close()

    again_context = _context(browser, language)
    again = again_context.new_page()
    again.on("console", lambda message: _keep_unexpected(errors, message))
    _log_in(again, base_url, authenticators, north.email)
    _open_messages(again, t)
    again.locator("#room-list button.room", has_text=south.name).click(timeout=20_000)
    for said in ("CT-Bilder", "Ja, der Befund kommt", "Danke, ist angekommen"):
        again.locator("#timeline li.message", has_text=said).wait_for(timeout=20_000)
    again.get_by_role("button", name=t("Download %(name)s", name="Befund.pdf")).wait_for()
    assert undecryptable not in again.inner_text("#timeline"), "the backup's keys read them all"
    assert again.evaluate(_STORED_SESSION)["device_id"] != stored["device_id"], "a new device"
    _shot(again, f"{language}-messages-restored")
    assert errors == [], errors
    again_context.close()


def _keys_backed_up(base_url: str, headers: dict[str, str], kept: str, room_id: str) -> None:
    """The account's key backup on the homeserver is the one medicus keeps the key of, and
    holds the room key of every message of the chat (the page uploads within two seconds)."""
    room = urllib.parse.quote(room_id, safe="")
    events = httpx.get(
        f"{base_url}/_matrix/client/v3/rooms/{room}/messages",
        params={"dir": "b", "limit": "100"},
        headers=headers,
    ).json()["chunk"]
    sessions = {e["content"]["session_id"] for e in events if e["type"] == "m.room.encrypted"}
    deadline = time.monotonic() + 10
    while True:
        backup = httpx.get(base_url + _BACKUP, headers=headers).json()
        assert backup["version"] == kept, (backup, kept)
        if backup["count"] >= len(sessions):
            return
        assert time.monotonic() < deadline, f"the room keys reach the backup: {backup}"
        time.sleep(0.2)


def _keep_unexpected(errors: list[str], message: ConsoleMessage) -> None:
    """The console's errors, but for the questions for a key backup and its key before the
    first login made them, and for a room key the backup does not hold (one sent before the
    device existed): Synapse and medicus say so with 404, which the browser logs."""
    path = urllib.parse.urlsplit(message.location.get("url", "")).path
    if path.startswith(_NO_BACKUP) and "404" in message.text:
        return
    _keep_errors(errors, message.type, message.text)


def _only_ciphertext(
    server: MessengerServer, access_token: str, room_id: str, content_uri: str
) -> None:
    """What the server holds of the chat: encrypted events (the room's timeline as Synapse
    gives it out, and Synapse's database), and the file as ciphertext (as the media API
    serves it, and in storage)."""
    headers = {"Authorization": f"Bearer {access_token}"}
    room = urllib.parse.quote(room_id, safe="")
    answer = httpx.get(
        f"{server.base_url}/_matrix/client/v3/rooms/{room}/messages",
        params={"dir": "b", "limit": "100"},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    events = answer.json()["chunk"]
    types = [event["type"] for event in events]
    assert types.count("m.room.encrypted") == 4, types
    assert "m.room.message" not in types
    assert any(e["type"] == "m.room.encryption" for e in answer.json().get("state", events))
    for plain in ("CT-Bilder", "Befund", "Danke", "Müller", "M\\u00fcller"):
        assert plain not in answer.text, plain
    for plain in ("CT-Bilder", "Befund kommt", "Danke, ist angekommen"):
        assert not synapse_database_holds(server.synapse, plain), plain
    media, media_id = content_uri.removeprefix("mxc://").split("/")
    served = httpx.get(
        f"{server.base_url}/_matrix/client/v1/media/download/{media}/{media_id}",
        headers=headers,
    )
    assert served.status_code == 200
    assert len(served.content) == FILE_SIZE, "AES-CTR: as long as the file"
    assert hashlib.sha256(served.content).digest() != hashlib.sha256(_FILE).digest()
    piece = _FILE[4096 : 4096 + 64]
    assert piece not in served.content, "the server has only the ciphertext"
    assert _files_containing(server.objects, piece) == [], "and so has storage"
