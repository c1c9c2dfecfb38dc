"""Collaboration spaces in a real browser (Debian's chromium, Playwright, as
tests/web/test_browser.py), in German and in English, against the demo data served by
medicus in this process (uvicorn in a thread), so that the test can move the platform's
clock: a physician of the university hospital (A) creates a space and invites a physician
of the district hospital (B) as editor; A adds a first version of a findings PDF through
the file chooser, B drops a new version on the folder (drag and drop, tus, the first PATCH
cut off and resumed; its filing refused once, then tried again with the button) and watches
its progress bar reach 100 %; the bytes are counted
against A's organisation's quota, not B's; A restores the older version from the file's
version history, makes a share link in the share dialog, which answers until the clock
passes its expiry and then 410; A makes an app password for WebDAV. axe-core and Tab on
each page; screenshots to `build/screenshots/`."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, Route

from medicus.app import create_app
from medicus.demo import DEMO_ORGANISATIONS
from medicus.platform import build_platform
from medicus.settings import Settings
from tests.e2e.conftest import free_port, medicus_environment, run_medicus
from tests.iam.conftest import Mailbox
from tests.support.clock import MovableClock
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
    mailbox,
    t,
)

HOSPITAL_A, HOSPITAL_B = DEMO_ORGANISATIONS[0], DEMO_ORGANISATIONS[1]
PHYSICIAN_A = HOSPITAL_A.staff[1][0]
PHYSICIAN_B = HOSPITAL_B.staff[1][0]
SECOND_SIZE = 3 * 1024 * 1024
_SECOND_JS = """size => {
  const head = new TextEncoder().encode('%PDF-1.7\\n');
  const tail = new TextEncoder().encode('\\n%%EOF\\n');
  const bytes = new Uint8Array(head.length + size + tail.length);
  bytes.set(head, 0);
  for (let i = 0; i < size; i++) { bytes[head.length + i] = (i * 7 + 3) % 251; }
  bytes.set(tail, head.length + size);
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], 'Befund.pdf', {type: 'application/pdf'}));
  return transfer;
}"""
_WATCH_PROGRESS = """() => {
  new MutationObserver(() => {
    for (const bar of document.querySelectorAll('#upload-list progress')) {
      const seen = Number(sessionStorage.getItem('most') || 0);
      sessionStorage.setItem('most', String(Math.max(seen, Number(bar.value))));
    }
  }).observe(document.getElementById('upload-list'),
    {attributes: true, childList: true, subtree: true});
}"""


def _pdf(*lines: str) -> bytes:
    """A one-page PDF that shows `lines` (Helvetica, Latin-1), as a scanner would write it."""
    text = " ".join(f"({line}) Tj 0 -28 Td" for line in lines)
    content = f"BT /F1 20 Tf 72 720 Td {text} ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    document, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(document))
        document += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    table = len(document)
    document += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    document += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    document += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    return document + b"startxref\n%d\n%%%%EOF\n" % table


FIRST = _pdf("Befund Tumorboard", "Version 1: CT Thorax vom 02.11.2026", "Keine Metastasen.")


def _second() -> bytes:
    """The bytes `_SECOND_JS` makes in the page."""
    body = bytes((i * 7 + 3) % 251 for i in range(SECOND_SIZE))
    return b"%PDF-1.7\n" + body + b"\n%%EOF\n"


@dataclass
class InProcessServer:
    base_url: str
    clock: MovableClock
    database: Path


@pytest.fixture(scope="module")
def collab_server(
    tmp_path_factory: pytest.TempPathFactory,
    mailbox: Mailbox,  # noqa: F811
    language: str,  # noqa: F811
) -> Iterator[InProcessServer]:
    """The demo data, served by uvicorn in a thread of this process on the platform of a
    clock the test moves."""
    data_dir = tmp_path_factory.mktemp(f"collab-{language}") / "var"
    smtp = f"smtp://127.0.0.1:{mailbox.port}"
    environment = medicus_environment(data_dir, None, MEDICUS_SMTP_URL=smtp)
    for command in ("migrate", "demo"):
        done = run_medicus(command, environment=environment)
        assert done.returncode == 0, done.stdout + done.stderr
    port = free_port()
    settings = Settings(data_dir=data_dir, smtp_url=smtp, host="127.0.0.1", port=port)  # type: ignore[call-arg]
    clock = MovableClock()
    app = create_app(settings, build_platform(settings, clock))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        raise AssertionError("the server did not become ready within 60 s")
    try:
        yield InProcessServer(base_url, clock, data_dir / "medicus.db")
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def authenticators(collab_server: InProcessServer) -> dict[str, Authenticator]:
    return {}


def _used(server: InProcessServer) -> dict[str, int]:
    """Each organisation's bytes in storage, by name."""
    with sqlite3.connect(server.database) as database:
        found = database.execute(
            "SELECT o.name, u.used_bytes FROM storage_usage u"
            " JOIN organisation o ON o.id = u.organisation_id"
        ).fetchall()
    return {name: used for name, used in found}


