"""How the search box's words become FHIR search parameters, and the choice of language."""

from __future__ import annotations

import pytest

from medicus.core.i18n import Languages
from medicus.web.service import KVNR_SYSTEM, search_parameters


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Müller", [("name", "Müller")]),
        ("müller, anna", [("name", "müller"), ("name", "anna")]),
        ("a123456789", [("identifier", f"{KVNR_SYSTEM}|A123456789")]),
        ("17.5.1964", [("birthdate", "1964-05-17")]),
        ("1964-05", [("birthdate", "1964-05")]),
        ("4711", [("identifier", "4711")]),
        ("   ", []),
    ],
)
def test_search_words(query: str, expected: list[tuple[str, str]]) -> None:
    assert search_parameters(query) == expected


def test_a_long_query_is_cut_to_six_words() -> None:
    assert len(search_parameters("a " * 500)) == 6


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, None, "de"),
        (None, "en-GB,en;q=0.9,de;q=0.8", "en"),
        (None, "fr-FR, de;q=0.5, en;q=0.4", "de"),
        (None, "fr", "de"),
        ("en", "de", "en"),
        ("xx", "en", "en"),
        (None, "en;q=bad, de;q=0.1", "de"),
    ],
)
def test_language_choice(cookie: str | None, header: str | None, expected: str) -> None:
    assert Languages().choose(cookie, header).code == expected


def test_german_formats_numbers_and_fills_placeholders() -> None:
    german = Languages().get("de")
    assert german.number(9.1) == "9,1"
    assert german.translate("Welcome, %(name)s", name="Anna") == "Willkommen, Anna"
    assert Languages().get("en").translate("Welcome, %(name)s", name="Anna") == "Welcome, Anna"


@pytest.mark.parametrize(
    ("language", "value", "expected"),
    [
        ("de", "1964-05-17", "17.05.1964"),
        ("en", "1964-05-17", "May 17, 1964"),
        ("de", "1964-05", "05.1964"),
        ("de", "1964", "1964"),
        ("de", "1964-13-01", "1964-13-01"),
        ("de", "", ""),
    ],
)
def test_fhir_dates_in_the_users_language(language: str, value: str, expected: str) -> None:
    assert Languages().get(language).fhir_date(value) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Mayer", [("phonetic", "Mayer")]),
        ("Mayer 17.5.1964", [("phonetic", "Mayer"), ("birthdate", "1964-05-17")]),
        ("h. Mayer", [("phonetic", "Mayer")]),
        ("Müller-Lüdenscheidt hans", [("phonetic", "Müller-Lüdenscheidt"), ("phonetic", "hans")]),
        ("a-b-c-d-e-f-g-h-i", []),
        ("a123456789", []),
        ("17.5.1964 4711", []),
        ("h.", []),
    ],
)
def test_search_words_by_sound(query: str, expected: list[tuple[str, str]]) -> None:
    """The portal's second search: the name words as `phonetic`, where any has a sound."""
    assert search_parameters(query, by_sound=True) == expected
