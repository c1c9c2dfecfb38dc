"""The audit trail as FHIR AuditEvent and as a patient's access log, through HTTP: every
allowed and refused access to a person's data appears once, in BALP shape, to those who may
read it; the chain still verifies."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from medicus.iam.roles import OrganisationType, Role
from medicus.iam.tokens import TokenGrant
from tests.access.conftest import FHIR_JSON, Region
from tests.access.test_shared_access import Story

REASON = "Unconscious on arrival, no relatives reachable"
OUTCOMES = {"success": "0", "denied": "4"}


async def _get(region: Region, path: str, request_id: str, headers: dict[str, str]) -> int:
    response = await region.http.get(path, headers={**headers, "x-request-id": request_id})
    return response.status_code


class Accesses:
    """The story's person, then one request of each kind, each with its own request id, and
    the entry each must leave: (action, outcome, reason)."""

    def __init__(self, region: Region) -> None:
        self.region = region
        self.story = Story(region)
        self.expected: dict[str, tuple[str, str, str | None]] = {}

    async def happen(self) -> dict[str, str]:
        region, ids = self.region, self.story.ids
        await self.story.tell()
        lab = f"/fhir/Observation/{ids['lab']}"
        b, c = await region.token("hospital-b"), await region.token("hospital-c")
        narrow = await region.token("hospital-a", scope="user/Patient.rs")
        steps: list[tuple[str, str, dict[str, str], int, tuple[str, str, str | None]]] = [
            ("b-read", lab, b, 200, ("fhir.read", "success", "consent-and-treatment")),
            ("c-read", lab, c, 404, ("fhir.read", "denied", "other-organisation")),
            ("a-narrow", lab, narrow, 403, ("fhir.read", "denied", "scope")),
            ("b-history", f"{lab}/_history", b, 200, ("fhir.history", "success", None)),
            (
                "b-search",
                "/fhir/Observation?code=718-7",
                b,
                200,
                ("fhir.search", "success", "own-organisation"),
            ),
            (
                "b-everything",
                f"/fhir/Patient/{ids['b1']}/$everything",
                b,
                200,
                ("fhir.everything", "success", None),
            ),
        ]
        for request_id, path, headers, status, expected in steps:
            assert await _get(region, path, request_id, headers) == status, request_id
            self.expected[request_id] = expected
        opened = await region.http.post(
            "/api/break-glass",
            json={"patient": ids["c1"], "reason": REASON},
            headers={**c, "x-request-id": "c-glass"},
        )
        assert opened.status_code == 201
        assert await _get(region, lab, "c-glass-read", c) == 200
        self.expected["c-glass-read"] = ("fhir.read", "success", "break-glass")
        await region.platform.audit.seal_all()
        return ids


def _request_id(event: dict[str, Any]) -> str | None:
    for entity in event["entity"]:
        if entity["type"].get("code") == "XrequestId":
            return str(entity["what"]["identifier"]["value"])
    return None


def _patients(event: dict[str, Any]) -> set[str]:
    return {
        entity["what"]["reference"]
        for entity in event["entity"]
        if entity.get("role", {}).get("code") == "1"
    }


def _action(event: dict[str, Any]) -> str:
    return next(c["code"] for c in event["subtype"] if c["system"] == "urn:medicus:audit-action")


async def _search(region: Region, query: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every AuditEvent of the search, following its next links."""
    found: list[dict[str, Any]] = []
    url: str | None = f"/fhir/AuditEvent?{query}"
    while url is not None:
        response = await region.http.get(url, headers=headers)
        assert response.status_code == 200, response.text
        bundle = response.json()
        found += [entry["resource"] for entry in bundle.get("entry", [])]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    return found


async def test_every_access_to_a_persons_data_appears_once(region: Region) -> None:
    accesses = Accesses(region)
    ids = await accesses.happen()
    dpo = await region.token("hospital-a", "organisation_admin")
    events = await _search(region, f"patient=Patient/{ids['a1']}&_count=7", dpo)
    for request_id, (action, outcome, reason) in accesses.expected.items():
        matching = [e for e in events if _request_id(e) == request_id and _action(e) == action]
        assert len(matching) == 1, (request_id, [(_action(e), _request_id(e)) for e in events])
        (event,) = matching
        assert event["outcome"] == OUTCOMES[outcome], request_id
        assert f"Patient/{ids['a1']}" in _patients(event), request_id
        if outcome == "denied":
            assert event["outcomeDesc"] == reason
    # Newest first, no entry twice across pages.
    assert [int(e["id"]) for e in events] == sorted({int(e["id"]) for e in events}, reverse=True)
    await region.platform.audit.seal_all()  # the searches of the trail are in it too
    report = await region.platform.audit.verify()
    assert report.intact, report.problem
    assert report.entries == report.head_seq > len(events)


