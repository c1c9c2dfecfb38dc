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
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"
LANGUAGE_COOKIE = "medicus_language"
_LOCALE_DIR = Path(__file__).parent.parent / "locale"


def translatable(message: str) -> str:
    """Marks a message that code hands to a page (an error's text) for extraction into the
    catalogues; the page translates it when it shows it."""
    return message


def _compiled(language: str) -> NullTranslations:
    """The catalogue of `language`, compiled in memory (none for the source language)."""
    source = _LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if not source.exists():
        return NullTranslations()
    with source.open("rb") as text:
        catalogue = read_po(text, locale=language)
    binary = io.BytesIO()
    write_mo(binary, catalogue)
    binary.seek(0)
    return Translations(binary)


@dataclass(frozen=True)
class Language:
    """One language of the portal: its messages and how it writes dates and numbers."""

    code: str
    translations: NullTranslations

    @property
    def gettext(self) -> Callable[[str], str]:
        return self.translations.gettext

    def translate(self, message: str, **values: object) -> str:
        """`message` in this language, with its `%(name)s` placeholders filled in."""
        translated = self.translations.gettext(message)
        return translated % values if values else translated

    def date(self, value: dt.date | None) -> str:
        return "" if value is None else format_date(value, format="medium", locale=self.code)

    def fhir_date(self, value: str) -> str:
        """A FHIR date (`1964`, `1964-05`, `1964-05-17`) as this language writes it; as
        given when it is none."""
        try:
            if len(value) == len("1964-05-17"):
                return self.date(dt.date.fromisoformat(value))
            if len(value) == len("1964-05"):
                month = dt.date.fromisoformat(f"{value}-01")
                return format_date(month, format="MM.yyyy", locale=self.code)
        except ValueError:
            pass
        return value

    def moment(self, value: dt.datetime | None) -> str:
        if value is None:
            return ""
        return format_datetime(value, format="medium", tzinfo=dt.UTC, locale=self.code)

    def number(self, value: float | None) -> str:
        return "" if value is None else format_decimal(value, locale=self.code)


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
