"""What data migrations that change sharing facts or persons do afterwards: recompute the
shares of the persons concerned with the rule's own code (`access.sharing.shares`), so that
derived data agrees with later writes."""

import sqlalchemy as sa
from alembic import op

from medicus.access.repository import StoredRecord, stored_consent
from medicus.access.sharing import shares
from medicus.core.db import UTCDateTime, utc_now

_RECORDS = sa.table(
    "mpi_record", *map(sa.column, ("patient_id", "organisation_id", "person_id", "kvnr"))
)
_CONSENTS = sa.table(
    "access_consent",
    *map(sa.column, ("consent_id", "organisation_id", "patient_id", "decision")),
    *map(sa.column, ("organisations", "excluded")),
    sa.column("valid_from", UTCDateTime()),
    sa.column("valid_until", UTCDateTime()),
)
_TREATMENTS = sa.table(
    "access_treatment",
    *map(sa.column, ("organisation_id", "treating_organisation_id")),
    sa.column("patient_id"),
)
_SHARES = sa.table(
    "access_share",
    *map(sa.column, ("organisation_id", "person_id")),
    sa.column("valid_from", UTCDateTime()),
    sa.column("valid_until", UTCDateTime()),
)


def recompute_shares(patient_ids: set[str]) -> None:
    """Replace the shares of the persons of `patient_ids` by what their facts say now."""
    connection = op.get_bind()
    records = _RECORDS.c
    persons = {
        row.person_id
        for row in connection.execute(
            sa.select(records.person_id).where(records.patient_id.in_(sorted(patient_ids)))
        )
    }
    members = [
        StoredRecord(*row)
        for row in connection.execute(
            sa.select(*_RECORDS.c).where(records.person_id.in_(sorted(persons)))
        )
    ]
    ids = sorted(member.patient_id for member in members)
    consents = [
        stored_consent(row)
        for row in connection.execute(
            sa.select(*_CONSENTS.c).where(_CONSENTS.c.patient_id.in_(ids))
        )
    ]
    treating = [
        (row.organisation_id, row.treating_organisation_id, row.patient_id)
        for row in connection.execute(
            sa.select(*_TREATMENTS.c).where(_TREATMENTS.c.patient_id.in_(ids))
        )
    ]
    connection.execute(sa.delete(_SHARES).where(_SHARES.c.person_id.in_(sorted(persons))))
    now = utc_now()
    rows = [
        {
            "organisation_id": share.organisation_id,
            "person_id": person,
            "valid_from": share.valid_from,
            "valid_until": share.valid_until,
        }
        for person in sorted(persons)
        for share in shares([m for m in members if m.person_id == person], consents, treating, now)
    ]
    if rows:
        op.bulk_insert(_SHARES, rows)
