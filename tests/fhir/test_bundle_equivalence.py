"""A request as an entry of a batch is answered exactly as over HTTP.

Each case is sent twice — once over HTTP, once as the only entry of a `batch` Bundle with the
same `Prefer` header — and the two answers are compared: the status, the headers FHIR carries
into `entry.response` (Location, ETag, Last-Modified), the body (`entry.resource`, or
`entry.response.outcome` for errors and `Prefer: return=OperationOutcome`), and the audit
entries each left behind. A case that writes works on a resource of its own for each way (its
`target`), so that both find the same state; ids, times and paging cursors that must differ
between the two are masked before comparing.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from sqlalchemy import text

from medicus.app import create_app
from medicus.iam.tokens import TokenGrant
from medicus.platform import Platform, build_platform
from tests.conftest import DatabaseFactory, make_settings, register_organisation

BASE = "http://hub/fhir"
KVNR = "http://fhir.de/sid/gkv/kvid-10"
LOINC = "http://loinc.org"
GLUCOSE, HEART_RATE = "2339-0", "8867-4"


@dataclass(frozen=True)
class World:
    """What the cases refer to: hospital A's patient with 30 Observations, a deleted
    patient, and a patient of hospital B."""

    patient: str
    deleted: str
    elsewhere: str
    observation: str


@dataclass(frozen=True)
class Case:
    """One request. `url` is relative to the FHIR base and may name `{patient}`,
    `{deleted}`, `{elsewhere}`, `{observation}` of the world, and `{target}` (a Patient
    created for this way of sending), `{identifier}` (its KVNR) or `{fresh}` (an id in
    hospital A's namespace that nothing has)."""

    name: str
    method: str
    url: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    json_patch: bool = False
    organisation: str = "hospital-a"


@dataclass
class Sent:
    """The answer to one way of sending, made comparable."""

    status: int
    location: str | None
    etag: str | None
    last_modified: dt.datetime | None
    body: Any
    audit: list[tuple[str, str, str]]


def _patient(family: str, kvnr: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family}]}
    if kvnr:
        resource["identifier"] = [{"system": KVNR, "value": kvnr}]
    return resource


def _observation(patient: str, code: str, day: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": f"2026-10-{day:02d}T08:00:00Z",
        "valueQuantity": {"value": 90 + day, "unit": "mg/dL"},
    }


