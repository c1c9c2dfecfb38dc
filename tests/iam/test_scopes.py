"""SMART scopes: v1 and v2 syntax into one structure, canonical strings, intersection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medicus.iam.scopes import (
    OTHER_SCOPES,
    PERMISSION_ORDER,
    Context,
    ResourceScope,
    ScopeError,
    ScopeSet,
    intersect,
    parse_scopes,
)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("patient/Observation.rs", "patient/Observation.rs"),
        ("user/*.cruds", "user/*.cruds"),
        ("system/Patient.r", "system/Patient.r"),
        ("patient/*.read", "patient/*.rs"),
        ("user/Observation.write", "user/Observation.cud"),
        ("user/Observation.*", "user/Observation.cruds"),
        ("patient/Observation.r patient/Observation.s", "patient/Observation.rs"),
        ("  openid   fhirUser launch/patient ", "fhirUser launch/patient openid"),
        (
            "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/"
            "observation-category|laboratory",
            "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/"
            "observation-category|laboratory",
        ),
        ("", ""),
    ],
)
def test_valid_scopes_parse_to_canonical_strings(text: str, canonical: str) -> None:
    assert parse_scopes(text).to_string() == canonical


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("patient/Observation.rc", "in that order"),
        ("patient/Observation.x", "in that order"),
        ("group/Patient.r", "context must be patient, user or system"),
        ("patient/observation.r", "not a valid SMART scope"),
        ("admin2", "not a scope medicus knows"),
        ("patient/Observation.rs?", "not a valid SMART scope"),
    ],
)
def test_invalid_scopes_are_named(text: str, reason: str) -> None:
    with pytest.raises(ScopeError, match=reason) as raised:
        parse_scopes(text)
    assert text.split("?")[0] in str(raised.value)


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ("user/*.cruds", "user/Observation.rs", "user/Observation.rs"),
        ("user/*.rs", "user/*.cruds", "user/*.rs"),
        ("patient/*.cruds", "user/*.cruds", ""),
        ("user/Patient.cru", "user/Patient.ds", ""),
        ("user/Observation.rs", "user/Patient.rs", ""),
        ("openid fhirUser", "openid offline_access", "openid"),
        (
            "patient/Observation.rs?category=laboratory",
            "patient/*.r",
            "patient/Observation.r?category=laboratory",
        ),
        ("patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=vital", ""),
    ],
)
def test_intersection(left: str, right: str, expected: str) -> None:
    assert intersect(parse_scopes(left), parse_scopes(right)).to_string() == expected


def test_allows_checks_context_type_and_permission() -> None:
    scopes = parse_scopes("user/*.rs patient/Observation.cruds")
    assert scopes.allows(Context.USER, "Condition", "r")
    assert not scopes.allows(Context.USER, "Condition", "c")
    assert scopes.allows(Context.PATIENT, "Observation", "d")
    assert not scopes.allows(Context.PATIENT, "Condition", "r")
    assert not scopes.allows(Context.SYSTEM, "Observation", "r")


_TYPES = st.sampled_from(["*", "Patient", "Observation", "Condition"])
_PERMISSIONS = st.sets(st.sampled_from(list(PERMISSION_ORDER)), min_size=1).map(frozenset)
_QUERIES = st.sampled_from([(), (("category", "laboratory"),), (("category", "vital-signs"),)])
_RESOURCE = st.builds(ResourceScope, st.sampled_from(list(Context)), _TYPES, _PERMISSIONS, _QUERIES)
_SCOPE_SETS = st.builds(
    lambda resources, other: parse_scopes(
        ScopeSet(frozenset(resources), frozenset(other)).to_string()
    ),
    st.lists(_RESOURCE, max_size=5),
    st.sets(st.sampled_from(sorted(OTHER_SCOPES)), max_size=3),
)
_CHECKS = [
    (context, resource_type, permission)
    for context in Context
    for resource_type in ("Patient", "Observation", "Condition", "Encounter")
    for permission in PERMISSION_ORDER
]


@given(_SCOPE_SETS)
def test_canonical_strings_round_trip(scopes: ScopeSet) -> None:
    assert parse_scopes(scopes.to_string()) == scopes


@given(_SCOPE_SETS, _SCOPE_SETS)
def test_intersection_never_allows_more_than_either(left: ScopeSet, right: ScopeSet) -> None:
    both = intersect(left, right)
    for check in _CHECKS:
        if both.allows(*check):
            assert left.allows(*check)
            assert right.allows(*check)
    assert both.other == left.other & right.other


@given(_SCOPE_SETS, _SCOPE_SETS)
def test_intersection_is_commutative(left: ScopeSet, right: ScopeSet) -> None:
    assert intersect(left, right) == intersect(right, left)


@given(_SCOPE_SETS)
def test_a_set_intersected_with_itself_allows_the_same(scopes: ScopeSet) -> None:
    same = intersect(scopes, scopes)
    assert all(same.allows(*check) == scopes.allows(*check) for check in _CHECKS)
