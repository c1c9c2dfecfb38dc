"""Check the house's size rules on `src/`: no module over 500 lines without a reason in its
docstring (a sentence that says "500 lines"), no function over 80 lines. Alembic revisions
(`migrations/versions/`) are left out: their `upgrade` lists the DDL of a schema step.

    python scripts/check_sizes.py [ROOT]

Prints one line per breach and exits 1 if there is any.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def breaches(path: Path) -> Iterator[str]:
    """What of `path` breaks the rules, one line each."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES and "500 lines" not in (ast.get_docstring(tree) or ""):
        yield f"{path}: {lines} lines, and its docstring gives no reason"
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                yield f"{path}:{node.lineno}: {node.name} has {length} lines"


def main(root: Path) -> int:
    found = [
        breach
        for path in sorted(root.rglob("*.py"))
        if "versions" not in path.relative_to(root).parts
        for breach in breaches(path)
    ]
    for breach in found:
        print(breach)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "src")))