_PATIENT_SEARCH = "Observation?subject=Patient/{patient}"
CASES = [
    # reads
    Case("read", "GET", "Patient/{patient}"),
    Case("read with _elements", "GET", "Patient/{patient}?_elements=name"),
    Case("read with _summary", "GET", "Patient/{patient}?_summary=true"),
    Case("read _summary=count refused", "GET", "Patient/{patient}?_summary=count"),
    Case("read of nothing", "GET", "Patient/hospital-a.nobody"),
    Case("read of an invalid id", "GET", "Patient/no_such!id"),
    Case("read of another hospital's", "GET", "Patient/{elsewhere}"),
    Case("read of a deleted one", "GET", "Patient/{deleted}"),
    Case("read of an unknown type", "GET", "Nonsense/{patient}"),
    Case("read if none match", "GET", "Patient/{patient}", headers={"if-none-match": 'W/"1"'}),
    Case("read if changed", "GET", "Patient/{patient}", headers={"if-none-match": 'W/"7"'}),
    Case(
        "read if modified since",
        "GET",
        "Patient/{patient}",
        headers={"if-modified-since": "Sat, 01 Jan 2050 00:00:00 GMT"},
    ),
    Case("read with a bad ETag", "GET", "Patient/{patient}", headers={"if-none-match": "x"}),
    Case("read as XML refused", "GET", "Patient/{patient}?_format=xml"),
    Case("vread", "GET", "Patient/{patient}/_history/1"),
    Case("vread of no version", "GET", "Patient/{patient}/_history/9"),
    Case("vread of a non-number", "GET", "Patient/{patient}/_history/one"),
    Case("history", "GET", "Observation/{observation}/_history"),
    Case("history with _count", "GET", "Observation/{observation}/_history?_count=1"),
    Case("history with a bad _count", "GET", "Observation/{observation}/_history?_count=0"),
    Case("type history", "GET", "Observation/_history?_count=5"),
    Case("type history since", "GET", "Patient/_history?_since=2020-01-01T00:00:00Z"),
    Case("system history", "GET", "_history?_count=3"),
    Case("history with a bad _since", "GET", "_history?_since=yesterday"),
    # searches and their result parameters
    Case(
        "search with _count and _include",
        "GET",
        _PATIENT_SEARCH + "&_count=10&_include=Observation:subject",
    ),
    Case("search with _total", "GET", _PATIENT_SEARCH + "&_total=accurate&_count=5"),
    Case("search with _summary=count", "GET", _PATIENT_SEARCH + "&_summary=count"),
    Case("search with _count=0", "GET", _PATIENT_SEARCH + "&_count=0"),
    Case("search with _elements", "GET", _PATIENT_SEARCH + "&_elements=code&_count=3"),
    Case("search with _summary=data", "GET", _PATIENT_SEARCH + "&_summary=data&_count=3"),
    Case("search sorted", "GET", _PATIENT_SEARCH + "&_sort=-date&_count=4"),
    Case("search by offset", "GET", _PATIENT_SEARCH + "&_offset=10&_count=5&_sort=date"),
    Case("search by code and date", "GET", f"Observation?code={LOINC}|{GLUCOSE}&date=ge2026-10-20"),
    Case(
        "search with _revinclude",
        "GET",
        "Patient?_id={patient}&_revinclude=Observation:subject&_count=3",
    ),
    Case("chained search", "GET", "Observation?subject.family=Equivalent&_count=2"),
    Case("reverse chained search", "GET", f"Patient?_has:Observation:subject:code={HEART_RATE}"),
    Case("search with an unknown parameter", "GET", "Patient?shoe-size=44"),
    Case(
        "lenient search",
        "GET",
        "Patient?shoe-size=44&family=Equivalent",
        headers={"prefer": "handling=lenient"},
    ),
    Case("search with a bad _count", "GET", "Patient?_count=-1"),
    Case("search of an unknown type", "GET", "Nonsense?name=x"),
    Case("search of another hospital's", "GET", "Patient?family=Elsewhere"),
    # operations
    Case("everything", "GET", "Patient/{patient}/$everything?_count=5"),
    Case("lastn", "GET", "Observation/$lastn?patient=Patient/{patient}&max=2"),
    Case("meta", "GET", "Patient/{patient}/$meta"),
    Case("validate", "POST", "Patient/$validate", {"resourceType": "Patient", "birthDate": "x"}),
    Case("an unknown operation", "GET", "Patient/{patient}/$shred"),
    # writes
    Case("create", "POST", "Patient", _patient("Created")),
    Case("create, minimal", "POST", "Patient", _patient("Created"), {"prefer": "return=minimal"}),
    Case(
        "create, outcome",
        "POST",
        "Patient",
        _patient("Created"),
        {"prefer": "return=OperationOutcome"},
    ),
    Case(
        "conditional create that finds one",
        "POST",
        "Patient",
        _patient("Again"),
        {"if-none-exist": f"identifier={KVNR}|{{identifier}}", "prefer": "return=representation"},
    ),
    Case(
        "conditional create that finds none",
        "POST",
        "Patient",
        _patient("New"),
        {"if-none-exist": f"identifier={KVNR}|X999999999", "prefer": "return=representation"},
    ),
    Case(
        "create of an invalid resource",
        "POST",
        "Patient",
        {"resourceType": "Patient", "birthDate": "1964-13-45"},
    ),
    Case("create of the wrong type", "POST", "Patient", {"resourceType": "Observation"}),
    Case("update", "PUT", "Patient/{target}", {**_patient("Updated"), "id": "{target}"}),
    Case(
        "update if it matches",
        "PUT",
        "Patient/{target}",
        {**_patient("Updated"), "id": "{target}"},
        {"if-match": 'W/"1"'},
    ),
    Case(
        "update if it does not match",
        "PUT",
        "Patient/{target}",
        {**_patient("Updated"), "id": "{target}"},
        {"if-match": 'W/"4"'},
    ),
    Case("update with another id", "PUT", "Patient/{target}", {**_patient("X"), "id": "other"}),
    Case("update that creates", "PUT", "Patient/{fresh}", {**_patient("Mine"), "id": "{fresh}"}),
    Case(
        "update of another hospital's",
        "PUT",
        "Patient/{elsewhere}",
        {**_patient("Mine"), "id": "{elsewhere}"},
    ),
    Case(
        "conditional update",
        "PUT",
        f"Patient?identifier={KVNR}|{{identifier}}",
        _patient("Conditional", "{identifier}"),
    ),
    Case("conditional update without condition", "PUT", "Patient", _patient("None")),
    Case(
        "JSON Patch",
        "PATCH",
        "Patient/{target}",
        [{"op": "replace", "path": "/name/0/family", "value": "Patched"}],
        json_patch=True,
    ),
    Case(
        "FHIRPath Patch",
        "PATCH",
        "Patient/{target}",
        {
            "resourceType": "Parameters",
            "parameter": [
                {
                    "name": "operation",
                    "part": [
                        {"name": "type", "valueCode": "add"},
                        {"name": "path", "valueString": "Patient"},
                        {"name": "name", "valueString": "gender"},
                        {"name": "value", "valueCode": "female"},
                    ],
                }
            ],
        },
    ),
    Case(
        "JSON Patch that fails",
        "PATCH",
        "Patient/{target}",
        [{"op": "remove", "path": "/nothing/here"}],
        json_patch=True,
    ),
    Case(
        "conditional patch",
        "PATCH",
        f"Patient?identifier={KVNR}|{{identifier}}",
        [{"op": "add", "path": "/active", "value": True}],
        json_patch=True,
    ),
    Case("delete", "DELETE", "Patient/{target}"),
    Case(
        "delete if it does not match", "DELETE", "Patient/{target}", headers={"if-match": 'W/"3"'}
    ),
    Case("delete of nothing", "DELETE", "Patient/hospital-a.nobody"),
    Case("conditional delete", "DELETE", f"Patient?identifier={KVNR}|{{identifier}}"),
    Case("write for a reader", "POST", "Patient", _patient("Reader"), organisation="hospital-c"),
]


