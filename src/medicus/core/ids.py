"""Identifiers that are valid FHIR ids, URL-safe and unguessable."""

import re
import uuid

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}\Z")


def new_id() -> str:
    return str(uuid.uuid4())


def is_fhir_id(text: str) -> bool:
    """Whether `text` is a FHIR id: 1 to 64 letters, digits, `-` and `.` (and nothing after
    them: `$` would let a trailing newline through)."""
    return _FHIR_ID.match(text) is not None
