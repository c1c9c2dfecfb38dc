"""The text of documents that search finds files by: read from real PDF, Word, Excel and
text files, in the form it is searched in; bounded in size and time; nothing (and no
failed upload) for documents that cannot be read."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import time
import zipfile
import zlib
from collections.abc import AsyncIterator

from medicus.collab import repository
from medicus.collab.text import DOCX, MAX_CHARACTERS, XLSX, DocumentText, extract, reader_for
from medicus.storage.service import NewObject, ObjectStore, StoredObject
from tests.collab.conftest import HOSPITAL_A, Region
from tests.collab.documents import pdf, with_cross_references, word, workbook

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def text_of(data: bytes, content_type: str, name: str = "file", seconds: float = 5) -> str | None:
    reader = reader_for(content_type, name)
    assert reader is not None
    return extract(data, reader, seconds)


def test_a_pdfs_pages_are_read_in_the_form_search_compares() -> None:
    document = pdf("Befund: Thrombolyse (links)", "Seite 2: GRÖSSE des Infarkts")
    assert text_of(document, "application/pdf") == (
        "befund: thrombolyse (links) seite 2: grösse des infarkts"
    )


def test_a_pdf_encrypted_with_a_password_has_no_text_one_without_has() -> None:
    assert text_of(pdf("Geheimer Befund", password="s3cret"), "application/pdf") is None
    # Encrypted only to restrict printing: it opens without a password.
    assert text_of(pdf("Offener Befund", password=""), "application/pdf") == "offener befund"


def test_word_paragraphs_and_tables_are_read() -> None:
    document = word("Arztbrief", "Diagnose: Schlaganfall", table=[["Kalium", "4,1 mmol/l"]])
    assert text_of(document, DOCX) == "arztbrief diagnose: schlaganfall kalium 4,1 mmol/l"


def test_excel_values_are_read_not_formulas() -> None:
    document = workbook(
        {
            "Labor": [["Natrium", 140, dt.date(2026, 3, 1), "=SUM(B1:B1)"]],
            "Dienstplan": [["Meyer"], [None], ["Öztürk"]],
        }
    )
    assert text_of(document, XLSX) == (
        "labor natrium 140 2026-03-01 00:00:00 dienstplan meyer öztürk"
    )


def test_plain_text_is_utf8_with_undecodable_bytes_replaced() -> None:
    data = "Thrombo\u00adlyse\x00 nach\tSOP  \ufeffv2 ".encode() + b"\xff\xfe Ende"
    assert text_of(data, "text/plain; charset=utf-8") == "thrombolyse nach sop v2 \ufffd\ufffd ende"
    assert text_of(b"Name;Wert\nKalium;4,1\n", "text/csv") == "name;wert kalium;4,1"
    assert text_of(b"# Lyse-SOP\n", "text/markdown") == "# lyse-sop"


def test_only_known_formats_are_read_the_name_decides_for_a_bare_zip() -> None:
    assert reader_for("application/zip", "Arztbrief.DOCX") is reader_for(DOCX, "x")
    assert reader_for("application/octet-stream", "plan.xlsx") is reader_for(XLSX, "x")
    assert reader_for("application/zip", "archive.zip") is None
    assert reader_for("image/png", "scan.pdf") is None
    assert reader_for("application/msword", "alt.doc") is None


def test_text_is_kept_up_to_its_limit() -> None:
    long = ("Befund " * 50_000).encode()
    found = text_of(long, "text/plain")
    assert found is not None
    assert len(found) == MAX_CHARACTERS
    pages = [f"Seite {number} " + "Verlauf " * 500 for number in range(100)]
    found = text_of(pdf(*pages), "application/pdf")
    assert found is not None
    assert len(found) == MAX_CHARACTERS
    assert "seite 40 " in found
    assert "seite 99 " not in found


def test_what_was_read_in_time_is_kept() -> None:
    found = text_of(pdf("Erste Seite", "Zweite Seite"), "application/pdf", seconds=0)
    assert found == "erste seite"


def test_damaged_documents_and_zip_bombs_have_no_text() -> None:
    readable = pdf("Befund")
    assert text_of(readable[: len(readable) // 2], "application/pdf") is None
    assert text_of(b"PK\x03\x04 not really a zip", DOCX) is None
    assert text_of(word("Befund")[:-100], DOCX) is None
    assert text_of(_zip_bomb("word/document.xml"), DOCX) is None
    assert text_of(_zip_bomb("xl/sharedStrings.xml"), XLSX) is None


def _zip_bomb(part: str) -> bytes:
    """An office file whose one part unpacks to 200 MB of blanks (compressed: 200 KB)."""
    packed = io.BytesIO()
    with (
        zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open(part, "w", force_zip64=True) as member,
    ):
        for _ in range(200):
            member.write(b" " * 1024 * 1024)
    return packed.getvalue()


def _slow_pdf() -> bytes:
    """A PDF of 7 KB with one page of a word and 250,000 lines to draw, which pypdf parses
    in one step (seconds) before it finds the word."""
    drawing = b"BT /F1 9 Tf (Befund) Tj ET\n" + b"1 2 m 3 4 l S\n" * 250_000
    content = zlib.compress(drawing, 9)
    return with_cross_references(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n%b\nendstream"
            % (len(content), content),
        ]
    )


async def _stored(storage: ObjectStore, data: bytes, content_type: str) -> StoredObject:
    async def body() -> AsyncIterator[bytes]:
        yield data

    new = NewObject(HOSPITAL_A, len(data), content_type, None, None, "test")
    return await storage.put(new, body())


async def test_a_slow_document_does_not_hold_up_the_upload_nor_pile_up_threads(
    region: Region,
) -> None:
    storage = region.platform.storage
    slow = await _stored(storage, _slow_pdf(), "application/pdf")
    quick = await _stored(storage, b"Befund", "text/plain")
    texts = DocumentText(storage, seconds=0.05, slots=1)
    began = time.monotonic()
    assert await texts.of(slow, "plan.pdf") is None
    assert time.monotonic() - began < 2
    # The slow page's thread runs on and keeps the one slot until it is done.
    assert await texts.of(quick, "befund.txt") is None
    for _ in range(300):
        found = await texts.of(quick, "befund.txt")
        if found is not None:
            break
        await asyncio.sleep(0.1)
    assert found == "befund"


async def _text(region: Region, space_id: str, node_id: str) -> str | None:
    async with region.platform.database.snapshot() as session:
        row = await repository.live_node(session, space_id, node_id)
    assert row is not None
    return row.text_content


async def test_each_version_uploaded_has_its_own_text(region: Region) -> None:
    space = (await region.space())["id"]
    # A .docx sent without a type is kept as the ZIP it is: its name says Word.
    first = await region.upload(region.bob, space, "Arztbrief.docx", word("Lyse um 14:05"))
    assert first.status_code == 201, first.text
    assert first.json()["contentType"] == "application/zip"
    file_id = first.json()["id"]
    assert await _text(region, space, file_id) == "lyse um 14:05"
    await region.upload(region.bob, space, "Arztbrief.docx", PNG, **{"Content-Type": "image/png"})
    assert await _text(region, space, file_id) is None
    restored = await region.http.post(
        f"/collab/spaces/{space}/nodes/{file_id}/versions/1/restore", headers=region.alice.headers
    )
    assert restored.status_code == 200, restored.text
    assert await _text(region, space, file_id) == "lyse um 14:05"


async def test_a_document_that_cannot_be_read_is_stored_all_the_same(region: Region) -> None:
    space = (await region.space())["id"]
    damaged = pdf("Befund")[:200]
    written = await region.upload(region.alice, space, "scan.pdf", damaged)
    assert written.status_code == 201, written.text
    assert await _text(region, space, written.json()["id"]) is None
    read = await region.http.get(
        f"/collab/content/{space}/{written.json()['id']}", headers=region.alice.headers
    )
    assert read.content == damaged


async def test_text_with_nul_bytes_is_kept_without_them(region: Region) -> None:
    space = (await region.space())["id"]
    written = await region.upload(region.alice, space, "Notiz.txt", b"Lyse\x00Befund \xff")
    assert written.status_code == 201, written.text
    assert await _text(region, space, written.json()["id"]) == "lyse befund \ufffd"
