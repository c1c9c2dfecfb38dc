"""The plain text of documents, so that search finds a file by a word inside it: PDF (pypdf),
Word (.docx, python-docx), Excel (.xlsx, openpyxl, values only) and plain text, CSV and
Markdown (UTF-8, undecodable bytes replaced). Other formats have no text.

Documents come from users of other hospitals and are not trusted, so the work is bounded:
files up to `MAX_BYTES`; office files (ZIP archives) only if their parts unpack to at most
`MAX_UNPACKED`, which is checked before a library opens them (a zip bomb is refused, and
Python's zipfile never unpacks a part beyond the size it declares); text up to
`MAX_CHARACTERS`; `SECONDS` in a worker thread, which stops between pages, paragraphs and
rows; `SLOTS` documents at a time per process. One step of a library cannot be stopped (a
PDF page's drawing, which pypdf parses up to its own limit of tokens: seconds for a page of
a few KB; a spreadsheet without its dimensions, which openpyxl reads whole when it opens
it): the upload is not kept waiting for it, but its slot stays taken until the thread is
done, so that such documents cannot pile up threads. Whatever goes wrong (an encrypted or
damaged PDF, a broken archive, a library's fault) the file has no text; the upload never
fails because of it. Text read before the time ran out is kept, as is the first
`MAX_CHARACTERS` of a longer one.

The text is kept in the form it is searched in, as names are (`names.name_key`: NFC,
case-folded), without control and format characters (a soft hyphen inside a word would
hide it; PostgreSQL refuses NUL), one blank between words. Search compares alike on SQLite,
whose `lower()` folds only ASCII, and on PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath

import docx
import openpyxl  # type: ignore[import-untyped]  # no stubs in the lock
import pypdf
from docx.oxml.ns import qn

from medicus.collab.names import name_key
from medicus.core.errors import ApiError
from medicus.core.logging import get_logger
from medicus.storage.service import ObjectStore, StoredObject
from medicus.storage.sniffing import essence

log = get_logger("medicus.collab.text")

MAX_BYTES = 20 * 1024 * 1024
MAX_UNPACKED = 100 * 1024 * 1024
"""What the parts of an office file may unpack to (python-docx holds them all in memory)."""
MAX_CHARACTERS = 200_000
SECONDS = 5.0
"""The longest an upload waits for its text (plus a second for a step that cannot stop)."""
SLOTS = 2
"""Documents read at once per process: the libraries are pure Python and hold the GIL."""

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_UNTYPED = frozenset({"application/zip", "application/octet-stream"})
"""Types that say too little: the name's extension decides (a .docx sniffed as a ZIP)."""
_DROPPED = frozenset({"Cf", "Cs", "Co", "Cn"})


class TimeUp(Exception):
    """The time for a document ran out."""


class Deadline:
    """When the time for a document runs out (checked by the thread between pieces)."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def check(self) -> None:
        """TimeUp once the time is over."""
        if time.monotonic() > self.at:
            raise TimeUp


Reader = Callable[[bytes], Iterator[str]]
"""The pieces of text of a document (pages, paragraphs, rows), one at a time."""


def _pdf(data: bytes) -> Iterator[str]:
    """The pages' text; an encrypted PDF only if it opens without a password (many are
    encrypted just to forbid printing)."""
    document = pypdf.PdfReader(io.BytesIO(data))
    if document.is_encrypted and not document.decrypt(""):
        raise ValueError("the PDF needs a password")
    for page in document.pages:
        yield page.extract_text()


def _docx(data: bytes) -> Iterator[str]:
    """Each paragraph's text, those in tables and text boxes too."""
    _unpacks_small(data)
    body = docx.Document(io.BytesIO(data)).element.body
    for paragraph in body.iter(qn("w:p")):
        yield "".join(run.text or "" for run in paragraph.iter(qn("w:t")))


