"""What an upload's first bytes say it is, checked against the type it was declared as.

Only binary formats with a distinctive signature at a fixed place are recognised (images,
PDF, DICOM, archives, office containers, audio and video, programs); text formats are
never guessed, since any text may look like any of them. A declared type contradicts the
bytes only when both are recognised and belong to different families (a PNG declared as
`application/pdf`, a PDF declared as `text/plain`); a declared type this module does not
know is taken as it is. Programs (PE, ELF, Mach-O) are refused whatever they are declared
as: a hospital's document store has no use for them, and they should not travel between
organisations through a platform everybody trusts.

The check is written here rather than with a magic-number library: puremagic 2.x needs
Python 3.12 (medicus supports 3.11), and 1.x weighs a two-byte match ("MZ", "BM") like any
other and labels every ZIP as some Office format, so its answers could not decide a 415."""

from __future__ import annotations

import re
import struct
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass

from medicus.core.errors import ApiError

SNIFF_BYTES = 8 * 1024
"""How much of an upload is looked at before it is sealed."""

GENERIC_TYPES = frozenset(
    {"application/octet-stream", "binary/octet-stream", "application/unknown"}
)
"""Declared types that say nothing: the sniffed type is kept instead."""

FORM_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})
"""A browser form or curl's default: the body is not the file itself, or its type unsaid."""

_MEDIA_TYPE = re.compile(
    r"^[A-Za-z0-9!#$&^_.+-]{1,127}/[A-Za-z0-9!#$&^_.+-]{1,127}"
    r"""(\s*;\s*[A-Za-z0-9!#$&^_.+-]+=("[^"\\]*"|[A-Za-z0-9!#$&^_.+-]+))*\s*$"""
)


@dataclass(frozen=True)
class Kind:
    """What the first bytes are: a family of formats and the media type to keep."""

    family: str
    media_type: str
    executable: bool = False


def _prefix(signature: bytes) -> Callable[[bytes], bool]:
    return lambda head: head.startswith(signature)


def _at(offset: int, signature: bytes) -> Callable[[bytes], bool]:
    return lambda head: head[offset : offset + len(signature)] == signature


def _riff(form: bytes) -> Callable[[bytes], bool]:
    return lambda head: head[:4] == b"RIFF" and head[8:12] == form


_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")
_OFFICE_MACROS = re.compile(r"application/vnd\.ms-(word|excel|powerpoint)\.[a-z.]+macroenabled\.12")


def _is_bmp(head: bytes) -> bool:
    """A bitmap: "BM", four reserved zero bytes and a known DIB header size (two bytes
    alone start too many texts)."""
    if len(head) < 18 or head[:2] != b"BM" or head[6:10] != b"\0\0\0\0":
        return False
    return struct.unpack_from("<I", head, 14)[0] in (12, 40, 52, 56, 64, 108, 124)


def _is_id3(head: bytes) -> bool:
    return head[:3] == b"ID3" and head[3:4] in (b"\2", b"\3", b"\4") and head[4:5] == b"\0"


def _is_pe(head: bytes) -> bool:
    """A Windows program: "MZ", and the "PE" header where the DOS header points."""
    if len(head) < 0x40 or head[:2] != b"MZ":
        return False
    offset = struct.unpack_from("<I", head, 0x3C)[0]
    return 0x40 <= offset <= len(head) - 4 and head[offset : offset + 4] == b"PE\0\0"


def _is_elf(head: bytes) -> bool:
    return head[:4] == b"\x7fELF" and head[4:5] in (b"\1", b"\2") and head[5:6] in (b"\1", b"\2")


_MACH_O = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")


