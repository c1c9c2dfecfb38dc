"""SMART on FHIR scopes (SMART App Launch 2.x, with v1 compatibility): parsed into one
immutable structure, rendered canonically and intersected.

SMART App Launch 2.x, "Scopes and Launch Context"
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html): a resource scope is
`context/Type.permissions[?query]`, context `patient`, `user` or `system`, Type a FHIR resource
type or `*`, permissions a non-empty subsequence of `cruds` and the optional query a granular
constraint such as `?category=laboratory`. v1's `.read`, `.write` and `.*` mean `.rs`, `.cud`
and `.cruds`. Besides SMART's own scopes, OpenID Connect's `email` is known, and `admin` grants
the administration API to the roles that may administer.
"""

# Hand-written: no well-kept Python library parses SMART v2 scopes (granular query constraints
# included) and intersects them, and the grammar is small.

from __future__ import annotations

import functools
import re
from collections.abc import Collection
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

Query = tuple[tuple[str, str], ...]

_V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": PERMISSION_ORDER}
_V2_PERMISSIONS = re.compile("c?r?u?d?s?")
_RESOURCE_SCOPE = re.compile(
    r"(?P<context>[^/]*)/(?P<type>[^.?]*)\.(?P<permissions>[^?]*)(?:\?(?P<query>.*))?"
)
_RESOURCE_TYPE = re.compile(r"\*|[A-Z][A-Za-z]{1,63}")
_QUERY_RULE = "the query must be name=value pairs joined by &, each name at most once"


class ScopeError(ValueError):
    """A scope string that is not valid SMART; the message names it."""


class Context(StrEnum):
    PATIENT = "patient"
    USER = "user"
    SYSTEM = "system"


_CONTEXTS = {context.value: context for context in Context}


@dataclass(frozen=True)
class ResourceScope:
    """One resource scope; `query` holds the v2 granular constraints as (name, value) pairs."""

    context: Context
    resource_type: str
    permissions: frozenset[str]
    query: Query = ()

    def covers(self, resource_type: str) -> bool:
        return self.resource_type in ("*", resource_type)

    def to_string(self) -> str:
        letters = "".join(letter for letter in PERMISSION_ORDER if letter in self.permissions)
        text = f"{self.context}/{self.resource_type}.{letters}"
        return f"{text}?{urlencode(self.query, safe='|:/')}" if self.query else text


@dataclass(frozen=True)
class ScopeSet:
    """A parsed scope string. Kept canonical: one resource scope per (context, type, query) with
    the union of their permissions, constraints sorted, scopes without permissions dropped."""

    resources: frozenset[ResourceScope] = frozenset()
    other: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "resources", _merged(self.resources))

    def allows(self, context: Context, resource_type: str, permission: str) -> bool:
        """Whether some scope grants `permission` on `resource_type` in `context`. Query
        constraints are not considered here: the caller enforces them as search filters."""
        return any(
            scope.context == context
            and scope.covers(resource_type)
            and permission in scope.permissions
            for scope in self.resources
        )

    def resource_types_for(self, context: Context, permission: str) -> frozenset[str]:
        """The types granted `permission` in `context` (`*`: every type); as `allows`, this
        ignores query constraints."""
        return frozenset(
            scope.resource_type
            for scope in self.resources
            if scope.context == context and permission in scope.permissions
        )

    def to_string(self) -> str:
        """Canonical v2 string: other scopes alphabetically, then resource scopes by context,
        type and query, permissions in `cruds` order. `parse_scopes` reads it back equal."""
        resources = sorted(self.resources, key=lambda s: (s.context, s.resource_type, s.query))
        return " ".join([*sorted(self.other), *(scope.to_string() for scope in resources)])


def _merged(scopes: frozenset[ResourceScope]) -> frozenset[ResourceScope]:
    merged: dict[tuple[Context, str, Query], frozenset[str]] = {}
    for scope in scopes:
        key = (scope.context, scope.resource_type, tuple(sorted(scope.query)))
        merged[key] = merged.get(key, frozenset()) | scope.permissions
    return frozenset(ResourceScope(c, t, p, q) for (c, t, q), p in merged.items() if p)


