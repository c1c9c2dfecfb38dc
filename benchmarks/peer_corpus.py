"""The same deterministic corpus for every server of the side-by-side benchmark: half Patients
(family names of a small list, birthdates spread over 1930-2024), half Observations (ten LOINC
codes, effective dates spread over 2023-2025, status final) of every tenth Patient, twenty
each; plus the bundles each row of the benchmark sends and the searches it asks.

Every resource carries the run's tag (`meta.tag`, and in family names), so that counts can be
compared on servers that keep data of earlier runs (the Medplum kit keeps its database)."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

TAG_SYSTEM = "https://medicus.invalid/benchmark-run"
LOINC = "http://loinc.org"
CODES = [
    ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL"),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL"),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL"),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L"),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L"),
    ("8867-4", "Heart rate", "/min"),
    ("8480-6", "Systolic blood pressure", "mm[Hg]"),
    ("8462-4", "Diastolic blood pressure", "mm[Hg]"),
    ("29463-7", "Body weight", "kg"),
    ("8310-5", "Body temperature", "Cel"),
]
FAMILIES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson",
    "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White",
    "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Roberts",
    "Carter", "Phillips", "Evans", "Turner",
]  # fmt: skip
GIVEN = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ida", "Jonas"]
OBSERVATIONS_PER_PATIENT = 20
PATIENTS_PER_LOAD_BUNDLE = 100
FIRST_BIRTHDATE = datetime.date(1930, 1, 1)
FIRST_EFFECTIVE = datetime.date(2023, 1, 1)

Entry = dict[str, object]
Bundle = dict[str, object]


def transaction(entries: list[Entry]) -> Bundle:
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


@dataclass(frozen=True)
class Corpus:
    """`resources` resources of run `tag` (letters and digits, a few characters)."""

    tag: str
    resources: int

    @property
    def patients(self) -> int:
        return self.resources - self.observations

    @property
    def observations(self) -> int:
        return self.patients_with_observations * OBSERVATIONS_PER_PATIENT

    @property
    def patients_with_observations(self) -> int:
        return self.resources // 2 // OBSERVATIONS_PER_PATIENT

    def family(self, number: int) -> str:
        return f"{FAMILIES[number % len(FAMILIES)]}{self.tag}"

    def meta(self) -> dict[str, object]:
        return {"tag": [{"system": TAG_SYSTEM, "code": self.tag}]}

    def patient(self, number: int, family: str | None = None) -> dict[str, object]:
        """Patient `number`; birthdates step by a prime number of days, so that they spread
        evenly over 1930-2024 whatever the size (about 15 % born in 2010 or later)."""
        born = FIRST_BIRTHDATE + datetime.timedelta(days=(number * 7919) % 34_675)
        return {
            "resourceType": "Patient",
            "meta": self.meta(),
            "identifier": [{"system": f"{TAG_SYSTEM}/patient", "value": f"{self.tag}-{number}"}],
            "name": [
                {"family": family or self.family(number), "given": [GIVEN[number % len(GIVEN)]]}
            ],
            "gender": "female" if number % 2 else "male",
            "birthDate": born.isoformat(),
        }

    def observation(self, number: int, subject: str) -> dict[str, object]:
        """Observation `number` of the corpus (code and date follow from the number)."""
        code, display, unit = CODES[number % len(CODES)]
        day = FIRST_EFFECTIVE + datetime.timedelta(days=(number * 37) % 1095)
        return {
            "resourceType": "Observation",
            "meta": self.meta(),
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
            "subject": {"reference": subject},
            "effectiveDateTime": f"{day.isoformat()}T{8 + number % 10:02d}:30:00+00:00",
            "valueQuantity": {
                "value": 50 + number % 100,
                "unit": unit,
                "system": "http://unitsofmeasure.org",
                "code": unit,
            },
        }

    def load_bundles(self) -> Iterator[Bundle]:
        """The corpus as transactions of POSTs: first the Patients with Observations (4 with
        their 80 Observations a bundle), then the rest (100 Patients a bundle). The first
        entries' Patients, in order, are the `patients_with_observations`."""
        for first in range(0, self.patients_with_observations, 4):
            last = min(first + 4, self.patients_with_observations)
            entries: list[Entry] = []
            for number in range(first, last):
                entries.extend(self._patient_with_observations(number))
            yield transaction(entries)
        for first in range(self.patients_with_observations, self.patients, 100):
            numbers = range(first, min(first + PATIENTS_PER_LOAD_BUNDLE, self.patients))
            yield transaction([_post(self.patient(number)) for number in numbers])

    def _patient_with_observations(self, number: int) -> list[Entry]:
        reference = f"urn:uuid:00000000-0000-4000-8000-{number:012d}"
        entries = [_post(self.patient(number), reference)]
        first = number * OBSERVATIONS_PER_PATIENT
        for observation in range(first, first + OBSERVATIONS_PER_PATIENT):
            entries.append(_post(self.observation(observation, reference)))
        return entries


