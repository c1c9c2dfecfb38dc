"""The Synapse configuration medicus writes: its database (SQLite or PostgreSQL) and the single
sign-on section, without starting Synapse."""

from __future__ import annotations

from pathlib import Path

import pytest

from medicus.messenger.homeserver import SIGN_ON_CLIENT_ID, Homeserver
from medicus.settings import ConfigError, load_settings


def _config(tmp_path: Path, **fields: str) -> dict[str, object]:
    homeserver = Homeserver(
        "medicus.example", "http://127.0.0.1:8008", "https://medicus.example", 1, tmp_path, **fields
    )
    return homeserver.synapse_config(b"\0" * 32, tmp_path / "log.yaml")


def test_sqlite_by_default(tmp_path: Path) -> None:
    assert _config(tmp_path)["database"] == {
        "name": "sqlite3",
        "args": {"database": str(tmp_path / "homeserver.db")},
    }


def test_postgresql_from_a_url_with_an_awkward_password(tmp_path: Path) -> None:
    url = "postgresql://synapse:p%40ss%3Aw%2Frd@db.internal:6432/matrix"
    database = _config(tmp_path, database_url=url)["database"]
    assert database == {
        "name": "psycopg2",
        "args": {
            "dbname": "matrix",
            "host": "db.internal",
            "port": 6432,
            "user": "synapse",
            "password": "p@ss:w/rd",
            "cp_min": 5,
            "cp_max": 10,
        },
    }


def test_only_a_postgresql_url_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDICUS_MESSENGER_DATABASE_URL", "mysql://synapse@db/matrix")
    with pytest.raises(ConfigError, match="MESSENGER_DATABASE_URL is invalid: it must be a Postg"):
        load_settings()


def test_single_sign_on_against_the_public_url(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (provider,) = config["oidc_providers"]  # type: ignore[misc]
    assert provider["issuer"] == "https://medicus.example"
    assert provider["client_id"] == SIGN_ON_CLIENT_ID
    assert provider["token_endpoint"] == "https://medicus.example/oauth/token"
    assert provider["pkce_method"] == "always"
    assert provider["discover"] is False, "no fetch before medicus listens"
