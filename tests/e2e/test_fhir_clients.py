"""The field's own FHIR client libraries, used as their documentation shows, against the real
`medicus serve` process: if fhirpy (`AsyncFHIRClient`) and fhirclient (SMART on FHIR, 4.x) work
unchanged against `/fhir`, integrators can use them without patches or special options.

One server process serves the whole module. Its organisation and a backend service client
(private_key_jwt, `system/*.cruds`) are set up through the operators' CLI, and every token comes
from the token endpoint by SMART Backend Services, as a connector would get it: fhirclient finds
the endpoint in the CapabilityStatement and runs the flow itself.

Proven for fhirpy: create, read, update and delete round-trip their values and versions;
searches combining several parameters (AND, date prefixes); paging through `fetch_all()` over
more results than one `_count` page; `_total`; `_sort` with several keys across pages; chaining
(`subject:Patient.identifier` by KVNR) and `_has`; `_include`/`_revinclude` with their search
modes; resolving a reference; conditional update and delete; a transaction Bundle whose
`urn:uuid` reference is rewritten. Proven for fhirclient: its strict R4 models parse our
CapabilityStatement, it finds the SMART token endpoint there and authorises as a backend
service; read, create, update and delete; `FHIRSearch` by KVNR and paging along `next` links;
`_include`/`_revinclude`; reference resolution; a transaction Bundle.

fhirpy's `refresh()` (a bare `If-None-Match: n`), `count()` (`_count=0`) and `get_or_create()`
(criteria in the POST's URL) work too; the server accepts those forms for them.
Each test uses data of its own (a fresh tag in names or identifiers), so order does not matter.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fhirclient import client as smart_client
from fhirclient.auth import FHIROAuth2Auth
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.contactpoint import ContactPoint
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRServer
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound
from fhirpy.lib import AsyncFHIRResource
from requests import HTTPError

from tests.conftest import POSTGRES_ADMIN_URL, DatabaseFactory
from tests.e2e.conftest import Hub, medicus_environment, register_backend_service, serving
from tests.support.resources import KVNR, LOINC

UNITS = {"29463-7": "kg", "8302-2": "cm", "8867-4": "/min"}  # weight, height, heart rate
IKNR = "262200002"
SCOPE = "system/*.cruds"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, database_factory: DatabaseFactory
) -> Iterator[Hub]:
    folder = tmp_path_factory.mktemp("fhir-clients")
    database_url = None
    if POSTGRES_ADMIN_URL:
        # new_url runs its own event loop; keep it away from the tests' loop.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            database_url = pool.submit(database_factory.really_migrated_url).result()
    with serving(medicus_environment(folder / "var", database_url)) as server:
        yield register_backend_service(server, folder, "Klinikum FHIR-Clients", IKNR, SCOPE)


@pytest.fixture
def fhir(hub: Hub) -> AsyncFHIRClient:
    """fhirpy's async client with a bearer token, exactly as its README sets it up."""
    return AsyncFHIRClient(hub.fhir_url, authorization=f"Bearer {hub.access_token()}")


def _smart_client(hub: Hub) -> smart_client.FHIRClient:
    """fhirclient configured for SMART Backend Services: `jwt_token` is the client assertion."""
    settings = {
        "app_id": hub.client_id,
        "api_base": hub.fhir_url,
        "scope": SCOPE,
        "jwt_token": hub.assertion(),
    }
    client = smart_client.FHIRClient(settings=settings)
    client.wants_patient = False  # a backend service has no patient launch context
    return client


@pytest.fixture
def smart(hub: Hub) -> FHIRServer:
    """An authorised fhirclient server connection."""
    client = _smart_client(hub)
    client.prepare()
    client.authorize()
    assert client.ready
    server: FHIRServer = client.server
    return server


def _tag() -> str:
    """A name part of letters only (the family names of one test)."""
    return "".join(chr(ord("a") + int(c, 16) % 26) for c in uuid.uuid4().hex[:10]).capitalize()


def _kvnr() -> str:
    return f"Z{uuid.uuid4().int % 10**9:09d}"


def _patient(fhir: AsyncFHIRClient, family: str, **elements: Any) -> AsyncFHIRResource:
    return fhir.resource("Patient", name=[{"family": family, "given": ["Erika"]}], **elements)