async def _token(platform: Platform, organisation: str) -> dict[str, str]:
    await register_organisation(platform, organisation)
    scope = "user/*.rs" if organisation == "hospital-c" else "user/*.cruds"
    grant = TokenGrant(f"{organisation}-someone", "user", organisation, "physician", "test", scope)
    return {"Authorization": f"Bearer {await platform.tokens.issue_access_token(grant)}"}


@dataclass
class Hub:
    platform: Platform
    http: httpx.AsyncClient
    world: World


async def _create(http: httpx.AsyncClient, resource: Any, headers: dict[str, str]) -> str:
    answer = await http.post(
        f"/fhir/{resource['resourceType']}",
        content=orjson.dumps(resource),
        headers={**headers, "content-type": "application/fhir+json"},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


@pytest.fixture(scope="module")
async def hub(
    database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Hub]:
    folder: Path = tmp_path_factory.mktemp("equivalence")
    url = await asyncio.to_thread(database_factory.new_url)
    platform = build_platform(make_settings(folder, url))
    transport = httpx.ASGITransport(app=create_app(platform.settings, platform))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        a, b = await _token(platform, "hospital-a"), await _token(platform, "hospital-b")
        patient = await _create(http, _patient("Equivalent", "A000000001"), a)
        observations = [
            await _create(http, _observation(patient, code, day), a)
            for day in range(1, 31)
            for code in [GLUCOSE if day % 2 else HEART_RATE]
        ]
        deleted = await _create(http, _patient("Gone"), a)
        assert (await http.delete(f"/fhir/Patient/{deleted}", headers=a)).status_code == 204
        elsewhere = await _create(http, _patient("Elsewhere"), b)
        yield Hub(platform, http, World(patient, deleted, elsewhere, observations[0]))
    await platform.close()


def _fill(value: Any, names: dict[str, str]) -> Any:
    """`value` with `{name}` placeholders replaced (in strings, lists and objects)."""
    if isinstance(value, str):
        for name, replacement in names.items():
            value = value.replace(f"{{{name}}}", replacement)
        return value
    if isinstance(value, list):
        return [_fill(item, names) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, names) for key, item in value.items()}
    return value