def _cut_first_patch(page: Page) -> list[str]:
    """Abort the first PATCH of an upload as a dropped line would; the methods seen."""
    seen: list[str] = []

    def handle(route: Route) -> None:
        seen.append(route.request.method)
        if route.request.method == "PATCH" and seen.count("PATCH") == 1:
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/portal/space-uploads/*", handle)
    return seen


def _fail_first_filing(page: Page, space_id: str) -> list[int]:
    """Answer the first filing of an upload with 503, as a server being restarted would;
    the statuses the page was given."""
    given: list[int] = []

    def handle(route: Route) -> None:
        if route.request.method == "POST" and not given:
            given.append(503)
            route.fulfill(status=503, body="restarting")
        else:
            given.append(0)
            route.continue_()

    page.route(f"**/portal/spaces/{space_id}/files", handle)
    return given


def test_two_hospitals_share_a_space(
    collab_server: InProcessServer,
    browser: Browser,  # noqa: F811
    authenticators: dict[str, Authenticator],
    language: str,  # noqa: F811
    t: Callable[..., str],  # noqa: F811
) -> None:
    base_url = collab_server.base_url
    name = f"Tumorboard Nordstadt\u2013Südheim ({language})"
    a_context = _context(browser, language)
    a = a_context.new_page()
    errors: list[str] = []
    a.on("console", lambda message: _keep_errors(errors, message.type, message.text))
    _log_in(a, base_url, authenticators, PHYSICIAN_A)
    _nav(a, t, "Spaces")
    assert a.inner_text("h1") == t("Spaces")
    a.fill("#space-name", name)
    a.fill("#space-description", "Fallbesprechungen, Befunde und Bilder")
    a.get_by_role("button", name=t("Create space")).click()
    a.wait_for_selector("#drop-zone")
    space_url = a.url
    _invite(a, language, t)
    a.get_by_role("link", name=t("Files"), exact=True).click()
    a.set_input_files(
        "#upload-files",
        files=[{"name": "Befund.pdf", "mimeType": "application/pdf", "buffer": FIRST}],
    )
    a.locator("#listing a.node.file", has_text="Befund.pdf").wait_for()
    assert a.locator("#upload-list li .status").inner_text() == t("Added.")
    _shot(a, f"{language}-collab-space")

    used_before = _used(collab_server)
    _upload_as_b(browser, collab_server, authenticators, language, t, name)
    used_after = _used(collab_server)
    growth = used_after.get(HOSPITAL_A.name, 0) - used_before.get(HOSPITAL_A.name, 0)
    assert growth == len(_second()), "B's upload is counted against the space's organisation"
    assert used_after.get(HOSPITAL_B.name, 0) == used_before.get(HOSPITAL_B.name, 0)

    _restore_the_first_version(a, space_url, language, t)
    _share_until_expiry(a, collab_server, language, t)
    _app_password(a, base_url, language, t)
    _link_to_a_patient(a, space_url, language, t)
    _settings(a, space_url, language, t)
    assert not [e for e in errors if "Content Security Policy" in e], errors
    a_context.close()