def _observation(fhir: AsyncFHIRClient, subject: str, code: str, value: float) -> AsyncFHIRResource:
    return fhir.resource(
        "Observation",
        status="final",
        code={"coding": [{"system": LOINC, "code": code}]},
        subject={"reference": subject},
        valueQuantity={
            "value": value,
            "unit": UNITS[code],
            "system": "http://unitsofmeasure.org",
            "code": UNITS[code],
        },
    )


# fhirpy ---------------------------------------------------------------------------------------


async def test_fhirpy_create_read_update_delete(fhir: AsyncFHIRClient) -> None:
    kvnr = _kvnr()
    family = _tag()
    patient = _patient(
        fhir,
        family,
        identifier=[{"system": KVNR, "value": kvnr}],
        gender="female",
        birthDate="1964-08-12",
        active=True,
    )
    await patient.save()
    assert patient.id
    assert patient["meta"]["versionId"] == "1"

    fetched = await fhir.reference("Patient", patient.id).to_resource()
    assert fetched.id == patient.id
    assert fetched["name"] == [{"family": family, "given": ["Erika"]}]
    assert fetched["identifier"] == [{"system": KVNR, "value": kvnr}]
    assert (fetched["birthDate"], fetched["active"]) == ("1964-08-12", True)
    assert (await fhir.get("Patient", patient.id))["gender"] == "female"

    fetched["active"] = False
    fetched["telecom"] = [{"system": "phone", "value": "+49 30 1234567"}]
    await fetched.save()
    assert fetched.id == patient.id
    assert fetched["meta"]["versionId"] == "2"
    again = await fhir.resources("Patient").search(_id=patient.id).get()
    assert again["active"] is False
    assert again["telecom"] == [{"system": "phone", "value": "+49 30 1234567"}]

    await again.delete()
    with pytest.raises(ResourceNotFound):
        await fhir.get("Patient", patient.id)
    assert await fhir.resources("Patient").search(_id=patient.id).fetch() == []


async def test_fhirpy_refresh_uses_the_version_as_if_none_match(fhir: AsyncFHIRClient) -> None:
    """`refresh()` sends `If-None-Match: <versionId>`: 304 when unchanged, else the new one."""
    patient = await _patient(fhir, _tag(), active=True).save()
    stale = await fhir.reference("Patient", patient.id).to_resource()
    patient["active"] = False
    await patient.save()
    await stale.refresh()
    assert stale["active"] is False
    assert stale["meta"]["versionId"] == "2"
    await stale.refresh()
    assert stale["meta"]["versionId"] == "2"


async def test_fhirpy_searches_with_several_parameters_and_pages(fhir: AsyncFHIRClient) -> None:
    family = _tag()
    created = await asyncio.gather(
        *(
            _patient(
                fhir,
                family,
                gender="female" if number % 2 else "male",
                birthDate=f"{1980 + number}-05-01",
            ).save()
            for number in range(12)
        )
    )
    everyone = {patient.id for patient in created}
    patients = fhir.resources("Patient")

    women_since_1985 = await patients.search(
        family=family, gender="female", birthdate__ge="1985"
    ).fetch_all()
    assert sorted(p["birthDate"] for p in women_since_1985) == [
        "1985-05-01",
        "1987-05-01",
        "1989-05-01",
        "1991-05-01",
    ]
    either = await patients.search(family=family, birthdate=["ge1990", "lt1992"]).fetch_all()
    assert sorted(p["birthDate"] for p in either) == ["1990-05-01", "1991-05-01"]

    paged = patients.search(family=family).limit(5)
    assert len(await paged.fetch()) == 5
    all_of_them = await paged.fetch_all()
    assert len(all_of_them) == 12
    assert {p.id for p in all_of_them} == everyone

    first_page = await paged.search(_total="accurate").fetch_raw()
    assert first_page["total"] == 12
    assert len(first_page["entry"]) == 5
    assert [link["relation"] for link in first_page["link"]][:2] == ["self", "next"]


async def test_fhirpy_counts(fhir: AsyncFHIRClient) -> None:
    """`count()` asks `_count=0&_totalMethod=count` and reads `Bundle.total`."""
    family = _tag()
    await asyncio.gather(*(_patient(fhir, family).save() for _ in range(3)))
    assert await fhir.resources("Patient").search(family=family).count() == 3


