"""The homeserver medicus runs: Synapse's configuration, written from medicus's settings, and
the secrets the two share, derived from the platform secret.

Synapse (AGPL-3.0) runs unmodified as its own process; medicus only writes its configuration
file and talks to it over HTTP. Every secret Synapse needs is derived from `MEDICUS_SECRET_KEY`
with HKDF (one per purpose), so that every medicus process and host computes the same ones
without storing them, and a new platform secret renews them all."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from medicus.messenger.repository import STAFF_ROLES
from medicus.settings import DEFAULT_RETENTION_DAYS, RoomKind, Settings

LOGIN_ISSUER = "medicus"
"""The issuer of login tokens (`iss`), the same whatever medicus's public URL is; the audience
(`aud`) is the homeserver's name."""
LOGIN_TOKEN_TYPE = "org.matrix.login.jwt"  # noqa: S105 (a login type's name)
SIGN_ON_CLIENT_ID = "medicus-messenger"
"""The OAuth client id under which Synapse signs users in with medicus (OpenID Connect): a
public client of the platform itself, registered at every server start."""
SIGN_ON_SCOPE = "openid profile"
SIGN_ON_IDP = "medicus"
"""Synapse's name of the identity provider: clients open `/login/sso/redirect/oidc-medicus`."""
SYSTEM_LOCALPART = "medicus-system"
"""The account medicus itself uses for Synapse's admin API (locking, deactivating)."""

_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def derived_secret(platform_secret: bytes, purpose: str, length: int = 32) -> bytes:
    derive = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode())
    return derive.derive(platform_secret)


def login_signing_key(platform_secret: bytes) -> ec.EllipticCurvePrivateKey:
    """The P-256 key medicus signs Matrix login tokens with (ES256); Synapse holds only its
    public half. Derived, not stored: 48 bytes of HKDF output reduced modulo the group order
    (the bias is below 2^-128, as in FIPS 186-5 A.4.1)."""
    material = int.from_bytes(derived_secret(platform_secret, "messenger-login-key", 48), "big")
    return ec.derive_private_key(material % (_P256_ORDER - 1) + 1, ec.SECP256R1())


