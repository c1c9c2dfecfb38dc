"""The languages of the pages people read (the portal, the login): German first (the users are
German hospital staff), English second.

Messages live in Babel catalogues (`locale/<language>/LC_MESSAGES/messages.po`, extracted
from the templates and code with `pybabel extract -F babel.cfg`); English is the source
language and needs none. The catalogues are read as text and compiled in memory when the
process starts, so that `make run` needs no build step. A user's language is their choice
(the `medicus_language` cookie, set on the page's language switch), else the browser's
`Accept-Language`, else German. Dates and numbers are formatted for that language by Babel.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import parse_pattern
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"
LANGUAGE_COOKIE = "medicus_language"
_LOCALE_DIR = Path(__file__).parent.parent / "locale"


def translatable(message: str) -> str:
    """Marks a message that code hands to a page (an error's text) for extraction into the
    catalogues; the page translates it when it shows it."""
    return message


@functools.cache
def _compiled(language: str) -> NullTranslations:
    """The catalogue of `language`, compiled in memory (none for the source language), once
    per process: every app the process builds reads the same, unchanging messages."""
    source = _LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if not source.exists():
        return NullTranslations()
    with source.open("rb") as text:
        catalogue = read_po(text, locale=language)
    binary = io.BytesIO()
    write_mo(binary, catalogue)
    binary.seek(0)
    return Translations(binary)


DISPLAY_ZONE = ZoneInfo("Europe/Berlin")
"""Times are shown in the hospitals' time zone (stored and exchanged in UTC)."""


class Language:
    """One language of the pages: its messages and how it writes dates, times and numbers.
    The patterns are parsed once here: a chart writes a thousand values and their times, and
    Babel's `format_*` functions parse the locale and the pattern on every call (~100 µs)."""

    def __init__(self, code: str, translations: NullTranslations) -> None:
        self.code = code
        self.translations = translations
        self._locale = Locale.parse(code)
        formats = self._locale.datetime_formats["medium"]
        date_pattern = self._locale.date_formats["medium"].pattern
        time_pattern = self._locale.time_formats["short"].pattern
        self._date = parse_pattern(date_pattern)
        self._month = parse_pattern("MM.yyyy" if code == "de" else "MMM yyyy")
        self._moment = parse_pattern(str(formats).format(time_pattern, date_pattern))
        self._number = self._locale.decimal_formats[None]

    @property
    def gettext(self) -> Callable[[str], str]:
        return self.translations.gettext

    def translate(self, message: str, **values: object) -> str:
        """`message` in this language, with its `%(name)s` placeholders filled in."""
        translated = self.translations.gettext(message)
        return translated % values if values else translated

    def date(self, value: dt.date | None) -> str:
        return "" if value is None else self._date.apply(value, self._locale)

    def fhir_date(self, value: str) -> str:
        """A FHIR date (`1964`, `1964-05`, `1964-05-17`) as this language writes it; as
        given when it is none."""
        try:
            if len(value) == len("1964-05-17"):
                return self.date(dt.date.fromisoformat(value))
            if len(value) == len("1964-05"):
                return self._month.apply(dt.date.fromisoformat(f"{value}-01"), self._locale)
        except ValueError:
            pass
        return value

    def moment(self, value: dt.datetime | str | None) -> str:
        """A moment (or its ISO 8601 text) in the hospitals' time zone, to the minute."""
        if isinstance(value, str):
            try:
                moment = dt.datetime.fromisoformat(value)
            except ValueError:
                return value
        elif value is None:
            return ""
        else:
            moment = value
        return self._moment.apply(moment.astimezone(DISPLAY_ZONE), self._locale)

    def number(self, value: float | None) -> str:
        if value is None:
            return ""
        return str(self._number.apply(value, self._locale))


class Languages:
    """Every language's catalogue, compiled once per process."""

    def __init__(self) -> None:
        self._languages = {code: Language(code, _compiled(code)) for code in LANGUAGES}

    def get(self, code: str) -> Language:
        return self._languages.get(code, self._languages[DEFAULT_LANGUAGE])

    def choose(self, cookie: str | None, accept_language: str | None) -> Language:
        """The user's choice if it is one of ours, else the browser's best, else German."""
        if cookie in self._languages:
            return self._languages[cookie]
        wanted = _accepted(accept_language or "")
        chosen = Locale.negotiate(wanted, list(LANGUAGES), sep="-") if wanted else None
        return self.get(chosen.language if chosen else DEFAULT_LANGUAGE)


def _accepted(header: str) -> list[str]:
    """The languages of an `Accept-Language` header, best first (by their `q`)."""
    weighted = []
    for place, part in enumerate(header.split(",")[:20]):
        tag, _, parameters = part.strip().partition(";")
        quality = 1.0
        if parameters.strip().startswith("q="):
            try:
                quality = float(parameters.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, place, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]