def _nav(page: Page, words: Callable[..., str], name: str) -> None:
    """Follow a link of the portal's main navigation."""
    page.get_by_role("navigation", name=words("Main")).get_by_role("link", name=words(name)).click()


def _invite(a: Page, lang: str, words: Callable[..., str]) -> None:
    a.get_by_role("link", name=words("Members"), exact=True).click()
    a.fill("#invite-email", PHYSICIAN_B)
    a.select_option("#invite-role", "editor")
    a.get_by_role("button", name=words("Invite"), exact=True).click()
    assert a.locator(".notice").inner_text() == words("The member was added and told by e-mail.")
    assert PHYSICIAN_B in a.inner_text("main table")
    _accessible(a, "members")
    _keyboard_reachable(a, "members")
    _shot(a, f"{lang}-collab-members")


def _upload_as_b(
    chromium: Browser,
    server: InProcessServer,
    authenticators: dict[str, Authenticator],
    lang: str,
    words: Callable[..., str],
    name: str,
) -> None:
    """B finds the space and drops the second version on its folder."""
    context = _context(chromium, lang)
    b = context.new_page()
    errors: list[str] = []
    b.on("console", lambda message: _keep_errors(errors, message.type, message.text))
    _log_in(b, server.base_url, authenticators, PHYSICIAN_B)
    _nav(b, words, "Spaces")
    assert b.inner_text("h1") == words("Spaces")
    _accessible(b, "spaces")
    _keyboard_reachable(b, "spaces")
    _shot(b, f"{lang}-collab-spaces")
    b.get_by_role("link", name=name).click()
    b.wait_for_selector("#drop-zone")
    _accessible(b, "space")
    _keyboard_reachable(b, "space")
    seen = _cut_first_patch(b)
    filings = _fail_first_filing(b, b.url.split("/portal/spaces/")[1].split("?")[0])
    b.evaluate(_WATCH_PROGRESS)
    transfer = b.evaluate_handle(_SECOND_JS, SECOND_SIZE)
    b.dispatch_event("#drop-zone", "dragover", {"dataTransfer": transfer})
    b.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})
    retry = b.get_by_role("button", name=words("Try again"))
    retry.wait_for(timeout=60_000)
    failed = "The upload failed. Try again, or drop the file again, to resume where it stopped."
    assert b.locator("#upload-list li .status").inner_text() == words(failed)
    retry.click()
    b.locator("#upload-list li .status", has_text=words("Added.")).wait_for(timeout=60_000)
    assert filings == [503, 0], "filed on the second try"
    assert seen.count("PATCH") >= 2, f"the cut PATCH is sent again: {seen}"
    assert "HEAD" in seen, "tus-js-client asks the offset before it resumes"
    assert b.evaluate("() => sessionStorage.getItem('most')") == "100"
    assert b.locator("#upload-list progress").evaluate("bar => bar.value") == 100
    row = b.locator("#listing tr", has_text="Befund.pdf")
    row.filter(has_text=words("version %(number)s", number=2)).wait_for()
    _accessible(b, "space after an upload")
    _shot(b, f"{lang}-collab-upload")
    expected = ("ERR_CONNECTION_RESET", "status of 503")
    unexpected = [e for e in errors if not any(cause in e for cause in expected)]
    assert unexpected == [], "only the cut PATCH and the refused filing"
    context.close()


def _restore_the_first_version(
    a: Page, space_url: str, lang: str, words: Callable[..., str]
) -> None:
    a.goto(space_url)
    a.locator("#listing a.node.file", has_text="Befund.pdf").click()
    a.wait_for_selector("#versions-heading")
    versions = a.locator("section[aria-labelledby=versions-heading] tbody tr")
    assert versions.count() == 2
    a.get_by_role("button", name=words("Restore version %(number)s", number=1)).click()
    assert a.locator(".notice").inner_text() == words("Restored.")
    assert versions.count() == 3
    assert words("restored from version %(number)s", number=1) in versions.first.inner_text()
    href = a.get_by_role("link", name=words("Download"), exact=True).first.get_attribute("href")
    downloaded = a.request.get(f"{a.url.split('/portal/')[0]}{href}")
    assert hashlib.sha256(downloaded.body()).digest() == hashlib.sha256(FIRST).digest()
    preview = a.locator("section.preview iframe")
    assert preview.count() == 1
    _accessible(a, "file")
    _keyboard_reachable(a, "file")
    _shot(a, f"{lang}-collab-file")