async def test_audit_events_are_in_basic_audit_log_pattern_shape(region: Region) -> None:
    ids = await Accesses(region).happen()
    dpo = await region.token("hospital-a", "organisation_admin")
    events = {_request_id(e): e for e in await _search(region, f"patient={ids['a1']}", dpo)}
    read = events["b-read"]
    assert read["type"]["code"] == "rest"
    assert read["action"] == "R"
    assert {"system": "http://hl7.org/fhir/restful-interaction", "code": "read"} in read["subtype"]
    requestor, organisation, app = read["agent"]
    assert requestor["who"] == {"reference": "Practitioner/hospital-b-physician"}
    assert requestor["requestor"] is True
    assert organisation["who"] == {"reference": "Organization/hospital-b"}
    assert app["type"]["coding"][0]["code"] == "110150"  # the application it came through
    assert app["who"] == {"identifier": {"system": "urn:medicus:oauth-client", "value": "test"}}
    assert read["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    assert read["entity"][0]["what"] == {"reference": f"Observation/{ids['lab']}"}
    assert events["c-glass-read"]["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"
    search = events["b-search"]
    assert search["action"] == "E"
    assert search["entity"][0]["role"]["code"] == "24"
    assert search["entity"][0]["query"]  # base64 of the search's parameters
    refused = events["c-read"]
    assert refused["outcome"] == "4"
    assert "purposeOfEvent" not in refused
    one = await region.http.get(f"/fhir/AuditEvent/{read['id']}", headers=dpo)
    assert one.status_code == 200
    assert one.headers["content-type"] == "application/fhir+json"
    assert one.json() == read


async def test_who_may_read_which_entries(region: Region) -> None:
    ids = await Accesses(region).happen()
    a1, c1 = f"Patient/{ids['a1']}", f"Patient/{ids['c1']}"
    dpo_a = await region.token("hospital-a", "organisation_admin")
    dpo_b = await region.token("hospital-b", "organisation_admin")
    dpo_c = await region.token("hospital-c", "organisation_admin")
    operator = await region.token("platform", "platform_admin")
    physician = await region.token("hospital-a")

    # A hospital reads the trail of the records it holds, not of another's.
    refused = await region.http.get(f"/fhir/AuditEvent?patient={a1}", headers=dpo_b)
    assert refused.status_code == 403
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert (await region.http.get("/fhir/AuditEvent", headers=physician)).status_code == 403
    # Without a patient: what its own staff did, and nothing else.
    own = await _search(region, "_count=1000", dpo_b)
    assert own
    assert {e["agent"][1]["who"]["reference"] for e in own} == {"Organization/hospital-b"}
    # The emergency opening concerns C's record: C's admin sees it, with the stated reason.
    (glass,) = [
        e for e in await _search(region, f"patient={c1}", dpo_c) if _request_id(e) == "c-glass"
    ]
    assert glass["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"
    assert {"type": "reason", "valueString": REASON} in glass["entity"][0]["detail"]
    # One entry: whoever may read it, others get a 404.
    read = next(
        e for e in await _search(region, f"patient={a1}", dpo_a) if _request_id(e) == "b-read"
    )
    assert (
        await region.http.get(f"/fhir/AuditEvent/{read['id']}", headers=dpo_b)
    ).status_code == 200
    assert (
        await region.http.get(f"/fhir/AuditEvent/{read['id']}", headers=dpo_c)
    ).status_code == 404
    assert (
        await region.http.get(f"/fhir/AuditEvent/{read['id']}", headers=operator)
    ).status_code == 200
    # Reading the trail is audited too, refusals included.
    await region.platform.audit.seal_all()
    refusals = await _search(region, "subtype=audit.search&outcome=4", operator)
    assert any(
        a1 in _patients(e) and e["agent"][1]["who"]["reference"] == "Organization/hospital-b"
        for e in refusals
    )


async def test_a_patients_access_log_names_who_looked_when_and_why(region: Region) -> None:
    platform = region.platform
    async with platform.database.transaction() as session:
        clinic = await platform.identity.ensure_organisation(
            session, "system:test", "Klinikum Nord", OrganisationType.HOSPITAL, "260000001"
        )
        reader = await platform.identity.ensure_user(
            session, "system:test", "dr.nord@example.org", "Dr. Nora Nord"
        )
        app = await platform.identity.create_client(
            session,
            "system:test",
            "Befund-Viewer",
            clinic.id,
            "user/*.rs",
            redirect_uris=["https://viewer.example/callback"],
        )
    grant = TokenGrant(reader.id, "user", clinic.id, Role.PHYSICIAN, app, "user/*.cruds")
    nord = {
        "Authorization": f"Bearer {await platform.tokens.issue_access_token(grant)}",
        **FHIR_JSON,
    }
    accesses = Accesses(region)
    ids = await accesses.happen()
    # Klinikum Nord neither holds nor treats: refused, and that shows too.
    assert await _get(region, f"/fhir/Observation/{ids['lab']}", "nord-read", nord) == 404
    await platform.audit.seal_all()
    dpo = await region.token("hospital-a", "data_protection_officer", "")
    response = await region.http.get(f"/api/patients/{ids['a1']}/access-log", headers=dpo)
    assert response.status_code == 200, response.text
    log = response.json()
    assert log["next_cursor"] is None
    refused = next(e for e in log["entries"] if e["actor"] == f"Practitioner/{reader.id}")
    assert refused["actor_name"] == "Dr. Nora Nord"
    assert refused["organisation_name"] == "Klinikum Nord"
    assert refused["allowed"] is False
    assert refused["did"] == "looked at"
    assert refused["why"] == "the data is held by another organisation"
    assert (refused["app"], refused["app_name"]) == (app, "Befund-Viewer")
    whys = {e["why"] for e in log["entries"] if e["allowed"]}
    assert "the patient consented to sharing and is being treated there" in whys
    assert "emergency access" in whys
    # Paging: the pages together are the whole log, newest first.
    first = await region.http.get(f"/api/patients/{ids['a1']}/access-log?limit=3", headers=dpo)
    second = await region.http.get(
        f"/api/patients/{ids['a1']}/access-log?limit=3&cursor={first.json()['next_cursor']}",
        headers=dpo,
    )
    paged = [e["seq"] for e in first.json()["entries"] + second.json()["entries"]]
    assert len(paged) == 6
    assert paged == sorted(set(paged), reverse=True)
    # (Reading the log is logged: newer entries may come, but none is left out between.)
    assert [s for s in (e["seq"] for e in log["entries"]) if paged[-1] <= s <= paged[0]] == [
        s for s in paged if s <= log["entries"][0]["seq"]
    ]
    # Only the hospital that holds the record answers for it.
    other = await region.http.get(
        f"/api/patients/{ids['a1']}/access-log",
        headers=await region.token("hospital-b", "organisation_admin"),
    )
    assert other.status_code == 403
    assert other.headers["content-type"].startswith("application/problem+json")


async def test_a_deleted_records_trail_stays_its_hospitals_to_answer_for(region: Region) -> None:
    """Deleting a Patient record does not end its hospital's duty to say who saw its data:
    its DPO still reads the record's access log; another hospital's admin still may not."""
    a = await region.token("hospital-a")
    a1 = await region.create("hospital-a", {"resourceType": "Patient"})
    assert (await region.http.get(f"/fhir/Patient/{a1}", headers=a)).status_code == 200
    assert (await region.http.delete(f"/fhir/Patient/{a1}", headers=a)).status_code in (200, 204)
    await region.platform.audit.seal_all()
    dpo = await region.token("hospital-a", "data_protection_officer", "")
    log = await region.http.get(f"/api/patients/{a1}/access-log", headers=dpo)
    assert log.status_code == 200, log.text
    done = [e["did"] for e in log.json()["entries"] if e["target"] == f"Patient/{a1}"]
    assert done == ["deleted", "looked at", "added"]
    other = await region.http.get(
        f"/api/patients/{a1}/access-log",
        headers=await region.token("hospital-b", "organisation_admin"),
    )
    assert other.status_code == 403


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("colour=red", 400),
        ("date=yesterday", 400),
        ("date=ne2026-01-01", 400),
        ("_count=0", 400),
        ("_count=1001", 400),
        ("_cursor=x", 400),
        ("outcome=7", 400),
        ("patient=Observation/1", 400),
        ("patient=a&patient=b", 400),
        ("patient=" + ",".join(f"p{n}" for n in range(101)), 400),
        ("subtype=http://example.org|read", 400),
        ("entity=nonsense", 400),
        ("agent=Organization/x", 400),
    ],
)
async def test_bad_searches_get_operation_outcomes(region: Region, query: str, status: int) -> None:
    operator = await region.token("platform", "platform_admin")
    response = await region.http.get(f"/fhir/AuditEvent?{query}", headers=operator)
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/fhir/AuditEvent", 405),
        ("PUT", "/fhir/AuditEvent/1", 405),
        ("DELETE", "/fhir/AuditEvent/1", 405),
        ("GET", "/fhir/AuditEvent/abc", 404),
        ("GET", "/fhir/AuditEvent/99999999999999999999999", 404),
        ("GET", "/fhir/AuditEvent/_history", 404),
    ],
)
async def test_the_trail_is_not_written_through_the_api(
    region: Region, method: str, path: str, status: int
) -> None:
    operator = await region.token("platform", "platform_admin")
    response = await region.http.request(method, path, headers=operator, content=b"{}")
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_searches_by_agent_date_outcome_subtype_and_entity(region: Region) -> None:
    ids = await Accesses(region).happen()
    operator = await region.token("platform", "platform_admin")
    everything = await _search(region, "_count=1000", operator)
    lab = f"Observation/{ids['lab']}"

    newest = max(int(e["id"]) for e in everything)

    async def found(query: str) -> set[str]:
        """The matches among `everything` (the sealer adds these searches' own entries)."""
        return {e["id"] for e in await _search(region, query, operator) if int(e["id"]) <= newest}

    by_b = await found("agent=Practitioner/hospital-b-physician")
    assert by_b == {
        e["id"]
        for e in everything
        if e["agent"][0]["who"].get("reference") == "Practitioner/hospital-b-physician"
    }
    refused = await found("outcome=4")
    assert refused == {e["id"] for e in everything if e["outcome"] == "4"}
    reads_of_lab = await found(f"subtype=read&entity={lab}")
    assert reads_of_lab == {
        e["id"]
        for e in everything
        if _action(e) == "fhir.read" and e["entity"][0]["what"].get("reference") == lab
    }
    assert len(reads_of_lab) == 4  # B, C refused, A's narrow token refused, C by break-glass
    times = sorted(e["recorded"] for e in everything)
    assert await found(f"date=ge{quote(times[0])}") == {e["id"] for e in everything}
    assert await found("date=lt2000-01-01") == set()
    assert await found("date=ge2000-01-01&date=lt2000-02-01") == set()


