"""Keyset paging: a search's `next` link carries a cursor, the sort values and row id of the
page's last resource, and the next page is the rows strictly after that key in the search's
order; its `previous` link the first resource's, and that page is the rows strictly before
it (read in the reverse order, then turned round). Resources created, updated or deleted
between two pages do not shift the pages after them, as they would with an offset.

The cursor only ever adds a bound to a search that keeps the organisation and every
other condition, so it cannot widen what a caller sees. It is encrypted and authenticated
with the platform's secret (AES-GCM, `core.crypto.SecretBox`): sort values are patient data
(a family name, a birth date) and URLs end up in proxies' and clients' logs. Inside, a digest
of the search it belongs to (organisation, type, parameters, `_sort`) makes a cursor of any
other search a 400; each value is checked against the kind of its key before it reaches SQL.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import or_

from medicus.core.crypto import DecryptionError, SecretBox
from medicus.core.errors import ApiError
from medicus.fhir.search.match import invalid
from medicus.fhir.search.request import SearchRequest, is_result_parameter
from medicus.fhir.search.sorting import SortKey
from medicus.fhir.search.template import FALSE, Slot, Sql, Values, all_of, any_of

# A sort value has at most 512 characters, at most 6 bytes each in JSON, 4/3 of that in base64:
# a cursor longer than about 4096 characters per key (one more for the rest) is not ours.
MAX_CURSOR_PER_KEY = 4096
_FORMAT = "1"
_PURPOSE = "fhir-search-cursor"
_LARGEST_RID = 2**63 - 1
_LONGEST_TEXT = 512
_BEFORE = "before"


def after(values: Values, keys: Sequence[SortKey], position: Sequence[Any]) -> Sql:
    """Rows strictly after `position` in the order of `keys`: beyond on the first key, or
    equal on it and beyond on the next, and so on. An OR of ANDs rather than a row-value
    comparison, which could neither mix directions nor place missing values."""
    *leading, (last_key, last_value) = zip(keys, position, strict=True)
    condition = _beyond(values, last_key, last_value)
    for key, value in reversed(leading):
        tie = all_of(_equal(values, key, value), condition)
        beyond = _beyond(values, key, value)
        condition = tie if beyond is FALSE else any_of(beyond, tie)
    return condition


def _after(row: Any, expression: Sql, descending: bool, missing_after: bool, value: Slot) -> Any:
    column = expression.build(row)
    beyond = column < value if descending else column > value
    return or_(beyond, column.is_(None)) if missing_after else beyond


def _present(row: Any, expression: Sql) -> Any:
    return expression.build(row).is_not(None)


def _beyond(values: Values, key: SortKey, value: Any) -> Sql:
    """Rows after `value` on this key alone: those with a value beyond it and, where missing
    values come last, those without one; after a missing value (first in the reverse order),
    those with a value, and nothing where missing values come last."""
    if value is None:
        return Sql(_present, (key.expression,)) if key.missing_first else FALSE
    missing_after = key.nullable and not key.missing_first
    return Sql(_after, (key.expression, key.descending, missing_after, values.slot(value)))


def _same(row: Any, expression: Sql, value: Slot | None) -> Any:
    column = expression.build(row)
    return column.is_(None) if value is None else column == value


def _equal(values: Values, key: SortKey, value: Any) -> Sql:
    return Sql(_same, (key.expression, None if value is None else values.slot(value)))


@dataclass(frozen=True)
class Position:
    """Where a cursor's page starts: after (`backward`: before) the resource whose sort values
    are `values`, in the search's order."""

    values: list[Any]
    backward: bool


def cursor(
    request: SearchRequest,
    organisation_id: str,
    keys: Sequence[SortKey],
    values: Sequence[Any],
    sealer: SecretBox,
    backward: bool = False,
) -> str:
    """The cursor of the page after (`backward`: before) the resource whose sort values are
    `values`."""
    encoded = [_encode(key, value) for key, value in zip(keys, values, strict=True)]
    if backward:
        encoded.append(_BEFORE)
    payload = [*encoded, _checksum(request, organisation_id, encoded)]
    return sealer.encrypt(_PURPOSE, orjson.dumps(payload))


def start(
    request: SearchRequest, organisation_id: str, keys: Sequence[SortKey], sealer: SecretBox
) -> Position | None:
    """Where the page starts (`_cursor`); None without a cursor."""
    sent = request.values("_cursor")
    if not sent:
        return None
    if len(sent) > 1 or request.values("_offset"):
        raise invalid("Send at most one _cursor, and no _offset with it.", "_cursor")
    payload = _payload(sent[0], len(keys), sealer)
    signed = payload[:-1]
    if payload[-1] != _checksum(request, organisation_id, signed):
        message = "_cursor belongs to another search; search again without it."
        raise invalid(message, "_cursor")
    values = [_decode(key, value) for key, value in zip(keys, signed, strict=False)]
    return Position(values, backward=len(signed) > len(keys))


def _malformed() -> ApiError:
    return invalid("_cursor is not a cursor this server issued.", "_cursor")


def _payload(text: str, length: int, sealer: SecretBox) -> list[Any]:
    """The JSON array inside a cursor: `length` values, `_BEFORE` if it leads backwards, and
    the digest of its search and of the rest."""
    if len(text) > MAX_CURSOR_PER_KEY * (length + 1):
        raise _malformed()
    try:
        payload = orjson.loads(sealer.decrypt(_PURPOSE, text))
    except (DecryptionError, ValueError):  # altered, foreign, not base64, not JSON
        raise _malformed() from None
    if not isinstance(payload, list) or len(payload) not in (length + 1, length + 2):
        raise _malformed()
    if len(payload) == length + 2 and payload[-2] != _BEFORE:
        raise _malformed()
    if not isinstance(payload[-1], str):
        raise _malformed()
    return payload


def _checksum(request: SearchRequest, organisation_id: str, encoded: Sequence[Any]) -> str:
    """A digest of the search the cursor belongs to and of its values."""
    searched = sorted((n, v) for n, v in request.parameters if not is_result_parameter(n))
    identity = [
        _FORMAT,
        organisation_id,
        request.resource_type,
        searched,
        request.values("_sort"),
        list(encoded),
    ]
    digest = hashlib.sha256(orjson.dumps(identity)).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def _encode(key: SortKey, value: Any) -> Any:
    """A sort value as JSON: numbers as their shortest text (JSON has no infinity), times as
    ISO 8601 in UTC."""
    if value is None:
        return None
    if key.kind == "number":
        return repr(float(value))
    if key.kind == "moment":
        moment: dt.datetime = value
        return moment.astimezone(dt.UTC).isoformat()
    return value


def _decode(key: SortKey, value: Any) -> Any:
    """A sort value from a cursor, checked against the kind of its key, so that no value the
    database would refuse (a NUL, a row id beyond 64 bits) ever reaches it."""
    if value is None and key.nullable:
        return None
    if key.kind == "rid" and type(value) is int and 0 < value <= _LARGEST_RID:
        return value
    if key.kind == "text" and isinstance(value, str) and _plain(value):
        return value
    if key.kind in ("number", "moment") and isinstance(value, str):
        try:
            return float(value) if key.kind == "number" else _moment(value)
        except ValueError:
            pass
    raise _malformed()


def _plain(text: str) -> bool:
    return len(text) <= _LONGEST_TEXT and "\x00" not in text


def _moment(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    if moment.utcoffset() != dt.timedelta(0):
        raise ValueError(text)
    return moment
