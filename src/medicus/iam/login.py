"""Login of people in a browser: password, second factor (TOTP or a recovery code), enrolment
of a second factor where the organisation demands one, choice of organisation, logout.

- No user enumeration: unknown e-mail, wrong password and a locked account get the same answer,
  and an unknown e-mail costs the same argon2 work as a known one.
- Lockout with back-off: after `attempts_before_lockout` failures (password or second factor)
  the account is locked for 30 s, doubling with each further failure up to an hour.
- A session is complete only when every required step is done; its id lives in a cookie and
  only its hash in the database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from medicus.audit.service import AuditRecord, AuditTrail, Outcome
from medicus.core.crypto import SecretBox, new_token, token_hash
from medicus.core.db import Database, utc_now
from medicus.core.i18n import translatable
from medicus.iam import repository, token_repository
from medicus.iam.models import BrowserSessionRow, UserRow
from medicus.iam.passwords import PasswordHasher
from medicus.iam.revocations import Revocations
from medicus.iam.roles import PATIENT_DATA_ROLES, MfaPolicy
from medicus.iam.totp import (
    hash_recovery_code,
    new_recovery_codes,
    new_totp_secret,
    provisioning_uri,
    verify_totp,
)

TOTP_PURPOSE = "totp-secret"
LOCKOUT_BASE = dt.timedelta(seconds=30)
LOCKOUT_MAX = dt.timedelta(hours=1)
PENDING_LOGIN = dt.timedelta(minutes=10)
GENERIC_FAILURE = translatable(
    "The e-mail address or password is wrong, or the account is locked for a while after "
    "too many failed attempts."
)


class LoginFailed(Exception):
    """A login step failed; the message is safe to show (it never tells which part was wrong)."""


class Stage(StrEnum):
    SECOND_FACTOR = "second_factor"
    ENROL_SECOND_FACTOR = "enrol_second_factor"
    COMPLETE = "complete"


@dataclass(frozen=True)
class Membership:
    organisation_id: str
    organisation_name: str
    role: str
    patient_id: str | None = None
    """A patient's own Patient record at the organisation (role `patient`)."""


@dataclass(frozen=True)
class BrowserSession:
    """A session as the routes see it."""

    id_hash: str
    user_id: str
    email: str
    display_name: str
    stage: Stage
    organisation_id: str | None
    memberships: tuple[Membership, ...]
    authenticated_at: dt.datetime | None

    @property
    def needs_organisation(self) -> bool:
        return self.stage is Stage.COMPLETE and self.organisation_id is None

    @property
    def membership(self) -> Membership | None:
        """The membership of the organisation chosen."""
        chosen = [m for m in self.memberships if m.organisation_id == self.organisation_id]
        return chosen[0] if chosen else None

    @property
    def role(self) -> str | None:
        membership = self.membership
        return membership.role if membership else None


def _lockout(failures_over_limit: int) -> dt.timedelta:
    backoff: dt.timedelta = LOCKOUT_BASE * (2 ** min(failures_over_limit, 16))
    return min(backoff, LOCKOUT_MAX)


