"""App passwords: how WebDAV clients (rclone, Finder, Explorer, office programs) log in, since
they cannot do OpenID Connect with a second factor. A user makes one per device, sees it once,
lists and revokes them; each belongs to the user AND one of their organisation memberships, and
acts as the user in that organisation with the role's resource scopes (`user/…`, `patient/…`),
nothing more: no admin scope, no launch context.

A password is random (192 bits behind the `mdav_` prefix), so its SHA-256 is what is kept and
looked up, as for other bearer values. Every request checks it anew in the database (revoked,
user disabled or logged out everywhere, membership suspended or gone): a revoked password fails
with the very next request. Creating and revoking one, and every failed login, are audited;
the password itself is never logged nor recorded."""

from __future__ import annotations

import builtins
import datetime as dt
import secrets
import uuid
from dataclasses import dataclass

from medicus.access.policy import audited
from medicus.audit.service import AuditRecord, AuditTrail, Outcome
from medicus.collab import app_password_repository as repository
from medicus.collab.models import AppPasswordRow
from medicus.core.clock import Clock
from medicus.core.crypto import token_hash
from medicus.core.db import Database, utc_now
from medicus.core.errors import ApiError
from medicus.iam.models import MembershipRow, UserRow
from medicus.iam.roles import ROLE_SCOPES, Role
from medicus.iam.scopes import ScopeSet, intersect, parse_scopes
from medicus.iam.tokens import Principal

WEBDAV_CLIENT = "medicus-webdav"
"""The client id of what app passwords do, in the audit trail."""
PREFIX = "mdav_"
"""Lets people (and secret scanners) recognise a medicus app password."""
MAX_LABEL = 100
MAX_LIVE = 50
"""App passwords a user may hold at once (one per device is plenty)."""
TOUCH_INTERVAL = dt.timedelta(minutes=1)
"""`last_used_at` is written at most this often (not on every request of a sync)."""
_STAFF_ROLES = frozenset(Role) - {Role.PATIENT, Role.SERVICE}


def target(password_id: str) -> str:
    return f"CollabAppPassword/{password_id}"


@dataclass(frozen=True)
class AppPassword:
    """An app password as its user sees it (never the password itself)."""

    id: str
    label: str
    organisation_id: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None

    @staticmethod
    def of(row: AppPasswordRow) -> AppPassword:
        return AppPassword(row.id, row.label, row.organisation_id, row.created_at, row.last_used_at)


def webdav_scope(role: str) -> ScopeSet:
    """What an app password of a member in `role` may do: the role's resource scopes."""
    return ScopeSet(parse_scopes(ROLE_SCOPES.get(Role(role), "")).resources)