async def test_fhirpy_sorts(fhir: AsyncFHIRClient) -> None:
    family = _tag()
    for given, born in (("Anna", "1970"), ("Berta", "1990"), ("Anna", "1980"), ("Clara", "1960")):
        await fhir.resource(
            "Patient", name=[{"family": family, "given": [given]}], birthDate=born
        ).save()
    patients = fhir.resources("Patient").search(family=family)

    newest_first = await patients.sort("-birthdate").fetch_all()
    assert [p["birthDate"] for p in newest_first] == ["1990", "1980", "1970", "1960"]
    by_name_then_age = await patients.sort("given", "-birthdate").limit(2).fetch_all()
    assert [(p["name"][0]["given"][0], p["birthDate"]) for p in by_name_then_age] == [
        ("Anna", "1980"),
        ("Anna", "1970"),
        ("Berta", "1990"),
        ("Clara", "1960"),
    ]


@dataclass(frozen=True)
class Ward:
    """Two patients of one family; only the first (with a KVNR) has weights recorded."""

    family: str
    kvnr: str
    patient_id: str
    other_id: str
    observations: set[str]


async def _ward(fhir: AsyncFHIRClient) -> Ward:
    family, kvnr = _tag(), _kvnr()
    patient = await _patient(fhir, family, identifier=[{"system": KVNR, "value": kvnr}]).save()
    other = await _patient(fhir, family, identifier=[{"system": KVNR, "value": _kvnr()}]).save()
    weights = [
        await _observation(fhir, f"Patient/{patient.id}", "29463-7", weight).save()
        for weight in (71.5, 72.0)
    ]
    await _observation(fhir, f"Patient/{other.id}", "8302-2", 168.0).save()  # a height
    return Ward(family, kvnr, patient.id, other.id, {weight.id for weight in weights})


async def test_fhirpy_chains_and_reverse_chains(fhir: AsyncFHIRClient) -> None:
    ward = await _ward(fhir)
    observations = fhir.resources("Observation")
    by_kvnr = observations.search(subject__Patient__identifier=f"{KVNR}|{ward.kvnr}")
    assert {o.id for o in await by_kvnr.fetch_all()} == ward.observations
    by_family = observations.search(subject__Patient__family=ward.family)
    assert len(await by_family.fetch_all()) == 3
    weights = await by_family.search(code=f"{LOINC}|29463-7").fetch_all()
    assert {o.id for o in weights} == ward.observations

    weighed = fhir.resources("Patient").search(family=ward.family)
    weighed = weighed.has("Observation", "subject", code=f"{LOINC}|29463-7")
    assert [p.id for p in await weighed.fetch_all()] == [ward.patient_id]


async def test_fhirpy_includes_and_revincludes(fhir: AsyncFHIRClient) -> None:
    ward = await _ward(fhir)
    patient_id, observations = ward.patient_id, ward.observations

    bundle = await (
        fhir.resources("Observation")
        .search(subject=f"Patient/{patient_id}")
        .include("Observation", "subject")
        .fetch_raw()
    )
    modes = {(e.resource.resourceType, e.resource.id): e.search.mode for e in bundle.entry}
    assert modes == {
        **{("Observation", o): "match" for o in observations},
        ("Patient", patient_id): "include",
    }

    bundle = await (
        fhir.resources("Patient")
        .search(_id=patient_id)
        .revinclude("Observation", "subject")
        .fetch_raw()
    )
    modes = {(e.resource.resourceType, e.resource.id): e.search.mode for e in bundle.entry}
    assert modes == {
        ("Patient", patient_id): "match",
        **{("Observation", o): "include" for o in observations},
    }


async def test_fhirpy_resolves_references(fhir: AsyncFHIRClient) -> None:
    ward = await _ward(fhir)
    patient_id, observations = ward.patient_id, ward.observations
    observation = await fhir.reference("Observation", sorted(observations)[0]).to_resource()
    assert observation["valueQuantity"]["value"] in (71.5, 72.0)
    subject = await observation["subject"].to_resource()
    assert (subject.resource_type, subject.id) == ("Patient", patient_id)
    found = await fhir.resources("Observation").search(subject=subject).fetch_all()
    assert {o.id for o in found} == observations


