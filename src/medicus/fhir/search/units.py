"""UCUM units with a plain factor to a base unit ("trivially" normalisable): metric prefixes
on g, L, mol, m, s, eq, U and the time units min, h, d, wk, alone or as a ratio (mg/dL). Values
are indexed and searched in the base unit, so that 5 mg matches a search for 0.005 g."""

from __future__ import annotations

UCUM = "http://unitsofmeasure.org"
_PREFIXES = {
    "": 1.0,
    "k": 1e3,
    "d": 1e-1,
    "c": 1e-2,
    "m": 1e-3,
    "u": 1e-6,
    "n": 1e-9,
    "p": 1e-12,
    "f": 1e-15,
}
_ATOMS = ("g", "L", "l", "mol", "m", "s", "eq", "U")
_TIME = {"min": 60.0, "h": 3600.0, "d": 86400.0, "wk": 604800.0}


def _simple(unit: str) -> tuple[float, str] | None:
    if unit in _TIME:
        return _TIME[unit], "s"
    for atom in _ATOMS:
        prefix = unit[: -len(atom)]
        if unit.endswith(atom) and prefix in _PREFIXES:
            return _PREFIXES[prefix], "L" if atom == "l" else atom
    return None


def canonical(code: str) -> tuple[float, str] | None:
    """The factor to the base unit and the base unit's code, or None if `code` is not one of
    the simple units above."""
    numerator, _, denominator = code.partition("/")
    top = _simple(numerator)
    if top is None or "/" in denominator:
        return None
    if not denominator:
        return top
    bottom = _simple(denominator)
    if bottom is None:
        return None
    return top[0] / bottom[0], f"{top[1]}/{bottom[1]}"