def _needs_target(case: Case) -> bool:
    text_of = orjson.dumps([case.url, case.body, case.headers]).decode()
    return "{target}" in text_of or "{identifier}" in text_of


async def _names(hub: Hub, case: Case, headers: dict[str, str]) -> dict[str, str]:
    """The world's ids, and for a case that needs one, a target of this way of sending."""
    identifier = f"T{uuid.uuid4().int % 10**9:09d}"
    target = "no-target"
    if _needs_target(case):
        target = await _create(hub.http, _patient("Target", identifier), headers)
    world = hub.world
    return {
        "patient": world.patient,
        "deleted": world.deleted,
        "elsewhere": world.elsewhere,
        "observation": world.observation,
        "target": target,
        "identifier": identifier,
        "fresh": f"hospital-a.eq-{uuid.uuid4().hex[:12]}",
    }


async def _audit_seq(platform: Platform) -> int:
    await platform.audit.seal_all()
    async with platform.database.snapshot() as session:
        found = await session.execute(text("SELECT max(seq) FROM audit_entry"))
        return int(found.scalar_one() or 0)


async def _audit_since(platform: Platform, seq: int) -> list[tuple[str, str, str]]:
    await platform.audit.seal_all()
    async with platform.database.snapshot() as session:
        rows = await session.execute(
            text("SELECT action, outcome, target FROM audit_entry WHERE seq > :seq ORDER BY seq"),
            {"seq": seq},
        )
        return [(row[0], row[1], row[2] or "") for row in rows]


async def _over_http(hub: Hub, case: Case, names: dict[str, str], token: dict[str, str]) -> Sent:
    headers = {**token, **_fill(case.headers, names)}
    content = None
    if case.body is not None:
        content = orjson.dumps(_fill(case.body, names))
        kind = "application/json-patch+json" if case.json_patch else "application/fhir+json"
        headers["content-type"] = kind
    before = await _audit_seq(hub.platform)
    url = "/fhir/" + _fill(case.url, names)
    answer = await hub.http.request(case.method, url, content=content, headers=headers)
    modified = answer.headers.get("last-modified")
    return Sent(
        answer.status_code,
        answer.headers.get("location"),
        answer.headers.get("etag"),
        parsedate_to_datetime(modified) if modified else None,
        answer.json() if answer.content else None,
        await _audit_since(hub.platform, before),
    )


_ENTRY_FIELDS = {
    "if-match": "ifMatch",
    "if-none-match": "ifNoneMatch",
    "if-none-exist": "ifNoneExist",
    "if-modified-since": "ifModifiedSince",
}


def _entry(case: Case, names: dict[str, str]) -> dict[str, Any]:
    """The case as a batch entry: FHIR's headers as `entry.request` elements, a JSON Patch
    as a Binary."""
    request: dict[str, Any] = {"method": case.method, "url": _fill(case.url, names)}
    for header, value in _fill(case.headers, names).items():
        if header == "if-modified-since":
            value = parsedate_to_datetime(value).isoformat()
        if header in _ENTRY_FIELDS:
            request[_ENTRY_FIELDS[header]] = value
    entry: dict[str, Any] = {"request": request}
    if case.json_patch:
        data = base64.b64encode(orjson.dumps(_fill(case.body, names))).decode()
        kind = "application/json-patch+json"
        entry["resource"] = {"resourceType": "Binary", "contentType": kind, "data": data}
    elif case.body is not None:
        entry["resource"] = _fill(case.body, names)
    return entry


async def _in_batch(hub: Hub, case: Case, names: dict[str, str], token: dict[str, str]) -> Sent:
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [_entry(case, names)]}
    headers = {**token, "content-type": "application/fhir+json"}
    if "prefer" in case.headers:
        headers["prefer"] = case.headers["prefer"]
    elif case.method in ("POST", "PUT", "PATCH"):
        headers["prefer"] = "return=representation"  # HTTP's default for writes
    before = await _audit_seq(hub.platform)
    answer = await hub.http.post("/fhir", content=orjson.dumps(bundle), headers=headers)
    assert answer.status_code == 200, answer.text
    (entry,) = answer.json()["entry"]
    response = entry["response"]
    modified = response.get("lastModified")
    location = response.get("location")
    return Sent(
        int(response["status"].split()[0]),
        f"{BASE}/{location}" if location else None,
        response.get("etag"),
        dt.datetime.fromisoformat(modified).replace(microsecond=0) if modified else None,
        entry.get("resource", response.get("outcome")),
        await _audit_since(hub.platform, before),
    )


