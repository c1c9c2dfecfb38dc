"""The messenger's use-cases: login tokens (issued to medicus users, redeemed once), the invite
rules' facts and decisions, the directory listing, users' contact rules, the federation list,
and keeping Synapse's accounts locked while their users may not work."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from sqlalchemy.ext.asyncio import AsyncSession

from medicus.access.policy import audited
from medicus.audit.service import AuditRecord, AuditTrail, Outcome
from medicus.core.clock import Clock
from medicus.core.crypto import SecretBox
from medicus.core.db import Database, utc_now
from medicus.core.errors import ApiError
from medicus.core.ids import is_fhir_id
from medicus.fhir.service import FhirService
from medicus.iam.admin import authorise_admin
from medicus.iam.roles import Role
from medicus.iam.tokens import Principal
from medicus.messenger import repository
from medicus.messenger.directory import Directory
from medicus.messenger.homeserver import (
    LOGIN_ISSUER,
    SYSTEM_LOCALPART,
    Homeserver,
    login_signing_key,
)
from medicus.messenger.models import LoginTokenRow, RoomSubjectRow, ServiceRow
from medicus.messenger.rules import InviteFacts, Person, invite_refusal
from medicus.messenger.synapse_admin import SynapseAdmin, SynapseUnavailable

LOGIN_TOKEN_SECONDS = 60
"""How long a login token is good for: enough to hand it to a client, not to keep it."""
MAX_CONTACT_RULES = 1000
SUBJECT_TYPES = ("Patient", "Task", "ServiceRequest")
"""What a case room can be about: a patient, or a teleconsultation request."""
_LOCALPART = re.compile(r"[a-z0-9._=/-]{1,200}\Z")
_STAFF = frozenset(repository.STAFF_ROLES)
BACKUP_KEY_BYTES = 32
"""A Curve25519 private key: the decryption key of `m.megolm_backup.v1.curve25519-aes-sha2`."""
_BACKUP_VERSION = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")


@dataclass(frozen=True)
class IssuedLogin:
    token: str
    matrix_id: str
    expires_in: int
    device_id: str | None = None
    """The device the token must log in, for a portal session's token."""


def _staff_only(caller: Principal) -> None:
    if caller.kind != "user" or caller.role not in _STAFF:
        raise ApiError(403, "Only staff of an organisation use the messenger.")


def _system(action: str, target: str, detail: dict[str, str] | None = None) -> AuditRecord:
    return AuditRecord(action, "system:messenger", target=target, detail=detail or {})