async def test_fhirpy_conditional_update_and_delete(fhir: AsyncFHIRClient) -> None:
    kvnr = _kvnr()
    by_kvnr = fhir.resources("Patient").search(identifier=f"{KVNR}|{kvnr}")
    resource = _patient(fhir, _tag(), identifier=[{"system": KVNR, "value": kvnr}], active=True)

    created, was_created = await by_kvnr.update(resource)
    assert was_created is True
    assert created["meta"]["versionId"] == "1"

    resource["active"] = False
    updated, was_created = await by_kvnr.update(resource)
    assert was_created is False
    assert (updated.id, updated["meta"]["versionId"], updated["active"]) == (created.id, "2", False)
    assert [p.id for p in await by_kvnr.fetch_all()] == [created.id]

    _, status = await by_kvnr.delete()
    assert status in (200, 204)
    assert await by_kvnr.fetch_all() == []
    with pytest.raises(ResourceNotFound):
        await fhir.get("Patient", created.id)


async def test_fhirpy_get_or_create(fhir: AsyncFHIRClient) -> None:
    """fhirpy's conditional create: POST [type]?[criteria] (not the If-None-Exist header)."""
    kvnr = _kvnr()
    by_kvnr = fhir.resources("Patient").search(identifier=f"{KVNR}|{kvnr}")
    resource = _patient(fhir, _tag(), identifier=[{"system": KVNR, "value": kvnr}])
    first, created = await by_kvnr.get_or_create(resource)
    assert created is True
    second, created = await by_kvnr.get_or_create(resource)
    assert created is False
    assert second.id == first.id
    assert [p.id for p in await by_kvnr.fetch_all()] == [first.id]


async def test_fhirpy_posts_a_transaction(fhir: AsyncFHIRClient) -> None:
    kvnr = _kvnr()
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_url,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": KVNR, "value": kvnr}],
                    "name": [{"family": _tag()}],
                },
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": _observation(fhir, patient_url, "29463-7", 80.5).serialize(),
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    response = await fhir.execute("/", method="post", data=transaction)
    assert response["type"] == "transaction-response"
    statuses = [entry["response"]["status"] for entry in response["entry"]]
    assert [status.split()[0] for status in statuses] == ["201", "201"]
    patient_location, observation_location = (
        entry["response"]["location"] for entry in response["entry"]
    )
    patient_id = patient_location.split("Patient/")[1].split("/")[0]
    observation_id = observation_location.split("Observation/")[1].split("/")[0]

    observation = await fhir.reference("Observation", observation_id).to_resource()
    assert observation["subject"]["reference"] == f"Patient/{patient_id}"
    patient = await observation["subject"].to_resource()
    assert patient["identifier"] == [{"system": KVNR, "value": kvnr}]


# fhirclient -----------------------------------------------------------------------------------


def test_fhirclient_reads_the_capability_statement_and_authorises(hub: Hub) -> None:
    client = _smart_client(hub)
    assert client.prepare() is False  # CapabilityStatement loaded, no token yet
    capability = client.server.capabilityStatement
    assert isinstance(capability, CapabilityStatement)  # parsed strictly by the R4 models
    assert (capability.fhirVersion, capability.kind, capability.status) == (
        "4.0.1",
        "instance",
        "active",
    )
    rest = capability.rest[0]
    assert rest.mode == "server"
    patient = next(r for r in rest.resource if r.type == "Patient")
    assert {"read", "create", "update", "delete", "search-type"} <= {
        i.code for i in patient.interaction
    }
    assert {"identifier", "birthdate", "family", "_id"} <= {p.name for p in patient.searchParam}

    auth = client.server.auth
    assert isinstance(auth, FHIROAuth2Auth)  # found the SMART oauth-uris extension
    assert auth._token_uri == hub.token_endpoint
    client.authorize()
    assert client.ready
    assert auth.access_token


def test_fhirclient_create_read_update_delete(smart: FHIRServer) -> None:
    kvnr = _kvnr()
    family = _tag()
    patient = Patient(
        {
            "identifier": [{"system": KVNR, "value": kvnr}],
            "name": [{"family": family, "given": ["Max"]}],
            "gender": "male",
            "birthDate": "1971-03-04",
        }
    )
    created = patient.create(smart)
    assert created is not None
    patient_id = created["id"]
    assert created["meta"]["versionId"] == "1"

    read = Patient.read(patient_id, smart)
    assert read.id == patient_id
    assert (read.name[0].family, read.name[0].given) == (family, ["Max"])
    assert (read.identifier[0].system, read.identifier[0].value) == (KVNR, kvnr)
    assert read.birthDate.isostring == "1971-03-04"

    read.telecom = [ContactPoint({"system": "email", "value": "max@example.org"})]
    updated = read.update()
    assert updated is not None
    assert updated["meta"]["versionId"] == "2"
    again = Patient.read(patient_id, smart)
    assert again.telecom[0].value == "max@example.org"
    assert again.meta.versionId == "2"

    again.delete()
    with pytest.raises(HTTPError) as gone:
        Patient.read(patient_id, smart)
    assert gone.value.response.status_code == 410


