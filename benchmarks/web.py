"""The portal's patient chart against the FHIR API's `$everything` for the same patient, side by
side in one run: a patient with 1,000 laboratory values (nine codes) and 50 documents; the chart
page (`GET /portal/patients/{id}`, a logged-in physician's session) and the whole `$everything`
of the patient (every page of it, as one call) from the same number of clients, in alternating
rounds. Prints JSON: pages/s and p50/p95 of each, and the page's rate over the API's.

    python -m benchmarks.web [--clients 1,4] [--workers 2] [--seconds 10] [--rounds 3]

The server is `medicus serve` on the embedded SQLite default with two workers; each client
count is measured on its own (1: one clinician's latency; 4: a ward's load). Issue 19's goal:
the page at ≥ 50 % of the API's rate, its p95 ≤ 150 ms on two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

from benchmarks.harness import LoadResult, Request, drive, running_server
from medicus.iam.roles import MfaPolicy, OrganisationType, Role
from medicus.iam.tokens import TokenGrant
from medicus.platform import build_platform
from medicus.settings import load_settings

EMAIL = "bench.physician@bench-hospital.example"
PASSWORD = "bench portal passphrase 2026"
LOINC = "http://loinc.org"
CODES = ("718-7", "2160-0", "2345-7", "2951-2", "2823-3", "6690-2", "777-3", "789-8", "1742-6")


async def _prepare(url: str, data_dir: str) -> tuple[str, str]:
    """A hospital without a second-factor policy (the benchmark logs in by password), its
    physician, and a FHIR token for loading; the organisation id and the token."""
    settings = load_settings(data_dir=Path(data_dir), public_url=url)
    platform = build_platform(settings)
    try:
        identity = platform.identity
        async with platform.database.transaction() as session:
            organisation = await identity.create_organisation(
                session,
                "system:bench",
                "Bench Hospital",
                OrganisationType.HOSPITAL,
                "269999999",
                None,
                MfaPolicy.NONE,
            )
            user = await identity.ensure_user(session, "system:bench", EMAIL, "Dr. Bench")
            await identity.ensure_membership(
                session, "system:bench", user.id, organisation, Role.PHYSICIAN
            )
            await identity.set_password(session, "system:bench", user.id, PASSWORD)
        grant = TokenGrant("bench", "user", organisation, "physician", "bench", "user/*.cruds")
        return organisation, await platform.tokens.issue_access_token(grant)
    finally:
        await platform.close()


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    url = f"{resource['resourceType']}/{resource['id']}"
    return {"fullUrl": url, "resource": resource, "request": {"method": "PUT", "url": url}}


def _patient_data(patient: str) -> list[dict[str, Any]]:
    """The patient, 1,000 lab values over three years, 50 documents."""
    subject = {"reference": f"Patient/{patient}"}
    first = dt.datetime(2023, 1, 1, 8, tzinfo=dt.UTC)
    resources: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": patient,
            "name": [{"family": "Bench", "given": ["Paula"]}],
            "birthDate": "1950-01-01",
        }
    ]
    for number in range(1000):
        code = CODES[number % len(CODES)]
        resources.append(
            {
                "resourceType": "Observation",
                "id": f"{patient}-lab-{number}",
                "status": "final",
                "code": {"coding": [{"system": LOINC, "code": code, "display": f"Lab {code}"}]},
                "subject": subject,
                "effectiveDateTime": (first + dt.timedelta(hours=26 * number)).isoformat(),
                "valueQuantity": {"value": 10 + (number * 7) % 13, "unit": "mg/dL"},
                "referenceRange": [{"low": {"value": 11}, "high": {"value": 20}}],
            }
        )
    for number in range(50):
        resources.append(
            {
                "resourceType": "DocumentReference",
                "id": f"{patient}-doc-{number}",
                "status": "current",
                "type": {"text": f"Befund {number}"},
                "subject": subject,
                "date": (first + dt.timedelta(days=20 * number)).isoformat(),
                "content": [{"attachment": {"contentType": "application/pdf", "title": "Befund"}}],
            }
        )
    return resources


def _load(url: str, token: str, resources: list[dict[str, Any]]) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    for start in range(0, len(resources), 250):
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [_entry(r) for r in resources[start : start + 250]],
        }
        answer = httpx.post(
            f"{url}/fhir", content=orjson.dumps(bundle), headers=headers, timeout=120
        )
        answer.raise_for_status()


def _session_cookie(url: str) -> str:
    """Log in through the login page; the session cookie's value."""
    with httpx.Client(base_url=url) as browser:
        page = browser.get("/login", params={"next": "/portal"})
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None, page.text[:500]
        fields = {"email": EMAIL, "password": PASSWORD, "csrf": csrf.group(1), "next": "/portal"}
        answer = browser.post("/login", data=fields)
        assert answer.status_code == 303, answer.text[:500]
        return str(browser.cookies["medicus_session"])