class LoginService:
    def __init__(
        self,
        database: Database,
        audit: AuditTrail,
        hasher: PasswordHasher,
        box: SecretBox,
        issuer_name: str,
        session_lifetime: dt.timedelta,
        attempts_before_lockout: int,
        revocations: Revocations,
    ) -> None:
        self._database = database
        self._audit = audit
        self._hasher = hasher
        self._box = box
        self._issuer_name = issuer_name
        self._session_lifetime = session_lifetime
        self._attempts = attempts_before_lockout
        self._revocations = revocations

    async def start(self, email: str, password: str, client_address: str | None) -> str:
        """Check e-mail and password; returns a new session token (cookie value) whose stage
        says what comes next. Raises LoginFailed with the same message for every failure."""
        async with self._database.transaction() as session:
            now = utc_now()
            user = await self._check_password(session, email, password, now, client_address)
            if user is not None:
                stage = await self._stage_after_password(session, user)
                token = await self._open(session, user, stage, None, now, client_address)
        if user is None:
            raise LoginFailed(GENERIC_FAILURE)
        return token

    async def start_external(
        self,
        session: AsyncSession,
        user: UserRow,
        organisation_id: str,
        second_factor_done: bool,
        client_address: str | None,
    ) -> str:
        """A session for someone whose first factor an upstream identity provider checked, in
        the caller's transaction; medicus's second factor follows unless the upstream one is
        trusted."""
        stage = (
            Stage.COMPLETE
            if second_factor_done
            else (await self._stage_after_password(session, user))
        )
        return await self._open(session, user, stage, organisation_id, utc_now(), client_address)

    async def _open(
        self,
        session: AsyncSession,
        user: UserRow,
        stage: Stage,
        organisation_id: str | None,
        now: dt.datetime,
        client_address: str | None,
    ) -> str:
        token = new_token()
        row = BrowserSessionRow(
            id_hash=token_hash(token),
            user_id=user.id,
            organisation_id=organisation_id,
            stage=str(stage),
            created_at=now,
            expires_at=now + PENDING_LOGIN,
        )
        await repository.add(session, row)
        if stage is Stage.COMPLETE:
            await self._complete(session, row.id_hash, user, now, client_address)
        return token

    async def _check_password(
        self,
        session: AsyncSession,
        email: str,
        password: str,
        now: dt.datetime,
        client_address: str | None,
    ) -> UserRow | None:
        """The user if the password is right and the account usable; else None, with the
        failure counted and audited (committed by the caller's transaction)."""
        user = await repository.user_by_email(session, email.strip().lower())
        if user is None or not user.active or user.password_hash is None:
            self._hasher.burn(password)
            await self._audit_login(session, None, Outcome.DENIED, "unknown", client_address)
            return None
        if user.locked_until is not None and user.locked_until > now:
            self._hasher.burn(password)
            await self._audit_login(session, user.id, Outcome.DENIED, "locked", client_address)
            return None
        if not self._hasher.verify(user.password_hash, password):
            await self._register_failure(session, user, now, client_address, "password")
            return None
        if self._hasher.needs_rehash(user.password_hash):
            await repository.update_user(
                session, user.id, password_hash=self._hasher.hash(password)
            )
        return user

    async def _stage_after_password(self, session: AsyncSession, user: UserRow) -> Stage:
        if user.totp_secret is not None:
            return Stage.SECOND_FACTOR
        if await self._second_factor_required(session, user.id):
            return Stage.ENROL_SECOND_FACTOR
        return Stage.COMPLETE

    async def _second_factor_required(self, session: AsyncSession, user_id: str) -> bool:
        for membership, organisation in await repository.memberships_of(session, user_id):
            policy = MfaPolicy(organisation.mfa_policy)
            if policy is MfaPolicy.ALL or (
                policy is MfaPolicy.CLINICAL and membership.role in PATIENT_DATA_ROLES
            ):
                return True
        return False

    async def second_factor(self, token: str, code: str, client_address: str | None) -> None:
        """Check a TOTP code or a recovery code for a session waiting for it."""
        async with self._database.transaction() as session:
            row, user = await self._pending(session, token, Stage.SECOND_FACTOR)
            now = utc_now()
            accepted = await self._check_second_factor(session, user, code, now)
            if accepted:
                await self._complete(session, row.id_hash, user, now, client_address)
            else:
                await self._register_failure(session, user, now, client_address, "second-factor")
        if not accepted:
            raise LoginFailed(translatable("The code is wrong or was used already."))

    async def _check_second_factor(
        self, session: AsyncSession, user: UserRow, code: str, now: dt.datetime
    ) -> bool:
        if user.locked_until is not None and user.locked_until > now:
            return False
        assert user.totp_secret is not None
        secret = self._box.decrypt(TOTP_PURPOSE, user.totp_secret).decode()
        step = verify_totp(secret, code, user.totp_last_step)
        if step is not None:
            await repository.update_user(session, user.id, totp_last_step=step)
            return True
        return await repository.use_recovery_code(session, user.id, hash_recovery_code(code), now)

    async def begin_enrolment(self, token: str) -> tuple[str, str]:
        """A new TOTP secret for a session that must enrol one; returns (secret, otpauth URI)."""
        async with self._database.transaction() as session:
            row, user = await self._pending(session, token, Stage.ENROL_SECOND_FACTOR)
            secret = new_totp_secret()
            await repository.update_browser_session(
                session,
                row.id_hash,
                pending_totp_secret=self._box.encrypt(TOTP_PURPOSE, secret.encode()),
            )
        return secret, provisioning_uri(secret, user.email, self._issuer_name)

    async def confirm_enrolment(
        self, token: str, code: str, client_address: str | None
    ) -> list[str]:
        """Confirm the enrolled secret with a first code; returns fresh recovery codes (shown
        once, stored only as hashes) and completes the login."""
        async with self._database.transaction() as session:
            row, user = await self._pending(session, token, Stage.ENROL_SECOND_FACTOR)
            if row.pending_totp_secret is None:
                raise LoginFailed(translatable("Start the set-up of the authenticator app first."))
            secret = self._box.decrypt(TOTP_PURPOSE, row.pending_totp_secret).decode()
            step = verify_totp(secret, code, None)
            if step is None:
                raise LoginFailed(
                    translatable("The code is wrong; check the time on your phone and retry.")
                )
            codes = new_recovery_codes()
            await repository.update_user(
                session, user.id, totp_secret=row.pending_totp_secret, totp_last_step=step
            )
            await repository.replace_recovery_codes(
                session, user.id, [hash_recovery_code(c) for c in codes]
            )
            await self._audit.append(
                session, AuditRecord("iam.mfa.enrol", f"user:{user.id}", target=f"user:{user.id}")
            )
            await self._complete(session, row.id_hash, user, utc_now(), client_address)
        return codes

    async def choose_organisation(self, token: str, organisation_id: str) -> None:
        async with self._database.transaction() as session:
            row, user = await self._pending(session, token, Stage.COMPLETE)
            membership = await repository.membership(session, user.id, organisation_id)
            if membership is None or not membership.active:
                raise LoginFailed(translatable("You are not a member of that organisation."))
            await repository.update_browser_session(
                session, row.id_hash, organisation_id=organisation_id
            )

    async def current(self, token: str | None) -> BrowserSession | None:
        """The live session behind a cookie value, or None."""
        if not token:
            return None
        async with self._database.snapshot() as session:
            row = await repository.browser_session(session, token_hash(token))
            if row is None or row.revoked or row.expires_at <= utc_now():
                return None
            user = await repository.user(session, row.user_id)
            if user is None or not user.active:
                return None
            if user.sessions_valid_after and row.created_at < user.sessions_valid_after:
                return None
            memberships = tuple(
                Membership(
                    organisation.id, organisation.name, membership.role, membership.patient_id
                )
                for membership, organisation in await repository.memberships_of(session, user.id)
            )
        return BrowserSession(
            id_hash=row.id_hash,
            user_id=user.id,
            email=user.email,
            display_name=user.display_name,
            stage=Stage(row.stage),
            organisation_id=row.organisation_id,
            memberships=memberships,
            authenticated_at=row.authenticated_at,
        )

    async def logout(self, token: str) -> None:
        async with self._database.transaction() as session:
            await repository.update_browser_session(session, token_hash(token), revoked=True)

    async def logout_everywhere(self, user_id: str, actor: str) -> None:
        """End every session of the user, revoke their refresh tokens and void access tokens
        issued until now (checked on each request)."""
        async with self._database.transaction() as session:
            await repository.update_user(session, user_id, sessions_valid_after=utc_now())
            await repository.revoke_browser_sessions(session, user_id)
            await token_repository.revoke_user_refresh_tokens(session, user_id)
            await self._revocations.void_user_tokens(session, user_id)
            await self._audit.append(
                session, AuditRecord("iam.logout.everywhere", actor, target=f"user:{user_id}")
            )

    async def _pending(
        self, session: AsyncSession, token: str, stage: Stage
    ) -> tuple[BrowserSessionRow, UserRow]:
        row = await repository.browser_session(session, token_hash(token))
        if row is None or row.revoked or row.expires_at <= utc_now() or row.stage != stage:
            raise LoginFailed(translatable("The login has expired; please start again."))
        user = await repository.user(session, row.user_id)
        if user is None or not user.active:
            raise LoginFailed(GENERIC_FAILURE)
        return row, user

    async def _complete(
        self,
        session: AsyncSession,
        id_hash: str,
        user: UserRow,
        now: dt.datetime,
        client_address: str | None,
    ) -> None:
        row = await repository.browser_session(session, id_hash)
        memberships = await repository.memberships_of(session, user.id)
        only = memberships[0][1].id if len(memberships) == 1 else None
        await repository.update_browser_session(
            session,
            id_hash,
            stage=str(Stage.COMPLETE),
            authenticated_at=now,
            expires_at=now + self._session_lifetime,
            organisation_id=(row.organisation_id if row else None) or only,
            pending_totp_secret=None,
        )
        await repository.update_user(session, user.id, failed_logins=0, locked_until=None)
        await self._audit_login(session, user.id, Outcome.SUCCESS, "complete", client_address)

    async def _register_failure(
        self,
        session: AsyncSession,
        user: UserRow,
        now: dt.datetime,
        client_address: str | None,
        step: str,
    ) -> None:
        failures = user.failed_logins + 1
        locked_until = None
        if failures >= self._attempts:
            locked_until = now + _lockout(failures - self._attempts)
        await repository.update_user(
            session, user.id, failed_logins=failures, locked_until=locked_until
        )
        await self._audit_login(session, user.id, Outcome.DENIED, step, client_address)

    async def _audit_login(
        self,
        session: AsyncSession,
        user_id: str | None,
        outcome: Outcome,
        reason: str,
        client_address: str | None,
    ) -> None:
        actor = f"user:{user_id}" if user_id else "anonymous"
        await self._audit.append(
            session,
            AuditRecord(
                "iam.login",
                actor,
                outcome=outcome,
                client_address=client_address,
                detail={"step": reason},
            ),
        )
