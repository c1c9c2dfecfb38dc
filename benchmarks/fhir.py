"""FHIR hub at scale, measured side by side in one run against the `/healthz` baseline of the
same server: ingest through transaction bundles (resources/s), creates/s and reads/s with
p50/p99, and p50/p95 of twelve typical clinical searches at each database size, so that the
growth of their cost with the size of the database shows. Each search is measured from one
client (its latency) and from `--concurrency` clients at once (latency under load, where it
waits for the others on a machine with few cores). Prints JSON.

    python -m benchmarks.fhir [--database sqlite|postgresql] [--sizes 100000,1000000]

PostgreSQL runs get a fresh database on the server of `--postgres-url` (dropped afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import orjson
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from benchmarks import clinical_data as data
from benchmarks.harness import LoadResult, Request, drive, healthz, running_server
from medicus.iam.tokens import TokenGrant
from medicus.platform import build_platform
from medicus.settings import load_settings

RESOURCES_PER_PATIENT = 38


async def _token(url: str, data_dir: str, database_url: str | None) -> str:
    """An access token of the longest lifetime allowed (1 h); phases renew it (`_renew`)."""
    overrides: dict[str, object] = {"access_token_seconds": 3600}
    if database_url:
        overrides["database_url"] = database_url
    platform = build_platform(load_settings(data_dir=Path(data_dir), public_url=url, **overrides))
    try:
        grant = TokenGrant("bench", "user", "bench-hospital", "physician", "bench", "user/*.cruds")
        return await platform.tokens.issue_access_token(grant)
    finally:
        await platform.close()


async def _admin(admin_url: str, statement: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def _analyze(database_url: str) -> None:
    """Fresh statistics after a bulk load, as an operator runs ANALYZE after one (autovacuum
    would, later): without them PostgreSQL plans a patient's labs as a scan of all labs."""
    await _admin(database_url, "ANALYZE")


@contextmanager
def _database(
    kind: str, postgres_url: str, keep: bool, reused: str | None = None
) -> Iterator[str | None]:
    """None (the embedded SQLite default) or the URL of a fresh PostgreSQL database, dropped
    afterwards unless `keep` (to look at query plans on the loaded data); or of the kept
    database `reused`, which is kept again."""
    if kind == "sqlite":
        yield None
        return
    admin = make_url(postgres_url).set(drivername="postgresql+asyncpg")
    if reused is not None:
        yield admin.set(database=reused).render_as_string(hide_password=False)
        return
    name = f"medicus_bench_{uuid.uuid4().hex[:10]}"
    server = admin.render_as_string(hide_password=False)
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            asyncio.run(_admin(server, f'DROP DATABASE "{name}" WITH (FORCE)'))


