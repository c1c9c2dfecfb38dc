"""medicus and Medplum side by side (issue 18's table): the same corpus loaded into both
(`peer_corpus.py`), then every row run against each server in alternating rounds (ANALYZE of
both databases before each round, the order of the servers swapped every round), and the
ratios printed as JSON: medicus/Medplum throughput, Medplum/medicus p50 and p95 latency and
server CPU per request (above 1 is medicus ahead on every ratio), with min and max over rounds.

    python -m benchmarks.fhir_vs_medplum --medplum-workdir WORKDIR [--resources 20000]
    python -m benchmarks.fhir_vs_medplum --peer none           # medicus only

A large peer can be loaded ahead, once (`--load-only medplum --tag T`), and then measured in
later runs without its load (`--tag T --loaded medplum`): Medplum loads ~250 resources/s, so
1,000,000 resources take it more than an hour.

medicus is this worktree's `medicus serve` (two workers) on a fresh database of the
PostgreSQL server of `--postgres-url`, dropped at the end (also on Ctrl-C), or one already
running (`--medicus-url` with `--medicus-token-cmd`). Medplum is the one the kit
(`../shared/peers/medplum/up.sh`) started in WORKDIR; it is never started or stopped here.
Every search row first checks that both servers count the same results for this run's data.
docs/benchmarks.md says what each row means and lists the last results.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
import orjson

from benchmarks import peer_corpus as corpus_module
from benchmarks.peer_corpus import Corpus
from benchmarks.peer_load import Measurement, WrkLoad, load, transactions, wrk
from benchmarks.peer_medicus import RunningMedicus, StartedMedicus
from benchmarks.peer_medplum import MedplumServer
from benchmarks.peer_server import PeerError, PeerServer, cpu_used

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass
class Server:
    """A peer with what its load left: the ids of the Patients with Observations and of some
    others, in corpus order (the same Patients on every server)."""

    peer: PeerServer
    subjects: list[str] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)
    load: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    corpus: Corpus
    options: argparse.Namespace
    round: int
    run: str
    """New for each run, so that the PUT row creates also on a corpus loaded before."""


Row = Callable[[Server, str, Context], Measurement]


def _wrk_row(paths: Callable[[Server, Context], list[str]]) -> Row:
    def row(server: Server, token: str, context: Context) -> Measurement:
        options = context.options
        work = WrkLoad(paths(server, context), options.seconds, options.connections)
        return wrk(server.peer.fhir_url, token, work, server.peer.cpu_sample)

    return row


def _transaction_row(bundles: Callable[[Server, Context, int], corpus_module.Bundle]) -> Row:
    def row(server: Server, token: str, context: Context) -> Measurement:
        sent = [bundles(server, context, n) for n in range(context.options.repetitions + 1)]
        peer = server.peer
        return asyncio.run(transactions(peer.fhir_url, token, sent, peer.cpu_sample))

    return row


def _create_row(server: Server, token: str, context: Context) -> Measurement:
    patient = context.corpus.patient(4_000_000, f"Tx{context.corpus.tag}")
    options = context.options
    work = WrkLoad(["Patient"], options.seconds, options.connections, body=orjson.dumps(patient))
    return wrk(server.peer.fhir_url, token, work, server.peer.cpu_sample)


def _ingest(method: str) -> Row:
    def bundle(server: Server, context: Context, number: int) -> corpus_module.Bundle:
        key = f"{context.run}r{context.round}{method[1]}{number}"
        return corpus_module.ingest_bundle(context.corpus, key, method, server.peer.client_id)

    return _transaction_row(bundle)


ROWS: dict[str, Row] = {
    "transaction_100_patients": _transaction_row(
        lambda _s, context, _n: corpus_module.patients_bundle(context.corpus, 100)
    ),
    "transaction_1_patient_50_observations": _transaction_row(
        lambda _s, context, _n: corpus_module.patient_with_observations_bundle(context.corpus, 50)
    ),
    "patient_family_wrk": _wrk_row(lambda _s, c: corpus_module.family_searches(c.corpus)),
    "patient_read_wrk": _wrk_row(lambda s, _c: [f"Patient/{id_}" for id_ in s.patients]),
    "observation_subject_code": _wrk_row(
        lambda s, c: corpus_module.subject_code_searches(c.corpus, s.subjects)
    ),
    "patient_create": _create_row,
    "observation_code_date": _wrk_row(lambda _s, _c: corpus_module.code_date_searches()),
    "patient_birthdate": _wrk_row(lambda _s, _c: corpus_module.birthdate_searches()),
    "transaction_250_put": _ingest("PUT"),
    "transaction_250_post": _ingest("POST"),
}
"""Issue 18's rows, in its order; the search rows are also checked by `_count_checks`."""


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _prepare(server: Server, corpus: Corpus, options: argparse.Namespace) -> None:
    """Load the corpus (unless the server holds it already), keep the ids the rows need,
    ANALYZE."""
    peer = server.peer
    if peer.name in options.loaded:
        _find_loaded(server, corpus)
        return
    connections = options.load_connections
    _log(f"{peer.name}: loading {corpus.resources} resources")
    cpu_before = peer.cpu_sample()
    bundles = corpus.load_bundles()
    ids, seconds, errors = asyncio.run(load(peer.fhir_url, peer.token, bundles, connections))
    cpu = cpu_used(cpu_before, peer.cpu_sample())
    if errors:
        raise PeerError(f"{peer.name} refused {len(errors)} load bundles, e.g. {errors[0]}")
    per_subject = 1 + corpus_module.OBSERVATIONS_PER_PATIENT
    subjects = [entry for bundle in ids for entry in bundle[::per_subject]]
    server.subjects = subjects[: corpus.patients_with_observations][:200]
    server.patients = [entry for bundle in ids[-3:] for entry in bundle][:200]
    asyncio.run(peer.analyze())
    database = asyncio.run(peer.database_facts())
    server.load = {
        "seconds": round(seconds, 1),
        "resources_per_s": round(corpus.resources / seconds, 1),
        "server_cpu_ms_per_resource": (
            None if cpu is None else round(cpu * 1000 / corpus.resources, 3)
        ),
        "database_bytes_after_load": database.get("bytes"),
        "postgresql": database.get("postgresql"),
        "version": peer.version,
    }
    _log(f"{peer.name}: loaded in {seconds:.1f} s")


