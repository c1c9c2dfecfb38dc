"""`_summary` and `_elements`: rules on single resources, and a read through HTTP."""

from __future__ import annotations

import orjson
import pytest

from medicus.core.errors import ApiError
from medicus.fhir.subsetting import SUBSETTED, Subset
from tests.fhir.conftest import Hub

OBSERVATION = {
    "resourceType": "Observation",
    "id": "o1",
    "meta": {"versionId": "1"},
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Hb</div>'},
    "status": "final",
    "code": {"text": "Hb"},
    "subject": {"reference": "Patient/p1"},
    "valueQuantity": {"value": 13.2},
    "note": [{"text": "no comment"}],
}


def _subset(**parameters: str) -> dict[str, object]:
    return dict(orjson.loads(Subset.of(parameters).apply(orjson.dumps(OBSERVATION))))


def test_summary_true_keeps_summary_elements_including_choices() -> None:
    kept = _subset(_summary="true")
    assert set(kept) == {"resourceType", "id", "meta", "status", "code", "subject", "valueQuantity"}
    assert SUBSETTED in kept["meta"]["tag"]  # type: ignore[index]


def test_summary_text_and_data() -> None:
    assert set(_subset(_summary="text")) == {"resourceType", "id", "meta", "text", "status", "code"}
    assert "text" not in _subset(_summary="data")
    assert "note" in _subset(_summary="data")


def test_elements_keep_the_listed_and_the_mandatory() -> None:
    kept = _subset(_elements="subject,note")
    assert set(kept) == {"resourceType", "id", "meta", "status", "code", "subject", "note"}


def test_whole_resource_without_parameters_is_untouched() -> None:
    content = orjson.dumps(OBSERVATION)
    assert Subset.of({}).apply(content) is content
    assert Subset.of({"_summary": "false"}).apply(content) is content


def test_unknown_summary_mode_is_400() -> None:
    with pytest.raises(ApiError) as raised:
        Subset.of({"_summary": "short"})
    assert raised.value.status == 400


async def test_read_with_elements(hub: Hub) -> None:
    body = {k: v for k, v in OBSERVATION.items() if k not in ("id", "meta")}
    created = await hub.http.post(
        "/fhir/Observation", content=orjson.dumps(body), headers=await hub.token()
    )
    url = f"/fhir/Observation/{created.json()['id']}"
    read = await hub.http.get(url, params={"_elements": "subject"}, headers=await hub.token())
    assert set(read.json()) == {"resourceType", "id", "meta", "status", "code", "subject"}
    assert (
        await hub.http.get(url, params={"_summary": "nonsense"}, headers=await hub.token())
    ).status_code == 400
    count = await hub.http.get(url, params={"_summary": "count"}, headers=await hub.token())
    assert count.status_code == 400