def _post(resource: dict[str, object], full_url: str | None = None) -> Entry:
    entry: Entry = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def patients_bundle(corpus: Corpus, count: int) -> Bundle:
    """A transaction of `count` new Patients (family `Tx<tag>`, outside the searched ones)."""
    family = f"Tx{corpus.tag}"
    return transaction([_post(corpus.patient(1_000_000 + n, family)) for n in range(count)])


def patient_with_observations_bundle(corpus: Corpus, observations: int) -> Bundle:
    """A transaction of 1 new Patient and `observations` Observations of it."""
    reference = "urn:uuid:00000000-0000-4000-9000-000000000001"
    entries = [_post(corpus.patient(2_000_000, f"Tx{corpus.tag}"), reference)]
    entries += [_post(corpus.observation(n, reference)) for n in range(observations)]
    return transaction(entries)


def ingest_bundle(corpus: Corpus, key: str, method: str, client_id: Callable[[str], str]) -> Bundle:
    """250 entries as a connector sends them: 50 Patients and 200 of their Observations,
    by `PUT` with ids the client chose (`client_id` of a local key: each server has its
    rule for them) or by `POST` with `urn:uuid` references. `key` makes the ids of one
    bundle unique (round and repetition)."""
    entries: list[Entry] = []
    for number in range(50):
        local = f"{corpus.tag}{key}p{number}"
        patient = corpus.patient(3_000_000 + number, f"Tx{corpus.tag}")
        observations = [corpus.observation(number * 4 + n, "") for n in range(4)]
        if method == "PUT":
            patient_id = client_id(local)
            entries.append(_put(patient, patient_id))
            for n, observation in enumerate(observations):
                observation["subject"] = {"reference": f"Patient/{patient_id}"}
                entries.append(_put(observation, client_id(f"{local}o{n}")))
        else:
            reference = f"urn:uuid:{uuid.uuid4()}"
            entries.append(_post(patient, reference))
            for observation in observations:
                observation["subject"] = {"reference": reference}
                entries.append(_post(observation))
    return transaction(entries)


def _put(resource: dict[str, object], resource_id: str) -> Entry:
    resource["id"] = resource_id
    url = f"{resource['resourceType']}/{resource_id}"
    return {"resource": resource, "request": {"method": "PUT", "url": url}}


def search(resource_type: str, **parameters: str) -> str:
    """The path and query of a search, relative to the FHIR base."""
    return f"{resource_type}?{urlencode(parameters)}"


def family_searches(corpus: Corpus) -> list[str]:
    return [search("Patient", family=corpus.family(n), _count="20") for n in range(len(FAMILIES))]


def subject_code_searches(corpus: Corpus, subjects: list[str]) -> list[str]:
    """A patient's results of one code (2 of them each)."""
    return [
        search("Observation", subject=f"Patient/{subject}", code=f"{LOINC}|{CODES[n % 10][0]}")
        for n, subject in enumerate(subjects)
    ]


def code_date_searches() -> list[str]:
    """All results of one code since a date (the first page of 20)."""
    return [
        search("Observation", code=f"{LOINC}|{code}", date=f"ge{year}-{month:02d}-01", _count="20")
        for code, _display, _unit in CODES
        for year, month in ((2023, 3), (2024, 6), (2025, 9))
    ]


def birthdate_searches() -> list[str]:
    return [search("Patient", birthdate="ge2010-01-01", _count="20")]


def patient_search(corpus: Corpus, number: int) -> str:
    """The search that finds Patient `number` of the corpus by its identifier."""
    return search("Patient", identifier=f"{TAG_SYSTEM}/patient|{corpus.tag}-{number}")


def counted(corpus: Corpus, path: str) -> str:
    """The search of `path` limited to this run's resources, asking for an accurate total."""
    return f"{path}&{urlencode({'_tag': f'{TAG_SYSTEM}|{corpus.tag}', '_total': 'accurate'})}"