def _find_loaded(server: Server, corpus: Corpus) -> None:
    """The ids the rows need of a corpus loaded by an earlier run, found by the Patients'
    identifiers: the first Patients with Observations, and the last ones of the corpus."""
    peer = server.peer
    _log(f"{peer.name}: holds the corpus of tag {corpus.tag} already; finding its ids")
    auth = {"Authorization": f"Bearer {peer.token()}", "Accept": "application/fhir+json"}
    with httpx.Client(headers=auth, timeout=60) as client:

        def patient_id(number: int) -> str:
            path = corpus_module.patient_search(corpus, number)
            entries = client.get(f"{peer.fhir_url}/{path}").json().get("entry", [])
            if len(entries) != 1:
                raise PeerError(f"{peer.name} does not hold Patient {number} of {corpus.tag}")
            return str(entries[0]["resource"]["id"])

        server.subjects = [
            patient_id(n) for n in range(min(200, corpus.patients_with_observations))
        ]
        server.patients = [patient_id(corpus.patients - 1 - n) for n in range(200)]
    asyncio.run(peer.analyze())
    database = asyncio.run(peer.database_facts())
    server.load = {
        "loaded_before": True,
        "database_bytes_after_load": database.get("bytes"),
        "postgresql": database.get("postgresql"),
        "version": peer.version,
    }


def _count_checks(server: Server, corpus: Corpus) -> dict[str, list[int]]:
    """Total and entries of the first page of some searches of each search row, limited to
    this run's resources (label → [total, entries])."""
    searches = {
        "family": corpus_module.family_searches(corpus)[:3],
        "subject_code": corpus_module.subject_code_searches(corpus, server.subjects[:3]),
        "code_date": corpus_module.code_date_searches()[::10],
        "birthdate": corpus_module.birthdate_searches(),
    }
    peer, answer = server.peer, {}
    auth = {"Authorization": f"Bearer {peer.token()}", "Accept": "application/fhir+json"}
    with httpx.Client(headers=auth, timeout=60) as client:
        for label, paths in searches.items():
            for number, path in enumerate(paths):
                got = client.get(f"{peer.fhir_url}/{corpus_module.counted(corpus, path)}")
                if got.status_code != 200:
                    raise PeerError(f"{peer.name}: {path} answered {got.status_code}")
                bundle = got.json()
                answer[f"{label}[{number}]"] = [bundle.get("total"), len(bundle.get("entry", []))]
    return answer


