"""Share links: one file or folder of a space for someone without an account (an external
practice), at `{public_url}/s/{token}`, until the link expires.

- Who makes them: editors and managers of the space, for a live file or folder they may
  see. A viewer may not: a link takes data out of the space, which is more than reading
  it. A file linked to a Patient is never shared by link (403): patient data leaves the
  platform only to someone `access` has decided on, never to whoever holds a URL. In a
  shared folder, such files are left out of the listing and cannot be downloaded.
- What a link is: a random token of 256 bits, of which only the SHA-256 is kept; the URL is
  answered once, when the link is made. An expiry is required (7 days by default, 90 at
  most); a password (argon2id, 8 to 128 characters) and a number of downloads optional.
- How long it works: until it expires, is revoked (by its creator or a manager), has been
  downloaded `max_downloads` times, or what it shares goes to the trash or becomes patient
  data; also only while its creator is still an editor or manager of the space (a link is
  its creator's act). Then every use is answered 410 Gone; an unknown token 404.
- Passwords: a right one gives the visitor's browser a pass for an hour (a signed cookie);
  after 10 wrong ones in a row the link takes no password for 15 minutes (429), counted in
  the database, so that every server replica sees it.
- Downloads: each GET that sends the file counts, except a Range request that continues a
  download already counted (a browser resuming, a download manager fetching parts): a
  counted download gives the browser a ticket (a signed cookie) for the same version of the
  same file for a day, and a ranged GET with it is free, even when the limit has been
  reached since. A ranged GET without it counts like any other.
- Who did it: every use of a link (page, unlock, download, refusal) is audited with the
  actor `share-link:{id}` and the space's organisation; making and revoking it are audited
  for the member and noted in the space's activity feed."""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import re
import uuid

from medicus.audit.service import AuditRecord, AuditTrail, Outcome
from medicus.collab import repository
from medicus.collab import share_link_repository as links
from medicus.collab.models import NodeRow, ShareLinkRow
from medicus.collab.nodes import Nodes
from medicus.collab.permissions import file_target
from medicus.collab.records import Node, Role
from medicus.collab.repository import note_activity
from medicus.collab.share_link_records import (
    LinkRefused,
    LinkState,
    OpenLink,
    SharedFile,
    SharedView,
    ShareLink,
    gone,
    link_state,
    throttled,
)
from medicus.core.crypto import SecretBox, constant_time_equal, new_token, token_hash
from medicus.core.errors import ApiError
from medicus.core.logging import get_logger
from medicus.core.mail import Mail, MailSender
from medicus.iam.passwords import PasswordHasher
from medicus.iam.tokens import Principal
from medicus.storage.service import ObjectStore

log = get_logger("medicus.collab")

DEFAULT_DAYS = 7
MAX_DAYS = 90
MIN_PASSWORD, MAX_PASSWORD = 8, 128
MAX_DOWNLOADS = 100_000
MAX_RECIPIENTS = 20
WRONG_PASSWORDS = 10
"""Wrong passwords in a row after which a link takes none for `LOCKOUT`."""
LOCKOUT = dt.timedelta(minutes=15)
PASS_LIFETIME = dt.timedelta(hours=1)
TICKET_LIFETIME = dt.timedelta(days=1)
_TOKEN_BYTES = 32
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,100}")
_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_SIGNING = "collab.share-link"
_VIEW = "collab.share-link.view"
_UNLOCK = "collab.share-link.unlock"
_DOWNLOAD = "collab.share-link.download"


