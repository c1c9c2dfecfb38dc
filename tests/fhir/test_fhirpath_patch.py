"""FHIRPath Patch: `fhirpath_patch.apply` on the spec's own cases (FHIR/fhir-test-cases,
r4/patch/fhir-path-tests.xml, in JSON) and on the error cases, then PATCH through HTTP: by id,
conditional, and as an entry of a transaction bundle."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from medicus.core.errors import ApiError
from medicus.fhir.fhirpath_patch import apply
from tests.fhir.conftest import Hub
from tests.support import clients, resources
from tests.support.resources import KVNR

EXAMPLE = "http://example.org"


def _op(kind: str, path: str, **parts: Any) -> dict[str, Any]:
    """An `operation` parameter: `value` is the body of the value part (`{"valueDate": …}`,
    `{"part": […]}`), `name` a valueString, index/source/destination valueIntegers."""
    given = [{"name": "type", "valueCode": kind}, {"name": "path", "valueString": path}]
    for name, value in parts.items():
        if name == "value":
            given.append({"name": "value", **value})
        elif name == "name":
            given.append({"name": "name", "valueString": value})
        else:
            given.append({"name": name, "valueInteger": value})
    return {"name": "operation", "part": given}


def _parameters(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(operations)}


def _patient(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **elements}


def _identifiers(*values: str) -> list[dict[str, str]]:
    return [{"system": EXAMPLE, "value": value} for value in values]


CONTACT = {"name": {"text": "a name"}, "gender": "male"}

SPEC_CASES = [
    ("No Difference", _patient(birthDate="1920-01-01"), [], _patient(birthDate="1920-01-01")),
    (
        "Replace Primitive",
        _patient(birthDate="1920-01-01"),
        [_op("replace", "Patient.birthDate", value={"valueDate": "1930-01-01"})],
        _patient(birthDate="1930-01-01"),
    ),
    (
        "Delete Primitive",
        _patient(birthDate="1920-01-01"),
        [_op("delete", "Patient.birthDate")],
        _patient(),
    ),
    (
        "Add Primitive",
        _patient(),
        [_op("add", "Patient", name="birthDate", value={"valueDate": "1930-01-01"})],
        _patient(birthDate="1930-01-01"),
    ),
    (
        "Replace Nested Primitive #1",
        _patient(contact=[CONTACT]),
        [_op("replace", "Patient.contact[0].gender", value={"valueCode": "female"})],
        _patient(contact=[{**CONTACT, "gender": "female"}]),
    ),
    (
        "Replace Nested Primitive #2",
        _patient(contact=[CONTACT]),
        [_op("replace", "Patient.contact[0].name.text", value={"valueString": "the name"})],
        _patient(contact=[{**CONTACT, "name": {"text": "the name"}}]),
    ),
    (
        "Delete Nested Primitive #1",
        _patient(contact=[CONTACT]),
        [_op("delete", "Patient.contact[0].gender")],
        _patient(contact=[{"name": {"text": "a name"}}]),
    ),
    (
        "Delete Nested Primitive #2 (the emptied name goes too)",
        _patient(contact=[CONTACT]),
        [_op("delete", "Patient.contact[0].name.text")],
        _patient(contact=[{"gender": "male"}]),
    ),
    (
        "Add Nested Primitive",
        _patient(contact=[{"name": {"text": "a name"}}]),
        [_op("add", "Patient.contact[0]", name="gender", value={"valueCode": "male"})],
        _patient(contact=[CONTACT]),
    ),
    (
        "Add Complex",
        _patient(),
        [
            _op(
                "add",
                "Patient",
                name="maritalStatus",
                value={"valueCodeableConcept": {"text": "married"}},
            )
        ],
        _patient(maritalStatus={"text": "married"}),
    ),
    (
        "Replace Complex",
        _patient(maritalStatus={"id": "1", "text": "married"}),
        [
            _op(
                "replace",
                "Patient.maritalStatus",
                value={"valueCodeableConcept": {"id": "2", "text": "not married"}},
            )
        ],
        _patient(maritalStatus={"id": "2", "text": "not married"}),
    ),
    (
        "Delete Complex",
        _patient(maritalStatus={"text": "married"}),
        [_op("delete", "Patient.maritalStatus")],
        _patient(),
    ),
    (
        "Add Anonymous Type",
        _patient(),
        [
            _op(
                "add",
                "Patient",
                name="contact",
                value={"part": [{"name": "name", "valueHumanName": {"text": "a name"}}]},
            )
        ],
        _patient(contact=[{"name": {"text": "a name"}}]),
    ),
    (
        "Delete Anonymous Type",
        _patient(contact=[{"name": {"text": "a name"}}]),
        [_op("delete", "Patient.contact[0]")],
        _patient(),
    ),
    (
        "List unchanged, contents changed",
        _patient(identifier=_identifiers("value 1", "value 2")),
        [
            _op("replace", "Patient.identifier[0].value", value={"valueString": "value 2"}),
            _op("replace", "Patient.identifier[1].value", value={"valueString": "value 1"}),
        ],
        _patient(identifier=_identifiers("value 2", "value 1")),
    ),
    (
        "Add to list",
        _patient(identifier=_identifiers("value 1", "value 2")),
        [
            _op(
                "insert",
                "Patient.identifier",
                index=2,
                value={"valueIdentifier": {"system": EXAMPLE, "value": "value 3"}},
            )
        ],
        _patient(identifier=_identifiers("value 1", "value 2", "value 3")),
    ),
    (
        "Insert in list #1",
        _patient(identifier=_identifiers("value 1", "value 2")),
        [
            _op(
                "insert",
                "Patient.identifier",
                index=1,
                value={"valueIdentifier": {"system": EXAMPLE, "value": "value 3"}},
            )
        ],
        _patient(identifier=_identifiers("value 1", "value 3", "value 2")),
    ),
    (
        "Insert in list #2",
        _patient(identifier=_identifiers("value 1", "value 2")),
        [
            _op(
                "insert",
                "Patient.identifier",
                index=0,
                value={"valueIdentifier": {"system": EXAMPLE, "value": "value 3"}},
            )
        ],
        _patient(identifier=_identifiers("value 3", "value 1", "value 2")),
    ),
    (
        "Delete from List #1",
        _patient(identifier=_identifiers("1", "2", "3")),
        [_op("delete", "Patient.identifier[0]")],
        _patient(identifier=_identifiers("2", "3")),
    ),
    (
        "Delete from List #2",
        _patient(identifier=_identifiers("1", "2", "3")),
        [_op("delete", "Patient.identifier[1]")],
        _patient(identifier=_identifiers("1", "3")),
    ),
    (
        "Delete from List #3",
        _patient(identifier=_identifiers("1", "2", "3")),
        [_op("delete", "Patient.identifier[2]")],
        _patient(identifier=_identifiers("1", "2")),
    ),
    (
        "Reorder List #1",
        _patient(identifier=_identifiers("1", "2", "3", "4")),
        [_op("move", "Patient.identifier", source=3, destination=1)],
        _patient(identifier=_identifiers("1", "4", "2", "3")),
    ),
    (
        "Reorder List #2",
        _patient(identifier=_identifiers("1", "2", "3", "4")),
        [_op("move", "Patient.identifier", source=3, destination=0)],
        _patient(identifier=_identifiers("4", "1", "2", "3")),
    ),
    (
        "Reorder List #3",
        _patient(identifier=_identifiers("1", "2", "3", "4")),
        [_op("move", "Patient.identifier", source=3, destination=2)],
        _patient(identifier=_identifiers("1", "2", "4", "3")),
    ),
    (
        "Reorder List #4",
        _patient(identifier=_identifiers("1", "2", "3", "4")),
        [_op("move", "Patient.identifier", source=0, destination=3)],
        _patient(identifier=_identifiers("2", "3", "4", "1")),
    ),
    (
        "Reorder List #5",
        _patient(identifier=_identifiers("1", "2", "3", "4")),
        [
            _op("move", "Patient.identifier", source=1, destination=0),
            _op("move", "Patient.identifier", source=2, destination=1),
        ],
        _patient(identifier=_identifiers("2", "3", "1", "4")),
    ),
    (
        "Reorder List #6",
        _patient(identifier=_identifiers("1", "2", "3", "4")),
        [
            _op("move", "Patient.identifier", source=3, destination=0),
            _op("move", "Patient.identifier", source=3, destination=1),
            _op("move", "Patient.identifier", source=3, destination=2),
        ],
        _patient(identifier=_identifiers("4", "3", "2", "1")),
    ),
    (
        "Operation on missing element #2",
        _patient(),
        [
            _op(
                "add",
                "Patient",
                name="identifier",
                value={"valueIdentifier": {"system": EXAMPLE, "value": "value 3"}},
            )
        ],
        _patient(identifier=_identifiers("value 3")),
    ),
    (
        "Full Resource (narrative and family name)",
        _patient(
            text={
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml">a</div>',
            },
            name=[{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}],
        ),
        [
            _op(
                "replace",
                "Patient.text.div",
                value={"valueString": '<div xmlns="http://www.w3.org/1999/xhtml">b</div>'},
            ),
            _op("replace", "Patient.name[0].family", value={"valueString": "Chalmers1"}),
        ],
        _patient(
            text={
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml">b</div>',
            },
            name=[{"use": "official", "family": "Chalmers1", "given": ["Peter", "James"]}],
        ),
    ),
]


@pytest.mark.parametrize(
    ("before", "operations", "after"),
    [case[1:] for case in SPEC_CASES],
    ids=[case[0] for case in SPEC_CASES],
)
def test_the_specs_cases(
    before: dict[str, Any], operations: list[dict[str, Any]], after: dict[str, Any]
) -> None:
    kept = copy.deepcopy(before)
    assert apply(_parameters(*operations), before) == after
    assert before == kept  # the input is not changed


PERSON = _patient(
    id="p1",
    name=[{"family": "Mustermann", "given": ["Erika", "Maria"]}, {"given": ["Eri"]}],
    telecom=[{"system": "phone", "use": "home", "value": "1"}, {"system": "phone", "value": "2"}],
    identifier=[{"system": KVNR, "value": "A1"}, {"system": EXAMPLE, "value": "B2"}],
    deceasedBoolean=False,
)


def _patched(*operations: dict[str, Any], before: dict[str, Any] = PERSON) -> dict[str, Any]:
    return apply(_parameters(*operations), before)


def test_the_path_forms_of_the_spec() -> None:
    added = _patched(_op("add", "Patient.name[0]", name="given", value={"valueString": "Anna"}))
    assert added["name"][0]["given"] == ["Erika", "Maria", "Anna"]
    inserted = _patched(_op("insert", "Patient.name[0].given", index=0, value={"valueString": "A"}))
    assert inserted["name"][0]["given"] == ["A", "Erika", "Maria"]
    where = f"Patient.identifier.where(system='{KVNR}')"
    assert _patched(_op("delete", where))["identifier"] == [{"system": EXAMPLE, "value": "B2"}]
    replaced = _patched(
        _op("replace", where, value={"valueIdentifier": {"system": KVNR, "value": "C3"}})
    )
    assert replaced["identifier"][0] == {"system": KVNR, "value": "C3"}
    home = _patched(
        _op("replace", "Patient.telecom.where(use='home').value", value={"valueString": "9"})
    )
    assert [t["value"] for t in home["telecom"]] == ["9", "2"]


def test_filters_find_primitive_values_and_the_right_one_of_a_list() -> None:
    path = "Patient.name.given.where($this = 'Maria')"
    renamed = _patched(_op("replace", path, value={"valueString": "Marie"}))
    assert renamed["name"][0]["given"] == ["Erika", "Marie"]
    last = _patched(_op("delete", "Patient.name[0].given.last()"))
    assert last["name"][0]["given"] == ["Erika"]
    both = f"Patient.identifier.where(system = '{EXAMPLE}' and value = 'B2')"
    assert _patched(_op("delete", both))["identifier"] == [{"system": KVNR, "value": "A1"}]


def test_a_choice_element_is_named_without_its_type() -> None:
    died = _patched(_op("replace", "Patient.deceased", value={"valueDateTime": "2020-02-03"}))
    assert "deceasedBoolean" not in died
    assert died["deceasedDateTime"] == "2020-02-03"
    alive = _patched(_op("delete", "Patient.deceased"))
    assert "deceasedBoolean" not in alive
    born = _patched(
        _op("add", "Patient", name="multipleBirth", value={"valueInteger": 2}), before=alive
    )
    assert born["multipleBirthInteger"] == 2


def test_a_primitives_extensions_go_with_it_and_lists_stay_aligned() -> None:
    absent = {"extension": [{"url": EXAMPLE, "valueCode": "unknown"}]}
    person = _patient(birthDate="1964", _birthDate=absent, name=[{"given": ["A", "B"]}])
    person["name"][0]["_given"] = [None, absent]
    replaced = _patched(
        _op("replace", "Patient.birthDate", value={"valueDate": "1965"}), before=person
    )
    assert (replaced["birthDate"], "_birthDate" in replaced) == ("1965", False)
    inserted = _patched(
        _op("insert", "Patient.name[0].given", index=0, value={"valueString": "Z"}),
        before=person,
    )
    assert inserted["name"][0]["_given"] == [None, None, absent]
    moved = _patched(_op("move", "Patient.name[0].given", source=1, destination=0), before=person)
    assert (moved["name"][0]["given"], moved["name"][0]["_given"]) == (["B", "A"], [absent, None])
    deleted = _patched(_op("delete", "Patient.name[0].given[1]"), before=person)
    assert deleted["name"] == [{"given": ["A"]}]  # the companion of nothing but nulls goes
    carried = _patched(
        _op("add", "Patient", name="gender", value={"valueCode": "unknown", "_valueCode": absent}),
        before=person,
    )
    assert carried["_gender"] == absent


def test_a_contained_resource_is_added_as_a_resource_part() -> None:
    organization = {"resourceType": "Organization", "id": "o1", "name": "Praxis"}
    added = _patched(_op("add", "Patient", name="contained", value={"resource": organization}))
    assert added["contained"] == [organization]
    renamed = _patched(
        _op("replace", "Patient.contained[0].name", value={"valueString": "Klinik"}),
        before=added,
    )
    assert renamed["contained"][0]["name"] == "Klinik"


def test_deleting_what_is_not_there_does_nothing() -> None:
    assert _patched(_op("delete", "Patient.birthDate")) == PERSON
    assert _patched(_op("delete", "Patient.telecom.where(use='work')")) == PERSON


def test_operations_apply_in_order_to_the_result_of_the_last() -> None:
    patched = _patched(
        _op("add", "Patient", name="birthDate", value={"valueDate": "1964-08-12"}),
        _op("replace", "Patient.birthDate", value={"valueDate": "1964-08-13"}),
    )
    assert patched["birthDate"] == "1964-08-13"


def _refusal(*operations: Any, parameters: Any = None) -> ApiError:
    with pytest.raises(ApiError) as raised:
        apply(parameters if parameters is not None else _parameters(*operations), PERSON)
    assert raised.value.status == 422
    return raised.value


NAME = {"valueString": "x"}
ERRORS = [
    # a regular expression from a patch could hold the server (catastrophic backtracking)
    ([_op("delete", "Patient.name.where(family.matches('(a+)+$'))")], "matches()", "not-supported"),
    (
        [_op("delete", "Patient.name.where(family.replaceMatches('a', 'b') = 'x')")],
        "replaceMatches()",
        "not-supported",
    ),
    # malformed patches
    ([_op("delete", "Patient.birthDate"), {"name": "op"}], "'operation'", "invalid"),
    ([{"name": "operation", "part": [{"name": "type", "valueCode": "copy"}]}], "type", "invalid"),
    ([_op("add", "Patient", value={"valueCode": "male"})], "add takes", "invalid"),
    ([_op("delete", "Patient.gender", value=NAME)], "delete takes", "invalid"),
    ([_op("insert", "Patient.name", index=0, value=NAME, source=1)], "insert takes", "invalid"),
    (
        [{"name": "operation", "part": [*_op("delete", "Patient.gender")["part"]] * 2}],
        "repeated",
        "invalid",
    ),
    (
        [
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "delete"},
                    {"name": "path", "valueCode": "x"},
                ],
            }
        ],
        "valueString",
        "invalid",
    ),
    (
        [
            _op("move", "Patient.identifier", source=0, destination=1),
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "move"},
                    {"name": "path", "valueString": "Patient.identifier"},
                    {"name": "source", "valueString": "0"},
                    {"name": "destination", "valueInteger": 1},
                ],
            },
        ],
        "valueInteger",
        "invalid",
    ),
    # paths that are no FHIRPath, or select no element of the resource
    ([_op("delete", "Patient.name[")], "not FHIRPath", "invalid"),
    ([_op("delete", "Patient.name )")], "not FHIRPath", "invalid"),
    ([_op("delete", "Patient.name ยง")], "not FHIRPath", "invalid"),
    ([_op("delete", "Patient.managingOrganization.resolve()")], "evaluated", "invalid"),
    ([_op("delete", "Patient.name[true]")], "integer", "invalid"),
    ([_op("replace", "Patient.name.count()", value={"valueInteger": 1})], "elements", "processing"),
    # what the spec says is an error
    (
        [_op("add", "Patient.identifier.where(use = 'official').period", name="end", value=NAME)],
        "matches nothing",
        "processing",
    ),
    ([_op("add", "Patient.name", name="family", value=NAME)], "matches 2", "processing"),
    ([_op("replace", "Patient.gender", value={"valueCode": "male"})], "nothing", "processing"),
    ([_op("replace", "Patient.name.given", value=NAME)], "matches 3", "processing"),
    ([_op("insert", "Patient.photo", index=0, value=NAME)], "nothing", "processing"),
    ([_op("move", "Patient.photo", source=0, destination=0)], "nothing", "processing"),
    ([_op("delete", "Patient.name.given")], "matches 3", "processing"),
    ([_op("delete", "Patient")], "resource itself", "processing"),
    ([_op("replace", "Patient", value=NAME)], "resource itself", "processing"),
    (
        [_op("add", "Patient", name="deceased", value={"valueBoolean": True})],
        "already",
        "processing",
    ),
    ([_op("add", "Patient", name="nickname", value=NAME)], "no element", "processing"),
    ([_op("add", "Patient.name[0].family", name="x", value=NAME)], "primitive", "processing"),
    ([_op("delete", "Patient.name[0].family.extension")], "primitive", "processing"),
    ([_op("insert", "Patient.name[0]", index=0, value=NAME)], "whole list", "processing"),
    ([_op("insert", "Patient.name[0].family", index=0, value=NAME)], "whole list", "processing"),
    (
        [_op("insert", "Patient.telecom.where(use='home')", index=0, value=NAME)],
        "whole list",
        "processing",
    ),
    ([_op("insert", "Patient.name[0].given", index=3, value=NAME)], "0 to 2", "processing"),
    ([_op("move", "Patient.identifier", source=2, destination=0)], "0 to 1", "processing"),
    # values of the wrong type or shape
    (
        [_op("replace", "Patient.name[0].family", value={"valueHumanName": {"text": "x"}})],
        "does not fit",
        "processing",
    ),
    (
        [_op("replace", "Patient.name[0]", value={"valueString": "Erika Mustermann"})],
        "does not fit",
        "processing",
    ),
    (
        [_op("replace", "Patient.deceased", value={"valueString": "yes"})],
        "does not fit",
        "processing",
    ),
    (
        [_op("add", "Patient", name="gender", value={"valueCode": "male", "valueString": "m"})],
        "one value[x]",
        "invalid",
    ),
    ([_op("add", "Patient", name="gender", value={})], "one value[x]", "invalid"),
    (
        [_op("add", "Patient", name="contact", value={"part": [{"name": "nick", **NAME}]})],
        "no element 'nick'",
        "invalid",
    ),
    (
        [_op("add", "Patient", name="gender", value={"part": [{"name": "text", **NAME}]})],
        "or an array of parts",
        "invalid",
    ),
    (
        [_op("add", "Patient", name="contact", value={"part": {"name": "gender"}})],
        "or an array of parts",
        "invalid",
    ),
    (
        [
            _op(
                "add",
                "Patient",
                name="maritalStatus",
                value={"valueCodeableConcept": {"text": "x"}, "part": []},
            )
        ],
        "one value[x]",
        "invalid",
    ),
    ([{"name": "operation", "part": [{"name": ["type"]}]}], "unknown", "invalid"),
    ([{"name": "operation", "part": [{"name": "type", "valueCode": ["add"]}]}], "type", "invalid"),
    (
        [
            _op(
                "add",
                "Patient",
                name="contact",
                value={"part": [{"name": "gender", "valueCode": "male"}] * 2},
            )
        ],
        "twice",
        "invalid",
    ),
]


@pytest.mark.parametrize(("operations", "message", "issue_type"), ERRORS)
def test_a_patch_that_does_not_apply_is_a_422_naming_the_operation(
    operations: list[dict[str, Any]], message: str, issue_type: str
) -> None:
    refusal = _refusal(*operations)
    where = f"Parameters.parameter[{len(operations) - 1}]"
    assert message in refusal.detail
    assert refusal.issue_type == issue_type
    assert [error.expression for error in refusal.errors] == [where]


@pytest.mark.parametrize(
    ("parameters", "where"),
    [
        ({"resourceType": "Binary"}, "Parameters"),
        ([_op("delete", "Patient.gender")], "Parameters"),
        (
            {"resourceType": "Parameters", "parameter": {"name": "operation"}},
            "Parameters.parameter",
        ),
    ],
)
def test_a_patch_must_be_parameters(parameters: Any, where: str) -> None:
    refusal = _refusal(parameters=parameters)
    assert [error.expression for error in refusal.errors] == [where]


def test_parts_nested_too_deeply_are_refused_not_a_crash() -> None:
    value: dict[str, Any] = {"valueString": "x"}
    for _ in range(2000):
        value = {"part": [{"name": "extension", **value}]}
    refusal = _refusal(_op("add", "Patient", name="extension", value=value))
    assert refusal.issue_type == "too-costly"


# --- through HTTP ---------------------------------------------------------------------------


async def _create(hub: Hub, **elements: Any) -> str:
    body = resources.patient("P123456789", "Mustermann", "Erika", "1964-08-12", **elements)
    return await clients.create(hub.http, await hub.token(), body)


async def test_patch_by_id(hub: Hub) -> None:
    url = f"/fhir/Patient/{await _create(hub)}"
    headers = {**await hub.token(), "If-Match": 'W/"1"'}
    patch = _parameters(
        _op("replace", "Patient.birthDate", value={"valueDate": "1964-08-13"}),
        _op("add", "Patient", name="gender", value={"valueCode": "female"}),
        _op("insert", "Patient.name[0].given", index=1, value={"valueString": "Maria"}),
    )
    patched = await hub.http.patch(url, content=orjson.dumps(patch), headers=headers)
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["birthDate"], body["gender"]) == ("1964-08-13", "female")
    assert body["name"][0]["given"] == ["Erika", "Maria"]
    assert patched.headers["etag"] == 'W/"2"'
    stale = await hub.http.patch(url, content=orjson.dumps(patch), headers=headers)
    assert stale.status_code == 412
    headers["If-Match"] = 'W/"2"'
    refusals = [
        (_parameters(_op("delete", "Patient.name.given(")), 422, "Parameters.parameter[0]"),
        (_parameters(_op("replace", "Patient.id", value={"valueId": "x"})), 422, None),
        (
            _parameters(_op("replace", "Patient.birthDate", value={"valueDate": "yesterday"})),
            422,
            "Patient.birthDate",
        ),
        ({"resourceType": "Patient"}, 422, "Parameters"),
    ]
    for body_, status, expression in refusals:
        answer = await hub.http.patch(url, content=orjson.dumps(body_), headers=headers)
        assert answer.status_code == status, answer.text
        if expression is not None:
            assert expression in answer.json()["issue"][1]["expression"][0]
    not_json = await hub.http.patch(url, content=b"{", headers=headers)
    assert not_json.status_code == 400
    as_json = {**headers, "content-type": "application/json"}
    plain = _parameters(_op("delete", "Patient.gender"))
    answer = await hub.http.patch(url, content=orjson.dumps(plain), headers=as_json)
    assert answer.status_code == 200, answer.text
    read = (await hub.http.get(url, headers=await hub.token())).json()
    assert (read["meta"]["versionId"], "gender" in read) == ("3", False)


async def test_conditional_patch(hub: Hub) -> None:
    fhir_id = await _create(hub)
    patch = _parameters(
        _op("replace", "Patient.name[0].family", value={"valueString": "Musterfrau"})
    )
    answer = await hub.http.patch(
        "/fhir/Patient",
        params={"identifier": f"{KVNR}|P123456789"},
        content=orjson.dumps(patch),
        headers=await hub.token(),
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["id"], answer.json()["name"][0]["family"]) == (fhir_id, "Musterfrau")
    none = await hub.http.patch(
        "/fhir/Patient",
        params={"identifier": f"{KVNR}|nobody"},
        content=orjson.dumps(patch),
        headers=await hub.token(),
    )
    assert none.status_code == 404


async def test_patch_entries_of_a_transaction(hub: Hub) -> None:
    fhir_id = await _create(hub)
    practitioner_url = "urn:uuid:0c7c3f2e-5b7d-4bb4-8f3f-0d1f3a9b2c11"
    good = _parameters(
        _op(
            "add",
            "Patient",
            name="generalPractitioner",
            value={"valueReference": {"reference": practitioner_url}},
        )
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": good, "request": {"method": "PATCH", "url": f"Patient/{fhir_id}"}},
            {
                "fullUrl": practitioner_url,
                "resource": {"resourceType": "Practitioner", "name": [{"family": "Hausarzt"}]},
                "request": {"method": "POST", "url": "Practitioner"},
            },
        ],
    }
    headers = {**await hub.token(), "Prefer": "return=representation"}
    answer = await hub.http.post("/fhir", content=orjson.dumps(bundle), headers=headers)
    assert answer.status_code == 200, answer.text
    patched, practitioner = (entry["resource"] for entry in answer.json()["entry"])
    reference = patched["generalPractitioner"][0]["reference"]
    assert reference == f"Practitioner/{practitioner['id']}"
    failing = {
        **bundle,
        "entry": [
            {
                "resource": {"resourceType": "Patient", "id": "hospital-a.other", "gender": "male"},
                "request": {"method": "PUT", "url": "Patient/hospital-a.other"},
            },
            {
                "resource": _parameters(_op("delete", "Patient.name.given.first(")),
                "request": {"method": "PATCH", "url": f"Patient/{fhir_id}"},
            },
        ],
    }
    refused = await hub.http.post("/fhir", content=orjson.dumps(failing), headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["issue"][1]["expression"] == ["Bundle.entry[1].resource.parameter[0]"]
    other = await hub.http.get("/fhir/Patient/hospital-a.other", headers=await hub.token())
    assert other.status_code == 404  # nothing of the failed transaction is stored


async def test_the_capability_statement_lists_both_patch_formats(hub: Hub) -> None:
    statement = (await hub.http.get("/fhir/metadata")).json()
    assert statement["patchFormat"] == ["application/json-patch+json", "application/fhir+json"]
