"""`medicus collab index-text`: files that have no text yet (written before text search, or
whose reading ran out of time) are found by their words after the operator's run; images
are passed over, a file in the trash is left alone, the run is in the audit trail with its
numbers only, and a second run finds nothing left to do."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from sqlalchemy import update
from typer.testing import CliRunner, Result

from medicus.audit.actors import OPERATOR
from medicus.cli import app
from medicus.collab.models import NodeRow
from tests.collab.conftest import Region
from tests.collab.documents import pdf, word
from tests.support.database import rows

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


async def _found(region: Region, words: str) -> list[str]:
    answer = await region.http.get(
        "/collab/search", params={"q": words}, headers=region.bob.headers
    )
    assert answer.status_code == 200, answer.text
    results: list[dict[str, Any]] = answer.json()["results"]
    return sorted(result["name"] for result in results)


async def _files_without_text(region: Region) -> None:
    """As before text search: every file's text forgotten."""
    async with region.platform.database.transaction() as session:
        await session.execute(update(NodeRow).values(text_content=None))


def _index_text(region: Region) -> Result:
    settings = region.platform.settings
    environment = {
        "MEDICUS_DATA_DIR": str(settings.data_dir),
        "MEDICUS_DATABASE_URL": settings.database_url,
        "MEDICUS_LOG_LEVEL": "WARNING",
    }
    return CliRunner().invoke(app, ["collab", "index-text", "--json"], env=environment)


async def test_files_without_text_are_found_by_their_words_after_the_run(region: Region) -> None:
    space = (await region.space())["id"]
    ids = {}
    for name, data in (
        ("Entlassbrief.pdf", pdf("Diagnose: Hirninfarkt, Lyse mit Alteplase")),
        ("Brief.docx", word("Sehr geehrte Kollegin,", "Rivaroxaban 20 mg")),
        ("Aufnahme.png", PNG),
        ("Alt.txt", b"Alteplase im alten Protokoll"),
    ):
        written = await region.upload(region.alice, space, name, data)
        assert written.status_code == 201, written.text
        ids[name] = written.json()["id"]
    trashed = await region.http.delete(
        f"/collab/spaces/{space}/nodes/{ids['Alt.txt']}", headers=region.alice.headers
    )
    assert trashed.status_code == 204, trashed.text
    await _files_without_text(region)
    assert await _found(region, "alteplase") == []

    result = await asyncio.to_thread(_index_text, region)

    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == {"files": 3, "readable": 2, "read": 2}
    assert await _found(region, "alteplase") == ["Entlassbrief.pdf"]
    assert await _found(region, "rivaroxaban") == ["Brief.docx"]
    again = await asyncio.to_thread(_index_text, region)
    assert orjson.loads(again.stdout) == {"files": 1, "readable": 0, "read": 0}
    await region.platform.audit.seal_all()
    found = await rows(
        region.platform,
        "SELECT actor, target, detail FROM audit_entry WHERE action = 'collab.index-text'"
        " ORDER BY seq",
    )
    assert [(actor, target, orjson.loads(detail)) for actor, target, detail in found] == [
        (OPERATOR, "collab", {"files": 3, "readable": 2, "read": 2}),
        (OPERATOR, "collab", {"files": 1, "readable": 0, "read": 0}),
    ]