class AppPasswords:
    def __init__(self, database: Database, audit: AuditTrail, clock: Clock = utc_now) -> None:
        self._database = database
        self._audit = audit
        self._clock = clock

    async def create(self, caller: Principal, label: str) -> tuple[AppPassword, str]:
        """A new app password of the caller for their organisation, and the password itself,
        which is shown this once. 403 unless the caller is staff acting with at least the
        scopes the password will have (an app with fewer cannot make one that has more)."""
        label = label.strip()
        if not label or len(label) > MAX_LABEL or not label.isprintable():
            raise ApiError(
                400,
                f"Name the device with 1 to {MAX_LABEL} printable characters.",
                title="Invalid label",
            )
        await self._check_may_create(caller)
        secret = PREFIX + secrets.token_urlsafe(24)
        row = AppPasswordRow(
            id=str(uuid.uuid4()),
            secret_hash=token_hash(secret),
            user_id=caller.subject,
            organisation_id=caller.organisation_id,
            label=label,
            created_at=self._clock(),
        )
        async with self._database.transaction() as session:
            if await repository.live_count(session, caller.subject) >= MAX_LIVE:
                raise ApiError(
                    409, f"You hold {MAX_LIVE} app passwords; revoke one you no longer use first."
                )
            session.add(row)
        await self._audit.record(audited(caller, "collab.app-password.create", target(row.id)))
        return AppPassword.of(row), secret

    async def list(self, caller: Principal) -> builtins.list[AppPassword]:
        """The caller's app passwords (of all their organisations) that work, newest first."""
        if caller.kind != "user":
            return []
        async with self._database.snapshot() as session:
            rows = await repository.live_of(session, caller.subject)
        return [AppPassword.of(row) for row in rows]

    async def revoke(self, caller: Principal, password_id: str) -> None:
        """Make one of the caller's app passwords stop working (at once); revoking one
        twice is fine, someone else's is not there (404)."""
        async with self._database.transaction() as session:
            row = await repository.one(session, password_id)
            mine = row is not None and caller.kind == "user" and row.user_id == caller.subject
            live = mine and row is not None and row.revoked_at is None
            if live:
                await repository.revoke(session, password_id, self._clock())
        event = audited(caller, "collab.app-password.revoke", target(password_id))
        if not mine:
            await self._audit.record(event.refused("not-known"))
            raise ApiError(404, f"You have no app password {password_id}.")
        if live:
            await self._audit.record(event)

    async def authenticate(self, login: str, password: str) -> Principal | None:
        """The user behind an app password in the password's organisation, None (recorded)
        if the password is unknown or revoked, `login` (an e-mail address) is not its
        user's, or the user or their membership no longer works."""
        if not password or len(password) > 200:
            await self._failed(None, None, "malformed")
            return None
        async with self._database.snapshot() as session:
            found = await repository.holder(session, token_hash(password))
        if found is None:
            await self._failed(None, None, "not-known")
            return None
        row, user, membership = found
        problem = _problem(row, user, membership, login)
        if problem is not None or membership is None:
            await self._failed(row, user, problem or "no-membership")
            return None
        await self._touch(row)
        scope = webdav_scope(membership.role)
        return Principal(
            subject=user.id,
            kind="user",
            organisation_id=row.organisation_id,
            role=membership.role,
            client_id=WEBDAV_CLIENT,
            scope=scope,
            scope_text=scope.to_string(),
            jti=f"app-password:{row.id}",
            expires_at=0,
        )

    async def _check_may_create(self, caller: Principal) -> None:
        reason = None
        if caller.kind != "user" or caller.role not in _STAFF_ROLES:
            reason = "not-staff"
        else:
            wanted = webdav_scope(str(caller.role))
            if intersect(wanted, caller.scope).resources != wanted.resources:
                reason = "scope"
        if reason is None:
            return
        event = audited(caller, "collab.app-password.create", "CollabAppPassword")
        await self._audit.record(event.refused(reason))
        raise ApiError(
            403,
            "App passwords are made by staff of an organisation, in the portal or with a token "
            "that allows at least what the password will (your role's FHIR scopes).",
        )

    async def _touch(self, row: AppPasswordRow) -> None:
        now = self._clock()
        if row.last_used_at is not None and now - row.last_used_at < TOUCH_INTERVAL:
            return
        async with self._database.transaction() as session:
            await repository.used(session, row.id, now)

    async def _failed(self, row: AppPasswordRow | None, user: UserRow | None, reason: str) -> None:
        """A failed login, recorded with the user if the password was theirs."""
        await self._audit.record(
            AuditRecord(
                "collab.app-password.login",
                f"user:{user.id}" if user is not None else "anonymous",
                outcome=Outcome.DENIED,
                organisation=row.organisation_id if row is not None else None,
                target=target(row.id) if row is not None else None,
                detail={"reason": reason, "client": WEBDAV_CLIENT},
            )
        )


def _problem(
    row: AppPasswordRow, user: UserRow, membership: MembershipRow | None, login: str
) -> str | None:
    """Why a known password does not let its holder in (None: it does)."""
    if row.revoked_at is not None:
        return "revoked"
    if user.email.strip().lower() != login.strip().lower():
        return "login-mismatch"
    if not user.active:
        return "user-inactive"
    if user.sessions_valid_after is not None and row.created_at < user.sessions_valid_after:
        return "logged-out-everywhere"
    if membership is None or not membership.active:
        return "membership-gone"
    if membership.role not in _STAFF_ROLES:
        return "role"
    return None
