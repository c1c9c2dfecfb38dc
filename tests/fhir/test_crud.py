"""FHIR single-resource interactions through HTTP: create, read, vread, update (also as
create), delete with tombstone, history; ETags and If-Match; errors as OperationOutcome;
own-organisation access and the audit trail."""

from __future__ import annotations

import orjson
import pytest

from tests.fhir.conftest import Hub
from tests.support import resources
from tests.support.database import rows

PATIENT = resources.patient("A123456780", "Mustermann", "Erika", "1964-08-12")


async def _create(hub: Hub, resource: dict[str, object] = PATIENT) -> dict[str, object]:
    response = await hub.http.post(
        f"/fhir/{resource['resourceType']}",
        content=orjson.dumps(resource),
        headers=await hub.token(),
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_then_read_returns_what_was_sent(hub: Hub) -> None:
    created = await _create(hub)
    assert created["meta"]["versionId"] == "1"
    response = await hub.http.get(f"/fhir/Patient/{created['id']}", headers=await hub.token())
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["content-type"] == "application/fhir+json"
    read = response.json()
    assert {k: v for k, v in read.items() if k not in ("id", "meta")} == PATIENT


async def test_update_versions_and_if_match(hub: Hub) -> None:
    created = await _create(hub)
    url = f"/fhir/Patient/{created['id']}"
    changed = {**created, "birthDate": "1964-08-13"}
    headers = {**await hub.token(), "If-Match": 'W/"1"'}
    response = await hub.http.put(url, content=orjson.dumps(changed), headers=headers)
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"2"'
    stale = await hub.http.put(url, content=orjson.dumps(changed), headers=headers)
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    first = await hub.http.get(f"{url}/_history/1", headers=await hub.token())
    assert first.json()["birthDate"] == "1964-08-12"
    history = (await hub.http.get(f"{url}/_history", headers=await hub.token())).json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]


async def test_update_as_create_with_a_client_id(hub: Hub) -> None:
    """A client assigns ids in its organisation's namespace (its id and a dot) only."""
    resource = {**PATIENT, "id": "hospital-a.kis-4711"}
    response = await hub.http.put(
        "/fhir/Patient/hospital-a.kis-4711",
        content=orjson.dumps(resource),
        headers=await hub.token(),
    )
    assert response.status_code == 201
    assert response.headers["location"].endswith("/fhir/Patient/hospital-a.kis-4711/_history/1")
    for outside in ("kis-4711", "hospital-a.", "hospital-b.kis-4711"):
        refused = await hub.http.put(
            f"/fhir/Patient/{outside}",
            content=orjson.dumps({**PATIENT, "id": outside}),
            headers=await hub.token(),
        )
        assert refused.status_code == 404, outside
        assert "'hospital-a.'" in refused.json()["issue"][0]["diagnostics"]


async def test_delete_leaves_a_tombstone(hub: Hub) -> None:
    created = await _create(hub)
    url = f"/fhir/Patient/{created['id']}"
    assert (await hub.http.delete(url, headers=await hub.token())).status_code == 204
    gone = await hub.http.get(url, headers=await hub.token())
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    history = (await hub.http.get(f"{url}/_history", headers=await hub.token())).json()
    assert history["entry"][0]["request"]["method"] == "DELETE"
    assert (await hub.http.get(f"{url}/_history/1", headers=await hub.token())).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/fhir/Patient/does-not-exist", None, 404),
        ("GET", "/fhir/Dragon/1", None, 404),
        ("GET", "/fhir/Patient/bad$id", None, 400),
        ("POST", "/fhir/Patient", b'{"resourceType": "Patient",', 400),
        ("POST", "/fhir/Patient", b"[1, 2]", 400),
        ("POST", "/fhir/Patient", b'{"resourceType": "Observation"}', 422),
        ("PUT", "/fhir/Patient/x1", b'{"resourceType": "Patient", "id": "x2"}', 400),
        # An id with a trailing newline was taken: `$` in the id pattern matched before it.
        ("PUT", "/fhir/Patient/x1%0A", b'{"resourceType": "Patient", "id": "x1\\n"}', 400),
        ("GET", "/fhir/Patient/x1%0A", None, 400),
        ("GET", "/fhir/Patient/x1/_history/one", None, 400),
        ("GET", "/fhir/Patient/x1/_history/٣", None, 400),
        ("GET", "/fhir/Patient/x1/_history/99999999999999999999", None, 404),
        ("GET", "/fhir/Patient?_format=xml", None, 406),
        ("GET", "/fhir/Patient/x1?_format=application/fhir+xml", None, 406),
        ("GET", "/fhir/metadata?_format=text/xml", None, 406),
        ("GET", "/fhir/Patient?name=a%00b", None, 400),
        ("GET", "/fhir/Patient?identifier=%00|x", None, 400),
        (
            "POST",
            "/fhir/Patient",
            b'{"resourceType": "Patient", "name": [{"family": "a\\u0000"}]}',
            422,
        ),
    ],
)
async def test_bad_requests_get_operation_outcomes(
    hub: Hub, method: str, path: str, body: bytes | None, status: int
) -> None:
    response = await hub.http.request(method, path, content=body, headers=await hub.token())
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_wrong_content_type_is_415(hub: Hub) -> None:
    headers = {**await hub.token(), "content-type": "text/plain"}
    response = await hub.http.post("/fhir/Patient", content=orjson.dumps(PATIENT), headers=headers)
    assert response.status_code == 415


