"""What the first bytes of an upload are taken for, and when they contradict the declared
type: formats are told by their signatures, texts that merely start alike are not taken for
them, programs are refused, and an upload's first bytes are read once and given back."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

import pytest

from medicus.core.errors import ApiError
from medicus.storage.sniffing import declared_family, is_media_type, peek, settle, sniff


def _pe(pointer: int = 0x80) -> bytes:
    dos = bytearray(b"MZ" + bytes(0x3A) + struct.pack("<I", pointer))
    return bytes(dos + bytes(pointer - len(dos)) + b"PE\0\0" + bytes(64))


RECOGNISED = [
    (b"%PDF-1.4\n", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "image/png"),
    (b"\xff\xd8\xff\xdb\0\x43", "image/jpeg"),
    (b"GIF89a\x01\0", "image/gif"),
    (b"II*\0\x08\0\0\0", "image/tiff"),
    (b"MM\0*\0\0\0\x08", "image/tiff"),
    (b"RIFF\x24\0\0\0WEBPVP8 ", "image/webp"),
    (b"BM" + struct.pack("<I", 70) + bytes(4) + struct.pack("<II", 54, 40), "image/bmp"),
    (b"\0\0\0\x0cjP  \r\n\x87\n", "image/jp2"),
    (bytes(128) + b"DICM\x02\0", "application/dicom"),
    (b"II*\0" + bytes(124) + b"DICM\x02\0", "application/dicom"),
    (b"PK\3\4\x14\0\0\0\x08\0", "application/zip"),
    (b"\x1f\x8b\x08\0\0\0\0\0", "application/gzip"),
    (b"BZh91AY&SY", "application/x-bzip2"),
    (b"\xfd7zXZ\0\0", "application/x-xz"),
    (b"7z\xbc\xaf\x27\x1c\0\x04", "application/x-7z-compressed"),
    (b"Rar!\x1a\x07\x01\0", "application/vnd.rar"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\0\0", "application/x-ole-storage"),
    (b"SQLite format 3\0\x10\0", "application/vnd.sqlite3"),
    (b"OggS\0\x02", "application/ogg"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", "video/x-matroska"),
    (b"fLaC\0\0\0\x22", "audio/flac"),
    (b"ID3\x04\0\0\0\0\0\x23", "audio/mpeg"),
    (b"RIFF\x24\0\0\0WAVEfmt ", "audio/wav"),
    (b"RIFF\x24\0\0\0AVI LIST", "video/x-msvideo"),
    (b"\0\0\0\x20ftypisom\0\0\x02\0", "video/mp4"),
    (b"\0\0\0\x18ftypqt  \0\0\0\0", "video/quicktime"),
    (b"\0\0\0\x18ftypheic\0\0\0\0", "image/heic"),
    (b"\0\0\0\x1cftypavif\0\0\0\0", "image/avif"),
    (b"\0\0\0\x1cftypM4A \0\0\0\0", "audio/mp4"),
]


@pytest.mark.parametrize(("head", "media_type"), RECOGNISED)
def test_formats_are_told_by_their_signatures(head: bytes, media_type: str) -> None:
    kind = sniff(head + bytes(64))
    assert kind is not None
    assert (kind.media_type, kind.executable) == (media_type, False)


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"Befund: unauff\xc3\xa4llig",
        b"MZ-Station 3: Bericht",
        b"BM ist die Abk\xc3\xbcrzung" + bytes(20),
        b"ID3 tags in a text",
        b"BZh9 is not a bzip2 stream without its block",
        b"%PD",
        b"RIFF\x24\0\0\0XXXX",
        b"MZ" + bytes(0x3A) + struct.pack("<I", 0x7FFFFFFF) + bytes(64),
        b"\xca\xfe\xba\xbe\0\0\0\x34",  # a Java class file (version 52), not a Mach-O
        b'{"resourceType": "Patient"}',
        b'<?xml version="1.0"?><ClinicalDocument/>',
        b"<!DOCTYPE html><script>alert(1)</script>",
    ],
)
def test_texts_and_lookalikes_are_not_recognised(head: bytes) -> None:
    assert sniff(head) is None


@pytest.mark.parametrize(
    ("head", "media_type"),
    [
        (_pe(), "application/vnd.microsoft.portable-executable"),
        (b"\x7fELF\x02\x01\x01\0" + bytes(56), "application/x-executable"),
        (b"\xcf\xfa\xed\xfe\x07\0\0\x01", "application/x-mach-binary"),
        (b"\xfe\xed\xfa\xce\0\0\0\x07", "application/x-mach-binary"),
        (b"\xca\xfe\xba\xbe\0\0\0\x02" + bytes(40), "application/x-mach-binary"),
    ],
)
def test_programs_are_recognised_as_programs(head: bytes, media_type: str) -> None:
    kind = sniff(head)
    assert kind is not None
    assert (kind.media_type, kind.executable) == (media_type, True)
    with pytest.raises(ApiError) as refused:
        settle("application/octet-stream", head)
    assert refused.value.status == 415
    assert "program" in refused.value.detail


@pytest.mark.parametrize(
    ("declared", "family"),
    [
        ("application/pdf", "pdf"),
        ("Application/PDF; version=1.7", "pdf"),
        ("image/jpg", "jpeg"),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "zip"),
        ("application/vnd.oasis.opendocument.text", "zip"),
        ("application/vnd.ms-excel.sheet.macroenabled.12", "zip"),
        ("application/epub+zip", "zip"),
        ("application/msword", "ole"),
        ("application/dicom", "dicom"),
        ("video/mp4", "iso-media"),
        ("text/plain", "text"),
        ("text/csv; charset=utf-8", "text"),
        ("application/fhir+json", "text"),
        ("image/svg+xml", "text"),
        ("application/json", "text"),
        ("image/x-portable-pixmap", None),
        ("application/x-nifti", None),
        ("application/octet-stream", None),
    ],
)
def test_declared_types_belong_to_families(declared: str, family: str | None) -> None:
    assert declared_family(declared) == family


PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"
PDF = b"%PDF-1.7\n"
DOCX = b"PK\3\4\x14\0\x06\0\x08\0"


@pytest.mark.parametrize(
    ("declared", "head", "kept"),
    [
        (None, PNG, "image/png"),
        (None, b"plain text", "application/octet-stream"),
        ("application/octet-stream", PDF, "application/pdf"),
        ("binary/octet-stream", b"", "application/octet-stream"),
        ("application/pdf", PDF, "application/pdf"),
        ("application/pdf", b"text that is no PDF at all", "application/pdf"),
        (" text/plain; charset=utf-8 ", b"Befund", "text/plain; charset=utf-8"),
        ("image/x-portable-pixmap", PNG, "image/x-portable-pixmap"),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", DOCX, None),
        ("application/zip", DOCX, "application/zip"),
        ("application/dicom", bytes(128) + b"DICM", "application/dicom"),
        ("application/dicom", b"\x08\0\x05\0CS\x0a\0ISO_IR 100", "application/dicom"),
    ],
)
def test_settle_keeps_the_declared_type_or_the_sniffed_one(
    declared: str | None, head: bytes, kept: str | None
) -> None:
    assert settle(declared, head) == (kept or (declared or "").strip())


@pytest.mark.parametrize(
    ("declared", "head"),
    [
        ("application/pdf", PNG),
        ("image/jpeg", PNG),
        ("text/plain", PDF),
        ("application/json", b"\x1f\x8b\x08\0"),
        ("application/msword", DOCX),
        ("video/mp4", bytes(128) + b"DICM"),
        ("multipart/form-data; boundary=abc", PDF),
        ("application/x-www-form-urlencoded", b"a=b"),
    ],
)
def test_settle_refuses_contradictions_and_forms_with_415(declared: str, head: bytes) -> None:
    with pytest.raises(ApiError) as refused:
        settle(declared, head)
    assert refused.value.status == 415


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("application/pdf", True),
        ("text/plain; charset=utf-8", True),
        ('multipart/byteranges; boundary="a b"', True),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", True),
        ("pdf", False),
        ("application/", False),
        ("application/pdf; charset", False),
        ("text/plain\r\nX-Injected: 1", False),
        ("a/" + "b" * 300, False),
    ],
)
def test_media_types_are_checked(value: str, valid: bool) -> None:
    assert is_media_type(value) is valid


async def _pieces(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def _all(pieces: AsyncIterator[bytes]) -> bytes:
    return b"".join([piece async for piece in pieces])


async def test_peek_reads_enough_for_the_signature_and_gives_everything_back() -> None:
    head, body = await peek(_pieces(b"ab", b"", b"cd", b"efgh", b"ij"), at_least=5)
    assert head == b"abcdefgh"
    assert await _all(body) == b"abcdefghij"


async def test_peek_at_a_short_or_empty_body() -> None:
    head, body = await peek(_pieces(b"abc"), at_least=100)
    assert (head, await _all(body)) == (b"abc", b"abc")
    head, body = await peek(_pieces(), at_least=100)
    assert (head, await _all(body)) == (b"", b"")
