"""The portal's storage in a real browser (Debian's chromium, Playwright, against `medicus
serve` with the demo data, in German and in English, as tests/web/test_browser.py): a
physician uploads a 3 MiB PDF to Anna Müller's chart with tus-js-client, the first PATCH is
cut off (the upload still completes by tus's retry), the progress bar reaches 100 %, the
document appears in the chart's list and its download gives the same bytes (SHA-256); the
platform operator opens the storage page. axe-core and Tab on both; screenshots to
`build/screenshots/`."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

from playwright.sync_api import Browser, Page, Route

from tests.e2e.conftest import RunningServer
from tests.web.test_browser import (  # noqa: F401 (fixtures used by name)
    OPERATOR,
    Authenticator,
    _accessible,
    _context,
    _keep_errors,
    _keyboard_reachable,
    _log_in,
    _shot,
    authenticators,
    browser,
    demo_server,
    language,
    mailbox,
    t,
)

DOCUMENT = b"%PDF-1.7\n" + os.urandom(3 * 1024 * 1024) + b"\n%%EOF\n"
_WATCH_PROGRESS = """() => {
  const bar = document.getElementById('upload-progress');
  const percent = document.getElementById('upload-percent');
  new MutationObserver(() => {
    const seen = Number(sessionStorage.getItem('most') || 0);
    sessionStorage.setItem('most', String(Math.max(seen, Number(bar.value))));
    sessionStorage.setItem('text', percent.textContent);
  }).observe(bar, {attributes: true});
  new MutationObserver(() => sessionStorage.setItem('text', percent.textContent))
    .observe(percent, {childList: true, characterData: true, subtree: true});
}"""


def _cut_first_patch(page: Page) -> list[str]:
    """Abort the first PATCH of an upload as a dropped line would; the methods seen."""
    seen: list[str] = []

    def handle(route: Route) -> None:
        seen.append(route.request.method)
        if route.request.method == "PATCH" and seen.count("PATCH") == 1:
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/portal/uploads/*", handle)
    return seen


def test_a_physician_uploads_a_document_to_the_chart(
    demo_server: RunningServer,  # noqa: F811
    browser: Browser,  # noqa: F811
    authenticators: dict[str, Authenticator],  # noqa: F811
    language: str,  # noqa: F811
    t: Callable[..., str],  # noqa: F811
) -> None:
    context = _context(browser, language)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: _keep_errors(errors, message.type, message.text))
    _log_in(page, demo_server.base_url, authenticators)
    page.fill("#q", "Müller")
    page.locator("#results tbody tr", has_text="Kreiskrankenhaus").get_by_role("link").click()
    page.wait_for_selector("#upload-form")
    chart_url = page.url
    assert page.locator("h2#upload-heading").inner_text() == t("Upload a document")
    seen = _cut_first_patch(page)
    page.evaluate(_WATCH_PROGRESS)
    title = f"Entlassbrief Innere ({language})"
    page.set_input_files(
        "#upload-file",
        files=[{"name": "entlassbrief.pdf", "mimeType": "application/pdf", "buffer": DOCUMENT}],
    )
    page.fill("#upload-title", title)
    page.select_option("#upload-kind", "18842-5")
    page.get_by_role("button", name=t("Upload"), exact=True).click()
    page.wait_for_url("**filed=1**")
    assert seen.count("PATCH") == 2, f"the cut PATCH is sent again: {seen}"
    assert "HEAD" in seen, "tus-js-client asks the offset before it resumes"
    assert page.evaluate("() => sessionStorage.getItem('most')") == "100"
    assert page.evaluate("() => sessionStorage.getItem('text')").startswith("100")
    assert page.locator("#upload .notice").inner_text() == t("The document was filed.")
    documents = page.locator("section[aria-labelledby=section-DocumentReference]")
    link = documents.get_by_role("link", name=title)
    href = link.get_attribute("href")
    assert href is not None
    assert href.startswith("/portal/documents/")
    downloaded = page.request.get(f"{demo_server.base_url}{href}")
    assert downloaded.status == 200
    assert hashlib.sha256(downloaded.body()).hexdigest() == hashlib.sha256(DOCUMENT).hexdigest()
    _accessible(page, "chart after an upload")
    _keyboard_reachable(page, "chart after an upload")
    _shot(page, f"{language}-chart-upload")
    assert not [e for e in errors if "Content Security Policy" in e], errors
    page.goto(chart_url)
    assert documents.get_by_role("link", name=title).count() == 1
    context.close()


def test_the_platform_operator_sees_the_storage(
    demo_server: RunningServer,  # noqa: F811
    browser: Browser,  # noqa: F811
    authenticators: dict[str, Authenticator],  # noqa: F811
    language: str,  # noqa: F811
    t: Callable[..., str],  # noqa: F811
) -> None:
    context = _context(browser, language)
    page = context.new_page()
    _log_in(page, demo_server.base_url, authenticators, OPERATOR)
    page.get_by_role("link", name=t("Storage"), exact=True).click()
    assert page.inner_text("h1") == t("Storage")
    backends = page.locator("section[aria-labelledby=backends-heading] tbody tr")
    assert backends.count() == 1
    assert "local" in backends.first.inner_text()
    assert t("Local directory") in backends.first.inner_text()
    usage = page.locator("section[aria-labelledby=usage-heading]")
    assert usage.is_visible()
    _accessible(page, "storage")
    _keyboard_reachable(page, "storage")
    _shot(page, f"{language}-platform-storage")
    context.close()
