"""The cost of the access filter: searches of a clinician who sees 1 % of a database of
`--patients` patients, with the policy filter inside each query, against the same searches
without it, side by side in one process on the same data. Prints JSON.

    python -m benchmarks.access [--database sqlite|postgresql] [--patients 100000]
        [--keep-database | --reuse-database NAME]

`--reuse-database` measures again on a PostgreSQL database that an earlier run kept (its
patients already loaded; `--patients` must be the number it was loaded with).

The data: every patient has a Patient record (KVNR, name, birth date) and a lab value, held by
one of 100 hospitals. The clinician's hospital `h0` holds 0.5 % of the patients itself; for
another 0.5 % it holds a record of its own (same KVNR) with an encounter in progress, and the
hospital holding their data has recorded their sharing consent (with its signed form, during
a stay of its own, so that the consent is vouched for). So the clinician sees 1 %: half its
own, half shared.

"Without the filter" are the same searches compiled with the visibility condition left out
(a benchmark-only replacement of `visibility.visible` while their statements are compiled, in a
platform of their own with its own statement cache): what the database and the search code
cost for the same page when nothing is filtered. Both run through `FhirService.search` (the
parameters, the statement, the driver, the audit entry), alternating in rounds; the ratio of
their throughputs is the filter's price (goal: at least 0.8).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import select

from benchmarks import clinical_data as data
from benchmarks.fhir import _analyze, _database
from medicus import migrations
from medicus.access.models import RECORDS
from medicus.app import create_app
from medicus.core.db import utc_now
from medicus.core.logging import configure_logging
from medicus.fhir import search_repository
from medicus.fhir.search import chains, include, query, visibility
from medicus.fhir.search.request import SearchRequest
from medicus.iam.models import OrganisationRow
from medicus.iam.scopes import parse_scopes
from medicus.iam.tokens import Principal, TokenGrant
from medicus.platform import Platform, build_platform
from medicus.settings import Settings

HOSPITALS = 100
CLINICIAN = "h0"
PER_BUNDLE = 50
TOKEN_SECONDS = 120
PRIVACY = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
    ]
}


SPREAD = 199
"""Every 199th patient is h0's, and every 199th (shifted by one) shared with it: a prime, so
that each family name and birth date has patients of both kinds and of other hospitals."""


def holder(number: int) -> str:
    """The hospital holding patient `number`'s data: h0 for 0.5 % of them."""
    return CLINICIAN if number % SPREAD == 0 else f"h{1 + number % (HOSPITALS - 1)}"


def shared(number: int) -> bool:
    """Whether patient `number` is treated by h0 and shares their data with it (0.5 %)."""
    return number % SPREAD == 1


def _patient(number: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": data.KVNR, "value": data.kvnr(number)}],
        "name": [{"family": data.family(number), "given": ["Bench"]}],
        "birthDate": data.birth_date(number),
    }


def _entry(url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": url,
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def _held_entries(number: int) -> list[dict[str, Any]]:
    """What the holding hospital stores of patient `number`."""
    url = f"urn:uuid:00000000-0000-4000-8000-{number:012d}"
    entries = [
        _entry(url, _patient(number)),
        _entry(
            f"urn:uuid:00000000-0000-4000-9000-{number:012d}",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": data.LOINC, "code": "718-7"}]},
                "subject": {"reference": url},
                "valueQuantity": {"value": 13.5, "unit": "g/dL"},
            },
        ),
    ]
    if shared(number):
        consent = {
            "resourceType": "Consent",
            "status": "active",
            "scope": PRIVACY,
            "category": [{"coding": [{"system": data.LOINC, "code": "59284-0"}]}],
            "patient": {"reference": url},
            "provision": {"type": "permit"},
            "sourceAttachment": {"contentType": "application/pdf", "title": "signed form"},
        }
        entries.append(_entry(f"urn:uuid:00000000-0000-4000-d000-{number:012d}", _encounter(url)))
        entries.append(_entry(f"urn:uuid:00000000-0000-4000-a000-{number:012d}", consent))
    return entries


def _encounter(patient_url: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": patient_url},
    }


def _treating_entries(number: int) -> list[dict[str, Any]]:
    """The clinician's hospital's own record of a shared patient, and its encounter."""
    url = f"urn:uuid:00000000-0000-4000-b000-{number:012d}"
    return [
        _entry(url, _patient(number)),
        _entry(f"urn:uuid:00000000-0000-4000-c000-{number:012d}", _encounter(url)),
    ]