def _share_until_expiry(
    a: Page, server: InProcessServer, lang: str, words: Callable[..., str]
) -> None:
    a.get_by_role("button", name=words("Share by link …")).first.click()
    dialog = a.locator("dialog#share-dialog")
    assert dialog.is_visible()
    dialog.locator("#share-days").select_option("1")
    dialog.locator("#share-downloads").fill("5")
    dialog.get_by_role("button", name=words("Make link")).click()
    a.wait_for_selector("#created-link")
    assert a.locator("dialog#share-dialog").is_visible(), "the dialog stays open"
    url = a.locator("#created-link").input_value()
    assert url.startswith(f"{server.base_url}/s/")
    assert a.locator("dialog#share-dialog tbody tr").count() == 1
    _accessible(a, "share dialog")
    _shot(a, f"{lang}-collab-share")
    assert a.context.browser is not None
    visitor = _context(a.context.browser, lang)  # someone without an account
    page = visitor.new_page()
    assert page.goto(url).status == 200
    server.clock.advance(dt.timedelta(days=1, minutes=1))
    try:
        assert page.goto(url).status == 410
        _shot(page, f"{lang}-collab-link-expired")
    finally:
        server.clock.ahead = dt.timedelta()
        visitor.close()
    a.keyboard.press("Escape")


def _link_to_a_patient(a: Page, space_url: str, lang: str, words: Callable[..., str]) -> None:
    """A finds Erika Wagner from the file's page and links the file to her record."""
    a.goto(space_url)
    a.locator("#listing a.node.file", has_text="Befund.pdf").click()
    a.fill("#patient-query", "Wagner 08.03.1971")
    a.get_by_role("button", name=words("Find the patient")).click()
    link = a.locator("section#patient ul.candidates button")
    assert link.count() == 1
    link.click()
    assert a.locator(".notice").inner_text() == words(
        "The file is linked to the patient: it is patient data now."
    )
    assert "Wagner" in a.locator("section#patient").inner_text()
    _accessible(a, "file of a patient")
    _keyboard_reachable(a, "file of a patient")
    a.locator("section#patient").scroll_into_view_if_needed()
    _shot(a, f"{lang}-collab-patient")


def _settings(a: Page, space_url: str, lang: str, words: Callable[..., str]) -> None:
    """A, a manager, renames the space in its settings."""
    a.goto(space_url)
    a.get_by_role("link", name=words("Settings"), exact=True).click()
    a.fill("#settings-name", "Tumorboard Nord")
    a.get_by_role("button", name=words("Save")).click()
    assert a.locator(".notice").inner_text() == words("The settings were saved.")
    assert a.locator("#settings-name").input_value() == "Tumorboard Nord"
    _accessible(a, "settings")
    _keyboard_reachable(a, "settings")
    _shot(a, f"{lang}-collab-settings")


def _app_password(a: Page, base_url: str, lang: str, words: Callable[..., str]) -> None:
    _nav(a, words, "Spaces")
    a.get_by_role("link", name=words("App passwords for WebDAV"), exact=True).click()
    assert a.inner_text("h1") == words("App passwords")
    assert f"{base_url}/dav/" in a.inner_text("main")
    a.fill("#password-label", "Laptop Station 4")
    a.get_by_role("button", name=words("Make app password")).click()
    secret = a.locator("#new-password").input_value()
    assert secret.startswith("mdav_")
    assert "Laptop Station 4" in a.inner_text("main table")
    _accessible(a, "app passwords")
    _keyboard_reachable(a, "app passwords")
    _shot(a, f"{lang}-collab-app-passwords")
    a.goto(f"{base_url}/portal/app-passwords")
    assert secret not in a.content(), "the password is shown once"