def _round(servers: list[Server], context: Context, rows: list[str]) -> dict[str, object]:
    """One round: ANALYZE all, then every row on each server in turn."""
    results: dict[str, object] = {}
    for server in servers:
        asyncio.run(server.peer.analyze())
    for server in servers:
        token = server.peer.token()
        measured: dict[str, object] = {}
        for name in rows:
            _log(f"round {context.round}: {server.peer.name} {name}")
            measured[name] = ROWS[name](server, token, context).as_json()
        results[server.peer.name] = measured
    return results


def _ratio(over: dict[str, object], under: dict[str, object], key: str) -> float | None:
    """`over[key] / under[key]`, None where either is missing or the divisor is 0."""
    numerator, denominator = over.get(key), under.get(key)
    if not isinstance(numerator, int | float) or not isinstance(denominator, int | float):
        return None
    return numerator / denominator if denominator else None


def _spread(values: list[float | None]) -> dict[str, float] | None:
    present = [value for value in values if value is not None]
    if not present:
        return None
    return {
        "median": round(statistics.median(present), 2),
        "min": round(min(present), 2),
        "max": round(max(present), 2),
    }


def ratio_spreads(rounds: list[dict[str, object]], rows: list[str]) -> dict[str, object]:
    """Per row, over rounds: medicus/Medplum throughput; Medplum/medicus p50, p95 and server
    CPU per request (so that above 1 means medicus ahead on every line)."""
    ratios: dict[str, object] = {}
    for row in rows:
        pairs = [(r["medicus"][row], r["medplum"][row]) for r in rounds]  # type: ignore[index]
        ratios[row] = {
            "throughput": _spread([_ratio(m, p, "throughput_per_s") for m, p in pairs]),
            "p50": _spread([_ratio(p, m, "p50_ms") for m, p in pairs]),
            "p95": _spread([_ratio(p, m, "p95_ms") for m, p in pairs]),
            "server_cpu_per_request": _spread(
                [_ratio(p, m, "server_cpu_ms_per_request") for m, p in pairs]
            ),
        }
    return ratios


def summary_table(ratios: dict[str, dict[str, dict[str, float] | None]]) -> str:
    """The ratios as a Markdown table (median and min-max over the rounds), for
    docs/benchmarks.md."""
    lines = [
        "| row | throughput | p50 | p95 | server CPU per request |",
        "|---|---|---|---|---|",
    ]
    for row, values in ratios.items():
        cells = []
        for key in ("throughput", "p50", "p95", "server_cpu_per_request"):
            spread = values.get(key)
            cells.append(
                "-"
                if spread is None
                else f"{spread['median']} ({spread['min']} to {spread['max']})"
            )
        lines.append(f"| {row} | {' | '.join(cells)} |")
    return "\n".join(lines)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", choices=["medplum", "none"], default="medplum")
    parser.add_argument(
        "--medplum-workdir",
        type=Path,
        default=os.environ.get("MEDPLUM_WORKDIR"),
        help="the kit's WORKDIR (creds.json, pid files) [MEDPLUM_WORKDIR]",
    )
    parser.add_argument("--medicus-url", help="an already running medicus (its root URL)")
    parser.add_argument("--medicus-token-cmd", help="shell command printing a medicus token")
    parser.add_argument("--medicus-database-dsn", help="its database (for ANALYZE and size)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="server on which a fresh medicus database is created [TEST_POSTGRES_URL]",
    )
    parser.add_argument("--workers", type=int, default=2, help="medicus server processes")
    parser.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    parser.add_argument("--resources", type=int, default=20_000, help="corpus size")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="each wrk row's duration")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--repetitions", type=int, default=5, help="bundles per transaction row")
    parser.add_argument("--load-connections", type=int, default=4)
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated subset of rows")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--tag", help="the corpus's tag (default: a new one)")
    parser.add_argument(
        "--loaded",
        default="",
        help="comma-separated servers that hold the corpus of --tag already (not loaded again)",
    )
    parser.add_argument(
        "--load-only",
        choices=["medicus", "medplum"],
        help="load the corpus into this server only, print its load facts and stop",
    )
    options = parser.parse_args()
    options.loaded = {name for name in options.loaded.split(",") if name}
    if (options.loaded or options.load_only) and not options.tag:
        parser.error("--loaded and --load-only need --tag (the corpus to find again)")
    unknown = set(options.rows.split(",")) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; rows are {list(ROWS)}")
    if options.peer == "medplum" and options.medplum_workdir is None:
        parser.error("--medplum-workdir (or MEDPLUM_WORKDIR) is needed, or --peer none")
    if bool(options.medicus_url) != bool(options.medicus_token_cmd):
        parser.error("--medicus-url and --medicus-token-cmd go together")
    return options