def test_fhirclient_searches_by_kvnr_and_pages(smart: FHIRServer) -> None:
    family = _tag()
    kvnrs = [_kvnr(), _kvnr(), "A123456780", _kvnr(), _kvnr()]
    ids = []
    for kvnr in kvnrs:
        created = Patient(
            {"identifier": [{"system": KVNR, "value": kvnr}], "name": [{"family": family}]}
        ).create(smart)
        assert created is not None
        ids.append(created["id"])

    by_kvnr = Patient.where(struct={"identifier": f"{KVNR}|A123456780"})
    assert (
        by_kvnr.construct()
        == "Patient?identifier=http%3A%2F%2Ffhir.de%2Fsid%2Fgkv%2Fkvid-10%7CA123456780"
    )
    found = list(by_kvnr.perform_resources_iter(smart))
    assert [p.id for p in found] == [ids[2]]
    assert (found[0].identifier[0].system, found[0].identifier[0].value) == (KVNR, "A123456780")
    by_value = Patient.where(struct={"identifier": "A123456780", "family": family})
    assert [p.id for p in by_value.perform_resources_iter(smart)] == [ids[2]]
    with pytest.warns(DeprecationWarning, match="perform_resources"):
        assert [p.id for p in by_kvnr.perform_resources(smart)] == [ids[2]]
    assert (
        list(
            Patient.where(struct={"identifier": f"{KVNR}|Z000000000"}).perform_resources_iter(smart)
        )
        == []
    )

    paged = Patient.where(struct={"family": family, "_count": "2"})
    pages = list(paged.perform_iter(smart))
    assert [len(page.entry) for page in pages] == [2, 2, 1]
    assert all(isinstance(page, Bundle) and page.type == "searchset" for page in pages)
    assert sorted(p.id for p in paged.perform_resources_iter(smart)) == sorted(ids)


def test_fhirclient_includes_and_revincludes(smart: FHIRServer) -> None:
    patient = Patient({"name": [{"family": _tag()}]}).create(smart)
    assert patient is not None
    observation = Observation(
        {
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{patient['id']}"},
            "valueQuantity": {"value": 64, "unit": "/min"},
        }
    ).create(smart)
    assert observation is not None
    expected = {("Observation", observation["id"]), ("Patient", patient["id"])}

    search = Observation.where(struct={"subject": f"Patient/{patient['id']}"}).include("subject")
    assert search.construct().endswith("&_include=Observation:subject")
    resources = list(search.perform_resources_iter(smart))
    assert {(r.resource_type, r.id) for r in resources} == expected

    search = Patient.where(struct={"_id": patient["id"]}).include("subject", Observation, True)
    assert search.construct().endswith("&_revinclude=Observation:subject")
    (bundle,) = search.perform_iter(smart)
    assert {(e.resource.resource_type, e.resource.id, e.search.mode) for e in bundle.entry} == {
        ("Patient", patient["id"], "match"),
        ("Observation", observation["id"], "include"),
    }


def test_fhirclient_resolves_references_and_posts_a_transaction(smart: FHIRServer) -> None:
    family = _tag()
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    transaction = Bundle(
        {
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": patient_url,
                    "resource": {"resourceType": "Patient", "name": [{"family": family}]},
                    "request": {"method": "POST", "url": "Patient"},
                },
                {
                    "resource": {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
                        "subject": {"reference": patient_url},
                        "valueQuantity": {"value": 64, "unit": "/min"},
                    },
                    "request": {"method": "POST", "url": "Observation"},
                },
            ],
        }
    )
    answer = transaction.create(smart)
    assert answer is not None
    response = Bundle(answer)
    assert response.type == "transaction-response"
    assert [e.response.status.split()[0] for e in response.entry] == ["201", "201"]
    observation_id = response.entry[1].response.location.split("Observation/")[1].split("/")[0]

    observation = Observation.read(observation_id, smart)
    patient = observation.subject.resolved(Patient)
    assert isinstance(patient, Patient)
    assert patient.name[0].family == family
    assert observation.subject.reference == f"Patient/{patient.id}"
