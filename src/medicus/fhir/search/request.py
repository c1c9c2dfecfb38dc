"""A FHIR search as asked: its type and parameters (`SearchRequest`), which of them shape
the result rather than select (`_count`, `_sort`, `_include`, ...), and the limits of one
search's size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from medicus.core.errors import ApiError

RESULT_PARAMETERS = frozenset(
    {
        "_count",
        "_total",
        "_format",
        "_offset",
        "_cursor",
        "_sort",
        "_include",
        "_revinclude",
        "_summary",
        "_elements",
        "_pretty",
        # Not FHIR: fhirpy's `count()` sends it (Aidbox's way to ask for a total); ignored.
        "_totalMethod",
    }
)
UNSUPPORTED = {
    "_text": "full-text search of the narrative",
    "_content": "full-text search of the content",
    "_query": "named queries",
    "_filter": "the _filter syntax",
    "_contained": "searching contained resources",
    "_containedType": "searching contained resources",
}
MAX_ALTERNATIVES = 200
"""Comma-separated values of one search parameter."""
MAX_VALUES = 10_000
"""Values of one search in all (a prefix match takes three, padded lists up to twice their
length), well below PostgreSQL's 32,767 parameters of a statement."""


@dataclass(frozen=True)
class SearchRequest:
    """A search: its type, its parameters as sent, `Prefer: handling=lenient`, and the types
    the caller may read (None: all), which chains, `_has` and `_include` may look into."""

    resource_type: str
    parameters: Sequence[tuple[str, str]]
    lenient: bool = False
    readable: frozenset[str] | None = None

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.parameters if key == name]


class UnknownParameter(ApiError):
    """A parameter the type does not have: ignored under `Prefer: handling=lenient`."""


def is_result_parameter(name: str) -> bool:
    return name in RESULT_PARAMETERS or name.partition(":")[0] in ("_include", "_revinclude")
