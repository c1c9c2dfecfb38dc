"""Patient `phonetic` searches names by how they sound (the Kölner Phonetik, see
fhir/search/phonetics.py) from rows of its own: one `fhir_string` row per distinct code of a
Patient's name words (`param` `phonetic`), where it was answered from `name`'s rows before
(search/parameters.py `SOUNDING`). The background update `fhir.patient_search_index`
restates the search index of every current Patient, which writes them; until it reaches a
Patient, `phonetic` does not find it (`name` does). No table or index changes:
`ix_fhir_string_lookup` finds a code's rows in the order of the resources.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-03 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from medicus.migrations.scheduling import schedule

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    schedule("fhir.patient_search_index")


def downgrade() -> None:
    """Earlier versions answer `phonetic` from `name`'s rows: the codes' rows go."""
    op.execute(
        sa.text("DELETE FROM fhir_string WHERE resource_type = 'Patient' AND param = 'phonetic'")
    )
    op.execute(sa.text("DELETE FROM background_update WHERE name = 'fhir.patient_search_index'"))
