"""The portal's static files (its stylesheet, its scripts, vendored htmx, matrix-js-sdk and the
WebAssembly of its Rust crypto: `application/wasm`, which WebAssembly's streaming compile
asks for), served by
medicus itself under names that carry a hash of their content: a page names
`/portal/static/portal.3f2a9c1d0e4b.css`, which may be cached for a year, and a new release
names a new file. No CDN (the pages' Content-Security-Policy allows only our own origin) and
no build step: the files are read and hashed once when the process starts. A browser that
accepts gzip gets them compressed (`Vary: Accept-Encoding`).

Vendored files keep their version in their name and their licence beside them
(`static/vendor/`)."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

STATIC_PREFIX = "/portal/static/"
_STATIC_DIR = Path(__file__).parent / "static"
_TYPES = {
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
}
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    content: bytes
    media_type: str

    def gzipped(self) -> bytes:
        """The content gzip-compressed, made on first use and kept for the process (the
        crypto's WebAssembly: 7.6 MB → 2 MB, about 0.4 s of CPU once)."""
        return _gzipped(self.content)


class Assets:
    """The static files by their hashed names, and each file's hashed URL by its own name."""

    def __init__(self, folder: Path = _STATIC_DIR) -> None:
        self._by_hashed_name, self._urls = _read(folder)

    def url(self, name: str) -> str:
        """The URL of static file `name` (as under `static/`, e.g. `portal.css`)."""
        return self._urls[name]

    def get(self, hashed_name: str) -> Asset | None:
        return self._by_hashed_name.get(hashed_name)


@cache
def _gzipped(content: bytes) -> bytes:
    return gzip.compress(content, compresslevel=6, mtime=0)


@cache
def _read(folder: Path) -> tuple[dict[str, Asset], dict[str, str]]:
    """The files of `folder` by hashed name, and their URLs by name: read once per process
    (the WebAssembly alone is 8 MB, and every app the process builds has its Assets)."""
    by_hashed_name: dict[str, Asset] = {}
    urls: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix not in _TYPES:
            continue
        content = path.read_bytes()
        digest = hashlib.sha256(content).hexdigest()[:12]
        name = path.relative_to(folder).as_posix()
        hashed = f"{name.removesuffix(path.suffix)}.{digest}{path.suffix}"
        by_hashed_name[hashed] = Asset(content, _TYPES[path.suffix])
        urls[name] = STATIC_PREFIX + hashed
    return by_hashed_name, urls