@dataclass(frozen=True)
class Homeserver:
    """Where the homeserver lives and what it is called."""

    server_name: str
    synapse_url: str
    public_url: str
    max_upload_bytes: int
    directory: Path
    retention_days: Mapping[RoomKind, int] = field(default_factory=lambda: DEFAULT_RETENTION_DAYS)
    """Days until messages are deleted, by kind of room: "direct", "group", "case"."""
    database_url: str = ""
    """Synapse's PostgreSQL database (empty: SQLite in `directory`)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Homeserver:
        return cls(
            server_name=settings.messenger_server_name,
            synapse_url=settings.messenger_synapse_url.rstrip("/"),
            public_url=settings.public_url,
            max_upload_bytes=settings.messenger_max_upload_mb * 1024 * 1024,
            directory=settings.data_dir / "messenger",
            retention_days={**DEFAULT_RETENTION_DAYS, **settings.messenger_retention_days},
            database_url=settings.messenger_database_url,
        )

    def matrix_id(self, user_id: str) -> str:
        """A medicus user's Matrix ID: stable (their user id, never their changing name)."""
        return f"@{user_id}:{self.server_name}"

    def user_id(self, matrix_id: str) -> str | None:
        """The medicus user behind a Matrix ID of this homeserver, or None."""
        localpart, separator, server = matrix_id.removeprefix("@").partition(":")
        if not matrix_id.startswith("@") or not separator or server != self.server_name:
            return None
        return localpart or None

    @property
    def sign_on_redirect_uri(self) -> str:
        """Where medicus sends a signed-in user back to Synapse (through the Messenger-Proxy)."""
        return f"{self.public_url}/_synapse/client/oidc/callback"

    @property
    def config_path(self) -> Path:
        return self.directory / "homeserver.yaml"

    @property
    def pid_path(self) -> Path:
        return self.directory / "homeserver.pid"

    @property
    def log_path(self) -> Path:
        return self.directory / "homeserver.log"

    def write_config(self, platform_secret: bytes) -> Path:
        """Write Synapse's configuration (YAML is a superset of JSON, so it is written as JSON)
        and its logging configuration; returns the configuration's path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "media").mkdir(exist_ok=True)
        log_config = self.directory / "log.yaml"
        log_config.write_bytes(orjson.dumps(self._logging(), option=orjson.OPT_INDENT_2))
        config = self.synapse_config(platform_secret, log_config)
        self.config_path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
        self.config_path.chmod(0o600)
        return self.config_path

    def synapse_config(self, platform_secret: bytes, log_config: Path) -> dict[str, object]:
        listen = urlsplit(self.synapse_url)
        public_key = login_signing_key(platform_secret).public_key()
        return {
            "server_name": self.server_name,
            "public_baseurl": f"{self.public_url}/",
            "report_stats": False,
            "listeners": [
                {
                    "port": listen.port or 8008,
                    "bind_addresses": [listen.hostname or "127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": True,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": self._database(),
            "log_config": str(log_config),
            "media_store_path": str(self.directory / "media"),
            "max_upload_size": self.max_upload_bytes,
            "signing_key_path": str(self.directory / "signing.key"),
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            # No federation: every organisation of the region is on this one homeserver, and
            # the Messenger-Proxy decides who may reach whom (docs/messenger.md).
            "federation_domain_whitelist": [],
            "enable_registration": False,
            "password_config": {"enabled": False},
            "url_preview_enabled": False,
            "enable_metrics": False,
            "registration_shared_secret": _hex(platform_secret, "messenger-registration"),
            "macaroon_secret_key": _hex(platform_secret, "messenger-macaroons"),
            "form_secret": _hex(platform_secret, "messenger-forms"),
            "jwt_config": {
                "enabled": True,
                "secret": public_key.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ).decode(),
                "algorithm": "ES256",
                "issuer": LOGIN_ISSUER,
                "audiences": [self.server_name],
                "display_name_claim": "name",
            },
            **self._sign_on(),
            # Medicus's own login tokens arrive at a high rate in load and tests; Synapse's
            # per-IP limits would count the proxy's one address for everybody.
            # Messages are deleted after the days of their kind of room: the Messenger-Proxy
            # sets each new room's policy; rooms without one keep a group's.
            "retention": {
                "enabled": True,
                "default_policy": {"max_lifetime": f"{self.retention_days['group']}d"},
                "allowed_lifetime_min": "1d",
                "allowed_lifetime_max": f"{max(self.retention_days.values())}d",
                "purge_jobs": [{"interval": "12h"}],
            },
            "rc_login": {
                "address": {"per_second": 1000, "burst_count": 1000},
                "account": {"per_second": 1000, "burst_count": 1000},
            },
            "rc_message": {"per_second": 1000, "burst_count": 1000},
            "rc_joins": {"local": {"per_second": 1000, "burst_count": 1000}},
            "rc_invites": {
                "per_room": {"per_second": 1000, "burst_count": 1000},
                "per_user": {"per_second": 1000, "burst_count": 1000},
            },
        }

    def _database(self) -> dict[str, object]:
        """SQLite beside the configuration, or PostgreSQL through psycopg2 (Synapse's
        driver) with a connection pool of 5 to 10."""
        if not self.database_url:
            return {"name": "sqlite3", "args": {"database": str(self.directory / "homeserver.db")}}
        url = urlsplit(self.database_url)
        args: dict[str, object] = {
            "dbname": unquote(url.path.lstrip("/")),
            "host": url.hostname or "127.0.0.1",
            "port": url.port or 5432,
            "cp_min": 5,
            "cp_max": 10,
        }
        if url.username:
            args["user"] = unquote(url.username)
        if url.password:
            args["password"] = unquote(url.password)
        return {"name": "psycopg2", "args": args}

    def _sign_on(self) -> dict[str, object]:
        """Single sign-on for people's Matrix clients (Element and others): Synapse's own
        OpenID Connect login against medicus as the provider. The Matrix ID is the medicus
        user id (`sub`), as with login tokens, so both ways reach the same account; the
        display name follows medicus at every login. Synapse exchanges the code, checks the
        id_token and reads userinfo at medicus's public URL. The endpoints are given rather
        than discovered, and the profile read from userinfo: otherwise Synapse fetches the
        discovery document and the keys when it starts, before the medicus that starts it
        listens, and logs that login "may be broken"."""
        return {
            "oidc_providers": [
                {
                    "idp_id": SIGN_ON_IDP,
                    "idp_name": "medicus",
                    "issuer": self.public_url,
                    "discover": False,
                    "authorization_endpoint": f"{self.public_url}/oauth/authorize",
                    "token_endpoint": f"{self.public_url}/oauth/token",
                    "jwks_uri": f"{self.public_url}/oauth/jwks",
                    "userinfo_endpoint": f"{self.public_url}/oauth/userinfo",
                    "user_profile_method": "userinfo_endpoint",
                    "id_token_signing_alg_values_supported": ["ES256"],
                    "client_id": SIGN_ON_CLIENT_ID,
                    "client_auth_method": "none",
                    "pkce_method": "always",
                    "scopes": SIGN_ON_SCOPE.split(),
                    "allow_existing_users": True,
                    # Staff only (the role medicus names in userinfo for the organisation
                    # chosen at login): a patient gets no Matrix account.
                    "attribute_requirements": [{"attribute": "role", "one_of": STAFF_ROLES}],
                    "user_mapping_provider": {
                        "config": {
                            "localpart_template": "{{ user.sub }}",
                            "display_name_template": "{{ user.name }}",
                        }
                    },
                }
            ],
            "sso": {"update_profile_information": True},
        }

    def _logging(self) -> dict[str, object]:
        """Synapse's log: warnings and errors only, to a file beside its data (its INFO lines
        name rooms and users; message content it never logs)."""
        return {
            "version": 1,
            "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "filename": str(self.log_path),
                    "formatter": "plain",
                }
            },
            "root": {"level": "WARNING", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }


def _hex(platform_secret: bytes, purpose: str) -> str:
    return derived_secret(platform_secret, purpose).hex()