def _peers(options: argparse.Namespace, stack: ExitStack) -> list[PeerServer]:
    """medicus, then Medplum (if asked for); Medplum is checked first, as it costs nothing."""
    medplum = [MedplumServer(options.medplum_workdir)] if options.peer == "medplum" else []
    if options.load_only == "medplum":
        return medplum
    medicus: PeerServer
    if options.medicus_url:
        medicus = RunningMedicus(
            options.medicus_url, options.medicus_token_cmd, options.medicus_database_dsn
        )
    else:
        _log(f"starting medicus ({options.workers} workers) on a fresh database")
        started = StartedMedicus(options.postgres_url, options.workers, options.keep_database)
        stack.callback(started.close)
        medicus = started
    return [medicus] if options.load_only == "medicus" else [medicus, *medplum]


def _failed_requests(rounds: list[dict[str, dict[str, dict[str, object]]]]) -> int:
    return sum(
        int(str(row.get("errors", 0)))
        for servers in rounds
        for rows in servers.values()
        for row in rows.values()
    )


def _stop_on_sigterm(_signal: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(options: argparse.Namespace) -> dict[str, object]:
    """Prepare both servers, check their counts, run the rounds; the report."""
    corpus = Corpus(options.tag or f"q{uuid.uuid4().hex[:6]}", options.resources)
    rows = options.rows.split(",")
    load_before = os.getloadavg()[1]
    with ExitStack() as stack:
        servers = [Server(peer) for peer in _peers(options, stack)]
        for server in servers:
            _prepare(server, corpus, options)
        if options.load_only:
            return {"benchmark": "fhir_vs_medplum", "tag": corpus.tag, "load": servers[0].load}
        counts = {server.peer.name: _count_checks(server, corpus) for server in servers}
        rounds, run = [], uuid.uuid4().hex[:6]
        for number in range(options.rounds):
            order = servers if number % 2 == 0 else servers[::-1]
            rounds.append(_round(order, Context(corpus, options, number + 1, run), rows))
    report: dict[str, object] = {
        "benchmark": "fhir_vs_medplum",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_5min": {"start": load_before, "end": os.getloadavg()[1]},
        },
        "corpus": {
            "tag": corpus.tag,
            "resources": corpus.resources,
            "patients": corpus.patients,
            "observations": corpus.observations,
        },
        "load": {server.peer.name: server.load for server in servers},
        "counts": counts,
        "rounds": rounds,
    }
    if len(servers) == 2:
        medicus_counts, medplum_counts = counts["medicus"], counts["medplum"]
        report["counts_equal"] = medicus_counts == medplum_counts
        report["ratios"] = ratio_spreads(rounds, rows)
    return report


def main() -> None:
    options = _parse()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        report = run(options)
    except PeerError as error:
        sys.exit(f"fhir_vs_medplum: {error}")
    except KeyboardInterrupt:
        sys.exit("fhir_vs_medplum: interrupted; the medicus database and server were removed")
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    if options.out:
        options.out.write_text(text + "\n")
    print(text)
    if "ratios" in report:
        print(summary_table(report["ratios"]), file=sys.stderr)  # type: ignore[arg-type]
    failed = _failed_requests(report.get("rounds", []))  # type: ignore[arg-type]
    if failed:
        print(f"fhir_vs_medplum: {failed} requests failed (see `errors` per row)", file=sys.stderr)
    if report.get("counts_equal") is False:
        sys.exit("fhir_vs_medplum: the servers counted different results (see counts)")


if __name__ == "__main__":
    main()
