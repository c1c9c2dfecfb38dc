"""Configuration: environment, medicus.toml, defaults; a wrong value is one clear sentence."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from medicus.settings import ConfigError, Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("MEDICUS_"):
            monkeypatch.delenv(key)


def test_defaults_are_the_embedded_setup() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///var/medicus.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.should_auto_migrate
    assert not settings.uses_json_logs


def test_data_dir_moves_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDICUS_DATA_DIR", "second")
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///second/medicus.db"
    settings.effective_secret_key()
    assert Path("second/keys/secret_key").stat().st_mode & 0o777 == 0o600


def test_environment_beats_file_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("medicus.toml").write_text('port = 9000\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("MEDICUS_PORT", "9100")
    settings = load_settings()
    assert (settings.host, settings.port) == ("0.0.0.0", 9100)


def test_config_file_can_be_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "other.toml").write_text('log_level = "debug"\n')
    monkeypatch.setenv("MEDICUS_CONFIG", str(tmp_path / "other.toml"))
    assert load_settings().log_level == "DEBUG"


def test_postgres_urls_get_the_async_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDICUS_DATABASE_URL", "postgresql://medicus:s3cret@db:5432/medicus")
    settings = load_settings()
    assert settings.database_url.startswith("postgresql+asyncpg://medicus:s3cret@db")
    assert not settings.should_auto_migrate
    assert settings.masked()["database_url"] == "postgresql+asyncpg://medicus:***@db:5432/medicus"


@pytest.mark.parametrize(
    ("variable", "value", "sentence"),
    [
        ("MEDICUS_DATABASE_URL", "mysql://x/y", "medicus supports only sqlite and postgresql"),
        ("MEDICUS_DATABASE_URL", "not a url", "it is not a database URL"),
        ("MEDICUS_DATABASE_URL", "postgresql://host", "must name a database"),
        ("MEDICUS_PORT", "eighty", "MEDICUS_PORT is invalid"),
        ("MEDICUS_PORT", "70000", "MEDICUS_PORT is invalid"),
        ("MEDICUS_ENV", "staging", "MEDICUS_ENV is invalid"),
        ("MEDICUS_PROT", "8080", "unknown setting MEDICUS_PROT in the environment; did you mean"),
        ("MEDICUS_ENV", "production", "production mode needs a secret"),
        ("MEDICUS_SECRET_KEY", "short", "at least 32 characters"),
    ],
)
def test_wrong_configuration_is_one_sentence(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, sentence: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=sentence) as raised:
        load_settings()
    assert "\n" not in str(raised.value)


def test_unknown_key_in_file_is_named() -> None:
    Path("medicus.toml").write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot' in the configuration file"):
        load_settings()


def test_broken_file_is_named() -> None:
    Path("medicus.toml").write_text("port = = 1\n")
    with pytest.raises(ConfigError, match="configuration file cannot be read"):
        load_settings()


def test_production_with_secret_masks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDICUS_ENV", "production")
    monkeypatch.setenv("MEDICUS_SECRET_KEY", "k" * 40)
    settings = load_settings()
    assert settings.uses_json_logs
    assert settings.masked()["secret_key"] == "********"
    assert settings.effective_secret_key() == b"k" * 40


def test_storage_backends_are_shown_with_their_credentials_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backends = orjson.dumps(
        [{"name": "cloud-a", "url": "s3://o", "options": {"secret_access_key": "S3CR3T-VALUE"}}]
    ).decode()
    monkeypatch.setenv("MEDICUS_STORAGE_BACKENDS", backends)
    shown = load_settings().masked()
    assert shown["storage_backends"][0]["name"] == "cloud-a"
    assert "S3CR3T-VALUE" not in orjson.dumps(shown).decode()
    assert load_settings().effective_storage_replicas() == 1


def test_the_embedded_default_is_one_local_backend_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    (backend,) = settings.effective_storage_backends()
    assert backend.url == (tmp_path / "objects").resolve().as_uri()
    assert settings.masked()["storage_backends"][0]["url"] == backend.url


@pytest.mark.parametrize(
    ("backends", "replicas", "complaint"),
    [
        (
            '[{"name": "a", "url": "file:///x"}, {"name": "a", "url": "file:///y"}]',
            None,
            "own name",
        ),
        ('[{"name": "a", "url": "file:///x"}]', "2", "only 1"),
        ('[{"name": "a", "url": "ftp://x"}]', None, "s3://"),
        ('[{"name": "A B", "url": "file:///x"}]', None, "lower-case letters"),
    ],
)
def test_wrong_storage_backends_stop_with_a_sentence(
    monkeypatch: pytest.MonkeyPatch, backends: str, replicas: str | None, complaint: str
) -> None:
    monkeypatch.setenv("MEDICUS_STORAGE_BACKENDS", backends)
    if replicas:
        monkeypatch.setenv("MEDICUS_STORAGE_REPLICAS", replicas)
    with pytest.raises(ConfigError) as stopped:
        load_settings()
    assert complaint in str(stopped.value)
