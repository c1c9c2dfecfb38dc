"""medicus as a peer. `StartedMedicus` runs `medicus serve` of the code this benchmark runs in
(two workers by default) on a fresh PostgreSQL database, which it creates, migrates
(`medicus migrate`), provisions (`medicus demo`: a hospital and its backend client) and drops
on close; tokens come the way docs/identity.md tells an operator: `medicus admin token
--client ID`. `RunningMedicus` is one started elsewhere (`--medicus-url`), with the shell
command that prints a token (`--medicus-token-cmd`); its CPU is not seen."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from importlib import metadata
from pathlib import Path

import asyncpg
from sqlalchemy import make_url

from benchmarks.harness import free_port, wait_ready
from benchmarks.peer_server import (
    CpuSample,
    PeerError,
    PeerServer,
    backend_cpu,
    database_facts,
    run_analyze,
    token_claims,
    tree_cpu,
)


class _Medicus(PeerServer):
    name = "medicus"
    version = "unknown"
    _organisation = ""

    def client_id(self, local: str) -> str:
        """Client-assigned ids live in the caller organisation's namespace (docs/fhir.md)."""
        if not self._organisation:
            self._organisation = str(token_claims(self.token())["org"])
        return f"{self._organisation}.{local}"


class StartedMedicus(_Medicus):
    """A `medicus serve` of this worktree on a fresh database of `postgres_url`'s server."""

    def __init__(self, postgres_url: str, workers: int, keep_database: bool = False) -> None:
        self.version = _worktree_version()
        self.admin = make_url(postgres_url)
        self.database = f"medicus_peer_{uuid.uuid4().hex[:10]}"
        self.keep_database = keep_database
        self.data_dir = Path(tempfile.mkdtemp(prefix="medicus-peer-"))
        port = free_port()
        self.fhir_url = f"http://127.0.0.1:{port}/fhir"
        self.environment = {k: v for k, v in os.environ.items() if not k.startswith("MEDICUS_")}
        self.environment.update(
            {
                "MEDICUS_DATA_DIR": str(self.data_dir),
                "MEDICUS_DATABASE_URL": self.admin.set(database=self.database).render_as_string(
                    hide_password=False
                ),
                "MEDICUS_PORT": str(port),
                "MEDICUS_WORKERS": str(workers),
                "MEDICUS_ACCESS_TOKEN_SECONDS": "3600",
            }
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.created = False
        try:
            self._start(port)
        except BaseException:
            self.close()
            raise

    def _start(self, port: int) -> None:
        asyncio.run(self._admin(f'CREATE DATABASE "{self.database}"'))
        self.created = True
        self._medicus("migrate")
        self._medicus("demo")
        keys = sorted((self.data_dir / "keys" / "clients").glob("*.jwk"))
        if not keys:
            raise PeerError("`medicus demo` left no backend client key in the data directory")
        self.client = keys[0].stem
        self.log = (self.data_dir / "serve.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "medicus", "serve"],
            env=self.environment,
            cwd=self.data_dir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_ready(f"http://127.0.0.1:{port}", self.process)
        except RuntimeError as error:
            tail = (self.data_dir / "serve.log").read_text(errors="replace")[-2000:]
            raise PeerError(f"{error}; its log ends with:\n{tail}") from None

    def _medicus(self, *arguments: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "medicus", *arguments],
            env=self.environment,
            cwd=self.data_dir,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            command = " ".join(arguments)
            raise PeerError(f"`medicus {command}` failed: {done.stderr.strip()[-2000:]}")
        return done.stdout.strip()

    async def _admin(self, statement: str) -> None:
        connection = await asyncpg.connect(self._dsn(self.admin.database or "postgres"))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    def _dsn(self, database: str) -> str:
        url = self.admin.set(drivername="postgresql", database=database)
        return url.render_as_string(hide_password=False)

    def token(self) -> str:
        return self._medicus("admin", "token", "--client", self.client)

    async def analyze(self) -> None:
        await run_analyze(dsn=self._dsn(self.database))

    async def database_facts(self) -> dict[str, object]:
        return await database_facts(dsn=self._dsn(self.database))

    def cpu_sample(self) -> CpuSample | None:
        if self.process is None:
            return None
        return tree_cpu(self.process.pid) | backend_cpu(self.database)

    def close(self) -> None:
        """Stop the server (its whole process group: the workers too), drop the database."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None
        if self.created and not self.keep_database:
            asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
            self.created = False
        shutil.rmtree(self.data_dir, ignore_errors=True)


class RunningMedicus(_Medicus):
    """A medicus started elsewhere; ANALYZE needs `database_dsn` (else it is skipped)."""

    def __init__(self, url: str, token_command: str, database_dsn: str | None) -> None:
        self.fhir_url = url.rstrip("/") + ("" if url.rstrip("/").endswith("/fhir") else "/fhir")
        self.token_command = token_command
        self.database_dsn = database_dsn

    def token(self) -> str:
        done = subprocess.run(
            self.token_command, shell=True, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0 or not done.stdout.strip():
            raise PeerError(f"--medicus-token-cmd failed: {done.stderr.strip()[-500:]}")
        return done.stdout.strip().splitlines()[-1]

    async def analyze(self) -> None:
        if self.database_dsn:
            await run_analyze(dsn=self.database_dsn)

    async def database_facts(self) -> dict[str, object]:
        return await database_facts(dsn=self.database_dsn) if self.database_dsn else {}

    def cpu_sample(self) -> CpuSample | None:
        return None


def _worktree_version() -> str:
    """medicus's version and the commit of the worktree this benchmark runs in."""
    root = Path(__file__).resolve().parent.parent
    commit = subprocess.run(
        ["git", "-C", str(root), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{metadata.version('medicus')} ({commit or 'no git'})"
