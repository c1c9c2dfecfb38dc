"""Medplum as a peer: the server that `../shared/peers/medplum/up.sh` started in a work
directory. Its `creds.json` names the base URL and a client of the benchmark project (tokens
by OAuth2 client credentials); its CPU is the node process (with its children), Redis, and
the PostgreSQL backends of the `medplum` database on the kit's cluster (port `PG_PORT` of
`kit.env`, socket in `pg/sock`, trust auth for the superuser there)."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import orjson

from benchmarks.peer_server import (
    CpuSample,
    PeerError,
    PeerServer,
    backend_cpu,
    database_facts,
    pid_from_file,
    run_analyze,
    tree_cpu,
)

ID_NAMESPACE = uuid.UUID("5b0f0e2c-7a43-4c51-9d1e-2f7d6f1f18a0")


class MedplumServer(PeerServer):
    """The running Medplum of a kit work directory (never started or stopped here)."""

    name = "medplum"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        creds_path = workdir / "creds.json"
        try:
            self.creds = orjson.loads(creds_path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as error:
            raise PeerError(
                f"cannot read {creds_path} ({error}); start Medplum with the kit's up.sh "
                "or run with --peer none"
            ) from None
        self.base = str(self.creds["base"]).rstrip("/")
        self.fhir_url = self.base + str(self.creds.get("fhir_path", "/fhir/R4"))
        self.pg_port = int(_kit_env(workdir).get("PG_PORT", "5433"))
        self.node_pid = pid_from_file(workdir / "node.pid")
        self.redis_pid = pid_from_file(workdir / "redis.pid")
        self._check_healthy()

    def _check_healthy(self) -> None:
        try:
            answer = httpx.get(f"{self.base}/healthcheck", timeout=10)
        except httpx.TransportError as error:
            raise PeerError(f"Medplum at {self.base} does not answer: {error}") from None
        if answer.status_code != 200:
            raise PeerError(f"Medplum's /healthcheck answered {answer.status_code}")
        self.version = str(answer.json().get("version", "unknown"))

    def token(self) -> str:
        answer = httpx.post(
            f"{self.base}/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.creds["client_id"],
                "client_secret": self.creds["client_secret"],
            },
            timeout=30,
        )
        if answer.status_code != 200:
            raise PeerError(f"Medplum refused a token: {answer.status_code} {answer.text[:200]}")
        return str(answer.json()["access_token"])

    def client_id(self, local: str) -> str:
        return str(uuid.uuid5(ID_NAMESPACE, local))

    async def analyze(self) -> None:
        await run_analyze(
            host=str(self.workdir / "pg" / "sock"),
            port=self.pg_port,
            user="postgres",
            database="medplum",
        )

    async def database_facts(self) -> dict[str, object]:
        return await database_facts(
            host=str(self.workdir / "pg" / "sock"),
            port=self.pg_port,
            user="postgres",
            database="medplum",
        )

    def cpu_sample(self) -> CpuSample:
        return tree_cpu(self.node_pid) | tree_cpu(self.redis_pid) | backend_cpu("medplum")


def _kit_env(workdir: Path) -> dict[str, str]:
    """The kit's settings (`kit.env`: ports, PostgreSQL binaries)."""
    path = workdir / "kit.env"
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}
