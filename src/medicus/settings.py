"""The one configuration object of a medicus process.

Values come, strongest first, from keyword arguments, `MEDICUS_*` environment variables, an
optional `medicus.toml` (or the file named by `MEDICUS_CONFIG`) and the defaults below.
A wrong value stops start-up with one sentence (`ConfigError`), never with a traceback.
"""

from __future__ import annotations

import difflib
import os
import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from medicus.storage.config import BackendConfig

ENV_PREFIX = "MEDICUS_"
CONFIG_FILE_VARIABLE = "MEDICUS_CONFIG"
DEFAULT_CONFIG_FILE = "medicus.toml"
SECRET_KEY_FILE = "keys/secret_key"  # noqa: S105 (a file name, not a secret)


RoomKind = Literal["direct", "group", "case"]
DEFAULT_RETENTION_DAYS: dict[RoomKind, int] = {"direct": 180, "group": 180, "case": 365}


class ConfigError(Exception):
    """The configuration cannot be used; the message is one sentence for the operator."""


def _async_driver_url(raw: str) -> str:
    """Accept the URLs operators write and choose the async driver medicus uses for them.
    SQLAlchemy is imported here, not above, so that commands that need only the settings
    start quickly (it takes most of a second to import)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw)
    except ArgumentError:
        raise ValueError(
            "it is not a database URL; use sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE"
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError("it must name a SQLite file, as in sqlite:///var/medicus.db")
        return url.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        if not url.database:
            raise ValueError("it must name a database, as in postgresql://USER@HOST:5432/medicus")
        return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"it uses '{backend}', but medicus supports only sqlite and postgresql")


class Settings(BaseSettings):
    """Effective configuration; see docs/operations.md for every field."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("var")
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    secret_key: SecretStr | None = None
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    access_log: Literal["auto", "all", "sampled", "errors"] = "auto"
    access_log_sample_rate: float = Field(default=0.01, ge=0, le=1)
    access_log_slow_ms: float = Field(default=1000.0, ge=0)
    db_pool_size: int = Field(default=10, ge=1, le=500)
    db_generic_plans: bool = True
    workers: int = Field(default=1, ge=1, le=64)
    auto_migrate: bool | None = None
    audit_seal_interval: float = Field(default=0.5, gt=0, le=60)
    public_url: str = ""
    access_token_seconds: int = Field(default=300, ge=30, le=3600)
    refresh_token_seconds: int = Field(default=30 * 24 * 3600, ge=300)
    session_seconds: int = Field(default=12 * 3600, ge=300)
    signing_key_rotation_days: int = Field(default=90, ge=1)
    revocation_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    login_attempts_before_lockout: int = Field(default=5, ge=1, le=100)
    smtp_url: SecretStr | None = None
    mail_from: str = "medicus <noreply@medicus.invalid>"
    invitation_days: int = Field(default=7, ge=1, le=60)
    break_glass_minutes: int = Field(default=240, ge=5, le=24 * 60)
    argon2_time_cost: int = Field(default=3, ge=1, le=20)
    argon2_memory_kib: int = Field(default=65536, ge=1024, le=4 * 1024 * 1024)
    storage_backends: list[BackendConfig] = Field(default_factory=list)
    storage_replicas: int | None = Field(default=None, ge=1, le=8)
    storage_quota_gb: float | None = Field(default=500.0, gt=0)
    storage_max_object_gb: float = Field(default=50.0, gt=0)
    storage_upload_hours: int = Field(default=7 * 24, ge=1, le=90 * 24)
    # The messenger (docs/messenger.md): "managed" runs Synapse beside `medicus serve`,
    # "external" proxies to one run elsewhere (workers, PostgreSQL), "off" has no messenger.
    messenger: Literal["managed", "external", "off"] = "managed"
    messenger_synapse_url: str = "http://127.0.0.1:8008"
    messenger_server_name: str = ""
    messenger_max_upload_mb: int = Field(default=2000, ge=1, le=2047)
    # The managed Synapse's database: empty for SQLite under the data directory, or a
    # PostgreSQL URL (postgresql://user:password@host:5432/synapse; a database of its own,
    # created with C collation, as Synapse requires).
    messenger_database_url: str = ""
    # Days until Synapse deletes a message, by the kind of room (docs/messenger.md).
    messenger_retention_days: dict[RoomKind, int] = Field(
        default_factory=lambda: dict(DEFAULT_RETENTION_DAYS)
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return _async_driver_url(value) if value else value

    @field_validator("messenger_database_url")
    @classmethod
    def _messenger_database_url(cls, value: str) -> str:
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("it must be a PostgreSQL URL, as in postgresql://synapse@db/synapse")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("it must be an http(s) URL, as in https://medicus.example.org")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if not self.public_url:
            object.__setattr__(self, "public_url", f"http://{self.host}:{self.port}")
        if not self.messenger_server_name:
            host = self.public_url.split("://", 1)[1]
            object.__setattr__(self, "messenger_server_name", host)
        if not self.database_url:
            path = (self.data_dir / "medicus.db").as_posix()
            object.__setattr__(self, "database_url", f"sqlite+aiosqlite:///{path}")
        if self.env == "production" and self.secret_key is None:
            raise ValueError(
                "production mode needs a secret: set MEDICUS_SECRET_KEY (32 or more characters)"
            )
        if self.secret_key is not None and len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("MEDICUS_SECRET_KEY must be at least 32 characters long")
        self._check_storage()
        self._check_retention()
        return self

    def _check_retention(self) -> None:
        for kind, days in self.messenger_retention_days.items():
            if not 1 <= days <= 36500:
                raise ValueError(f"messenger_retention_days: {kind} must be 1 to 36500 days")

    def _check_storage(self) -> None:
        names = [backend.name for backend in self.storage_backends]
        if len(set(names)) != len(names):
            raise ValueError("storage_backends: each backend needs its own name")
        if self.storage_replicas and self.storage_replicas > max(1, len(names)):
            raise ValueError(
                f"storage_replicas is {self.storage_replicas}, but only {max(1, len(names))} "
                "storage backend(s) are configured"
            )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = Path(os.environ.get(CONFIG_FILE_VARIABLE, DEFAULT_CONFIG_FILE))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, config_file))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        """The embedded default migrates itself on `serve`; a shared PostgreSQL is migrated
        explicitly by the operator (`medicus migrate`), so that replicas never race."""
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    def effective_storage_backends(self) -> list[BackendConfig]:
        """The configured backends, or the embedded default: one directory in `data_dir`."""
        if self.storage_backends:
            return list(self.storage_backends)
        folder = (self.data_dir / "objects").resolve()
        return [BackendConfig(name="local", url=folder.as_uri())]

    def effective_storage_replicas(self) -> int:
        """How many backends each object is written to: as configured, else 2 when there are
        two or more backends, else 1."""
        backends = len(self.effective_storage_backends())
        return self.storage_replicas or min(2, backends)

    @property
    def uses_json_logs(self) -> bool:
        if self.log_format == "auto":
            return self.env == "production"
        return self.log_format == "json"

    def access_log_mode(self) -> Literal["all", "sampled", "errors"]:
        """`auto`: every request in development, a sample in production (see `AccessLog`)."""
        if self.access_log == "auto":
            return "sampled" if self.env == "production" else "all"
        return self.access_log

    def effective_secret_key(self) -> bytes:
        """The configured secret, or in development one generated once under `data_dir`."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / SECRET_KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()

    def masked(self) -> dict[str, Any]:
        """Every setting as the operator would write it, with secrets and passwords masked."""
        shown: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********"
            elif name == "secret_key":
                value = f"(not set: development key in {(self.data_dir / SECRET_KEY_FILE)})"
            elif name == "auto_migrate":
                value = self.should_auto_migrate
            elif name == "smtp_url" and value is None:
                value = "(not set: e-mails are written to the log in development)"
            elif name == "database_url" and "@" in value:  # only a user part has a password
                from sqlalchemy.engine import make_url

                value = make_url(value).render_as_string(hide_password=True)
            elif name == "storage_backends":
                value = [
                    backend.model_dump(mode="json") for backend in self.effective_storage_backends()
                ]
            elif isinstance(value, Path):
                value = value.as_posix()
            shown[name] = value
        return shown


def _unknown_environment_keys() -> list[str]:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    known.add(CONFIG_FILE_VARIABLE)
    return sorted(key for key in os.environ if key.startswith(ENV_PREFIX) and key not in known)


def _sentence(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "configuration"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"unknown setting '{field}' in the configuration file"
    if field == "configuration":
        return message
    return f"setting {ENV_PREFIX}{field.upper()} is invalid: {message[:1].lower()}{message[1:]}"


def load_settings(**overrides: Any) -> Settings:
    """Build the Settings or raise ConfigError with one sentence that says what to fix."""
    unknown = _unknown_environment_keys()
    if unknown:
        names = [ENV_PREFIX + name.upper() for name in Settings.model_fields]
        hint = difflib.get_close_matches(unknown[0], names, n=1)
        suggestion = f"; did you mean {hint[0]}?" if hint else ""
        raise ConfigError(f"unknown setting {unknown[0]} in the environment{suggestion}")
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(_sentence(error)) from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"the configuration file cannot be read: {error}") from None