class ShareLinks:
    def __init__(
        self,
        nodes: Nodes,
        audit: AuditTrail,
        hasher: PasswordHasher,
        box: SecretBox,
        mail: MailSender,
        public_url: str,
    ) -> None:
        self._nodes = nodes
        self._audit = audit
        self._hasher = hasher
        self._box = box
        self._mail = mail
        self._public_url = public_url

    @property
    def storage(self) -> ObjectStore:
        """Where the shared files' bytes are read from."""
        return self._nodes.storage

    def expiry_in(self, days: int) -> dt.datetime:
        """The moment `days` from now (by the platform's clock)."""
        return self._nodes.clock() + dt.timedelta(days=days)

    async def create(
        self,
        caller: Principal,
        space_id: str,
        node_id: str | None,
        expires_at: dt.datetime,
        password: str | None,
        max_downloads: int | None,
        notify: builtins.list[str],
    ) -> tuple[ShareLink, str]:
        """A link to the file or folder `node_id` (None: the space's top folder), and its
        URL (answered this once); the `notify` addresses are sent the URL by e-mail."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.EDITOR, "collab.share")
        node = await self._nodes.visible_node(inside, node_id or inside.space.root_id)
        if node.patient_id is not None:
            await self._nodes.gate.refuse(
                caller, "collab.share", file_target(node.id), "patient-data", space=space_id
            )
            raise ApiError(
                403,
                "This file is patient data, and patient data is never shared by link; "
                "invite the person into the space instead.",
            )
        now = self._nodes.clock()
        _check_terms(now, expires_at, password, max_downloads)
        recipients = _recipients(notify)
        token = new_token(_TOKEN_BYTES)
        hashed = None if password is None else await asyncio.to_thread(self._hasher.hash, password)
        row = ShareLinkRow(
            id=str(uuid.uuid4()),
            token_hash=token_hash(token),
            space_id=space_id,
            node_id=node.id,
            created_by=caller.subject,
            created_at=now,
            expires_at=expires_at,
            password_hash=hashed,
            max_downloads=max_downloads,
            downloads=0,
            failed_passwords=0,
        )
        name = node.name or inside.space.name
        async with self._nodes.database.transaction() as session:
            session.add(row)
            await note_activity(
                session, space_id, caller.subject, "link.created", name, node.id, now
            )
        url = f"{self._public_url}/s/{token}"
        unsent = await self._tell(caller, name, url, expires_at, hashed is not None, recipients)
        await self._nodes.gate.record(
            inside,
            "collab.share",
            file_target(node.id),
            link=row.id,
            expiresAt=expires_at.isoformat(),
            password="yes" if hashed else "no",
            maxDownloads=str(max_downloads or ""),
            notified=str(len(recipients) - len(unsent)),
        )
        return ShareLink.of(row, node.name, node.kind, LinkState.ACTIVE, unsent), url

    async def revoke(self, caller: Principal, space_id: str, link_id: str) -> None:
        """End a link now (its creator, or a manager of the space); again is no error."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.VIEWER, "collab.share")
        async with self._nodes.database.snapshot() as session:
            row = await links.one(session, space_id, link_id)
        if row is None:
            raise ApiError(404, f"There is no link {link_id} in this space.")
        if row.created_by != caller.subject and inside.role is not Role.MANAGER:
            await self._nodes.gate.refuse(
                caller, "collab.unshare", file_target(row.node_id), f"role-{inside.role}"
            )
            raise ApiError(403, "Only who made a link, or a manager of the space, may revoke it.")
        now = self._nodes.clock()
        async with self._nodes.database.transaction() as session:
            row = await links.one(session, space_id, link_id)
            if row is None or row.revoked_at is not None:
                return
            row.revoked_at = now
            node = await repository.any_node(session, space_id, row.node_id)
            name = node.name if node is not None else row.node_id
            await note_activity(
                session, space_id, caller.subject, "link.revoked", name, row.node_id, now
            )
        await self._nodes.gate.record(
            inside, "collab.unshare", file_target(row.node_id), link=link_id
        )

    async def list(self, caller: Principal, space_id: str) -> builtins.list[ShareLink]:
        """The space's links, newest first (any member); but those to a file that became
        data of a patient whom `access` keeps from the caller (its name may be patient data)."""
        inside = await self._nodes.gate.enter(caller, space_id, Role.VIEWER, "collab.read")
        now = self._nodes.clock()
        async with self._nodes.database.snapshot() as session:
            found = await links.of_space(session, space_id)
            roles = {
                member.user_id: Role(member.role)
                for member, _ in await repository.members(session, space_id)
            }
        files = {node.patient_id: node.id for _, node in found if node and node.patient_id}
        seen = await self._nodes.gate.patients_seen(inside, files)
        return [
            ShareLink.of(
                row,
                node.name if node else "",
                node.kind if node else "",
                link_state(row, node, True, roles.get(row.created_by), now)[0],
            )
            for row, node in found
            if node is None or node.patient_id is None or node.patient_id in seen
        ]

    async def open(self, token: str, pass_value: str | None, folder_id: str | None) -> SharedView:
        """The link's page: its file, or its folder (or `folder_id` below it) with what it
        holds but patient data; 401 if it needs a password the visitor has not given."""
        link = await self._arrive(token, _VIEW)
        self._admit(link, pass_value)
        if not link.shared.is_folder:
            if folder_id is not None:
                raise LinkRefused(404, "Not in this link.", reason="outside")
            view = SharedView(link, link.shared, [link.shared], [])
        else:
            folder, trail = await self._below(link, folder_id or link.shared.id, _VIEW)
            if not folder.is_folder:
                raise LinkRefused(404, "Not a folder of this link.", reason="outside")
            async with self._nodes.database.snapshot() as session:
                rows = await repository.children(session, folder.id)
            inner = [Node.of(row) for row in rows if row.patient_id is None]
            view = SharedView(link, folder, trail, inner)
        await self._audit.record(_use(link, _VIEW, view.node.id))
        return view

    async def unlock(self, token: str, password: str) -> tuple[OpenLink, str]:
        """The link and a pass for its password (a cookie's value); 403 for a wrong one,
        429 while the link takes none after too many wrong ones."""
        link = await self._arrive(token, _UNLOCK)
        if link.password_hash is None:
            return link, self._pass(link)
        now = self._nodes.clock()
        async with self._nodes.database.transaction() as session:
            attempt = await links.password_attempt(session, link.id, WRONG_PASSWORDS, now)
        if attempt is None:
            await self._refused(link, _UNLOCK, "throttled")
            locked_until = link.locked_until
            raise throttled(locked_until - now if locked_until and locked_until > now else LOCKOUT)
        right = len(password) <= MAX_PASSWORD and await asyncio.to_thread(
            self._hasher.verify, link.password_hash, password
        )
        locked = not right and attempt >= WRONG_PASSWORDS
        async with self._nodes.database.transaction() as session:
            if right:
                await links.password_right(session, link.id)
            elif locked:
                await links.lock_password(session, link.id, now + LOCKOUT)
        if not right:
            await self._refused(link, _UNLOCK, "wrong-password")
            if locked:
                raise throttled(LOCKOUT)
            raise LinkRefused(403, "The password is wrong.", reason="wrong-password")
        await self._audit.record(_use(link, _UNLOCK, link.shared.id))
        return link, self._pass(link)

    async def fetch(self, token: str, pass_value: str | None, node_id: str | None) -> SharedFile:
        """The shared file, or the file `node_id` below the shared folder, for download
        (nothing counted yet: `charge`)."""
        link = await self._arrive(token, _DOWNLOAD, used_up_ok=True)
        self._admit(link, pass_value)
        if node_id is None:
            node = link.shared
        elif link.shared.is_folder:
            node, _ = await self._below(link, node_id, _DOWNLOAD)
        else:
            raise LinkRefused(404, "Not in this link.", reason="outside")
        if node.is_folder:
            raise LinkRefused(404, "A folder is downloaded file by file.", reason="outside")
        async with self._nodes.database.snapshot() as session:
            version = await repository.version(session, node.id, node.version)
        stored = None if version is None else await self._nodes.storage.describe(version.object_id)
        if stored is None:
            raise LinkRefused(410, "The file is no longer there.", reason="unavailable")
        return SharedFile(link, node, stored)

    async def charge(self, shared: SharedFile, ticket: str | None, partial: bool) -> str:
        """Count a download against the link's limit, unless it is a part (`partial`) of
        one counted already (`ticket`); the ticket for the download's further parts. 410
        once the limit is reached. Recorded either way."""
        link, node = shared.link, shared.node
        resumed = partial and self._signed_ok(ticket, "download", link.id, node.id, node.sha256)
        if not resumed:
            async with self._nodes.database.transaction() as session:
                counted = await links.take_download(session, link.id)
            if not counted:
                await self._refused(link, _DOWNLOAD, "used-up", node.id)
                raise gone(LinkState.USED_UP)
        await self._audit.record(
            _use(
                link,
                _DOWNLOAD,
                node.id,
                version=str(node.version),
                counted="no" if resumed else "yes",
            )
        )
        if resumed and ticket is not None:
            return ticket
        return self._signed(TICKET_LIFETIME, "download", link.id, node.id, node.sha256)

    async def _arrive(self, token: str, action: str, used_up_ok: bool = False) -> OpenLink:
        """The link of `token` if it works (or has only been used up, if that is `ok`);
        404 for no such link (not recorded: there is no link to record it for), 410 for
        one that no longer works (recorded as a refusal of `action`)."""
        found = None
        if _TOKEN.fullmatch(token):
            async with self._nodes.database.snapshot() as session:
                found = await links.by_token(session, token_hash(token))
        if found is None:
            raise LinkRefused(404, "There is no such link.", reason="unknown")
        row, space, node, role = found
        state, why = link_state(row, node, space.deleted_at is None, role, self._nodes.clock())
        if state is not LinkState.ACTIVE and not (used_up_ok and state is LinkState.USED_UP):
            denied = AuditRecord(
                action,
                _actor(row.id),
                Outcome.DENIED,
                organisation=space.organisation_id,
                target=file_target(row.node_id),
                detail={"space": row.space_id, "createdBy": row.created_by, "reason": why},
            )
            await self._audit.record(denied)
            raise gone(state)
        assert node is not None
        return OpenLink.of(row, space, Node.of(node))

    def _admit(self, link: OpenLink, pass_value: str | None) -> None:
        if link.has_password and not self._signed_ok(pass_value, "pass", link.id):
            raise LinkRefused(
                401,
                "This link asks for a password.",
                reason="password-needed",
                headers={"WWW-Authenticate": 'Form realm="share link"'},
            )

    async def _below(
        self, link: OpenLink, node_id: str, action: str
    ) -> tuple[Node, builtins.list[Node]]:
        """The live node `node_id` at or below the shared folder, and the folders from the
        shared one down to it; 404 (recorded) for anything else and for patient data."""
        row: NodeRow | None = None
        chain: builtins.list[NodeRow] = []
        if _ID.fullmatch(node_id):
            async with self._nodes.database.snapshot() as session:
                row = await repository.live_node(session, link.space_id, node_id)
                chain = [] if row is None else [*await repository.ancestors(session, row), row]
        ids = [each.id for each in chain]
        if row is None or row.patient_id is not None or link.shared.id not in ids:
            await self._refused(link, action, "outside", node_id[:64])
            raise LinkRefused(404, "There is no such file or folder here.", reason="outside")
        trail = [Node.of(each) for each in chain[ids.index(link.shared.id) :]]
        return trail[-1], trail

    def _pass(self, link: OpenLink) -> str:
        return self._signed(PASS_LIFETIME, "pass", link.id)

    def _signed(self, lifetime: dt.timedelta, *parts: str) -> str:
        """A value that shows we issued it for `parts`, until `lifetime` from now."""
        until = str(int((self._nodes.clock() + lifetime).timestamp()))
        signature = self._box.sign(_SIGNING, ".".join([*parts, until]).encode())
        return f"{until}.{signature}"

    def _signed_ok(self, value: str | None, *parts: str) -> bool:
        until, _, signature = (value or "").partition(".")
        if not until.isdigit() or int(until) < self._nodes.clock().timestamp():
            return False
        expected = self._box.sign(_SIGNING, ".".join([*parts, until]).encode())
        return constant_time_equal(expected, signature)

    async def _refused(
        self, link: OpenLink, action: str, reason: str, node_id: str | None = None
    ) -> None:
        await self._audit.record(_use(link, action, node_id or link.shared.id).refused(reason))

    async def _tell(
        self,
        caller: Principal,
        name: str,
        url: str,
        expires_at: dt.datetime,
        with_password: bool,
        recipients: builtins.list[str],
    ) -> tuple[str, ...]:
        """Mail the link (to `name`: what it shares) to `recipients`; those it could not
        be sent to."""
        if not recipients:
            return ()
        async with self._nodes.database.snapshot() as session:
            sender = await links.display_name(session, caller.subject) or "A medicus user"
        body = (
            f'{sender} shared "{name}" with you on medicus.\n\n'
            f"Open it: {url}\n\n"
            f"The link works until {expires_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC."
        )
        if with_password:
            body += f"\nIt asks for a password, which {sender} gives you separately."
        unsent = []
        for address in recipients:
            try:
                await self._mail.send(Mail(address, f"medicus: {name}", body + "\n"))
            except ApiError:
                unsent.append(address)
        if unsent:
            log.warning("share link mail not sent", recipients=len(unsent))
        return tuple(unsent)


