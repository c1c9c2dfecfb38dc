"""Bring the German catalogue up to date with the messages people read: extract them from the
code and templates (`babel.cfg`), merge them into `messages.po` (new ones untranslated and
listed, removed ones dropped), and fail if any message has no German yet, so that a page
never shows English in the German portal.

    python scripts/translations.py [--check]

`--check` (what `make test` runs) changes nothing: it extracts the messages and fails if any
of them has no German in the catalogue.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "src/medicus/locale/de/LC_MESSAGES/messages.po"


PYBABEL = Path(sys.executable).parent / "pybabel"


def _extract(template: Path) -> None:
    keywords = ["-k", "_", "-k", "translatable"]
    extract = [str(PYBABEL), "extract", "-F", "babel.cfg", *keywords, "--no-location"]
    subprocess.run([*extract, "-o", str(template), "."], cwd=ROOT, check=True, capture_output=True)


def _update(template: Path) -> None:
    update = [str(PYBABEL), "update", "-i", str(template), "-o", str(CATALOGUE), "-l", "de"]
    subprocess.run([*update, "--no-fuzzy-matching", "--ignore-obsolete"], check=True)


def untranslated(template: Path) -> list[str]:
    """The messages of the code and templates (`template`, just extracted) that have no
    German in the catalogue."""
    with CATALOGUE.open("rb") as text:
        catalogue = read_po(text)
    with template.open("rb") as text:
        wanted = read_po(text)
    missing = []
    for message in wanted:
        found = catalogue.get(message.id) if message.id else None
        if message.id and (found is None or not found.string or found.fuzzy):
            missing.append(str(message.id))
    return missing


def main(check_only: bool) -> int:
    with tempfile.TemporaryDirectory() as folder:
        template = Path(folder) / "messages.pot"
        _extract(template)
        if not check_only:
            _update(template)
        missing = untranslated(template)
    for message in missing:
        print(f"no German yet: {message!r}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv))
