"""SMART scopes: v1 and v2 syntax into one structure, canonical strings, intersection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medicus.fhir.definitions import resource_types
from medicus.iam.scopes import (
    OTHER_SCOPES,
    PERMISSION_ORDER,
    Context,
    Query,
    ResourceScope,
    ScopeError,
    ScopeSet,
    intersect,
    parse_scopes,
)

_LABORATORY = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("patient/Observation.rs", "patient/Observation.rs"),
        ("user/*.cruds", "user/*.cruds"),
        ("system/Patient.r", "system/Patient.r"),
        ("user/Patient.cud", "user/Patient.cud"),
        ("patient/*.read", "patient/*.rs"),
        ("user/Observation.write", "user/Observation.cud"),
        ("user/Observation.*", "user/Observation.cruds"),
        ("patient/*.*", "patient/*.cruds"),
        ("patient/Observation.r patient/Observation.s", "patient/Observation.rs"),
        ("user/Patient.read user/Patient.write", "user/Patient.cruds"),
        (
            "user/Patient.rs system/Patient.r patient/Patient.s",
            "patient/Patient.s system/Patient.r user/Patient.rs",
        ),
        ("  openid \t fhirUser\nlaunch/patient ", "fhirUser launch/patient openid"),
        (
            "launch launch/encounter offline_access online_access profile",
            "launch launch/encounter offline_access online_access profile",
        ),
        (
            f"patient/Observation.rs?category={_LABORATORY}",
            f"patient/Observation.rs?category={_LABORATORY}",
        ),
        ("patient/Observation.rs?code=b&category=a", "patient/Observation.rs?category=a&code=b"),
        ("patient/Observation.r?code=a%26b+c", "patient/Observation.r?code=a%26b+c"),
        (
            "patient/Observation.r?category=lab patient/Observation.r",
            "patient/Observation.r patient/Observation.r?category=lab",
        ),
        ("", ""),
        ("   ", ""),
    ],
)
def test_valid_scopes_parse_to_canonical_strings(text: str, canonical: str) -> None:
    assert parse_scopes(text).to_string() == canonical


def test_a_granular_scope_parses_into_its_parts() -> None:
    observations = ResourceScope(
        Context.PATIENT, "Observation", frozenset("rs"), (("category", _LABORATORY),)
    )
    assert parse_scopes(f"openid patient/Observation.rs?category={_LABORATORY}") == ScopeSet(
        frozenset({observations}), frozenset({"openid"})
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("patient/Observation.rc", "c, r, u, d, s in that order"),
        ("patient/Observation.rr", "c, r, u, d, s in that order"),
        ("patient/Observation.x", "c, r, u, d, s in that order"),
        ("patient/Observation.", "c, r, u, d, s in that order"),
        ("patient/Observation.readwrite", "c, r, u, d, s in that order"),
        ("patient/Observation.RS", "c, r, u, d, s in that order"),
        ("group/Patient.r", "the context must be patient, user or system"),
        ("Patient/Patient.r", "the context must be patient, user or system"),
        ("patient/observation.r", "the resource type must be"),
        ("patient/O.r", "the resource type must be"),
        ("patient/Observation2.r", "the resource type must be"),
        ("patient/.r", "the resource type must be"),
        ("patient/Observation.rs?", "the query must be"),
        ("patient/Observation.rs?category", "the query must be"),
        ("patient/Observation.rs?category=", "the query must be"),
        ("patient/Observation.rs?category=lab&code=", "the query must be"),
        ("patient/Observation.rs?=laboratory", "the query must be"),
        ("patient/Observation.rs?category=a&&code=b", "the query must be"),
        ("patient/Observation.rs?category=a&category=b", "the query must be"),
        ("administrator", "not a scope medicus knows"),
        ("launch/location", "not a scope medicus knows"),
        ("patient/Observation", "not a scope medicus knows"),
        ("Observation.rs", "not a scope medicus knows"),
    ],
)
def test_invalid_scopes_are_named_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ScopeError, match=reason) as raised:
        parse_scopes(text)
    assert str(raised.value).startswith(f"'{text}' is not a ")


def test_a_requested_scope_must_name_a_fhir_resource_type() -> None:
    known = resource_types()
    with pytest.raises(ScopeError, match="there is no FHIR resource type Foo"):
        parse_scopes("openid user/Foo.rs", known)
    with pytest.raises(ScopeError, match="there is no FHIR resource type Observations"):
        parse_scopes("patient/Observations.read", known)
    assert parse_scopes("user/*.rs patient/Observation.rs system/Binary.r", known).to_string() == (
        "patient/Observation.rs system/Binary.r user/*.rs"
    )


def test_the_first_bad_scope_of_many_is_named() -> None:
    with pytest.raises(ScopeError, match=r"^'user/Patient\.rc' is not a valid SMART scope: "):
        parse_scopes("openid user/Observation.rs user/Patient.rc group/Patient.r")


def test_a_scope_set_is_kept_canonical() -> None:
    built = ScopeSet(
        frozenset(
            {
                ResourceScope(Context.USER, "Patient", frozenset("r"), (("b", "2"), ("a", "1"))),
                ResourceScope(Context.USER, "Patient", frozenset("s"), (("a", "1"), ("b", "2"))),
                ResourceScope(Context.USER, "Observation", frozenset()),
            }
        )
    )
    assert built == parse_scopes("user/Patient.rs?a=1&b=2")


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (["user/*.cruds", "user/Observation.rs"], "user/Observation.rs"),
        (["user/*.rs", "user/*.cruds"], "user/*.rs"),
        (["patient/*.cruds", "user/*.cruds"], ""),
        (["user/Patient.cru", "user/Patient.ds"], ""),
        (["user/Observation.rs", "user/Patient.rs"], ""),
        (["openid fhirUser", "openid offline_access"], "openid"),
        (
            ["user/*.rs user/Patient.cruds", "user/Patient.cu user/Observation.r"],
            "user/Observation.r user/Patient.cu",
        ),
        (
            ["patient/Observation.rs?category=lab", "patient/*.r"],
            "patient/Observation.r?category=lab",
        ),
        (["patient/*.rs?category=lab", "patient/Condition.s"], "patient/Condition.s?category=lab"),
        (
            ["patient/Observation.rs?category=lab", "patient/Observation.r?category=lab"],
            "patient/Observation.r?category=lab",
        ),
        (
            ["patient/Observation.rs?category=lab", "patient/Observation.rs?code=x"],
            "patient/Observation.rs?category=lab&code=x",
        ),
        (["patient/Observation.rs?category=lab", "patient/Observation.rs?category=vital"], ""),
        (
            ["openid user/*.cruds", "openid user/Observation.rs", "user/*.r openid"],
            "openid user/Observation.r",
        ),
        (["user/Patient.rs launch", "user/Patient.rs launch", "user/Patient.r"], "user/Patient.r"),
        (["openid user/Patient.rs"], "openid user/Patient.rs"),
    ],
)
def test_intersection(sets: list[str], expected: str) -> None:
    first, *others = (parse_scopes(text) for text in sets)
    assert intersect(first, *others).to_string() == expected


def test_allows_checks_context_type_and_permission() -> None:
    scopes = parse_scopes("user/*.rs patient/Observation.cruds")
    assert scopes.allows(Context.USER, "Condition", "r")
    assert not scopes.allows(Context.USER, "Condition", "c")
    assert scopes.allows(Context.PATIENT, "Observation", "d")
    assert not scopes.allows(Context.PATIENT, "Condition", "r")
    assert not scopes.allows(Context.SYSTEM, "Observation", "r")


def test_allows_leaves_query_constraints_to_the_caller() -> None:
    scopes = parse_scopes("user/Observation.rs?category=laboratory")
    assert scopes.allows(Context.USER, "Observation", "s")
    assert not scopes.allows(Context.USER, "Observation", "c")


def test_resource_types_for_lists_types_and_wildcards() -> None:
    scopes = parse_scopes("user/Patient.rs user/Observation.s user/*.c system/Group.r")
    assert scopes.resource_types_for(Context.USER, "s") == {"Patient", "Observation"}
    assert scopes.resource_types_for(Context.USER, "c") == {"*"}
    assert scopes.resource_types_for(Context.PATIENT, "r") == frozenset()


_TYPES = st.one_of(
    st.sampled_from(["*", "Patient", "Observation", "Condition"]),
    st.from_regex(r"[A-Z][A-Za-z]{1,63}", fullmatch=True),
)
_PERMISSIONS = st.frozensets(st.sampled_from(PERMISSION_ORDER))
_QUERIES = st.dictionaries(
    st.sampled_from(["category", "code"]) | st.text(min_size=1),
    st.sampled_from(["laboratory", "vital-signs", _LABORATORY]) | st.text(min_size=1),
    max_size=2,
).map(lambda constraints: tuple(constraints.items()))
_OTHERS = st.frozensets(st.sampled_from(sorted(OTHER_SCOPES)), max_size=3)


def _scope_sets(queries: st.SearchStrategy[Query]) -> st.SearchStrategy[ScopeSet]:
    resource = st.builds(
        ResourceScope, st.sampled_from(list(Context)), _TYPES, _PERMISSIONS, queries
    )
    return st.builds(ScopeSet, st.frozensets(resource, max_size=5), _OTHERS)


_SCOPE_SETS = _scope_sets(_QUERIES)
_UNCONSTRAINED_SCOPE_SETS = _scope_sets(st.just(()))
_FRAGMENTS = "patient user group / . * ? = & % + %26 %zz Observation O rs cud rc read category lab"
_SCOPE_LIKE_TEXT = st.lists(st.sampled_from([*_FRAGMENTS.split(), " ", "openid"])).map("".join)


def _checks(*sets: ScopeSet) -> list[tuple[Context, str, str]]:
    types = {s.resource_type for scopes in sets for s in scopes.resources} - {"*"}
    return [
        (context, resource_type, permission)
        for context in Context
        for resource_type in {*types, "Unlisted"}
        for permission in PERMISSION_ORDER
    ]


def _grants(scopes: ScopeSet, wanted: ResourceScope, permission: str) -> bool:
    """Whether `scopes` grants `permission` on all that `wanted` covers, constraints included."""
    return any(
        scope.context == wanted.context
        and scope.resource_type in ("*", wanted.resource_type)
        and permission in scope.permissions
        and set(scope.query) <= set(wanted.query)
        for scope in scopes.resources
    )


@given(_SCOPE_SETS)
def test_canonical_strings_round_trip(scopes: ScopeSet) -> None:
    assert parse_scopes(scopes.to_string()) == scopes


@given(_SCOPE_LIKE_TEXT)
def test_any_text_parses_canonically_or_raises_scope_error(text: str) -> None:
    try:
        scopes = parse_scopes(text)
    except ScopeError:
        return
    assert parse_scopes(scopes.to_string()) == scopes


@given(_SCOPE_SETS, _SCOPE_SETS)
def test_intersection_never_grants_more_than_either(left: ScopeSet, right: ScopeSet) -> None:
    both = intersect(left, right)
    for check in _checks(left, right):
        assert not both.allows(*check) or (left.allows(*check) and right.allows(*check))
    for scope in both.resources:
        assert all(_grants(left, scope, p) and _grants(right, scope, p) for p in scope.permissions)
    assert both.other == left.other & right.other


@given(_SCOPE_SETS, _SCOPE_SETS)
def test_intersection_is_commutative(left: ScopeSet, right: ScopeSet) -> None:
    assert intersect(left, right) == intersect(right, left)


@given(_SCOPE_SETS)
def test_a_set_intersected_with_itself_allows_the_same(scopes: ScopeSet) -> None:
    same = intersect(scopes, scopes)
    assert all(same.allows(*check) == scopes.allows(*check) for check in _checks(scopes))


@given(_UNCONSTRAINED_SCOPE_SETS, _UNCONSTRAINED_SCOPE_SETS)
def test_without_constraints_intersection_allows_what_both_allow(
    left: ScopeSet, right: ScopeSet
) -> None:
    both = intersect(left, right)
    for check in _checks(left, right):
        assert both.allows(*check) == (left.allows(*check) and right.allows(*check))
