"""The portal in a real browser: Debian's chromium driven by Playwright against `medicus
serve` with the demo data (`medicus demo`), as `make run` leaves it. A physician of the
district hospital logs in with password and TOTP, finds Anna Müller, sees the university
hospital's lab values (she consented there and is treated here now), finds Max Schmidt (no
consent), opens his other records by break-glass with a reason, and reads the chart in the
other language; the DPO reviews the opening. Erika Wagner's university data appears at the district
hospital only once a university physician records her consent (both treat her). An admin
invites a nurse, who sets up her login. Anna, a patient, sees that the district physician
looked at her data, and gives her research consent. Every flow runs in German and in English,
each on a demo server of its own. axe-core (vendored, `tests/web/vendor/`)
checks each page type for serious and critical accessibility violations, and every control of
the main pages is reached by Tab; screenshots go to `build/screenshots/`."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from medicus.core.i18n import Languages
from medicus.demo import DEMO_ORGANISATIONS, DEMO_PASSWORD
from tests.e2e.conftest import (
    RunningServer,
    medicus_environment,
    run_medicus,
    serving,
)
from tests.iam.conftest import Mailbox, running_mailbox

CHROMIUM = Path("/usr/bin/chromium")
LOCALES = {"de": "de-DE", "en": "en-GB"}
AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
ADMIN = DEMO_ORGANISATIONS[1].staff[0][0]
PHYSICIAN = DEMO_ORGANISATIONS[1].staff[1][0]
DPO = DEMO_ORGANISATIONS[1].staff[2][0]
UNIVERSITY_PHYSICIAN = DEMO_ORGANISATIONS[0].staff[1][0]
OPERATOR = DEMO_ORGANISATIONS[3].staff[0][0]
PATIENT = DEMO_ORGANISATIONS[0].patients[0][0]

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Debian's chromium for the browser tests (make browser)")
    pytest.skip("Debian's chromium is not installed (make browser)", allow_module_level=True)


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    with running_mailbox() as box:
        yield box


@pytest.fixture(scope="module", params=["de", "en"])
def language(request: pytest.FixtureRequest) -> str:
    """Every flow runs once in each language, on a demo server of its own."""
    return str(request.param)


@pytest.fixture(scope="module")
def t(language: str) -> Callable[..., str]:
    """The pages' words in the flow's language, from the portal's own catalogue."""
    return Languages().get(language).translate


def _other(language: str) -> Callable[..., str]:
    """The words of the language a user switches to."""
    return Languages().get("en" if language == "de" else "de").translate


def _context(browser: Browser, language: str) -> BrowserContext:
    return browser.new_context(locale=LOCALES[language], viewport={"width": 1280, "height": 900})


@pytest.fixture(scope="module")
def demo_server(
    tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox, language: str
) -> Iterator[RunningServer]:
    environment = medicus_environment(
        tmp_path_factory.mktemp(f"portal-{language}") / "var",
        None,
        MEDICUS_SMTP_URL=f"smtp://127.0.0.1:{mailbox.port}",
    )
    migrated = run_medicus("migrate", environment=environment)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    loaded = run_medicus("demo", environment=environment)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    with serving(environment) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


def _accessible(page: Page, name: str) -> None:
    """axe-core on the page as it is: no serious or critical violation. Run through the
    debugging protocol, which the page's Content-Security-Policy does not govern."""
    page.wait_for_load_state()
    page.evaluate(AXE.read_text())
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => ['serious', 'critical'].includes(v.impact))"
        ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))"
    )
    assert found == [], f"{name}: {found}"


_INTERACTIVE = (
    "a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex='0']"
)
_SHOWN = (
    "(e => e.getClientRects().length > 0"
    " && !(e.tagName !== 'SUMMARY' && e.closest('details:not([open])')))"
)


