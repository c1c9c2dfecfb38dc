"""FHIR resources: `fhir_resource.patient_id`, the Patient record whose compartment a resource
is in, so that access decisions about a patient's data are conditions of the query. Filled in
for the resources stored before it from their reference index rows, by the same rule as a
write (`writer.patient_of`): a Patient is its own; otherwise the first of its type's
compartment parameters, in the definition's order, that refers to a Patient. The parameters
are those of the R4 definitions, copied here (`_PATIENT_COMPARTMENT`).

On PostgreSQL the index is built concurrently: writes go on while a large table is indexed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 11:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PATIENT_COMPARTMENT: dict[str, tuple[str, ...]] = {
    "Account": ("subject",),
    "AdverseEvent": ("subject",),
    "AllergyIntolerance": ("patient", "recorder", "asserter"),
    "Appointment": ("actor",),
    "AppointmentResponse": ("actor",),
    "AuditEvent": ("patient",),
    "Basic": ("patient", "author"),
    "BodyStructure": ("patient",),
    "CarePlan": ("patient", "performer"),
    "CareTeam": ("patient", "participant"),
    "ChargeItem": ("subject",),
    "Claim": ("patient", "payee"),
    "ClaimResponse": ("patient",),
    "ClinicalImpression": ("subject",),
    "Communication": ("subject", "sender", "recipient"),
    "CommunicationRequest": ("subject", "sender", "recipient", "requester"),
    "Composition": ("subject", "author", "attester"),
    "Condition": ("patient", "asserter"),
    "Consent": ("patient",),
    "Coverage": ("policy-holder", "subscriber", "beneficiary", "payor"),
    "CoverageEligibilityRequest": ("patient",),
    "CoverageEligibilityResponse": ("patient",),
    "DetectedIssue": ("patient",),
    "DeviceRequest": ("subject", "performer"),
    "DeviceUseStatement": ("subject",),
    "DiagnosticReport": ("subject",),
    "DocumentManifest": ("subject", "author", "recipient"),
    "DocumentReference": ("subject", "author"),
    "Encounter": ("patient",),
    "EnrollmentRequest": ("subject",),
    "EpisodeOfCare": ("patient",),
    "ExplanationOfBenefit": ("patient", "payee"),
    "FamilyMemberHistory": ("patient",),
    "Flag": ("patient",),
    "Goal": ("patient",),
    "Group": ("member",),
    "ImagingStudy": ("patient",),
    "Immunization": ("patient",),
    "ImmunizationEvaluation": ("patient",),
    "ImmunizationRecommendation": ("patient",),
    "Invoice": ("subject", "patient", "recipient"),
    "List": ("subject", "source"),
    "MeasureReport": ("patient",),
    "Media": ("subject",),
    "MedicationAdministration": ("patient", "performer", "subject"),
    "MedicationDispense": ("subject", "patient", "receiver"),
    "MedicationRequest": ("subject",),
    "MedicationStatement": ("subject",),
    "MolecularSequence": ("patient",),
    "NutritionOrder": ("patient",),
    "Observation": ("subject", "performer"),
    "Patient": ("link",),
    "Person": ("patient",),
    "Procedure": ("patient", "performer"),
    "Provenance": ("patient",),
    "QuestionnaireResponse": ("subject", "author"),
    "RelatedPerson": ("patient",),
    "RequestGroup": ("subject", "participant"),
    "ResearchSubject": ("individual",),
    "RiskAssessment": ("subject",),
    "Schedule": ("actor",),
    "ServiceRequest": ("subject", "performer"),
    "Specimen": ("subject",),
    "SupplyDelivery": ("patient",),
    "SupplyRequest": ("subject",),
    "VisionPrescription": ("patient",),
}
"""The R4 patient compartment: the parameters of each type that may put a resource in a
Patient's compartment, in the definition's order, as the generated definitions give them
(copied here: R4 is fixed, and the revision must not change with the code)."""

_resources = sa.table(
    "fhir_resource",
    sa.column("rid", sa.BigInteger()),
    sa.column("resource_type", sa.String()),
    sa.column("fhir_id", sa.String()),
    sa.column("patient_id", sa.String()),
)
_references = sa.table(
    "fhir_reference",
    sa.column("rid", sa.BigInteger()),
    sa.column("param", sa.String()),
    sa.column("grp", sa.Integer()),
    sa.column("target_type", sa.String()),
    sa.column("target_id", sa.String()),
)


def upgrade() -> None:
    op.add_column("fhir_resource", sa.Column("patient_id", sa.String(length=64), nullable=True))
    op.execute(
        _resources.update()
        .where(_resources.c.resource_type == "Patient")
        .values(patient_id=_resources.c.fhir_id)
    )
    for resource_type, parameters in _PATIENT_COMPARTMENT.items():
        if resource_type != "Patient":
            _fill_in(resource_type, parameters)
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_fhir_resource_patient",
                "fhir_resource",
                ["patient_id"],
                postgresql_concurrently=True,
                if_not_exists=True,
            )
        return
    op.create_index("ix_fhir_resource_patient", "fhir_resource", ["patient_id"])


def _fill_in(resource_type: str, parameters: Sequence[str]) -> None:
    """The first Patient that one of `parameters` refers to, for every resource of the type."""
    order = sa.case(
        {parameter: number for number, parameter in enumerate(parameters)},
        value=_references.c.param,
    )
    first_patient = (
        sa.select(_references.c.target_id)
        .where(
            _references.c.rid == _resources.c.rid,
            _references.c.grp.is_(None),
            _references.c.target_type == "Patient",
            _references.c.param.in_(parameters),
        )
        .order_by(order)
        .limit(1)
        .scalar_subquery()
    )
    op.execute(
        _resources.update()
        .where(_resources.c.resource_type == resource_type)
        .values(patient_id=first_patient)
    )


def downgrade() -> None:
    op.drop_index("ix_fhir_resource_patient", table_name="fhir_resource")
    with op.batch_alter_table("fhir_resource") as batch_op:
        batch_op.drop_column("patient_id")
