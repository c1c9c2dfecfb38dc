"""Bring the German catalogue up to date with the messages people read: extract them from the
code and templates (`babel.cfg`), merge them into `messages.po` (new ones untranslated and
listed, removed ones dropped), and fail if any message has no German yet, so that a page
never shows English in the German portal.

    python scripts/translations.py [--check]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "src/medicus/locale/de/LC_MESSAGES/messages.po"


def _extracted(template: Path) -> None:
    pybabel = Path(sys.executable).parent / "pybabel"
    keywords = ["-k", "_", "-k", "translatable"]
    extract = [str(pybabel), "extract", "-F", "babel.cfg", *keywords, "--no-location"]
    subprocess.run([*extract, "-o", str(template), "."], cwd=ROOT, check=True, capture_output=True)
    update = [str(pybabel), "update", "-i", str(template), "-o", str(CATALOGUE), "-l", "de"]
    subprocess.run([*update, "--no-fuzzy-matching", "--ignore-obsolete"], check=True)


def untranslated() -> list[str]:
    with CATALOGUE.open("rb") as text:
        catalogue = read_po(text)
    return [str(m.id) for m in catalogue if m.id and (not m.string or m.fuzzy)]


def main(check_only: bool) -> int:
    if not check_only:
        _extracted(ROOT / "messages.pot")
        (ROOT / "messages.pot").unlink()
    missing = untranslated()
    for message in missing:
        print(f"no German yet: {message!r}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv))
