"""`_summary` and `_elements`: a subset of each resource returned by a read or search, marked
with the `SUBSETTED` tag so that no client mistakes it for the whole resource."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medicus.core.errors import ApiError
from medicus.fhir.definitions import top_level_elements
from medicus.fhir.resources import dump_json, load_stored

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
_ALWAYS = frozenset({"resourceType", "id", "meta"})
_SUMMARY_MODES = ("true", "false", "text", "data", "count")


@dataclass(frozen=True)
class Subset:
    """What a request asked to leave out: `summary` (true, text, data, count, false) or the
    top-level `elements` to keep."""

    summary: str | None = None
    elements: frozenset[str] | None = None

    @classmethod
    def of(cls, parameters: dict[str, str]) -> Subset:
        summary = parameters.get("_summary")
        if summary is not None and summary not in _SUMMARY_MODES:
            raise ApiError(
                400, f"_summary must be one of {', '.join(_SUMMARY_MODES)}.", issue_type="invalid"
            )
        listed = parameters.get("_elements")
        elements = None if listed is None else frozenset(e.strip() for e in listed.split(","))
        return cls(None if summary == "false" else summary, elements)

    @property
    def whole(self) -> bool:
        return self.summary is None and self.elements is None

    def apply(self, content: bytes) -> bytes:
        """`content` as this subset of it (unchanged if nothing is left out)."""
        if self.whole:
            return content
        resource: dict[str, Any] = load_stored(content)
        summary, mandatory = top_level_elements(resource["resourceType"])
        if self.summary == "data":
            kept = {k: v for k, v in resource.items() if k != "text"}
        elif self.summary == "text":
            kept = _keep(resource, _ALWAYS | mandatory | {"text"})
        elif self.summary == "true":
            kept = _keep(resource, _ALWAYS | summary)
        else:
            kept = _keep(resource, _ALWAYS | mandatory | (self.elements or frozenset()))
        meta = dict(kept.get("meta") or {})
        meta["tag"] = [*meta.get("tag", []), SUBSETTED]
        return dump_json({**kept, "meta": meta})


def _keep(resource: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """The elements of `resource` named in `names`; `value[x]` there keeps `valueQuantity`."""
    choices = tuple(name[:-3] for name in names if name.endswith("[x]"))
    return {
        key: value
        for key, value in resource.items()
        if key in names or (key.startswith(choices) and _is_choice_of(key, choices))
    }


def _is_choice_of(key: str, choices: tuple[str, ...]) -> bool:
    return any(key[len(c) : len(c) + 1].isupper() for c in choices if key.startswith(c))
