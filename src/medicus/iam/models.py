"""Tables of identity and access management: organisations (tenants), users, memberships,
credentials, browser sessions, OAuth clients, codes, refresh tokens and signing keys.

Bearer values (session ids, codes, refresh tokens, recovery codes) are stored only as hashes;
private keys and TOTP secrets only encrypted (`core.crypto.SecretBox`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from medicus.core.db import Base, UTCDateTime


class OrganisationRow(Base):
    __tablename__ = "organisation"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(40))
    iknr: Mapped[str | None] = mapped_column(String(9), unique=True)
    telematik_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # Which members must use a second factor: "clinical" (default), "all" or "none".
    mfa_policy: Mapped[str] = mapped_column(
        String(20), default="clinical", server_default="clinical"
    )


class UserRow(Base):
    __tablename__ = "app_user"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    totp_secret: Mapped[str | None] = mapped_column(Text, default=None)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, default=None)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Sessions and tokens issued before this moment are void ("log out everywhere").
    sessions_valid_after: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)


class MembershipRow(Base):
    """A user's role at one organisation; a consultant at two hospitals has two rows."""

    __tablename__ = "membership"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True
    )
    organisation_id: Mapped[str] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(40))
    # Suspended by the organisation's admin: the user cannot work for this organisation.
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    # A patient's membership (role `patient`): their Patient record at this organisation.
    patient_id: Mapped[str | None] = mapped_column(String(64), default=None)

    __table_args__ = (Index("ix_membership_organisation_id", "organisation_id"),)


class InvitationRow(Base):
    """An invitation to join an organisation in a role, sent by e-mail; the link carries a
    random token, stored here only as its hash."""

    __tablename__ = "invitation"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisation.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(40))
    # An invitation of a patient: their Patient record at the organisation.
    patient_id: Mapped[str | None] = mapped_column(String(64), default=None)
    invited_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)


class RecoveryCodeRow(Base):
    __tablename__ = "recovery_code"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)


class BrowserSessionRow(Base):
    """A login in a browser. `stage` is "password" until the second factor is done, then
    "complete"; `organisation_id` is the organisation the user works for in this session."""

    __tablename__ = "browser_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    organisation_id: Mapped[str | None] = mapped_column(String(64), default=None)
    stage: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    authenticated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    # A TOTP secret being enrolled, encrypted, until the user confirms it with a first code.
    pending_totp_secret: Mapped[str | None] = mapped_column(Text, default=None)

    __table_args__ = (Index("ix_browser_session_user_id", "user_id"),)


class OAuthClientRow(Base):
    """A registered OAuth client: a public app (authorization code + PKCE) or a backend service
    (client credentials, authenticated by `private_key_jwt` against its registered JWKS).
    `organisation_id` is None for a public client of the platform itself (the messenger's
    single sign-on), which any organisation's staff may use."""

    __tablename__ = "oauth_client"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_id: Mapped[str | None] = mapped_column(ForeignKey("organisation.id"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    redirect_uris: Mapped[str] = mapped_column(Text, default="[]")
    jwks: Mapped[str | None] = mapped_column(Text, default=None)
    scope: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class AuthorizationCodeRow(Base):
    __tablename__ = "authorization_code"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    organisation_id: Mapped[str] = mapped_column(String(64))
    session_hash: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    nonce: Mapped[str | None] = mapped_column(String(255), default=None)
    auth_time: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The refresh-token family issued for this code, revoked if the code is replayed.
    family_id: Mapped[str | None] = mapped_column(String(64), default=None)


class RefreshTokenRow(Base):
    """Refresh tokens rotate: each use marks the row used and issues a successor in the same
    family. A used token presented again means theft, and the whole family is revoked."""

    __tablename__ = "refresh_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    organisation_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_refresh_token_family_id", "family_id"),)


class SigningKeyRow(Base):
    """A key that signs tokens. The newest unretired key signs; retired keys stay published in
    the JWKS until `published_until`, when every token they signed has expired."""

    __tablename__ = "signing_key"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(10))
    private_key: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    published_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)


class RevocationRow(Base):
    """An append-only feed of what makes access tokens void before they expire: one token
    (`kind` "token", `subject` its jti), every token of one grant (`kind` "family", `subject`
    the refresh-token family: a replayed code, a reused refresh token) or every token of a user
    issued before `not_before` (`kind` "user": logout everywhere, account disabled; with an
    `organisation_id`, only the tokens for that organisation: membership suspended or changed).
    Each process follows the feed into memory, so that checking a token costs no database round
    trip. Rows matter only until `expires_at`, when every token they concern has expired
    anyway."""

    __tablename__ = "revocation"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(64))
    organisation_id: Mapped[str | None] = mapped_column(String(64), default=None)
    not_before: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_revocation_expires_at", "expires_at"),)


class ClientAssertionRow(Base):
    """`jti`s of client assertions already used, so that a captured assertion cannot be
    replayed (SMART Backend Services)."""

    __tablename__ = "client_assertion"

    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class UpstreamIdentityProviderRow(Base):
    """A hospital's own OpenID Connect provider, through which its people log in to medicus.
    `trust_upstream_mfa` accepts the hospital's second factor instead of asking for medicus's."""

    __tablename__ = "upstream_idp"

    organisation_id: Mapped[str] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), primary_key=True
    )
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(255))
    client_secret: Mapped[str | None] = mapped_column(Text, default=None)
    scope: Mapped[str] = mapped_column(String(500), default="openid email profile")
    trust_upstream_mfa: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class ExternalIdentityRow(Base):
    """Which medicus user an upstream identity (issuer, subject) is."""

    __tablename__ = "external_identity"

    issuer: Mapped[str] = mapped_column(String(500), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    linked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class UpstreamLoginRow(Base):
    """A login sent to an upstream provider and not back yet: its state (hashed), and the
    PKCE verifier and nonce (encrypted) that the answer must match. Used once."""

    __tablename__ = "upstream_login"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(String(64))
    secrets: Mapped[str] = mapped_column(Text)
    next_url: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    used: Mapped[bool] = mapped_column(Boolean, default=False)