async def _ingest(
    url: str, headers: dict[str, str], first: int, last: int, clients: int, patient_ids: list[str]
) -> tuple[int, float, int]:
    """Load patients `first`..`last` - 1 as transaction bundles from `clients` connections;
    returns resources stored, seconds, and failed bundles."""
    numbers = iter(range(first, last))
    stored, failures = [0], [0]

    async def client(session: aiohttp.ClientSession) -> None:
        for number in numbers:
            body = orjson.dumps(data.patient_bundle(number))
            async with session.post("/fhir", data=body, headers=headers) as response:
                answer = await response.read()
                if response.status != 200:
                    failures[0] += 1
                    continue
            entries = orjson.loads(answer)["entry"]
            stored[0] += len(entries)
            patient_ids[number] = entries[0]["response"]["location"].split("/")[1]

    timeout = aiohttp.ClientTimeout(total=600)
    began = time.perf_counter()
    async with aiohttp.ClientSession(url, timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return stored[0], time.perf_counter() - began, failures[0]


def _searches(patients: int, ids: list[str]) -> dict[str, Callable[[int], str]]:
    """Twelve typical clinical searches, each a function of a random patient number."""

    def pick(number: int) -> int:
        return random.Random(number).randrange(patients)

    def subject(number: int) -> str:
        return f"Patient/{ids[pick(number)]}"

    def day(number: int) -> str:
        return data.admission(pick(number), 0).isoformat()

    hb = f"{data.LOINC}|718-7"
    return {
        "patient_by_kvnr": lambda n: f"Patient?identifier={data.KVNR}|{data.kvnr(pick(n))}",
        "patient_by_name_and_birthdate": lambda n: (
            f"Patient?family={data.family(pick(n))}&birthdate={data.birth_date(pick(n))}"
        ),
        "labs_of_patient_by_loinc": lambda n: f"Observation?subject={subject(n)}&code={hb}",
        "labs_by_loinc_and_date_range": lambda n: (
            f"Observation?subject={subject(n)}&code={hb}&date=ge{day(n)}&date=lt2027-01-01"
        ),
        "labs_by_loinc_since": lambda n: f"Observation?code={hb}&date=ge{day(n)}&_count=20",
        "patients_born_since": lambda n: (
            f"Patient?birthdate=ge{data.birth_date(pick(n))}&_count=20"
        ),
        "encounters_of_a_day": lambda n: f"Encounter?date={day(n)}&_count=50",
        "encounter_by_case_number": lambda n: (
            f"Encounter?identifier={data.CASE_NUMBER}|F{pick(n)}-0"
        ),
        "conditions_by_icd10gm": lambda n: (
            f"Condition?code={data.ICD10GM}|{data.DIAGNOSES[n % 8]}&subject={subject(n)}"
        ),
        "active_conditions_of_patient": lambda n: (
            f"Condition?patient={subject(n)}&clinical-status=active"
        ),
        "labs_with_include_patient": lambda n: (
            f"Observation?subject={subject(n)}&code={hb}&_include=Observation:subject"
        ),
        "patient_with_revinclude_encounters": lambda n: (
            f"Patient?identifier={data.KVNR}|{data.kvnr(pick(n))}&_revinclude=Encounter:subject"
        ),
    }


def _get(path_of: Callable[[int], str], headers: dict[str, str]) -> Request:
    async def request(client: aiohttp.ClientSession, number: int) -> int:
        async with client.get(f"/fhir/{path_of(number)}", headers=headers) as response:
            await response.read()
            return response.status

    return request


def _load(url: str, request: Request, concurrency: int, seconds: float) -> LoadResult:
    return asyncio.run(drive(url, request, concurrency, seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--sizes", default="100000,1000000", help="database sizes (resources)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measured phase")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--ingest-clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument(
        "--keep-database", action="store_true", help="keep the PostgreSQL database afterwards"
    )
    arguments = parser.parse_args()
    sizes = sorted(int(size) for size in arguments.sizes.split(","))
    report: dict[str, object] = {
        "benchmark": "fhir",
        "database": arguments.database,
        "server_workers": arguments.workers,
    }
    with (
        _database(
            arguments.database, arguments.postgres_url, arguments.keep_database
        ) as database_url,
        running_server(_server_environment(database_url, arguments.workers)) as (
            url,
            data_dir,
        ),
    ):
        if arguments.keep_database and database_url:
            report["kept_database"] = make_url(database_url).database
        headers = {"Content-Type": "application/fhir+json"}

        def renew() -> None:
            """A fresh token before each phase: a 1M run outlasts any one token."""
            token = asyncio.run(_token(url, data_dir, database_url))
            headers["Authorization"] = f"Bearer {token}"

        patient_ids: list[str] = [""] * (sizes[-1] // RESOURCES_PER_PATIENT + 1)
        loaded, ingest = 0, []
        searches: Searches = {}
        for size in sizes:
            patients = size // RESOURCES_PER_PATIENT
            renew()
            stored, seconds, failed = asyncio.run(
                _ingest(url, headers, loaded, patients, arguments.ingest_clients, patient_ids)
            )
            loaded = patients
            if database_url:
                asyncio.run(_analyze(database_url))
            ingest.append(
                {
                    "up_to_resources": patients * RESOURCES_PER_PATIENT,
                    "resources": stored,
                    "failed_bundles": failed,
                    "resources_per_second": round(stored / seconds, 1),
                }
            )
            renew()
            searches[str(size)] = {
                name: {
                    f"clients_{clients}": _load(
                        url, _get(path, headers), clients, arguments.seconds
                    ).as_json()
                    for clients in (1, arguments.concurrency)
                }
                for name, path in _searches(patients, patient_ids).items()
            }
        renew()
        baseline = _load(url, healthz, arguments.concurrency, arguments.seconds)
        reads = _load(
            url,
            _get(lambda n: f"Patient/{patient_ids[n % loaded]}", headers),
            arguments.concurrency,
            arguments.seconds,
        )
        creates = _load(url, _create(headers), arguments.concurrency, arguments.seconds)
    report.update(
        {
            "ingest_transactions": ingest,
            "baseline_healthz": baseline.as_json(),
            "read_patient": reads.as_json(),
            "create_observation": creates.as_json(),
            "read_to_baseline": round(reads.requests_per_second / baseline.requests_per_second, 3),
            "create_to_baseline": round(
                creates.requests_per_second / baseline.requests_per_second, 3
            ),
            "searches_by_size": searches,
            "p50_growth_largest_to_smallest": _growth(searches, sizes, "p50_ms"),
            "p95_growth_largest_to_smallest": _growth(searches, sizes, "p95_ms"),
            "goals": {
                "ingest_resources_per_second": 5000,
                "read_to_baseline": 0.7,
                "search_p95_ms": 30,
                "p95_growth": 1.5,
            },
            "cpu_count": os.cpu_count(),
        }
    )
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


def _server_environment(database_url: str | None, workers: int) -> dict[str, str]:
    """PostgreSQL databases are migrated by the server at start (SQLite's default does so)."""
    environment = {"MEDICUS_WORKERS": str(workers)}
    if database_url is not None:
        environment.update({"MEDICUS_DATABASE_URL": database_url, "MEDICUS_AUTO_MIGRATE": "true"})
    return environment


def _create(headers: dict[str, str]) -> Request:
    async def request(client: aiohttp.ClientSession, number: int) -> int:
        observation = data.patient_bundle(number, labs_per_stay=1)["entry"][2]["resource"]
        observation["subject"] = {"reference": f"Patient/bench-{number}"}
        observation.pop("encounter")
        async with client.post(
            "/fhir/Observation", data=orjson.dumps(observation), headers=headers
        ) as response:
            await response.read()
            return response.status

    return request


Searches = dict[str, dict[str, dict[str, dict[str, float | int]]]]
"""size → search → `clients_N` → measurements."""


def _growth(searches: Searches, sizes: list[int], percentile: str) -> object:
    """A percentile (`p50_ms`, `p95_ms`) at the largest size over the same at the smallest,
    per search and client count. The p50 ratio is the steadier one: a p95 of a few
    milliseconds over a few seconds moves with a handful of slow samples."""
    if len(sizes) < 2:
        return None
    small, large = searches[str(sizes[0])], searches[str(sizes[-1])]
    return {
        name: {
            clients: round(
                float(large[name][clients][percentile])
                / max(float(small[name][clients][percentile]), 0.001),
                2,
            )
            for clients in small[name]
        }
        for name in small
    }


if __name__ == "__main__":
    main()
