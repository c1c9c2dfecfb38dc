"""Resources as the hub stores and serves them: JSON as received, with `id`,
`meta.versionId` and `meta.lastUpdated` set by the server."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

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


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, f"The body is not valid JSON ({error}).") from None


def check_resource(resource: Any, resource_type: str, fhir_id: str | None) -> dict[str, Any]:
    """`resource` checked to be a JSON object of the right type (and id, if one is given)."""
    if not isinstance(resource, dict):
        raise ApiError(400, "The body must be a FHIR resource (a JSON object).")
    if resource.get("resourceType") != resource_type:
        raise ApiError(
            422,
            f"The body is a {resource.get('resourceType')!r}, not a {resource_type}.",
            errors=[ErrorDetail("resourceType does not match the URL", expression="resourceType")],
            issue_type="invalid",
        )
    if fhir_id is not None and resource.get("id") != fhir_id:
        raise ApiError(400, "The resource's id must equal the id in the URL.", issue_type="invalid")
    return resource


def parse_resource(body: bytes, resource_type: str, fhir_id: str | None) -> dict[str, Any]:
    """The resource in a request body, checked to be a JSON object of the right type (and id)."""
    return check_resource(parse_json(body), resource_type, fhir_id)


def with_meta(resource: dict[str, Any], fhir_id: str, version: int, now: dt.datetime) -> str:
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = fhir_time(now)
    return orjson.dumps({**resource, "id": fhir_id, "meta": meta}).decode()