_CURSOR = re.compile(r"_cursor=[^&\"]+")
_LAST_UPDATED = re.compile(r'"lastUpdated":"[^"]+"')
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _relative(expression: str, resource_type: str) -> str:
    """A problem's place in the resource, as HTTP (`Patient.birthDate`) and a batch entry
    (`Bundle.entry[0].resource.birthDate`) name it: `birthDate`."""
    for prefix in ("Bundle.entry[0].resource", resource_type):
        if expression == prefix:
            return ""
        if expression.startswith(f"{prefix}."):
            return expression.removeprefix(f"{prefix}.")
    return expression


def _masked(sent: Sent, names: dict[str, str], resource_type: str) -> tuple[Any, Any]:
    """The body and audit entries with what differs by nature masked: ids, times and
    cursors, and the place of each problem an outcome lists, which a batch entry names
    within the bundle."""
    masks = {names[name]: name.upper() for name in ("patient", "elsewhere", "target")}
    masks.update({names["identifier"]: "IDENTIFIER", names["fresh"]: "FRESH"})
    text_of = orjson.dumps([sent.body, sent.audit]).decode()
    for value, mask in masks.items():
        text_of = text_of.replace(value, mask)
    text_of = _CURSOR.sub("_cursor=CURSOR", text_of)
    text_of = _LAST_UPDATED.sub('"lastUpdated":"TIME"', text_of)
    text_of = _UUID.sub("CREATED", text_of)
    body, audit = orjson.loads(text_of)
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        for issue in body["issue"]:
            if "expression" in issue:
                issue["expression"] = [_relative(e, resource_type) for e in issue["expression"]]
    return body, audit


def _created(location: str | None) -> tuple[str, str] | None:
    """The type and version a Location names (`…/fhir/Patient/1/_history/2`)."""
    if location is None:
        return None
    parts = urlsplit(location).path.split("/")
    return parts[-4], parts[-1]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_a_batch_entry_is_answered_as_http_answers(hub: Hub, case: Case) -> None:
    token = await _token(hub.platform, case.organisation)
    writer = await _token(hub.platform, "hospital-a")
    http_names = await _names(hub, case, writer)
    batch_names = await _names(hub, case, writer)
    over_http = await _over_http(hub, case, http_names, token)
    in_batch = await _in_batch(hub, case, batch_names, token)
    assert in_batch.status == over_http.status, in_batch.body
    if over_http.location is not None:  # a creation's; a batch names the version of any write
        assert _created(in_batch.location) == _created(over_http.location)
    assert in_batch.etag == over_http.etag
    assert (in_batch.last_modified is None) == (over_http.last_modified is None)
    resource_type = case.url.split("/")[0].split("?")[0]
    assert _masked(in_batch, batch_names, resource_type) == _masked(
        over_http, http_names, resource_type
    )


async def test_the_batch_search_pages_and_includes_as_http_does(hub: Hub) -> None:
    """The case found by a new user: 30 Observations, `_count=10` and an `_include` answered
    all 30 without include or paging inside a batch."""
    token = await _token(hub.platform, "hospital-a")
    url = f"Observation?subject=Patient/{hub.world.patient}&_count=10&_include=Observation:subject"
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": url}}],
    }
    answer = await hub.http.post(
        "/fhir",
        content=orjson.dumps(bundle),
        headers={**token, **{"content-type": "application/fhir+json"}},
    )
    searchset = answer.json()["entry"][0]["resource"]
    modes = [entry["search"]["mode"] for entry in searchset["entry"]]
    assert modes.count("match") == 10
    assert modes.count("include") == 1
    assert "next" in {link["relation"] for link in searchset["link"]}


def test_the_table_covers_every_interaction() -> None:
    """At least 40 requests, every method, and every kind of answer."""
    assert len(CASES) >= 40
    assert {case.method for case in CASES} == {"GET", "POST", "PUT", "PATCH", "DELETE"}
    assert len({case.name for case in CASES}) == len(CASES)