def _invalid(scope: str, reason: str) -> ScopeError:
    return ScopeError(f"'{scope}' is not a valid SMART scope: {reason}")


def _permissions(scope: str, letters: str) -> frozenset[str]:
    letters = _V1_PERMISSIONS.get(letters, letters)
    if not letters or not _V2_PERMISSIONS.fullmatch(letters):
        raise _invalid(scope, "permissions must be a subset of c, r, u, d, s in that order")
    return frozenset(letters)


def _query(scope: str, text: str | None) -> Query:
    if text is None:
        return ()
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise _invalid(scope, _QUERY_RULE) from None
    names = {name for name, _ in pairs}
    if not pairs or len(names) != len(pairs) or not all(n and v for n, v in pairs):
        raise _invalid(scope, _QUERY_RULE)
    return tuple(sorted(pairs))


def _resource_scope(scope: str, known_types: Collection[str] | None) -> ResourceScope:
    match = _RESOURCE_SCOPE.fullmatch(scope)
    if match is None:
        raise ScopeError(f"'{scope}' is not a scope medicus knows")
    context, resource_type, letters, query = match.group("context", "type", "permissions", "query")
    if context not in _CONTEXTS:
        raise _invalid(scope, "the context must be patient, user or system")
    if not _RESOURCE_TYPE.fullmatch(resource_type):
        raise _invalid(scope, "the resource type must be * or a FHIR type such as Observation")
    if known_types is not None and resource_type != "*" and resource_type not in known_types:
        raise _invalid(scope, f"there is no FHIR resource type {resource_type}")
    return ResourceScope(
        _CONTEXTS[context], resource_type, _permissions(scope, letters), _query(scope, query)
    )


def parse_scopes(text: str, known_types: Collection[str] | None = None) -> ScopeSet:
    """Parse a space-separated scope string (v1 or v2 syntax); raises ScopeError naming the first
    bad scope. Repeated scopes for the same context, type and query merge. Scopes someone asks
    for are parsed with `known_types`, the FHIR resource types there are, so that a scope for a
    type that does not exist is refused; scopes of our own making (tokens, roles) need not be."""
    scopes = text.split()
    resources = frozenset(_resource_scope(s, known_types) for s in scopes if s not in OTHER_SCOPES)
    return ScopeSet(resources, frozenset(s for s in scopes if s in OTHER_SCOPES))


def _common_type(left: str, right: str) -> str | None:
    if left == "*":
        return right
    return left if right in ("*", left) else None


def _common_query(left: Query, right: Query) -> Query | None:
    """Both constraints at once; None if a parameter would need two different values."""
    pairs = frozenset(left) | frozenset(right)
    return tuple(sorted(pairs)) if len({name for name, _ in pairs}) == len(pairs) else None


def _combine(left: ResourceScope, right: ResourceScope) -> ResourceScope | None:
    resource_type = _common_type(left.resource_type, right.resource_type)
    query = _common_query(left.query, right.query)
    if left.context != right.context or resource_type is None or query is None:
        return None
    return ResourceScope(left.context, resource_type, left.permissions & right.permissions, query)


def _intersect_two(left: ScopeSet, right: ScopeSet) -> ScopeSet:
    combined = (_combine(a, b) for a in left.resources for b in right.resources)
    resources = frozenset(scope for scope in combined if scope is not None)
    return ScopeSet(resources, left.other & right.other)


def intersect(first: ScopeSet, *others: ScopeSet) -> ScopeSet:
    """What every one of the sets allows (e.g. requested ∩ registered ∩ role). Resource scopes
    combine within one context; `*` yields to the more specific type, permissions intersect and
    query constraints add up (a parameter constrained to two different values: nothing)."""
    return functools.reduce(_intersect_two, others, first)