def _chart(patient: str, cookie: str) -> Request:
    async def request(client: aiohttp.ClientSession, _number: int) -> int:
        headers = {"Cookie": f"medicus_session={cookie}", "Accept-Language": "de"}
        async with client.get(f"/portal/patients/{patient}", headers=headers) as response:
            await response.read()
            return response.status

    return request


def _everything(patient: str, token: str) -> Request:
    """Every page of the patient's `$everything`, as one call."""

    async def request(client: aiohttp.ClientSession, _number: int) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        path: str | None = f"/fhir/Patient/{patient}/$everything?_count=1000"
        while path:
            async with client.get(path, headers=headers) as response:
                if response.status != 200:
                    return response.status
                bundle = orjson.loads(await response.read())
            following = [
                link["url"] for link in bundle.get("link", []) if link["relation"] == "next"
            ]
            path = following[0].split("/fhir", 1)[1] if following else None
            path = f"/fhir{path}" if path else None
        return 200

    return request


def _rounds(
    url: str, patient: str, cookie: str, token: str, clients: int, arguments: argparse.Namespace
) -> dict[str, object]:
    """Chart and `$everything` from `clients` clients in alternating rounds."""
    rounds: list[dict[str, LoadResult]] = []
    for number in range(arguments.rounds):
        measured: dict[str, LoadResult] = {}
        order = [("chart", _chart(patient, cookie)), ("everything", _everything(patient, token))]
        for name, request in order if number % 2 == 0 else order[::-1]:
            measured[name] = asyncio.run(drive(url, request, clients, arguments.seconds))
        rounds.append(measured)
    ratios = [r["chart"].requests_per_second / r["everything"].requests_per_second for r in rounds]
    return {
        "rounds": [{name: result.as_json() for name, result in r.items()} for r in rounds],
        "chart_to_everything": [round(ratio, 3) for ratio in ratios],
        "chart_to_everything_median": round(sorted(ratios)[len(ratios) // 2], 3),
        "chart_p95_ms": [round(r["chart"].p95_ms, 1) for r in rounds],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", default="1,4", help="client counts, each measured")
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    counts = [int(count) for count in arguments.clients.split(",")]
    with running_server({"MEDICUS_WORKERS": str(arguments.workers)}) as (url, data_dir):
        organisation, token = asyncio.run(_prepare(url, data_dir))
        patient = f"{organisation}.bench-patient"
        _load(url, token, _patient_data(patient))
        cookie = _session_cookie(url)
        results = {
            count: _rounds(url, patient, cookie, token, count, arguments) for count in counts
        }
    report = {
        "benchmark": "web",
        "patient": {"observations": 1000, "documents": 50},
        "server_workers": arguments.workers,
        "cpu_count": os.cpu_count(),
        "by_clients": {str(count): rounds for count, rounds in results.items()},
        "goals": {"chart_to_everything": 0.5, "chart_p95_ms": 150},
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