def _keyboard_reachable(page: Page, name: str) -> None:
    """Every visible control of the page is reached by Tab alone (a group of radio buttons
    by one of them, as browsers do; arrow keys move within it). Tab goes on until all were
    reached or the page went round four times: an embedded PDF viewer adds its own controls
    to the round, and one still loading may let a round pass by the control after it."""
    missing = (
        f"() => Array.from(document.querySelectorAll({_INTERACTIVE!r}))"
        f".filter({_SHOWN}).filter(e => !e.dataset.reached)"
        ".filter(e => !(e.type === 'radio' && document.querySelector("
        "`input[type=radio][name='${e.name}'][data-reached]`)))"
        ".map(e => e.outerHTML.slice(0, 120))"
    )
    total = page.evaluate(
        f"() => Array.from(document.querySelectorAll({_INTERACTIVE!r})).filter({_SHOWN}).length"
    )
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    missed = page.evaluate(missing)
    for _ in range(4 * total + 80):
        page.keyboard.press("Tab")
        page.evaluate("() => { const e = document.activeElement; if (e) e.dataset.reached = '1'; }")
        missed = page.evaluate(missing)
        if not missed:
            break
    assert missed == [], f"{name}: not reached by Tab: {missed}"


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _keep_errors(errors: list[str], kind: str, text: str) -> None:
    if kind == "error":
        errors.append(text)