def _bundles(patients: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """(hospital, transaction bundle) for all the data, PER_BUNDLE patients a bundle."""
    entries: dict[str, list[dict[str, Any]]] = {}
    for number in range(patients):
        batches = [(holder(number), _held_entries(number))]
        if shared(number):
            batches.append((CLINICIAN, _treating_entries(number)))
        for hospital, new in batches:
            pending = entries.setdefault(hospital, [])
            pending.extend(new)
            if len(pending) >= 2 * PER_BUNDLE:
                yield hospital, {"resourceType": "Bundle", "type": "transaction", "entry": pending}
                entries[hospital] = []
    for hospital, pending in entries.items():
        if pending:
            yield hospital, {"resourceType": "Bundle", "type": "transaction", "entry": pending}


async def _load(platform: Platform, patients: int) -> tuple[int, float]:
    """Store the data through the FHIR API (in process); resources stored and seconds."""
    async with platform.database.transaction() as session:
        session.add_all(
            OrganisationRow(id=f"h{n}", name=f"h{n}", type="hospital", created_at=utc_now())
            for n in range(HOSPITALS)
        )
    tokens: dict[str, tuple[str, float]] = {}
    bundles = _bundles(patients)
    stored = [0]

    async def client(http: httpx.AsyncClient) -> None:
        for hospital, bundle in bundles:
            issued = tokens.get(hospital)
            # Tokens live five minutes: loading a large database takes longer than that.
            if issued is None or time.monotonic() - issued[1] > TOKEN_SECONDS:
                grant = TokenGrant("loader", "service", hospital, None, "bench", "system/*.cruds")
                tokens[hospital] = (
                    await platform.tokens.issue_access_token(grant),
                    time.monotonic(),
                )
            response = await http.post(
                "/fhir",
                content=orjson.dumps(bundle),
                headers={
                    "Authorization": f"Bearer {tokens[hospital][0]}",
                    "Content-Type": "application/fhir+json",
                },
            )
            if response.status_code != 200:
                raise RuntimeError(f"loading failed: {response.text[:500]}")
            stored[0] += len(bundle["entry"])

    began = time.perf_counter()
    transport = httpx.ASGITransport(app=create_app(platform.settings, platform))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as http:
        await asyncio.gather(*(client(http) for _ in range(4)))
    return stored[0], time.perf_counter() - began


def _searches(patients: int) -> dict[str, Callable[[int], SearchRequest]]:
    """Typical searches of the clinician, each a function of a request number: about the
    patients it sees (its own and shared ones, alternately), and broad ones over everyone."""

    def seen(number: int) -> int:
        own = number % 2 == 0
        candidates = patients // SPREAD
        return (number // 2 % candidates) * SPREAD + (0 if own else 1)

    kvnr = f"{data.KVNR}|"
    hb = f"{data.LOINC}|718-7"
    return {
        "patient_by_kvnr": lambda n: SearchRequest(
            "Patient", [("identifier", kvnr + data.kvnr(seen(n)))]
        ),
        "patients_by_name": lambda n: SearchRequest("Patient", [("family", data.family(seen(n)))]),
        "labs_of_patients_by_name": lambda n: SearchRequest(
            "Observation", [("code", hb), ("subject:Patient.family", data.family(seen(n)))]
        ),
        "labs_by_code_first_page": lambda n: SearchRequest("Observation", [("code", hb)]),
        "patients_born_on_a_day": lambda n: SearchRequest(
            "Patient", [("birthdate", data.birth_date(seen(n)))]
        ),
    }


def _clinician() -> Principal:
    scope = "user/*.cruds"
    return Principal(
        "clinician", "user", CLINICIAN, "physician", "bench", parse_scopes(scope), scope, "j", 2**40
    )


@contextlib.contextmanager
def _unfiltered() -> Iterator[None]:
    """Statements compiled inside leave the visibility condition out (benchmark only): the
    searched resources, included ones and those a chain looks into."""
    originals = visibility.visible, query.visible_of_type

    def everything(row: Any, viewer: Any, leading: bool = True) -> list[Any]:
        return [row.deleted.is_(False)]

    def of_type(row: Any, resource_type: str, viewer: Any, start: Any) -> list[Any]:
        return [row.resource_type == resource_type]

    query.visible_of_type = of_type
    for module in (chains, include, search_repository):
        module.visible = everything  # type: ignore[attr-defined]
    try:
        yield
    finally:
        query.visible_of_type = originals[1]
        for module in (chains, include, search_repository):
            module.visible = originals[0]  # type: ignore[attr-defined]


async def _rate(
    platform: Platform, search: Callable[[int], SearchRequest], seconds: float
) -> dict[str, float]:
    """Searches per second from 8 concurrent tasks, and the mean page size."""
    caller, done, sizes = _clinician(), [0], []
    deadline = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        number = offset
        while time.perf_counter() < deadline:
            result = await platform.fhir.service.search(caller, search(number), 20, 0, False)
            sizes.append(len(result.resources))
            done[0] += 1
            number += 8

    began = time.perf_counter()
    await asyncio.gather(*(worker(offset) for offset in range(8)))
    return {
        "searches_per_second": round(done[0] / (time.perf_counter() - began), 1),
        "mean_page_size": round(statistics.fmean(sizes), 1) if sizes else 0.0,
    }


async def _compare(
    filtered: Platform, unfiltered: Platform, patients: int, seconds: float, rounds: int
) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for name, search in _searches(patients).items():
        with _unfiltered():
            await _rate(unfiltered, search, 0.3)  # compiles the unfiltered statements
        await _rate(filtered, search, 0.3)
        runs: dict[str, list[dict[str, float]]] = {"with_filter": [], "without_filter": []}
        for _ in range(rounds):
            runs["with_filter"].append(await _rate(filtered, search, seconds))
            runs["without_filter"].append(await _rate(unfiltered, search, seconds))
        best = {mode: max(r["searches_per_second"] for r in found) for mode, found in runs.items()}
        report[name] = {
            **{mode: found for mode, found in runs.items()},
            "ratio_with_to_without": round(best["with_filter"] / best["without_filter"], 3),
        }
    return report


async def _matching(platform: Platform) -> dict[str, Any]:
    """How long an MPI steward waits for matching candidates: the first page of the whole
    index (every block is read: all patients here share the given name, so each birth
    date's records form a block, which their different KVNRs rule out), and one record's.
    The best of three of each."""
    caller = Principal(
        "steward", "user", "platform", "platform_admin", "bench", parse_scopes(""), "", "j", 2**40
    )
    record = await platform.database.fetch_one(select(RECORDS.c.patient_id).limit(1))
    assert record is not None

    async def best(patient_id: str | None) -> tuple[float, int]:
        times, found = [], 0
        for _ in range(3):
            began = time.perf_counter()
            candidates, _ = await platform.patients.candidates(caller, patient_id, None, 50)
            times.append(time.perf_counter() - began)
            found = len(candidates)
        return round(min(times) * 1000, 1), found

    whole, whole_found = await best(None)
    one, one_found = await best(record[0])
    return {
        "whole_index_first_page_ms": whole,
        "whole_index_candidates": whole_found,
        "one_record_ms": one,
        "one_record_candidates": one_found,
    }


def _settings(data_dir: Path, database_url: str | None) -> Settings:
    # A fixed key: a kept database's signing keys open again when it is reused.
    overrides: dict[str, Any] = {
        "data_dir": data_dir,
        "log_level": "WARNING",
        "secret_key": "benchmark-only-secret-key-not-for-any-deployment",
    }
    if database_url:
        overrides["database_url"] = database_url
    return Settings(**overrides)


async def _run(
    database_url: str | None,
    patients: int,
    seconds: float,
    rounds: int,
    data_dir: Path,
    load: bool = True,
) -> dict[str, Any]:
    settings = _settings(data_dir, database_url)
    filtered = build_platform(settings)
    unfiltered = build_platform(settings)
    loaded: dict[str, Any] = {}
    try:
        await filtered.start_background_work()
        if load:
            stored, load_seconds = await _load(filtered, patients)
            loaded = {
                "resources": stored,
                "load_resources_per_second": round(stored / load_seconds, 1),
            }
            if database_url:
                await _analyze(database_url)
        comparison = await _compare(filtered, unfiltered, patients, seconds, rounds)
        matching = await _matching(filtered)
    finally:
        await filtered.stop_background_work()
        await filtered.close()
        await unfiltered.close()
    return {
        **loaded,
        "searches": comparison,
        "mpi_candidates": matching,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=3.0, help="per measured round")
    parser.add_argument("--rounds", type=int, default=2)
    kept = parser.add_mutually_exclusive_group()
    kept.add_argument(
        "--keep-database", action="store_true", help="keep the PostgreSQL database afterwards"
    )
    kept.add_argument("--reuse-database", help="a PostgreSQL database an earlier run kept")
    arguments = parser.parse_args()
    configure_logging("WARNING", json_lines=False)
    reused = arguments.reuse_database
    with (
        _database(
            arguments.database, arguments.postgres_url, arguments.keep_database, reused
        ) as database_url,
        tempfile.TemporaryDirectory(prefix="medicus-bench-") as folder,
    ):
        data_dir = Path(folder)
        url = database_url or f"sqlite+aiosqlite:///{(data_dir / 'medicus.db').as_posix()}"
        migrations.upgrade(url)
        results = asyncio.run(
            _run(
                url,
                arguments.patients,
                arguments.seconds,
                arguments.rounds,
                data_dir,
                load=reused is None,
            )
        )
    report: dict[str, Any] = {
        "benchmark": "access",
        "database": arguments.database,
        "patients": arguments.patients,
        "visible_to_the_clinician": 0.01,
        **results,
        "goal_ratio": 0.8,
        "cpu_count": os.cpu_count(),
    }
    if (arguments.keep_database or reused) and database_url:
        report["kept_database"] = database_url.rsplit("/", 1)[-1]
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
