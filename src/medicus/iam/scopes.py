"""SMART on FHIR scopes (SMART App Launch 2.x, with v1 compatibility), parsed into one structure
and intersected.

v2 resource scopes are `context/Type.permissions[?query]`: context `patient`, `user` or
`system`; Type a FHIR resource type or `*`; permissions a non-empty subsequence of `cruds`;
an optional query narrows the scope (e.g. `?category=...|laboratory`). v1's `.read`, `.write`
and `.*` map to `rs`, `cud` and `cruds`. Besides SMART's own, `admin` grants the
administration API to the roles that may administer. Hand-written: no well-kept Python library
parses SMART v2 scopes and intersects them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qsl, urlencode

PERMISSION_ORDER = "cruds"
OTHER_SCOPES = frozenset(
    {
        "openid",
        "fhirUser",
        "profile",
        "email",
        "offline_access",
        "online_access",
        "launch",
        "launch/patient",
        "launch/encounter",
        "admin",
    }
)
_V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": PERMISSION_ORDER}
_RESOURCE_SCOPE = re.compile(
    r"^(?P<context>[a-z]+)/(?P<type>\*|[A-Z][A-Za-z]{1,63})\.(?P<permissions>[a-z]+|\*)"
    r"(?:\?(?P<query>.+))?$"
)


class ScopeError(ValueError):
    """A scope string that is not valid SMART; the message names it."""


class Context(StrEnum):
    PATIENT = "patient"
    USER = "user"
    SYSTEM = "system"


@dataclass(frozen=True)
class ResourceScope:
    context: Context
    resource_type: str
    permissions: frozenset[str]
    query: tuple[tuple[str, str], ...] = ()

    def covers(self, resource_type: str) -> bool:
        return self.resource_type in ("*", resource_type)

    def to_string(self) -> str:
        letters = "".join(p for p in PERMISSION_ORDER if p in self.permissions)
        text = f"{self.context}/{self.resource_type}.{letters}"
        return f"{text}?{urlencode(self.query, safe='|:/')}" if self.query else text


@dataclass(frozen=True)
class ScopeSet:
    resources: frozenset[ResourceScope] = frozenset()
    other: frozenset[str] = frozenset()

    def allows(self, context: Context, resource_type: str, permission: str) -> bool:
        """Whether some scope grants `permission` on `resource_type` in `context`. Query
        constraints are not considered here: callers apply them as search filters."""
        return any(
            scope.context == context
            and scope.covers(resource_type)
            and permission in scope.permissions
            for scope in self.resources
        )

    def resource_types_for(self, context: Context, permission: str) -> frozenset[str]:
        return frozenset(
            scope.resource_type
            for scope in self.resources
            if scope.context == context and permission in scope.permissions
        )

    def to_string(self) -> str:
        others = sorted(self.other)
        resources = sorted(
            self.resources, key=lambda s: (s.context, s.resource_type, s.query, s.to_string())
        )
        return " ".join([*others, *(scope.to_string() for scope in resources)])


def _permissions(scope: str, letters: str) -> frozenset[str]:
    if letters in _V1_PERMISSIONS:
        return frozenset(_V1_PERMISSIONS[letters])
    position = 0
    for letter in letters:
        found = PERMISSION_ORDER.find(letter, position)
        if found < 0:
            raise ScopeError(
                f"'{scope}' is not a valid SMART scope: permissions must be a subset of "
                "c, r, u, d, s in that order"
            )
        position = found + 1
    return frozenset(letters)


def _resource_scope(scope: str) -> ResourceScope:
    match = _RESOURCE_SCOPE.match(scope)
    if match is None:
        raise ScopeError(f"'{scope}' is not a valid SMART scope")
    try:
        context = Context(match["context"])
    except ValueError:
        raise ScopeError(
            f"'{scope}' is not a valid SMART scope: the context must be patient, user or system"
        ) from None
    query = tuple(sorted(parse_qsl(match["query"], strict_parsing=True))) if match["query"] else ()
    return ResourceScope(context, match["type"], _permissions(scope, match["permissions"]), query)


def _merged(scopes: list[ResourceScope]) -> frozenset[ResourceScope]:
    """One scope per (context, type, query), with the union of their permissions."""
    merged: dict[tuple[Context, str, tuple[tuple[str, str], ...]], frozenset[str]] = {}
    for scope in scopes:
        key = (scope.context, scope.resource_type, scope.query)
        merged[key] = merged.get(key, frozenset()) | scope.permissions
    return frozenset(ResourceScope(c, t, p, q) for (c, t, q), p in merged.items() if p)


def parse_scopes(text: str) -> ScopeSet:
    """Parse a space-separated scope string; raises ScopeError naming the first bad scope."""
    resources: list[ResourceScope] = []
    other: set[str] = set()
    for scope in text.split():
        if scope in OTHER_SCOPES:
            other.add(scope)
        elif "/" in scope and "." in scope:
            try:
                resources.append(_resource_scope(scope))
            except ValueError as error:
                if isinstance(error, ScopeError):
                    raise
                raise ScopeError(f"'{scope}' is not a valid SMART scope") from None
        else:
            raise ScopeError(f"'{scope}' is not a scope medicus knows")
    return ScopeSet(_merged(resources), frozenset(other))


def _combine(left: ResourceScope, right: ResourceScope) -> ResourceScope | None:
    if left.context != right.context:
        return None
    if left.resource_type != "*" and right.resource_type not in ("*", left.resource_type):
        return None
    permissions = left.permissions & right.permissions
    constraints = dict(left.query)
    for name, value in right.query:
        if constraints.setdefault(name, value) != value:
            return None
    if not permissions:
        return None
    resource_type = right.resource_type if left.resource_type == "*" else left.resource_type
    return ResourceScope(
        left.context, resource_type, permissions, tuple(sorted(constraints.items()))
    )


def _intersect_two(left: ScopeSet, right: ScopeSet) -> ScopeSet:
    combined = [
        scope
        for a in left.resources
        for b in right.resources
        if (scope := _combine(a, b)) is not None
    ]
    return ScopeSet(_merged(combined), left.other & right.other)


def intersect(first: ScopeSet, *others: ScopeSet) -> ScopeSet:
    """What every one of the sets allows (e.g. requested ∩ registered ∩ role)."""
    result = first
    for other in others:
        result = _intersect_two(result, other)
    return result