async def test_a_search_that_fails_is_recorded_as_failed(region: Region) -> None:
    """A search refused for its parameters returned no data, but it was asked: the trail
    says so (outcome 8), once."""
    physician = await region.token("hospital-a")
    assert await _get(region, "/fhir/Observation?colour=red", "bad-search", physician) == 400
    await region.platform.audit.seal_all()
    operator = await region.token("platform", "platform_admin")
    found = [
        e
        for e in await _search(region, "subtype=search", operator)
        if _request_id(e) == "bad-search"
    ]
    assert [e["outcome"] for e in found] == ["8"]
    assert found[0]["entity"][0]["query"]


async def test_audit_event_links_follow_the_public_url_not_the_host_header(
    region: Region,
) -> None:
    """A forged Host header does not make the trail's links point elsewhere; an empty page
    has no entry array (R4 ele-1)."""
    dpo = await region.token("hospital-a", "organisation_admin")
    response = await region.http.get(
        "/fhir/AuditEvent?_count=1&outcome=8", headers={**dpo, "host": "attacker.example"}
    )
    assert response.status_code == 200, response.text
    bundle = response.json()
    public = f"{region.platform.settings.public_url}/fhir/AuditEvent?"
    assert [link["url"].startswith(public) for link in bundle["link"]] == [True]
    assert "entry" not in bundle
