"""How the operator configures storage: its backends, read by the settings (kept apart from
`backends`, so that reading the settings does not import obstore)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

SCHEMES = ("file", "s3", "az", "azure", "abfs", "gs")


class BackendConfig(BaseModel):
    """One backend as the operator configures it (`storage_backends` in the settings).

    `url` names the place: `file:///srv/medicus/objects`, `s3://bucket/prefix`,
    `az://container/prefix`, `gs://bucket/prefix`. `options` are obstore's configuration
    keys for that cloud (`access_key_id`, `secret_access_key`, `region`, `endpoint`,
    `account_name`, `account_key`, `use_emulator`, `service_account_key`, ...); their values
    are kept as secrets and never logged."""

    model_config = {"extra": "forbid", "frozen": True}

    name: str
    url: str
    options: dict[str, SecretStr] = Field(default_factory=dict)
    allow_http: bool = False
    """Plain http to the endpoint: only for a test server on loopback."""
    timeout_seconds: float = Field(default=60.0, gt=0)
    connect_timeout_seconds: float = Field(default=3.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)

    @field_validator("name")
    @classmethod
    def _simple_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,31}", value):
            raise ValueError("it must be up to 32 lower-case letters, digits and dashes")
        return value

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if urlsplit(value).scheme not in SCHEMES:
            raise ValueError("it must start with file://, s3://, az:// or gs://")
        return value

    def scheme(self) -> str:
        return urlsplit(self.url).scheme
