"""Identifiers that are valid FHIR ids, URL-safe and unguessable."""

import uuid


def new_id() -> str:
    return str(uuid.uuid4())