def _xlsx(data: bytes) -> Iterator[str]:
    """Each sheet's name and its rows' values (as last computed: no formulas)."""
    _unpacks_small(data)
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        for sheet in workbook.worksheets:
            yield sheet.title
            # The stored dimensions may claim a million empty rows and columns.
            sheet.reset_dimensions()
            for row in sheet.iter_rows(values_only=True):
                yield " ".join(str(value) for value in row if value is not None)
    finally:
        workbook.close()


def _plain(data: bytes) -> Iterator[str]:
    yield data[: MAX_CHARACTERS * 4].decode("utf-8", errors="replace")


READERS: dict[str, Reader] = {
    "application/pdf": _pdf,
    DOCX: _docx,
    XLSX: _xlsx,
    "text/plain": _plain,
    "text/csv": _plain,
    "text/markdown": _plain,
}
_BY_EXTENSION: dict[str, Reader] = {".pdf": _pdf, ".docx": _docx, ".xlsx": _xlsx}


def _unpacks_small(data: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unpacked = sum(part.file_size for part in archive.infolist())
    if unpacked > MAX_UNPACKED:
        raise ValueError(f"the archive unpacks to {unpacked} bytes")


def reader_for(content_type: str, name: str) -> Reader | None:
    """How the text of a file of this type and name is read; None: it has none."""
    media_type = essence(content_type)
    if media_type in _UNTYPED:
        return _BY_EXTENSION.get(PurePosixPath(name).suffix.lower())
    return READERS.get(media_type)


def searchable(text: str) -> str:
    """`text` in the form it is kept and searched in."""
    kept = "".join(
        " " if unicodedata.category(char) == "Cc" else char
        for char in name_key(text)
        if unicodedata.category(char) not in _DROPPED
    )
    return " ".join(kept.split())


def extract(data: bytes, reader: Reader, seconds: float) -> str | None:
    """The searchable text `reader` finds in `data` within `seconds` (blocking); None if
    there is none or the document could not be read."""
    deadline = Deadline(seconds)
    pieces: list[str] = []
    length = 0
    try:
        for piece in reader(data):
            found = searchable(piece)
            if found:
                pieces.append(found)
                length += len(found) + 1
            if length >= MAX_CHARACTERS:
                break
            deadline.check()
    except TimeUp:
        pass
    except Exception as error:  # any fault of an untrusted document or of a library
        log.info("document text not read", reason=type(error).__name__)
        return None
    return " ".join(pieces)[:MAX_CHARACTERS] or None


class DocumentText:
    """Reads the text of stored documents in worker threads, a few at a time."""

    def __init__(self, storage: ObjectStore, seconds: float = SECONDS, slots: int = SLOTS) -> None:
        self._storage = storage
        self._seconds = seconds
        self._slots = asyncio.Semaphore(slots)

    async def of(self, stored: StoredObject, name: str) -> str | None:
        """The searchable text of the stored file `name`, within `SECONDS` in all (waiting
        for a slot included); None if it has none, or it could not be read in time."""
        reader = reader_for(stored.content_type, name)
        if reader is None or not 0 < stored.size <= MAX_BYTES:
            return None
        deadline = Deadline(self._seconds)
        try:
            await asyncio.wait_for(self._slots.acquire(), self._seconds)
        except TimeoutError:
            return None
        try:
            data = await self._storage.read_range(stored.id, 0, stored.size)
        except ApiError:
            self._slots.release()
            return None
        left = max(0.0, deadline.at - time.monotonic())
        work = asyncio.ensure_future(asyncio.to_thread(extract, data, reader, left))
        work.add_done_callback(lambda _: self._slots.release())
        try:
            # The thread stops itself at the deadline, unless one step of a library
            # (parsing a page) takes longer: the upload is not kept waiting for that.
            return await asyncio.wait_for(asyncio.shield(work), left + 1)
        except TimeoutError:
            log.warning("document text took too long", object_id=stored.id)
            return None