def _check_terms(
    now: dt.datetime, expires_at: dt.datetime, password: str | None, max_downloads: int | None
) -> None:
    """400 for terms a link may not have."""
    if expires_at.tzinfo is None:
        raise ApiError(400, "The expiry needs a time zone (UTC: a trailing Z).")
    if expires_at <= now:
        raise ApiError(400, "The expiry lies in the past; a link expires in the future.")
    if expires_at > now + dt.timedelta(days=MAX_DAYS):
        raise ApiError(400, f"A link expires within {MAX_DAYS} days.")
    if password is not None and not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ApiError(400, f"A link's password has {MIN_PASSWORD} to {MAX_PASSWORD} characters.")
    if max_downloads is not None and not 1 <= max_downloads <= MAX_DOWNLOADS:
        raise ApiError(400, f"A link allows 1 to {MAX_DOWNLOADS} downloads, or any number.")


def _recipients(addresses: builtins.list[str]) -> builtins.list[str]:
    """The distinct addresses to tell; 400 for one that is none, or too many."""
    if len(addresses) > MAX_RECIPIENTS:
        raise ApiError(400, f"A link is mailed to at most {MAX_RECIPIENTS} addresses at once.")
    distinct: dict[str, str] = {}
    for address in (each.strip() for each in addresses):
        if len(address) > 254 or not _EMAIL.fullmatch(address):
            raise ApiError(400, f"{address[:80]!r} is not an e-mail address.")
        distinct.setdefault(address.casefold(), address)
    return list(distinct.values())


def _actor(link_id: str) -> str:
    return f"share-link:{link_id}"


def _use(link: OpenLink, action: str, node_id: str, **detail: str) -> AuditRecord:
    """The audit event of a use of the link, by whoever holds it."""
    return AuditRecord(
        action,
        _actor(link.id),
        organisation=link.organisation_id,
        target=file_target(node_id),
        detail={"space": link.space_id, "createdBy": link.created_by, **detail},
    )
