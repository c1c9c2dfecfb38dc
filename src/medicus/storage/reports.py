"""What the operator's storage commands report (`maintenance`, `migration`): plain data, shown
by the CLI as text or JSON."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

MISSING = "missing"
WRONG_SIZE = "wrong size"
DAMAGED = "damaged"
UNREACHABLE = "unreachable"
NOT_COPIED = "not yet copied"
MARKED_CORRUPT = "awaiting repair"
UNCONFIGURED = "backend not configured"
TOO_FEW = "too few replicas"
FAILED = "failed"

Progress = Callable[[int, int], None]
"""Told (done, total) as a command goes along."""


def no_progress(done: int, total: int) -> None:
    """A command's progress, when nobody watches it."""


class MaintenanceError(Exception):
    """A command cannot run as asked; the message is one sentence for the operator."""


@dataclass(frozen=True)
class BackendStatus:
    name: str
    configured: bool
    reachable: bool | None
    """None: not asked (the backend is not configured in this process)."""
    draining: bool
    objects: int
    bytes: int
    """Of plaintext, in the objects it holds (`present`)."""
    pending: int
    corrupt: int
    deleting: int


@dataclass(frozen=True)
class OrganisationUsage:
    organisation_id: str
    used_bytes: int
    quota_bytes: int | None
    """The quota in force (None: no limit)."""
    default_quota: bool


@dataclass(frozen=True)
class StorageStatus:
    replicas: int
    objects: int
    backends: list[BackendStatus]
    organisations: list[OrganisationUsage]


@dataclass(frozen=True)
class Problem:
    object_id: str
    backend: str
    problem: str
    detail: str = ""


@dataclass
class VerifyReport:
    deep: bool
    objects: int = 0
    replicas_checked: int = 0
    ok: int = 0
    problems: list[Problem] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for problem in self.problems:
            found[problem.problem] = found.get(problem.problem, 0) + 1
        return found


@dataclass
class RepairReport:
    added: int = 0
    """Replicas added to objects that had fewer than the platform keeps (a backend added)."""
    copied: int = 0
    deleted: int = 0
    kept: int = 0
    failed: list[Problem] = field(default_factory=list)


@dataclass
class MigrateReport:
    source: str
    target: str
    moved: int = 0
    """Objects copied to the target, then removed from the source."""
    already_there: int = 0
    """Objects the target held already, removed from the source."""
    failed: list[Problem] = field(default_factory=list)
    remaining: int = 0
    """Objects still on the source at the end (the failed ones, and uploads finished late)."""
    target_was_draining: bool = False


@dataclass(frozen=True)
class RotateReport:
    organisation_id: str
    kek_id: str
    objects: int
    uploads: int
    failed: int
    """Data keys that did not unwrap (they stay under their key)."""
