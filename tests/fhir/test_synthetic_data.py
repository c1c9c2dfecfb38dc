"""Synthetic patient data that no one here wrote (the `carebundle` generator's transaction
bundles) loads without a single error and reads back as it was sent, apart from `meta`
versioning and `urn:uuid:` references, which the hub resolves to the ids it assigned."""

from __future__ import annotations

from typing import Any

import carebundle
import orjson
import pytest

from tests.fhir.conftest import Hub


def _resolved(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            key: ids.get(item, item) if key == "reference" else _resolved(item, ids)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_resolved(item, ids) for item in value]
    return value


def _without_versioning(resource: dict[str, Any]) -> dict[str, Any]:
    meta = {
        k: v for k, v in resource.get("meta", {}).items() if k not in ("versionId", "lastUpdated")
    }
    trimmed = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    return {**trimmed, "meta": meta} if meta else trimmed


@pytest.mark.parametrize("seed", [11, 12])
async def test_generated_cohort_loads_and_round_trips(hub: Hub, seed: int) -> None:
    bundles = [
        orjson.loads(carebundle.to_json(b)) for b in carebundle.generate_cohort(count=4, seed=seed)
    ]
    token = await hub.token()
    for bundle in bundles:
        response = await hub.http.post("/fhir", content=orjson.dumps(bundle), headers=token)
        assert response.status_code == 200, response.text
        answers = response.json()["entry"]
        assert all(a["response"]["status"] == "201 Created" for a in answers)
        ids = {
            entry["fullUrl"]: answer["response"]["location"].split("/_history")[0]
            for entry, answer in zip(bundle["entry"], answers, strict=True)
        }
        for entry, location in zip(bundle["entry"], ids.values(), strict=True):
            read = await hub.http.get(f"/fhir/{location}", headers=token)
            assert read.status_code == 200
            sent = _without_versioning(_resolved(entry["resource"], ids))
            assert _without_versioning(read.json()) == sent
