"""Resources as the hub stores and serves them: JSON as received, with `id`,
`meta.versionId` and `meta.lastUpdated` set by the server."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import anyio.to_thread
import orjson

from medicus.core.errors import ApiError, ErrorDetail
from medicus.core.ids import is_fhir_id
from medicus.fhir.definitions import resource_types


@dataclass(frozen=True)
class StoredVersion:
    """A version as the routes render it; `content` None for a deletion."""

    resource_type: str
    fhir_id: str
    version: int
    last_updated: dt.datetime
    content: bytes | None
    created: bool = False

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    @property
    def status(self) -> int:
        if self.content is None:
            return 204
        return 201 if self.created else 200


def fhir_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_type(resource_type: str) -> None:
    if resource_type not in resource_types():
        raise ApiError(
            404, f"{resource_type} is not a FHIR R4 resource type.", issue_type="not-supported"
        )


def is_version_number(text: str) -> bool:
    """ASCII digits only (`str.isdigit` also takes `٣` and `²`)."""
    return text.isascii() and text.isdigit()


def check_id(fhir_id: str) -> None:
    if not is_fhir_id(fhir_id):
        raise ApiError(400, f"'{fhir_id}' is not a valid FHIR id.", issue_type="invalid")


class ExactDecimal(Decimal):
    """A JSON number as received: FHIR decimals keep their precision (`1.50` is not `1.5`),
    so the text is kept and written back as it came; arithmetic sees a `Decimal`."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> ExactDecimal:
        number = super().__new__(cls, text)
        number.text = text
        return number


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return found


def _integer(text: str) -> int | ExactDecimal:
    """Integers beyond 64 bits (a decimal written without a fraction) stay exact text:
    orjson writes no larger integers."""
    return int(text) if len(text) < 19 else ExactDecimal(text)


# orjson does not keep a number's text nor see repeated keys; the standard library's parser
# can, through these hooks (parsing and writing a 520-byte Observation: 41 µs, against 5 µs
# with orjson alone; see docs/fhir.md).
_EXACT = json.JSONDecoder(parse_float=ExactDecimal, parse_int=_integer, object_pairs_hook=_object)
LARGE_BODY = 16 * 1024
"""Characters of JSON from which parsing, validating and indexing run in a worker thread
rather than on the event loop, where they would stall every other request meanwhile. From
about this size the work (milliseconds) outweighs the hop to a thread (~0.1-0.5 ms); typical
resources are far smaller and stay on the loop."""


def _exact_number(value: Any) -> orjson.Fragment:
    if isinstance(value, ExactDecimal):
        return orjson.Fragment(value.text)
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def dump_json(value: Any) -> bytes:
    """JSON of parsed resources, their decimals written as they were received."""
    return orjson.dumps(value, default=_exact_number)


def load_stored(content: str | bytes) -> Any:
    """A stored resource (valid JSON, no repeated keys), its decimals kept exact."""
    return _EXACT.decode(content if isinstance(content, str) else content.decode())


def parse_json(body: bytes) -> Any:
    """A request's JSON, with exact decimals (`ExactDecimal`); malformed JSON and an object
    with a key twice (which JSON parsers disagree on) are a 400."""
    try:
        # Strict RFC 8259 and UTF-8 first, with the position of a fault: the standard
        # library would accept NaN, Infinity and lone surrogates, which cannot be stored.
        orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, f"The body is not valid JSON ({error}).") from None
    try:
        return _EXACT.decode(body.decode())
    except _DuplicateKey as duplicate:
        raise ApiError(
            400,
            f"The body has the key {duplicate.key!r} twice in one object.",
            issue_type="structure",
        ) from None
    except RecursionError:
        raise ApiError(400, "The body is nested too deeply.", issue_type="too-costly") from None


async def parse_body(body: bytes) -> Any:
    """`parse_json`, in a worker thread for a large body."""
    if len(body) < LARGE_BODY:
        return parse_json(body)
    return await anyio.to_thread.run_sync(parse_json, body)


def check_resource(resource: Any, resource_type: str, fhir_id: str | None) -> dict[str, Any]:
    """`resource` checked to be a JSON object of the right type (and id, if one is given)."""
    if not isinstance(resource, dict):
        raise ApiError(400, "The body must be a FHIR resource (a JSON object).")
    given = resource.get("resourceType")
    if not isinstance(given, str):
        problem = "is missing" if given is None else "must be a string"
        raise ApiError(
            400,
            f"resourceType {problem}: a resource names its type (here {resource_type}).",
            errors=[ErrorDetail(f"resourceType {problem}", expression="resourceType")],
            issue_type="required" if given is None else "structure",
        )
    if given != resource_type:
        raise ApiError(
            422,
            f"The resource is a {given[:64]}, but a {resource_type} is expected here.",
            errors=[
                ErrorDetail(f"resourceType must be {resource_type}", expression="resourceType")
            ],
            issue_type="invalid",
        )
    if fhir_id is not None and resource.get("id") != fhir_id:
        raise ApiError(400, "The resource's id must equal the id in the URL.", issue_type="invalid")
    return resource


def with_meta(resource: dict[str, Any], fhir_id: str, version: int, now: dt.datetime) -> str:
    given = resource.get("meta")
    meta = dict(given) if isinstance(given, dict) else {}  # a wrong meta fails validation
    meta["versionId"] = str(version)
    meta["lastUpdated"] = fhir_time(now)
    return dump_json({**resource, "id": fhir_id, "meta": meta}).decode()
