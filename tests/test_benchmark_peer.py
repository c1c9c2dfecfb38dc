"""The side-by-side benchmark's own arithmetic: the corpus it loads into both servers, the
server CPU between two samples, and the direction of its ratios."""

from __future__ import annotations

import asyncio

import pytest
from benchmarks import peer_load
from benchmarks.fhir_vs_medplum import ratio_spreads
from benchmarks.peer_corpus import Corpus, ingest_bundle
from benchmarks.peer_server import backend_title, cpu_used


def test_the_corpus_loads_exactly_its_size_with_the_observed_patients_first() -> None:
    corpus = Corpus("t1", 2_000)
    bundles = list(corpus.load_bundles())
    resources = [entry["resource"] for bundle in bundles for entry in bundle["entry"]]  # type: ignore[attr-defined]

    assert len(resources) == corpus.resources == 2_000
    assert sum(r["resourceType"] == "Observation" for r in resources) == corpus.observations
    subjects = [r for r in resources if r["resourceType"] == "Patient"][
        : corpus.patients_with_observations
    ]
    observed = {r["identifier"][0]["value"] for r in subjects}
    assert observed == {f"t1-{n}" for n in range(corpus.patients_with_observations)}


def test_the_corpus_is_the_same_for_every_server_and_spreads_its_birthdates() -> None:
    corpus = Corpus("t1", 20_000)
    assert list(corpus.load_bundles())[5] == list(Corpus("t1", 20_000).load_bundles())[5]
    born = [corpus.patient(n)["birthDate"] for n in range(corpus.patients)]
    recent = sum(str(day) >= "2010-01-01" for day in born) / len(born)
    assert 0.13 < recent < 0.17


def test_put_ingest_uses_the_ids_each_server_allows() -> None:
    bundle = ingest_bundle(Corpus("t1", 100), "r1", "PUT", lambda local: f"org.{local}")
    entries = bundle["entry"]
    assert len(entries) == 250  # type: ignore[arg-type]
    first = entries[0]  # type: ignore[index]
    assert first["request"] == {"method": "PUT", "url": "Patient/org.t1r1p0"}
    assert entries[1]["resource"]["subject"] == {"reference": "Patient/org.t1r1p0"}  # type: ignore[index]


def test_server_cpu_counts_each_process_and_never_goes_negative() -> None:
    before = {1: 10.0, 2: 5.0}
    after = {1: 10.5, 3: 0.25}  # 2 ended, 3 started

    assert cpu_used(before, after) == 0.75
    assert cpu_used(None, after) is None


def test_ratios_above_one_mean_medicus_is_ahead() -> None:
    medicus = {
        "throughput_per_s": 200.0,
        "p50_ms": 5.0,
        "p95_ms": 10.0,
        "server_cpu_ms_per_request": 1.0,
    }
    medplum = {
        "throughput_per_s": 100.0,
        "p50_ms": 10.0,
        "p95_ms": 30.0,
        "server_cpu_ms_per_request": 4.0,
    }
    rounds: list[dict[str, object]] = [{"medicus": {"row": medicus}, "medplum": {"row": medplum}}]

    ratios = ratio_spreads(rounds, ["row"])["row"]

    assert ratios == {
        "throughput": {"median": 2.0, "min": 2.0, "max": 2.0},
        "p50": {"median": 2.0, "min": 2.0, "max": 2.0},
        "p95": {"median": 3.0, "min": 3.0, "max": 3.0},
        "server_cpu_per_request": {"median": 4.0, "min": 4.0, "max": 4.0},
    }


def test_backends_of_a_database_are_found_with_or_without_a_cluster_name() -> None:
    title = backend_title("medicus_peer_1")

    assert title.match("postgres: 15/main: postgres medicus_peer_1 127.0.0.1(34626) idle")
    assert title.match("postgres: medplum medicus_peer_1 [local] SELECT")
    assert not title.match("postgres: 15/main: postgres medicus_peer_10 127.0.0.1(1) idle")
    assert not title.match("postgres: 15/main: checkpointer ")


def test_a_long_load_renews_its_token(monkeypatch: pytest.MonkeyPatch) -> None:
    issued = iter(["first", "second"])
    token = peer_load.RenewedToken(lambda: next(issued))

    assert asyncio.run(token.header()) == {"Authorization": "Bearer first"}
    monkeypatch.setattr(peer_load, "TOKEN_RENEWAL_SECONDS", 0.0)
    assert asyncio.run(token.header()) == {"Authorization": "Bearer second"}
