"""What the side-by-side benchmark needs of a FHIR server (`PeerServer`), and the CPU of a
server's processes read from /proc (never touching them): a process tree by its root pid, and
the PostgreSQL backends that serve one database, found by their process titles
(`postgres: [CLUSTER: ]USER DATABASE HOST(PORT) STATE`), whatever cluster they belong to."""

from __future__ import annotations

import base64
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import orjson

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

CpuSample = dict[int, float]
"""CPU seconds (user and system) of processes by pid, at one moment."""


class PeerError(RuntimeError):
    """A server cannot take part in the benchmark; the message says why and what to do."""


class PeerServer(ABC):
    """One FHIR server under test."""

    name: str
    fhir_url: str
    """The FHIR base URL, e.g. http://127.0.0.1:8103/fhir/R4."""

    @abstractmethod
    def token(self) -> str:
        """A fresh bearer token (each round asks again: tokens last at most an hour)."""

    @abstractmethod
    def client_id(self, local: str) -> str:
        """The id a client may choose for a resource it creates by PUT (each server has its
        own rule: medicus a namespace per organisation, Medplum UUIDs)."""

    @abstractmethod
    async def analyze(self) -> None:
        """ANALYZE the server's database, so that plans see the rows just loaded."""

    version: str
    """The server's version (and commit, where known)."""

    @abstractmethod
    async def database_facts(self) -> dict[str, object]:
        """The size of the server's database and its PostgreSQL version (`database_facts`),
        or nothing where they cannot be seen."""

    @abstractmethod
    def cpu_sample(self) -> CpuSample | None:
        """CPU seconds used so far by each of the server's processes and its database
        backends, or None where they cannot be seen (a server started elsewhere)."""


def token_claims(token: str) -> dict[str, object]:
    """The claims of a JWT, unverified (to read the organisation of medicus's tokens)."""
    payload = token.split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if not isinstance(claims, dict):
        raise PeerError("the access token's payload is not a JSON object")
    return claims


async def run_analyze(**connect: object) -> None:
    """ANALYZE one database, given asyncpg's connection arguments."""
    connection = await asyncpg.connect(**connect)
    try:
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


async def database_facts(**connect: object) -> dict[str, object]:
    """The size of one database and its server's version, given asyncpg's connection
    arguments."""
    connection = await asyncpg.connect(**connect)
    try:
        size = await connection.fetchval("SELECT pg_database_size(current_database())")
        version = await connection.fetchval("SHOW server_version")
    finally:
        await connection.close()
    return {"bytes": int(size), "postgresql": str(version)}


def _processes() -> Iterator[tuple[int, int, float]]:
    """(pid, parent pid, CPU seconds) of every process we can read."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        yield int(entry), int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu(root: int) -> CpuSample:
    """CPU seconds of the live process `root` and of each of its descendants."""
    children: dict[int, list[int]] = {}
    cpu: CpuSample = {}
    for pid, parent, seconds in _processes():
        children.setdefault(parent, []).append(pid)
        cpu[pid] = seconds
    sample: CpuSample = {}
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in cpu:
            sample[pid] = cpu[pid]
        stack.extend(children.get(pid, []))
    return sample


def backend_title(database: str) -> re.Pattern[str]:
    """The process title of a backend connected to `database`; a cluster with a
    `cluster_name` (Debian's `15/main`) puts it first."""
    return re.compile(rf"^postgres: (?:\S+: )?\S+ {re.escape(database)} ")


def backend_cpu(database: str) -> CpuSample:
    """CPU seconds of each live PostgreSQL backend connected to `database`."""
    title = backend_title(database)
    sample: CpuSample = {}
    for pid, _parent, seconds in _processes():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        if title.match(command):
            sample[pid] = seconds
    return sample


def cpu_used(before: CpuSample | None, after: CpuSample | None) -> float | None:
    """CPU seconds the processes used between two samples. A process that ended in between
    is missed (its last part is not seen), one that started is counted whole: pooled
    connections make both rare; a plain difference of sums would go negative instead."""
    if before is None or after is None:
        return None
    return sum(max(0.0, seconds - before.get(pid, 0.0)) for pid, seconds in after.items())


def pid_from_file(path: Path) -> int:
    """The pid on the first line of a pid file, if that process runs."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError) as error:
        raise PeerError(f"cannot read a pid from {path}: {error}") from None
    if not Path(f"/proc/{pid}").exists():
        raise PeerError(f"the process of {path} (pid {pid}) does not run")
    return pid
