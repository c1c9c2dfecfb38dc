"""Names of files and folders in a space: what is refused, and the form they are compared in.

Spaces are mounted by Windows Explorer, macOS Finder and rclone, so a name must be valid on
all of them: no path separators, no control or bidi characters, none of Windows' reserved
characters and device names, no trailing dot or blank. Two names that differ only in case
or Unicode normalisation are the same name (as on Windows and macOS)."""

from __future__ import annotations

import re
import unicodedata

from medicus.core.errors import ApiError

MAX_NAME = 255
_WINDOWS_RESERVED_CHARACTERS = frozenset('<>:"|?*')
_WINDOWS_DEVICES = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³])(\..*)?", re.IGNORECASE)
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def checked_name(name: str) -> str:
    """The name as it is kept (NFC); 400 with the reason for one that may not be used."""
    normal = unicodedata.normalize("NFC", name)
    problem = _problem(normal)
    if problem is not None:
        raise ApiError(400, f"The name {problem}; choose another name.", title="Invalid name")
    return normal


def name_key(name: str) -> str:
    """The form names are compared in: NFC, case-folded."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def _problem(name: str) -> str | None:
    if not name.strip():
        return "is empty"
    if name in (".", ".."):
        return f'"{name}" stands for a folder itself'
    if len(name) > MAX_NAME or len(name.encode()) > MAX_NAME * 4:
        return f"has more than {MAX_NAME} characters"
    if "/" in name or "\\" in name:
        return "holds a path separator (/ or \\)"
    if any(_is_control(char) for char in name):
        return "holds control characters"
    reserved = sorted(_WINDOWS_RESERVED_CHARACTERS.intersection(name))
    if reserved:
        return f"holds {' '.join(reserved)}, which Windows does not allow in names"
    if _WINDOWS_DEVICES.fullmatch(name.strip()):
        return f'"{name}" is a device name on Windows'
    if name.endswith((".", " ")) or name.startswith(" "):
        return "begins with a blank or ends with a blank or a dot"
    return None


def _is_control(char: str) -> bool:
    """Control characters, and the bidi controls that make "rechnung\u202efdp.exe" look like
    a PDF; other format characters (the joiners of emoji) are fine."""
    return unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in _BIDI_CONTROLS
