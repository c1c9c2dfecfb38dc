"""One real Synapse for the whole test session, started by medicus's own code (as `medicus
serve` starts it; on PostgreSQL in the PostgreSQL run), settings of a medicus in front of it,
and a look into its database."""

from __future__ import annotations

import contextlib
from pathlib import Path

import psycopg2

from medicus.messenger.homeserver import Homeserver
from medicus.settings import Settings
from tests.conftest import make_settings

SERVER_NAME = "medicus.test"
SECRET = "messenger-tests-platform-secret-0123456789"
"""The platform secret of every medicus of the tests that talks to the session's Synapse:
Synapse checks login tokens with the key derived from it."""


def messenger_settings(
    tmp_path: Path, database_url: str, homeserver: Homeserver, **overrides: object
) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        **{
            "messenger": "external",
            "messenger_synapse_url": homeserver.synapse_url,
            "messenger_server_name": homeserver.server_name,
            "messenger_max_upload_mb": homeserver.max_upload_bytes // (1024 * 1024),
            "secret_key": SECRET,
            **overrides,
        },
    )


def synapse_database_holds(homeserver: Homeserver, text: str) -> bool:
    """Whether Synapse's database holds `text`: anywhere in its SQLite files, or in the JSON
    of its events on PostgreSQL (where a message's content would be)."""
    if not homeserver.database_url:
        files = list(homeserver.directory.glob("homeserver.db*"))
        assert files, "Synapse's SQLite database"
        return any(text.encode() in file.read_bytes() for file in files)
    with (
        contextlib.closing(psycopg2.connect(homeserver.database_url)) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT count(*) FROM event_json WHERE json LIKE %s", (f"%{text}%",))
        found = cursor.fetchone()
    return bool(found and found[0])
