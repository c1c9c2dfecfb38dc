"""Probabilistic matching of Patient records: records of different persons that may be the
same person, by name, birth date and address, proposed to the MPI stewards and never linked
automatically (a wrong link would show one person's data to another's doctors).

Records are compared within a block (the same birth date, and the same family name, given
name or postal code, or family names that sound alike), then scored by how alike their names
are: spelt alike, or sounding alike in German by the Kölner Phonetik (Meier, Mayer and Maier;
Schmidt and Schmitt), which clerks taking a name over the phone get wrong most. A KVNR on
both that differs rules a pair out. The stewards see which traits matched and how well, not
the values.
"""

from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass
from typing import Any

import cologne_phonetics

THRESHOLD = 0.7
"""From this score a pair is proposed."""
SOUNDING_ALIKE = 0.9
"""How alike two names are that are spelt differently but sound the same (at least)."""
_WEIGHTS = {"family": 0.45, "given": 0.35, "postal_code": 0.2}
# German spellings without umlauts, and the Latin letters that Unicode does not decompose
# into a base letter and an accent (a transliteration library for seven letters is not worth
# a dependency).
_SPELLINGS = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ł": "l", "ø": "o", "đ": "d", "æ": "ae"}
    | {"œ": "oe", "\u0131": "i"}  # dotless i
)


@dataclass(frozen=True)
class Traits:
    """What a Patient record is matched by, normalised (`folded`)."""

    family: str | None = None
    given: str | None = None
    birth_date: str | None = None
    postal_code: str | None = None
    family_sound: str | None = None
    """The family name's Kölner Phonetik code: a block of its own."""


def folded(text: str) -> str:
    """A name as matching compares it: case and accents ignored, umlauts and ß as they are
    spelt without them (Müller and Mueller are one name), letters only."""
    spelt = text.casefold().translate(_SPELLINGS)
    decomposed = unicodedata.normalize("NFKD", spelt)
    return "".join(c for c in decomposed if c.isalpha() and not unicodedata.combining(c))


def traits_of(patient: dict[str, Any]) -> Traits:
    """The matching traits of a Patient resource: the official (else first) name's family
    name and first given name, a full birth date, the first address's postal code."""
    names = [n for n in patient.get("name") or [] if isinstance(n, dict)]
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    family = name.get("family")
    given = name.get("given") or []
    birth_date = patient.get("birthDate")
    addresses = [a for a in patient.get("address") or [] if isinstance(a, dict)]
    postal_code = addresses[0].get("postalCode") if addresses else None
    folded_family = _folded_or_none(family)
    return Traits(
        family=folded_family,
        given=_folded_or_none(given[0] if isinstance(given, list) and given else None),
        birth_date=birth_date if isinstance(birth_date, str) and len(birth_date) == 10 else None,
        postal_code=postal_code.strip()[:10] or None if isinstance(postal_code, str) else None,
        family_sound=sound(folded_family),
    )


def sound(name: str | None) -> str | None:
    """The Kölner Phonetik code of a folded name, as one word (None: it has none)."""
    if not name:
        return None
    return cologne_phonetics.encode(name, concat=True)[0][1][:100] or None


def _folded_or_none(text: object) -> str | None:
    """The first 100 letters of a folded name; only its start is folded (a string may have a
    million characters, which would take seconds)."""
    return (folded(text[:1000])[:100] or None) if isinstance(text, str) else None


@dataclass(frozen=True)
class Likeness:
    score: float
    traits: dict[str, float]
    """How alike each trait is, 0 to 1 (the birth date is always 1: the block)."""


def likeness(one: Traits, other: Traits) -> Likeness:
    """How likely two records with the same birth date are one person: the weighted
    likeness of their names (also with family and given name swapped, a common slip) and
    postal codes."""
    straight = _alike(one.family, other.family), _alike(one.given, other.given)
    swapped = _alike(one.family, other.given), _alike(one.given, other.family)
    family, given = max(straight, swapped, key=sum)
    postal = float(one.postal_code is not None and one.postal_code == other.postal_code)
    traits = {"birth_date": 1.0, "family": family, "given": given, "postal_code": postal}
    score = sum(weight * traits[name] for name, weight in _WEIGHTS.items())
    return Likeness(round(score, 3), {name: round(value, 3) for name, value in traits.items()})


def _alike(one: str | None, other: str | None) -> float:
    """How alike two folded names are: by spelling, and at least `SOUNDING_ALIKE` if they
    sound the same."""
    if not one or not other:
        return 0.0
    spelt = difflib.SequenceMatcher(None, one, other).ratio()
    if spelt < SOUNDING_ALIKE and sound(one) == sound(other) is not None:
        return SOUNDING_ALIKE
    return spelt