async def test_another_hospital_sees_nothing_and_is_audited(hub: Hub) -> None:
    created = await _create(hub)
    other = await hub.token(organisation="hospital-b")
    url = f"/fhir/Patient/{created['id']}"
    assert (await hub.http.get(url, headers=other)).status_code == 404
    changed = orjson.dumps({**created, "birthDate": "2000-01-01"})
    assert (await hub.http.put(url, content=changed, headers=other)).status_code == 404
    assert (await hub.http.delete(url, headers=other)).status_code == 204  # as of a free id
    mine = await hub.http.get(url, headers=await hub.token())
    assert mine.json()["birthDate"] == "1964-08-12"
    await hub.platform.audit.seal_all()
    outcomes = set(
        await rows(
            hub.platform,
            "SELECT action, outcome, organisation FROM audit_entry WHERE target = :target",
            target=f"Patient/{created['id']}",
        )
    )
    assert ("fhir.read", "denied", "hospital-b") in outcomes
    assert ("fhir.update", "denied", "hospital-b") in outcomes
    assert ("fhir.delete", "denied", "hospital-b") in outcomes
    assert ("fhir.create", "success", "hospital-a") in outcomes
    assert ("fhir.read", "success", "hospital-a") in outcomes


async def test_scopes_limit_what_a_token_may_do(hub: Hub) -> None:
    read_only = await hub.token(scope="user/Patient.rs")
    response = await hub.http.post(
        "/fhir/Patient", content=orjson.dumps(PATIENT), headers=read_only
    )
    assert response.status_code == 403
    observations_only = await hub.token(scope="user/Observation.cruds")
    created = await _create(hub)
    response = await hub.http.get(f"/fhir/Patient/{created['id']}", headers=observations_only)
    assert response.status_code == 403


async def test_without_a_token_it_is_401(hub: Hub) -> None:
    response = await hub.http.get("/fhir/Patient/x")
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_the_capability_statement_is_public_and_truthful(hub: Hub) -> None:
    response = await hub.http.get("/fhir/metadata")
    assert response.status_code == 200
    statement = response.json()
    assert statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert {i["code"] for i in patient["interaction"]} == {
        "read",
        "vread",
        "update",
        "delete",
        "history-instance",
        "history-type",
        "create",
        "search-type",
        "patch",
    }
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch", "history-system"}
    assert {o["name"] for o in rest["operation"]} == {"everything", "validate", "meta", "lastn"}
    assert patient["conditionalCreate"] is True
    searchable = {p["name"] for p in patient["searchParam"]}
    assert {"identifier", "family", "birthdate", "_id", "_lastUpdated"} <= searchable
    assert "general-practitioner" in searchable
    oauth = rest["security"]["extension"][0]["extension"]
    assert {e["url"] for e in oauth} == {"authorize", "token", "revoke", "introspect"}


@pytest.mark.parametrize(
    ("accept_encoding", "compressed"),
    [
        ("gzip, deflate", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("identity", False),
    ],
)
async def test_the_capability_statement_is_sent_gzipped_to_who_accepts_it(
    hub: Hub, accept_encoding: str, compressed: bool
) -> None:
    response = await hub.http.get("/fhir/metadata", headers={"Accept-Encoding": accept_encoding})
    assert response.status_code == 200
    assert (response.headers.get("content-encoding") == "gzip") is compressed
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.json()["resourceType"] == "CapabilityStatement"
    if compressed:
        assert int(response.headers["content-length"]) < len(response.content) / 10


async def test_type_and_system_history_show_only_the_callers_organisation(hub: Hub) -> None:
    mine = await _create(hub)
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "Hb"}}
    await _create(hub, observation)
    other = await hub.token(organisation="hospital-b")
    response = await hub.http.post("/fhir/Patient", content=orjson.dumps(PATIENT), headers=other)
    theirs = response.json()

    patients = (await hub.http.get("/fhir/Patient/_history", headers=await hub.token())).json()
    ids = {entry["resource"]["id"] for entry in patients["entry"]}
    assert mine["id"] in ids
    assert theirs["id"] not in ids
    everything = (await hub.http.get("/fhir/_history", headers=await hub.token())).json()
    kinds = {entry["resource"]["resourceType"] for entry in everything["entry"]}
    assert kinds == {"Patient", "Observation"}

    only_patients = await hub.token(scope="user/Patient.rs")
    narrowed = (await hub.http.get("/fhir/_history", headers=only_patients)).json()
    assert {e["resource"]["resourceType"] for e in narrowed["entry"]} == {"Patient"}


async def test_history_since_and_count(hub: Hub) -> None:
    first = await _create(hub)
    since = first["meta"]["lastUpdated"]
    await _create(hub)
    later = await hub.http.get(
        "/fhir/Patient/_history", params={"_since": since, "_count": "1"}, headers=await hub.token()
    )
    assert later.status_code == 200
    assert len(later.json()["entry"]) == 1
    bad = await hub.http.get(
        "/fhir/Patient/_history", params={"_since": "yesterday"}, headers=await hub.token()
    )
    assert bad.status_code == 400
    naive = await hub.http.get(
        "/fhir/Patient/_history",
        params={"_since": "2026-01-01T00:00:00"},
        headers=await hub.token(),
    )
    assert naive.status_code == 400


async def test_scopes_with_query_constraints_grant_nothing_until_enforced(hub: Hub) -> None:
    created = await _create(hub)
    constrained = await hub.token(scope="user/Patient.rs?gender=female")
    response = await hub.http.get(f"/fhir/Patient/{created['id']}", headers=constrained)
    assert response.status_code == 403
