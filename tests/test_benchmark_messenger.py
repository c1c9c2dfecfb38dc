"""The messenger benchmark's own arithmetic: what medicus adds to a time and to a rate, the goal,
the summaries over rounds and the CPU per unit."""

from __future__ import annotations

import pytest
from benchmarks.messenger import (
    Measured,
    added_percent,
    compare,
    comparison,
    diagnostic,
    server_cpu_added,
)


def test_what_medicus_adds_is_extra_time_for_times_and_for_rates() -> None:
    assert added_percent(110.0, 100.0, higher_is_better=False) == pytest.approx(10.0)
    assert added_percent(90.0, 100.0, higher_is_better=False) == pytest.approx(-10.0)
    # Half the rate is twice the time per message or MB.
    assert added_percent(50.0, 100.0, higher_is_better=True) == pytest.approx(100.0)
    assert added_percent(200.0, 100.0, higher_is_better=True) == pytest.approx(-50.0)


def test_the_goal_is_at_most_ten_percent_added() -> None:
    assert compare(110.0, 100.0, higher_is_better=False)["goal_met"]
    assert not compare(110.5, 100.0, higher_is_better=False)["goal_met"]
    slower = compare(90.0, 100.0, higher_is_better=True)
    assert slower == {
        "medicus": 90.0,
        "synapse": 100.0,
        "ratio": 0.9,
        "added_percent": 11.1,
        "goal_met": False,
    }
    assert compare(91.0, 100.0, higher_is_better=True)["goal_met"]


def _measured(scale: float) -> Measured:
    measured = Measured(
        login_ms=[scale * n for n in (30, 10, 20)],
        latency_ms=[scale * n for n in range(1, 101)],
        sent_per_s=[100 / scale, 90 / scale, 300 / scale],
        delivered_per_s=[80 / scale, 85 / scale, 90 / scale],
        upload_mb_per_s=[200 / scale],
        download_mb_per_s=[400 / scale, 100 / scale],
    )
    measured.cpu_seconds = {"latency": {"medicus": 0.5, "synapse": 2.0}, "upload": {"synapse": 1}}
    measured.units = {"latency": 250, "upload": 500}
    return measured


def test_times_are_percentiles_of_all_samples_and_rates_medians_of_rounds() -> None:
    summary = _measured(1.0).summary()
    assert summary == {
        "login_p50_ms": 20,
        "latency_p50_ms": 51,
        "latency_p95_ms": 96,
        "messages_per_s": 100,
        "delivered_per_s": 85,
        "upload_mb_per_s": 200,
        "download_mb_per_s": 250,
    }


def test_the_comparison_takes_the_direction_of_each_number() -> None:
    medicus, synapse = _measured(1.05).summary(), _measured(1.0).summary()
    compared = comparison(medicus, synapse)
    assert {row["added_percent"] for row in compared["rows"].values()} == {5.0}
    assert compared["goal_met_everywhere"]
    assert not comparison(_measured(1.2).summary(), synapse)["goal_met_everywhere"]
    assert set(diagnostic(medicus, synapse).values()) == {5.0}
    assert "login_p50_ms" not in diagnostic(medicus, synapse)


def test_cpu_is_milliseconds_per_unit_of_the_phase() -> None:
    assert _measured(1.0).cpu_ms_per_unit() == {
        "latency_per_message": {"medicus": 2.0, "synapse": 8.0},
        "upload_per_mb": {"synapse": 2.0},
    }


def test_server_cpu_counts_the_servers_not_the_client() -> None:
    medicus, synapse = _measured(1.0), _measured(1.0)
    medicus.cpu_seconds["latency"]["client"] = 9.0
    synapse.cpu_seconds = {"latency": {"synapse": 2.0}, "upload": {"synapse": 0.5}}
    assert medicus.server_cpu_ms_per_unit() == {"latency_per_message": 10.0, "upload_per_mb": 2.0}
    assert server_cpu_added(medicus, synapse) == {
        "latency_per_message": 25.0,
        "upload_per_mb": 100.0,
    }