def _is_mach_o(head: bytes) -> bool:
    """A macOS program, thin or universal. A universal one starts as a Java class file
    does (CAFEBABE); what follows, the number of architectures, is small, where a class
    file has its version (45 or more)."""
    if head[:4] in _MACH_O:
        return True
    if head[:4] in (b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf") and len(head) >= 8:
        architectures: int = struct.unpack_from(">I", head, 4)[0]
        return 0 < architectures < 40
    return False


def _iso_media(head: bytes) -> str | None:
    """An ISO base media file (MP4, QuickTime, HEIF, AVIF): its type by its major brand."""
    if head[4:8] != b"ftyp" or len(head) < 12:
        return None
    brand = head[8:12]
    if brand in (b"avif", b"avis"):
        return "image/avif"
    if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs"):
        return "image/heic"
    if brand in (b"mif1", b"msf1"):
        return "image/heif"
    if brand == b"qt  ":
        return "video/quicktime"
    if brand in (b"M4A ", b"M4B "):
        return "audio/mp4"
    return "video/mp4"


_SIGNATURES: tuple[tuple[str, str, Callable[[bytes], bool]], ...] = (
    # First: a DICOM file's 128-byte preamble may hold another format's header (TIFF).
    ("dicom", "application/dicom", _at(128, b"DICM")),
    ("pdf", "application/pdf", _prefix(b"%PDF-")),
    ("png", "image/png", _prefix(b"\x89PNG\r\n\x1a\n")),
    ("jpeg", "image/jpeg", _prefix(b"\xff\xd8\xff")),
    ("gif", "image/gif", lambda head: head[:6] in (b"GIF87a", b"GIF89a")),
    ("tiff", "image/tiff", lambda head: head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")),
    ("webp", "image/webp", _riff(b"WEBP")),
    ("bmp", "image/bmp", _is_bmp),
    ("jpeg2000", "image/jp2", _prefix(b"\0\0\0\x0cjP  \r\n\x87\n")),
    ("jpeg2000", "image/jp2", _prefix(b"\xff\x4f\xff\x51")),
    ("zip", "application/zip", lambda head: head[:4] in (b"PK\3\4", b"PK\5\6", b"PK\7\x08")),
    ("gzip", "application/gzip", _prefix(b"\x1f\x8b\x08")),
    ("bzip2", "application/x-bzip2", lambda head: _BZIP2.match(head) is not None),
    ("xz", "application/x-xz", _prefix(b"\xfd7zXZ\0")),
    ("zstd", "application/zstd", _prefix(b"\x28\xb5\x2f\xfd")),
    ("7z", "application/x-7z-compressed", _prefix(b"7z\xbc\xaf\x27\x1c")),
    ("rar", "application/vnd.rar", _prefix(b"Rar!\x1a\x07")),
    ("ole", "application/x-ole-storage", _prefix(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")),
    ("sqlite", "application/vnd.sqlite3", _prefix(b"SQLite format 3\0")),
    ("ogg", "application/ogg", _prefix(b"OggS\0")),
    ("matroska", "video/x-matroska", _prefix(b"\x1a\x45\xdf\xa3")),
    ("flac", "audio/flac", _prefix(b"fLaC")),
    ("mp3", "audio/mpeg", _is_id3),
    ("wav", "audio/wav", _riff(b"WAVE")),
    ("avi", "video/x-msvideo", _riff(b"AVI ")),
)

_PROGRAMS: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    ("application/vnd.microsoft.portable-executable", _is_pe),
    ("application/x-executable", _is_elf),
    ("application/x-mach-binary", _is_mach_o),
)


def sniff(head: bytes) -> Kind | None:
    """What the first bytes of an object are; None when they are not recognised (text, or
    a format without a signature known here)."""
    for media_type, is_program in _PROGRAMS:
        if is_program(head):
            return Kind("program", media_type, executable=True)
    for family, media_type, matches in _SIGNATURES:
        if matches(head):
            return Kind(family, media_type)
    iso = _iso_media(head)
    return None if iso is None else Kind("iso-media", iso)


_DECLARED: dict[str, frozenset[str]] = {
    "pdf": frozenset({"application/pdf", "application/x-pdf", "application/acrobat"}),
    "png": frozenset({"image/png", "image/x-png", "image/apng", "image/vnd.mozilla.apng"}),
    "jpeg": frozenset({"image/jpeg", "image/jpg", "image/pjpeg"}),
    "gif": frozenset({"image/gif"}),
    "tiff": frozenset({"image/tiff", "image/tiff-fx", "image/x-tiff", "image/x-adobe-dng"}),
    "webp": frozenset({"image/webp"}),
    "bmp": frozenset({"image/bmp", "image/x-bmp", "image/x-ms-bmp"}),
    "jpeg2000": frozenset({"image/jp2", "image/jpx", "image/jpm", "image/j2k", "image/x-jp2"}),
    "dicom": frozenset({"application/dicom"}),
    "zip": frozenset(
        {
            "application/zip",
            "application/x-zip",
            "application/x-zip-compressed",
            "application/java-archive",
            "application/vnd.android.package-archive",
            "application/vnd.ms-xpsdocument",
            "application/oxps",
            "application/vnd.google-earth.kmz",
        }
    ),
    "gzip": frozenset({"application/gzip", "application/x-gzip", "application/x-compressed-tar"}),
    "bzip2": frozenset({"application/x-bzip2", "application/x-bzip"}),
    "xz": frozenset({"application/x-xz"}),
    "zstd": frozenset({"application/zstd"}),
    "7z": frozenset({"application/x-7z-compressed"}),
    "rar": frozenset({"application/vnd.rar", "application/x-rar-compressed", "application/x-rar"}),
    "ole": frozenset(
        {
            "application/x-ole-storage",
            "application/msword",
            "application/vnd.ms-excel",
            "application/vnd.ms-powerpoint",
            "application/vnd.ms-outlook",
            "application/vnd.visio",
            "application/vnd.ms-project",
            "application/x-msi",
        }
    ),
    "sqlite": frozenset({"application/vnd.sqlite3", "application/x-sqlite3"}),
    "ogg": frozenset({"application/ogg", "audio/ogg", "video/ogg", "audio/opus", "audio/vorbis"}),
    "matroska": frozenset({"video/webm", "audio/webm", "video/x-matroska", "audio/x-matroska"}),
    "flac": frozenset({"audio/flac", "audio/x-flac"}),
    "mp3": frozenset({"audio/mpeg", "audio/mp3"}),
    "wav": frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"}),
    "avi": frozenset({"video/x-msvideo", "video/avi", "video/msvideo"}),
    "iso-media": frozenset(
        {
            "video/mp4",
            "audio/mp4",
            "application/mp4",
            "video/quicktime",
            "audio/x-m4a",
            "audio/m4a",
            "video/x-m4v",
            "image/heic",
            "image/heif",
            "image/heic-sequence",
            "image/heif-sequence",
            "image/avif",
            "video/3gpp",
            "video/3gpp2",
            "audio/3gpp",
        }
    ),
}
_FAMILY_OF = {media_type: family for family, types in _DECLARED.items() for media_type in types}
_ZIP_PREFIXES = ("application/vnd.openxmlformats-officedocument.", "application/vnd.oasis.")
_TEXT_TYPES = frozenset({"application/json", "application/xml", "application/javascript"})


def essence(content_type: str) -> str:
    """`type/subtype` of a media type, lower case, without its parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def declared_family(content_type: str) -> str | None:
    """The family of formats a declared type belongs to; None if it is not known here."""
    media_type = essence(content_type)
    if media_type in _FAMILY_OF:
        return _FAMILY_OF[media_type]
    if media_type.endswith("+zip") or media_type.startswith(_ZIP_PREFIXES):
        return "zip"
    if _OFFICE_MACROS.fullmatch(media_type):
        return "zip"
    if media_type.endswith("+gzip"):
        return "gzip"
    if media_type.startswith("text/") or media_type in _TEXT_TYPES:
        return "text"
    if media_type.endswith(("+json", "+xml")):
        return "text"
    return None


def is_media_type(content_type: str) -> bool:
    return len(content_type) <= 255 and _MEDIA_TYPE.match(content_type) is not None


def settle(declared: str | None, head: bytes) -> str:
    """The content type to keep for an object declared as `declared` (None: not declared)
    whose first bytes are `head`; 415 for a program, a form, or bytes that contradict the
    declared type."""
    if declared is not None and essence(declared) in FORM_TYPES:
        raise ApiError(
            415,
            f"The body was sent as {essence(declared)}; send the file's bytes as they are, "
            "with its own media type as Content-Type (or application/octet-stream).",
        )
    kind = sniff(head)
    if kind is not None and kind.executable:
        raise ApiError(
            415,
            f"The body is a program ({kind.media_type}); programs are not kept in storage.",
        )
    if declared is None or essence(declared) in GENERIC_TYPES:
        return kind.media_type if kind is not None else "application/octet-stream"
    family = declared_family(declared)
    if kind is not None and family is not None and family != kind.family:
        raise ApiError(
            415,
            f"The body was declared as {essence(declared)}, but its first bytes are those of "
            f"{kind.media_type}. Declare the type it has (or application/octet-stream); "
            "nothing was kept.",
        )
    return declared.strip()


async def peek(
    body: AsyncIterable[bytes], at_least: int = SNIFF_BYTES
) -> tuple[bytes, AsyncIterator[bytes]]:
    """The first `at_least` bytes of `body` (fewer if it is shorter, more if they came in
    one piece) and all of `body` again, those bytes first."""
    pieces = aiter(body)
    head = bytearray()
    while len(head) < at_least:
        try:
            head += await anext(pieces)
        except StopAsyncIteration:
            break
    first = bytes(head)

    async def again() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for piece in pieces:
            if piece:
                yield piece

    return first, again()