class Messenger:
    def __init__(
        self,
        database: Database,
        audit: AuditTrail,
        homeserver: Homeserver,
        synapse: SynapseAdmin,
        directory: Directory,
        fhir: FhirService,
        platform_secret: bytes,
        box: SecretBox,
        clock: Clock = utc_now,
    ) -> None:
        self._database = database
        self.directory = directory
        self._fhir = fhir
        self._audit = audit
        self.homeserver = homeserver
        self._synapse = synapse
        self._public_key = ECKey.import_key(login_signing_key(platform_secret).public_key())
        self._clock = clock
        self._box = box

    async def issue_login(
        self, caller: Principal, browser_session: str | None = None
    ) -> IssuedLogin:
        """A login token for the caller's Matrix account (made on its first use): staff only,
        good once, for a minute. For a portal page (`browser_session`: its `id_hash`) the
        token logs in one device of medicus's choosing only, which is logged out when that
        browser session ends (`end_portal_devices`)."""
        _staff_only(caller)
        if not _LOCALPART.match(caller.subject) or caller.subject == SYSTEM_LOCALPART:
            raise ApiError(422, "This account's id cannot be a Matrix ID.")
        now = self._clock()
        jti = uuid.uuid4().hex
        matrix_id = self.homeserver.matrix_id(caller.subject)
        device_id = None if browser_session is None else f"PORTAL{secrets.token_hex(5).upper()}"
        async with self._database.transaction() as session:
            name = await repository.display_name(session, caller.subject)
            if name is None or not await repository.staff_organisations(session, caller.subject):
                raise ApiError(403, "Only staff of an organisation use the messenger.")
            expires = now + dt.timedelta(seconds=LOGIN_TOKEN_SECONDS)
            await repository.add_login_token(
                session,
                LoginTokenRow(
                    jti=jti,
                    user_id=caller.subject,
                    issued_at=now,
                    expires_at=expires,
                    device_id=device_id,
                ),
            )
            if browser_session is not None and device_id is not None:
                await repository.add_portal_device(
                    session, device_id, caller.subject, browser_session, now
                )
            await repository.ensure_account(session, caller.subject, matrix_id, now)
            await self._audit.append(session, audited(caller, "messenger.login.issue", matrix_id))
        token = self._synapse.signed_login_token(caller.subject, name, jti, LOGIN_TOKEN_SECONDS)
        return IssuedLogin(token, matrix_id, LOGIN_TOKEN_SECONDS, device_id)

    async def backup_key(self, caller: Principal) -> tuple[str, bytes] | None:
        """(version, key) of the caller's own room-key backup as medicus keeps it for their
        portal sessions, or None; audited either way (the key is not)."""
        _staff_only(caller)
        matrix_id = self.homeserver.matrix_id(caller.subject)
        async with self._database.transaction() as session:
            row = await repository.backup_key(session, caller.subject)
            found = {"found": "yes" if row else "no"}
            await self._audit.append(
                session, audited(caller, "messenger.backup_key.read", matrix_id, found)
            )
        if row is None:
            return None
        # the purpose names the user: a sealed key opens for its own user only
        return row.version, self._box.decrypt(f"messenger.backup_key:{row.user_id}", row.sealed_key)

    async def keep_backup_key(self, caller: Principal, version: str, key: bytes) -> None:
        """Keep the decryption key of the caller's room-key backup `version` (replacing an
        earlier one), encrypted with the platform's key; 422 for what is not one."""
        _staff_only(caller)
        if not _BACKUP_VERSION.match(version) or len(key) != BACKUP_KEY_BYTES:
            raise ApiError(422, "A backup key is 32 bytes for a version of up to 64 characters.")
        sealed = self._box.encrypt(f"messenger.backup_key:{caller.subject}", key)
        matrix_id = self.homeserver.matrix_id(caller.subject)
        async with self._database.transaction() as session:
            await repository.put_backup_key(session, caller.subject, version, sealed, self._clock())
            await self._audit.append(
                session,
                audited(caller, "messenger.backup_key.write", matrix_id, {"version": version}),
            )

    async def note_account(self, matrix_id: str) -> None:
        """Remember an account of a medicus user that Synapse made without a login token
        (single sign-on), so that suspension locks it and erasure finds it."""
        user_id = self.homeserver.user_id(matrix_id)
        if user_id is not None and user_id != SYSTEM_LOCALPART:
            async with self._database.transaction() as session:
                await repository.ensure_account(session, user_id, matrix_id, self._clock())

    async def end_portal_devices(self) -> int:
        """Log out the portal's Matrix devices whose browser session has ended; how many."""
        async with self._database.snapshot() as session:
            ended = await repository.portal_devices_of_ended_sessions(session, self._clock())
        for device_id, user_id in ended:
            await self._synapse.log_out_device(self.homeserver.matrix_id(user_id), device_id)
            async with self._database.transaction() as session:
                await repository.forget_portal_device(session, device_id)
        return len(ended)

    async def redeem_login(self, token: str, device_id: str | None = None) -> str | None:
        """Check a login token on its way to Synapse and use it up: None if it may pass, else
        why not. Stricter than Synapse: medicus's signature, issuer and audience, an expiry
        that has not passed (no leeway), a token id medicus issued to that user and never saw
        redeemed, and the device the token is for, if it is for one (`device_id`: the one
        the login asks for)."""
        now = self._clock()
        claims = self._claims(token)
        if claims is None:
            return "The login token is not one medicus signed."
        subject, jti, expires = claims.get("sub"), claims.get("jti"), claims.get("exp")
        if not isinstance(subject, str) or not isinstance(jti, str):
            return "The login token names no user or has no id."
        if not isinstance(expires, int) or expires <= now.timestamp():
            return "The login token has expired."
        async with self._database.transaction() as session:
            redeemed = await repository.redeem_login_token(session, jti, subject, device_id, now)
            outcome = Outcome.SUCCESS if redeemed else Outcome.DENIED
            matrix_id = self.homeserver.matrix_id(subject)
            await self._audit.append(
                session,
                AuditRecord(
                    "messenger.login", f"user:{subject}", outcome=outcome, target=matrix_id
                ),
            )
        return None if redeemed else "The login token was used already or is not known."

    def _claims(self, token: str) -> dict[str, object] | None:
        try:
            decoded = jwt.decode(token, self._public_key, algorithms=["ES256"])
        except (JoseError, ValueError, TypeError):
            return None
        claims = dict(decoded.claims)
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if claims.get("iss") != LOGIN_ISSUER:
            return None
        if self.homeserver.server_name not in audiences:
            return None
        return claims

    async def is_working(self, user_id: str) -> bool:
        """Whether the user works for an organisation now (else their Matrix sessions end)."""
        async with self._database.snapshot() as session:
            return bool(await repository.staff_organisations(session, user_id))

    async def invite_refusal(self, inviter_id: str, invitee_matrix_id: str) -> str | None:
        """Why `inviter_id` may not invite `invitee_matrix_id` (None: they may); refusals and
        invitations across organisations are audited."""
        invitee_id = self.homeserver.user_id(invitee_matrix_id)
        inviter_matrix_id = self.homeserver.matrix_id(inviter_id)
        async with self._database.transaction() as session:
            federation = await repository.federation(session)
            inviter = await self._person(session, inviter_id)
            invitee = None if invitee_id is None else await self._person(session, invitee_id)
            rule = None
            if invitee_id is not None:
                rule = await repository.contact_rule(session, invitee_id, inviter_matrix_id)
            facts = InviteFacts(inviter, invitee, federation, rule)
            refusal = invite_refusal(facts)
            across = invitee is not None and not inviter.organisations & invitee.organisations
            if refusal is not None or across:
                outcome = Outcome.DENIED if refusal else Outcome.SUCCESS
                await self._audit.append(
                    session,
                    AuditRecord(
                        "messenger.invite",
                        f"user:{inviter_id}",
                        outcome=outcome,
                        target=invitee_matrix_id,
                    ),
                )
        return refusal

    async def _person(self, session: AsyncSession, user_id: str) -> Person:
        organisations = await repository.staff_organisations(session, user_id)
        listed = await repository.listed_in(session, user_id)
        return Person(user_id, self.homeserver.matrix_id(user_id), organisations, listed)

    async def set_listed(
        self, caller: Principal, organisation_id: str, user_id: str, listed: bool
    ) -> None:
        """An organisation's admin lists a member in the directory (reachable from other
        organisations) or takes them off it."""
        await authorise_admin(self._audit, caller, organisation_id, "messenger.listing")
        async with self._database.transaction() as session:
            if organisation_id not in await repository.staff_organisations(session, user_id):
                raise ApiError(404, "This person is not staff of the organisation.")
            if listed:
                await repository.set_listed(
                    session, user_id, organisation_id, caller.actor, self._clock()
                )
            else:
                await repository.unset_listed(session, user_id, organisation_id)
            await self._audit.append(
                session,
                audited(
                    caller,
                    "messenger.listing",
                    f"Practitioner/{user_id}",
                    {"listed": str(listed).lower()},
                ),
            )
        await self.directory.sync_organisation(organisation_id)

    async def services(self, caller: Principal, organisation_id: str) -> list[ServiceRow]:
        """The services the organisation lists in the directory (its admins see them)."""
        await authorise_admin(self._audit, caller, organisation_id, "messenger.service.list")
        async with self._database.snapshot() as session:
            return list(await repository.services(session, organisation_id))

    async def add_service(
        self,
        caller: Principal,
        organisation_id: str,
        name: str,
        specialty: str | None,
        user_id: str,
    ) -> str:
        """List a service ("Kardiologie Rufdienst") reachable at a member's Matrix account."""
        await authorise_admin(self._audit, caller, organisation_id, "messenger.service")
        name = name.strip()
        if not name:
            raise ApiError(422, "A service needs a name.")
        service_id = str(uuid.uuid4())
        async with self._database.transaction() as session:
            if organisation_id not in await repository.staff_organisations(session, user_id):
                raise ApiError(422, "The service's account must be staff of the organisation.")
            await repository.add_service(
                session,
                ServiceRow(
                    id=service_id,
                    organisation_id=organisation_id,
                    name=name,
                    specialty=(specialty or "").strip() or None,
                    user_id=user_id,
                    created_by=caller.actor,
                    created_at=self._clock(),
                ),
            )
            target = f"HealthcareService/{service_id}"
            await self._audit.append(session, audited(caller, "messenger.service", target))
        await self.directory.sync_organisation(organisation_id)
        return service_id

    async def remove_service(
        self, caller: Principal, organisation_id: str, service_id: str
    ) -> None:
        await authorise_admin(self._audit, caller, organisation_id, "messenger.service")
        async with self._database.transaction() as session:
            if not await repository.remove_service(session, organisation_id, service_id):
                raise ApiError(404, "The organisation lists no such service.")
            target = f"HealthcareService/{service_id}"
            detail = {"removed": "true"}
            await self._audit.append(session, audited(caller, "messenger.service", target, detail))
        await self.directory.sync_organisation(organisation_id)

    async def link_room(self, caller: Principal, room_id: str, reference: str) -> None:
        """Make a room a case room about a Patient or a teleconsultation request (Task,
        ServiceRequest): a member who may read that resource links it (the read is audited)."""
        kind, fhir_id = _subject(reference)
        await self._require_member(caller, room_id)
        await self._fhir.read(caller, kind, fhir_id)
        record = audited(caller, "messenger.room.subject", room_id, {"subject": reference})
        async with self._database.transaction() as session:
            await repository.put_room_subject(
                session,
                RoomSubjectRow(
                    room_id=room_id,
                    reference=reference,
                    organisation_id=caller.organisation_id,
                    linked_by=caller.actor,
                    linked_at=self._clock(),
                ),
            )
            await self._audit.append(session, record.about(fhir_id if kind == "Patient" else None))

    async def room_subject(self, caller: Principal, room_id: str) -> str:
        """What a case room is about, for a member who may read it: being in the room is not
        enough (a colleague of another hospital without a share of the patient gets 404, as
        for a room with no subject)."""
        await self._require_member(caller, room_id)
        async with self._database.snapshot() as session:
            found = await repository.room_subject(session, room_id)
        if found is None:
            raise ApiError(404, "This room is about no patient or request you may see.")
        kind, fhir_id = _subject(found.reference)
        try:
            await self._fhir.read(caller, kind, fhir_id)
        except ApiError as refused:
            if refused.status in (403, 404, 410):
                raise ApiError(
                    404, "This room is about no patient or request you may see."
                ) from None
            raise
        return found.reference

    async def unlink_room(self, caller: Principal, room_id: str) -> None:
        await self._require_member(caller, room_id)
        async with self._database.transaction() as session:
            if not await repository.delete_room_subject(session, room_id):
                raise ApiError(404, "This room is about no patient or request.")
            await self._audit.append(session, audited(caller, "messenger.room.unlink", room_id))

    async def _require_member(self, caller: Principal, room_id: str) -> None:
        user_id = _staff_user(caller)
        if not room_id.startswith("!") or len(room_id) > 255:
            raise ApiError(422, "A room id looks like !opaque:server.")
        try:
            members = await self._synapse.room_members(room_id)
        except SynapseUnavailable:
            raise ApiError(503, "The messenger's homeserver is not answering.") from None
        if self.homeserver.matrix_id(user_id) not in members:
            raise ApiError(404, "You are not in this room.")

    async def contact_rules(self, caller: Principal) -> dict[str, str]:
        """The caller's own rules: Matrix ID → "block" or "allow"."""
        async with self._database.snapshot() as session:
            rows = await repository.contact_rules(session, _staff_user(caller))
        return {row.contact: row.kind for row in rows}

    async def set_contact_rule(self, caller: Principal, contact: str, kind: str | None) -> None:
        """Block or allow a Matrix ID, or (None) forget the rule about it."""
        owner = _staff_user(caller)
        if not contact.startswith("@") or ":" not in contact or len(contact) > 255:
            raise ApiError(422, "A contact is a Matrix ID, as in @name:server.")
        async with self._database.transaction() as session:
            if kind is None:
                if not await repository.delete_contact_rule(session, owner, contact):
                    raise ApiError(404, "There is no rule about this contact.")
            else:
                if (
                    await repository.contact_rule(session, owner, contact) is None
                    and await repository.count_contact_rules(session, owner) >= MAX_CONTACT_RULES
                ):
                    raise ApiError(422, f"At most {MAX_CONTACT_RULES} contact rules.")
                await repository.put_contact_rule(session, owner, contact, kind, self._clock())
            await self._audit.append(
                session,
                audited(caller, "messenger.contact", contact, {"rule": kind or "none"}),
            )

    async def federate(self, organisation_id: str, member: bool, actor: str) -> bool:
        """Put an organisation on the federation list or take it off; False if nothing
        changed."""
        async with self._database.transaction() as session:
            if member:
                changed = await repository.add_to_federation(
                    session, organisation_id, actor, self._clock()
                )
            else:
                changed = await repository.remove_from_federation(session, organisation_id)
            if changed:
                detail = {"member": str(member).lower(), "by": actor}
                await self._audit.append(
                    session,
                    _system("messenger.federation", f"Organization/{organisation_id}", detail),
                )
        if changed:
            await self.directory.sync_organisation(organisation_id)
        return changed

    async def federation(self) -> frozenset[str]:
        async with self._database.snapshot() as session:
            return await repository.federation(session)

    async def align_accounts(self) -> int:
        """Lock the Matrix accounts of users who may not work now (ending their sessions) and
        unlock those who may again; returns how many changed. Synapse not answering leaves the
        rest for the next round (the proxy refuses such users meanwhile)."""
        async with self._database.snapshot() as session:
            pending = await repository.accounts_out_of_step(session)
        changed = 0
        affected: set[str] = set()
        for user_id, matrix_id, lock in pending:
            try:
                await self._synapse.set_locked(matrix_id, lock)
            except SynapseUnavailable:
                break
            async with self._database.transaction() as session:
                await repository.set_account_locked(session, user_id, lock)
                action = "messenger.account.lock" if lock else "messenger.account.unlock"
                await self._audit.append(session, _system(action, matrix_id))
                affected |= await repository.organisations_of(session, user_id)
            changed += 1
        await self.directory.sync_everywhere(affected)
        return changed

    async def erase_account(self, user_id: str, actor: str) -> bool:
        """Deactivate a user's Matrix account for good, erase their messages and forget their
        key backup's key (a person's right to erasure, or someone who left for good;
        suspension only locks). False if medicus never made an account for them."""
        async with self._database.snapshot() as session:
            found = await repository.account(session, user_id)
        if found is None:
            return False
        await self._synapse.deactivate(found.matrix_id)
        async with self._database.transaction() as session:
            await repository.forget_backup_key(session, user_id)
            await self._audit.append(
                session, _system("messenger.account.erase", found.matrix_id, {"by": actor})
            )
        return True

    async def forget_old_login_tokens(self, now: dt.datetime) -> None:
        async with self._database.transaction() as session:
            await repository.forget_login_tokens(session, now - dt.timedelta(days=1))


def _subject(reference: str) -> tuple[str, str]:
    kind, _, fhir_id = reference.partition("/")
    if kind not in SUBJECT_TYPES or not is_fhir_id(fhir_id):
        raise ApiError(422, "A case room is about a Patient, Task or ServiceRequest: Patient/id.")
    return kind, fhir_id


def _staff_user(caller: Principal) -> str:
    if caller.kind != "user" or caller.role not in _STAFF or caller.role == Role.PATIENT:
        raise ApiError(403, "Only staff of an organisation use the messenger.")
    return caller.subject