@dataclass
class Authenticator:
    """The physician's TOTP app: learns the secret at enrolment, never gives a code of the
    same time step twice (the server refuses replays; it accepts the next step)."""

    secret: str | None = None
    last_step: int = 0

    def code(self) -> str:
        """A code of a step not used yet: the current one, or the next (a third login within
        one step waits for the clock, as a person would)."""
        assert self.secret is not None
        while int(time.time() // 30) + 1 <= self.last_step:
            time.sleep(0.5)
        self.last_step = max(int(time.time() // 30), self.last_step + 1)
        return pyotp.TOTP(self.secret).at(self.last_step * 30)


@pytest.fixture(scope="module")
def authenticators(demo_server: RunningServer) -> dict[str, Authenticator]:
    """Each person's authenticator app on that server, by e-mail address."""
    return {}


def _log_in(
    page: Page, base_url: str, authenticators: dict[str, Authenticator], email: str = PHYSICIAN
) -> None:
    """Password, then the TOTP enrolment of a first login (and its recovery codes) or the
    second factor of a later one."""
    authenticator = authenticators.setdefault(email, Authenticator())
    page.goto(f"{base_url}/portal")
    _accessible(page, "login")
    page.fill("#email", email)
    page.fill("#password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    enrolling = authenticator.secret is None
    if enrolling:
        authenticator.secret = page.text_content("[data-testid=totp-secret]")
    _accessible(page, "second factor")
    page.fill("#code", authenticator.code())
    page.click("button[type=submit]")
    if enrolling:
        page.click("main form[method=get] button")
    page.wait_for_load_state()
    assert re.fullmatch(r".*/portal(/patients|/me)?\??", page.url), page.url


def _open_the_only_record(page: Page, query: str) -> None:
    """Search, find one record (the patient's own here: no consent shares another), open it."""
    page.fill("#q", query)
    page.keyboard.press("Enter")
    page.locator("#results tbody tr").first.wait_for()
    assert page.locator("#results tbody tr").count() == 1, "no consent: only the record here"
    page.locator("#results tbody tr a").first.click()
    page.wait_for_selector("h1#patient-name")


def test_a_physician_finds_a_patient_and_reads_another_hospitals_labs(
    demo_server: RunningServer,
    browser: Browser,
    authenticators: dict[str, Authenticator],
    language: str,
    t: Callable[..., str],
) -> None:
    context = _context(browser, language)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: _keep_errors(errors, message.type, message.text))
    _log_in(page, demo_server.base_url, authenticators)
    assert page.locator("#q").evaluate("element => element === document.activeElement")
    _accessible(page, "patient search")
    page.keyboard.type("Müller")
    results = page.locator("#results table")
    results.wait_for()
    assert page.url.endswith("/portal/patients?q=M%C3%BCller"), "the query is in the address"
    rows = results.locator("tbody tr")
    assert rows.count() == 2, "her own record here and the shared one of the university hospital"
    _keyboard_reachable(page, "patient search")
    _shot(page, f"patients-{language}")
    page.locator("tbody tr", has_text="Kreiskrankenhaus").get_by_role("link").click()
    page.wait_for_selector("h1#patient-name")
    labs = page.locator("section[aria-labelledby=labs-heading]")
    assert "Hämoglobin" in labs.inner_text()
    assert labs.locator(".elsewhere").count() > 0, "values held by the university hospital"
    assert page.locator("figure.trend svg polyline").count() == 3
    _accessible(page, "chart")
    _keyboard_reachable(page, "chart")
    _shot(page, f"chart-{language}")
    _open_a_study_and_copy_its_link(page, t)
    _shot(page, f"{language}-imaging-study")
    assert errors == [], errors
    context.close()


def _open_a_study_and_copy_its_link(page: Page, t: Callable[..., str]) -> None:
    """From the chart to the university hospital's chest X-ray (shared as her labs are), and
    its link copied for a message by the page's script."""
    page.locator("section[aria-labelledby=section-ImagingStudy]").get_by_role(
        "link", name="Röntgen Thorax p.a."
    ).click()
    page.wait_for_selector("h1#study-heading")
    assert "DX" in page.inner_text("main")
    link = page.input_value("#study-link")
    assert re.fullmatch(r"http://[^/]+/portal/imaging-studies/[\w.-]+", link), link
    page.get_by_role("button", name=t("Copy link for a message")).click()
    page.get_by_text(t("The link was copied. Paste it into a message.")).wait_for()
    _accessible(page, "imaging study")
    _keyboard_reachable(page, "imaging study")


def test_break_glass_opens_the_records_of_a_patient_without_consent(
    demo_server: RunningServer,
    browser: Browser,
    authenticators: dict[str, Authenticator],
    language: str,
    t: Callable[..., str],
) -> None:
    context = _context(browser, language)
    page = context.new_page()
    _log_in(page, demo_server.base_url, authenticators)
    _open_the_only_record(page, "Schmidt 02.11.1958")
    assert t("No laboratory values.") in page.inner_text("main")
    page.locator("details.break-glass summary").focus()
    page.keyboard.press("Enter")
    page.fill("#reason", "kurz")
    page.locator("details.break-glass button").click()
    assert page.locator("#reason-error").is_visible(), "too short: refused next to the field"
    _accessible(page, "chart with a refused form")
    page.fill("#reason", "Bewusstlos eingeliefert, Vorbefunde und Medikation nötig")
    page.locator("details.break-glass button").click()
    page.wait_for_selector("figure.trend")
    assert "Hämoglobin" in page.inner_text("main")
    _shot(page, f"chart-after-break-glass-{language}")
    other = "en" if language == "de" else "de"
    page.locator(f"button[lang={other}]").click()
    page.wait_for_selector(f"html[lang={other}]")
    assert _other(language)("Laboratory values") in page.inner_text("main")
    page.goto(f"{demo_server.base_url}/portal/patients/demo-anna-uk-nonexistent")
    assert _other(language)("Not found, or not shared with your organisation.") in page.inner_text(
        "main"
    )
    _accessible(page, "not found")
    context.close()
    _review_as_the_dpo(browser, demo_server.base_url, authenticators, language, t)


def _review_as_the_dpo(
    browser: Browser,
    base_url: str,
    authenticators: dict[str, Authenticator],
    language: str,
    t: Callable[..., str],
) -> None:
    """The district hospital's data protection officer finds the opening in the review queue
    and records the review; the audit trail shows the opening."""
    context = _context(browser, language)
    page = context.new_page()
    _log_in(page, base_url, authenticators, DPO)
    page.get_by_role("link", name=t("Break-glass review")).click()
    queue = page.locator("table.list tbody tr")
    assert queue.count() == 1
    assert "Bewusstlos eingeliefert" in queue.inner_text()
    _accessible(page, "break-glass review")
    _keyboard_reachable(page, "break-glass review")
    _shot(page, f"break-glass-review-{language}")
    queue.locator("textarea").fill("Notfall bestätigt, Zugriff angemessen")
    queue.get_by_role("button").click()
    assert t("Nothing to review.") in page.inner_text("main")
    page.get_by_role("link", name=t("Audit trail"), exact=True).click()
    page.select_option("#f-outcome", "success")
    page.get_by_role("button", name=t("Search"), exact=True).click()
    assert "access.break-glass" in page.inner_text("main")
    _accessible(page, "audit trail")
    _keyboard_reachable(page, "audit trail")
    _shot(page, f"audit-trail-{language}")
    context.close()


def test_an_admin_invites_a_nurse_who_accepts_and_sets_up_totp(
    demo_server: RunningServer,
    browser: Browser,
    authenticators: dict[str, Authenticator],
    mailbox: Mailbox,
    language: str,
    t: Callable[..., str],
) -> None:
    nurse_email = f"new.nurse.{language}@kkh-suedheim.example"
    context = _context(browser, language)
    page = context.new_page()
    page.goto(f"{demo_server.base_url}/portal")
    page.fill("#email", ADMIN)
    page.fill("#password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.get_by_role("link", name=t("Members")).click()
    page.wait_for_url("**/portal/admin/members")
    _accessible(page, "members")
    _keyboard_reachable(page, "members")
    page.fill("#i-email", nurse_email)
    page.fill("#i-display_name", "Nina Neu")
    page.select_option("#i-role", "nurse")
    page.get_by_role("button", name=t("Send invitation")).click()
    assert t("An invitation was sent to %(email)s.", email=nurse_email) in page.inner_text("main")
    _shot(page, f"members-{language}")
    _settings_pages(page, language, t)
    context.close()
    (message,) = [m for m in mailbox.messages if m["To"] == nurse_email]
    body = message.get_payload(decode=True).decode()
    link = re.search(r"(http\S+/invitation\?token=\S+)", body)
    assert link is not None, body
    invited = _context(browser, language).new_page()
    invited.goto(link.group(1))
    _accessible(invited, "invitation")
    invited.fill("#password", "a long nurse passphrase 2026")
    invited.click("button[type=submit]")
    invited.fill("#password", "a long nurse passphrase 2026")
    invited.click("button[type=submit]")
    nurse = authenticators.setdefault(nurse_email, Authenticator())
    nurse.secret = invited.text_content("[data-testid=totp-secret]")
    invited.fill("#code", nurse.code())
    invited.click("button[type=submit]")
    invited.click("main form[method=get] button")
    invited.wait_for_load_state()
    assert t("Find a patient") in invited.inner_text("main"), invited.url


def _settings_pages(page: Page, language: str, t: Callable[..., str]) -> None:
    """The admin registers an app (a redirect URI without https is refused next to the
    field) and looks at the sign-in settings."""
    page.get_by_role("link", name=t("Apps and services"), exact=True).click()
    page.fill("#public-name", "Stationsapp")
    page.fill("#public-redirect_uris", "http://app.example/callback")
    page.fill("#public-scope", "openid fhirUser user/*.rs")
    page.get_by_role("button", name=t("Register app")).click()
    assert page.locator("#public-redirect_uris-error").is_visible()
    page.fill("#public-redirect_uris", "https://app.example/callback")
    page.get_by_role("button", name=t("Register app")).click()
    assert page.locator("p.ok[role=status]").is_visible()
    assert "Stationsapp" in page.inner_text("main")
    _accessible(page, "apps and services")
    _keyboard_reachable(page, "apps and services")
    _shot(page, f"apps-and-services-{language}")
    page.get_by_role("link", name=t("Sign-in"), exact=True).click()
    page.wait_for_url("**/sign-in")
    _accessible(page, "sign-in settings")
    _keyboard_reachable(page, "sign-in settings")
    _shot(page, f"sign-in-settings-{language}")


def test_another_hospitals_labs_appear_once_the_patient_consents(
    demo_server: RunningServer,
    browser: Browser,
    authenticators: dict[str, Authenticator],
    language: str,
    t: Callable[..., str],
) -> None:
    district = _context(browser, language)
    page = district.new_page()
    _log_in(page, demo_server.base_url, authenticators)
    _open_the_only_record(page, "Wagner")
    chart_url = page.url
    assert t("No laboratory values.") in page.inner_text("main")
    university = _context(browser, language)
    colleague = university.new_page()
    _log_in(colleague, demo_server.base_url, authenticators, UNIVERSITY_PHYSICIAN)
    colleague.fill("#q", "Wagner")
    colleague.keyboard.press("Enter")
    colleague.locator("#results tbody tr a").first.click()
    colleague.wait_for_selector("h1#patient-name")
    consent = colleague.locator("form.consent").first
    consent.get_by_label(t("The patient permits sharing")).check()
    consent.get_by_role("button", name=t("Record decision")).click()
    assert colleague.locator("#consent-error").is_visible(), "a permit needs the signed form"
    consent = colleague.locator("form.consent").first
    consent.get_by_label(t("The patient permits sharing")).check()
    consent.get_by_label(t("The signed consent form is in the patient file")).check()
    consent.get_by_role("button", name=t("Record decision")).click()
    colleague.wait_for_selector("#consent table.list")
    assert t("in force") in colleague.locator("#consent table.list").inner_text()
    _accessible(colleague, "chart with consent")
    _shot(colleague, f"consent-recorded-{language}")
    university.close()
    page.goto(chart_url)
    labs = page.locator("section[aria-labelledby=labs-heading]")
    assert "Hämoglobin" in labs.inner_text()
    assert labs.locator(".elsewhere").count() > 0, "the university hospital's values"
    district.close()


def test_a_patient_sees_who_looked_at_her_data_and_gives_research_consent(
    demo_server: RunningServer,
    browser: Browser,
    authenticators: dict[str, Authenticator],
    language: str,
    t: Callable[..., str],
) -> None:
    context = _context(browser, language)
    page = context.new_page()
    _log_in(page, demo_server.base_url, authenticators, PATIENT)
    assert page.url.endswith("/portal/me")
    assert t("Your data") in page.inner_text("h1")
    _accessible(page, "own data")
    _keyboard_reachable(page, "own data")
    page.get_by_role("link", name=t("Access log"), exact=True).click()
    log = page.locator("table.access-log")
    assert "Dr. Lena Koch" in log.inner_text(), "the district physician read her chart"
    assert "Kreiskrankenhaus Südheim" in log.inner_text()
    _accessible(page, "access log")
    _keyboard_reachable(page, "access log")
    _shot(page, f"access-log-{language}")
    other = "en" if language == "de" else "de"
    page.locator(f"button[lang={other}]").click()
    page.wait_for_selector(f"html[lang={other}]")
    words = _other(language)
    assert words("looked at") in page.locator("table.access-log").inner_text()
    page.get_by_role("link", name=words("Your data"), exact=True).click()
    research = page.locator("#research form")
    research.locator("input[name=patient-data][value=permit]").check()
    research.locator("input[name=biomaterial][value=deny]").check()
    research.get_by_role("button", name=words("Save research consent")).click()
    assert page.locator("#research-error").is_visible(), "she confirms she read the leaflet"
    research = page.locator("#research form")
    research.locator("input[name=patient-data][value=permit]").check()
    research.locator("input[name=biomaterial][value=deny]").check()
    research.get_by_label(words("I have read the patient information on the Broad Consent")).check()
    research.get_by_role("button", name=words("Save research consent")).click()
    page.wait_for_selector("#research table.list")
    assert words("in force") in page.locator("#research table.list").inner_text()
    _accessible(page, "own data with consent")
    _shot(page, f"own-data-{other}")
    context.close()


def test_the_platform_admin_creates_an_organisation_and_looks_at_patient_matching(
    demo_server: RunningServer,
    browser: Browser,
    authenticators: dict[str, Authenticator],
    language: str,
    t: Callable[..., str],
) -> None:
    context = _context(browser, language)
    page = context.new_page()
    _log_in(page, demo_server.base_url, authenticators, OPERATOR)
    page.get_by_role("link", name=t("Organisations"), exact=True).click()
    assert "Kreiskrankenhaus Südheim" in page.locator("table").inner_text()
    page.fill("#o-name", "Praxis am Markt")
    page.select_option("#o-type", "practice")
    page.fill("#o-iknr", "260100011")
    page.get_by_role("button", name=t("Create organisation")).click()
    assert page.locator("#o-iknr-error").is_visible(), "the university hospital's IK number"
    page.fill("#o-iknr", "260400044")
    page.get_by_role("button", name=t("Create organisation")).click()
    assert "Praxis am Markt" in page.locator("table").inner_text()
    _accessible(page, "organisations")
    _keyboard_reachable(page, "organisations")
    _shot(page, f"organisations-{language}")
    page.get_by_role("link", name=t("Patient matching"), exact=True).click()
    assert t("Patient matching") in page.inner_text("h1")
    assert page.locator("table tbody tr").count() >= 1, "Johann Maier and Johann Meier"
    _accessible(page, "patient matching")
    _keyboard_reachable(page, "patient matching")
    _shot(page, f"patient-matching-{language}")
    context.close()
