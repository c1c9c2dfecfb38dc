"""Patient `phonetic`: names by how they sound in German, by the Kölner Phonetik (Cologne
phonetics, `cologne_phonetics`, as the MPI compares names: access/matching.py). Maier, Meier,
Mayer, Meyer and Mayr are all `67`; Schmidt, Schmitt and Schmid `862`; Müller, Mueller,
Muller, Möller (and Miller, Mahler) `657`; Weiß and Weiss `38`.

Rows: each word of each family and given name of a Patient (every `name`; words end at
spaces, hyphens, dots and digits, an apostrophe inside a word is part of it: Müller-Lüdenscheidt
is two words, O'Brien one) is folded as the MPI folds names (umlauts and ß as spelt without
them, accents dropped, letters only) and encoded; each distinct code is one `fhir_string` row
(`param` `phonetic`, the code as `value` and `exact`), at most MAX_CODES per Patient. String
rows rather than token rows: their index ends with the row id (`ix_fhir_string_lookup`), so a
search for one code reads its first page straight from the index in the order of the rows
(ordering.py), however many Patients sound alike (a Müller in every hundred).

Search: a value's words are encoded alike, words without a code (`H.`: the Kölner Phonetik
does not sound an h) left out; a Patient matches if it has every remaining code, each from any
word of any of its names (`phonetic=Hans Maier`: Hans Meier, and Maier, Hans-Peter). Codes are
equal or not: a prefix of a code does not match. A code is short (Maier's has two digits), so
its prefixes would match a large share of all names, and the code of a word's start is not
always the start of the word's code (`Mart` is 672, `Martz` 678).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

import cologne_phonetics

from medicus.access.matching import folded

MAX_CODES = 20
"""Codes indexed per Patient: a few names of a few words each have fewer; a name of a
thousand words (which validation lets through) is not indexed beyond them."""
MAX_LENGTH = 255
"""Characters of a search value (each of its comma-separated alternatives): a name, not a
text."""
MAX_WORDS = 8
"""Words of a search value; each is a condition of its own."""
_READ = 1020
"""Characters of a stored name read for its words (a string may have a million)."""
_KEPT = 255
"""Digits of a code kept (the width of `fhir_string.value`)."""
_WORDS = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")


def words(text: str) -> list[str]:
    """The words of a name: runs of letters (an apostrophe inside one kept)."""
    return _WORDS.findall(unicodedata.normalize("NFC", text))


def code(word: str) -> str:
    """The Kölner Phonetik code of one word ('' if it has none: no Latin letters, or only
    letters the code does not sound, such as h)."""
    letters = folded(word)
    if not letters:
        return ""
    return str(cologne_phonetics.encode(letters, concat=True)[0][1])[:_KEPT]


def codes(text: str) -> list[str]:
    """The distinct codes of the words of `text`, in the order of the words."""
    return list(dict.fromkeys(found for word in words(text) if (found := code(word))))


def name_codes(names: Iterable[Any]) -> list[str]:
    """The distinct codes of the words of the family and given names of HumanNames (at most
    MAX_CODES, in the order of the names), which a Patient's `phonetic` rows hold."""
    found: dict[str, None] = {}
    for name in names:
        if not isinstance(name, dict):
            continue
        given = name.get("given")
        parts = [name.get("family"), *(given if isinstance(given, list) else [])]
        for part in parts:
            if isinstance(part, str):
                found.update(dict.fromkeys(codes(part[:_READ])))
            if len(found) >= MAX_CODES:
                return list(found)[:MAX_CODES]
    return list(found)


def search_codes(value: str) -> list[str]:
    """The codes a search value asks for, all of which a Patient must have; ValueError (with
    the reason) for a value that is no name: longer than MAX_LENGTH, more than MAX_WORDS
    words, or no word with a code."""
    if len(value) > MAX_LENGTH:
        raise ValueError(f"a name of at most {MAX_LENGTH} characters")
    found = words(value)
    if len(found) > MAX_WORDS:
        raise ValueError(f"a name of at most {MAX_WORDS} words")
    wanted = list(dict.fromkeys(sound for word in found if (sound := code(word))))
    if not wanted:
        raise ValueError("a name with letters that sound (Kölner Phonetik)")
    return wanted
