"""SQL of `access`, one module per data area:

- `records`: the master patient index (records, persons, links, merges, ruled-out pairs);
- `consents`: consents, research terms and treatment relations;
- `shares`: what is shared with whom, and the disclosures that record it;
- `break_glass`: emergency access and its review;
- `blocking`: candidate pairs for duplicate detection.

The services call them as `repository.<function>`; the names are exported here so that a
caller need not know which area a function belongs to."""

from medicus.access.repository.blocking import (
    MatchTraits,
    match_blocks,
)
from medicus.access.repository.break_glass import (
    StoredBreakGlass,
    add_break_glass,
    break_glass_of,
    opened_patients,
    opened_record,
    review_break_glass,
)
from medicus.access.repository.consents import (
    StoredConsent,
    TreatmentFact,
    consent_values,
    consents_about,
    fact_patient,
    has_facts,
    of_types,
    put_consent,
    put_research_terms,
    put_treatment,
    research_permitted,
    stored_consent,
    treatments_of,
    vouch_for,
)
from medicus.access.repository.records import (
    StoredRecord,
    add_distinct,
    add_link,
    delete_record,
    held_by,
    held_now,
    links_among,
    merges_of,
    move_to_person,
    persons_of,
    persons_with_kvnrs,
    put_record,
    record,
    records,
    records_of_persons,
    remove_link,
    replace_merges,
    same_person,
)
from medicus.access.repository.shares import (
    StoredDisclosure,
    add_disclosures,
    disclosures_by,
    end_disclosures,
    end_disclosures_of,
    open_disclosures,
    replace_shares,
    restate_disclosure,
    shared_patients,
    shared_record,
)

__all__ = [
    "MatchTraits",
    "StoredBreakGlass",
    "StoredConsent",
    "StoredDisclosure",
    "StoredRecord",
    "TreatmentFact",
    "add_break_glass",
    "add_disclosures",
    "add_distinct",
    "add_link",
    "break_glass_of",
    "consent_values",
    "consents_about",
    "delete_record",
    "disclosures_by",
    "end_disclosures",
    "end_disclosures_of",
    "fact_patient",
    "has_facts",
    "held_by",
    "held_now",
    "links_among",
    "match_blocks",
    "merges_of",
    "move_to_person",
    "of_types",
    "open_disclosures",
    "opened_patients",
    "opened_record",
    "persons_of",
    "persons_with_kvnrs",
    "put_consent",
    "put_record",
    "put_research_terms",
    "put_treatment",
    "record",
    "records",
    "records_of_persons",
    "remove_link",
    "replace_merges",
    "replace_shares",
    "research_permitted",
    "restate_disclosure",
    "review_break_glass",
    "same_person",
    "shared_patients",
    "shared_record",
    "stored_consent",
    "treatments_of",
    "vouch_for",
]
