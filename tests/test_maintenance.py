"""Maintenance windows: incidents inside one are recorded, not paged; after it, they page."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from analysis.maintenance import MaintenanceError, MaintenanceWindow, active_targets
from bot.config import ConfigError, load_settings

SUNDAY = datetime(2026, 11, 29, tzinfo=UTC)  # a Sunday


def test_recurring_windows_by_weekday_and_across_midnight() -> None:
    weekly = MaintenanceWindow("rack-a1", timedelta(hours=4), at=time(2, 0), days=("sun",))
    assert weekly.active(SUNDAY + timedelta(hours=3))
    assert not weekly.active(SUNDAY + timedelta(hours=6))
    assert not weekly.active(SUNDAY + timedelta(days=1, hours=3))  # Monday
    nightly = MaintenanceWindow("gpu-node-007", timedelta(hours=3), at=time(23, 0))
    assert nightly.active(SUNDAY + timedelta(hours=1))  # Saturday 23:00 + 2 h
    assert not nightly.active(SUNDAY + timedelta(hours=2, minutes=1))
    once = MaintenanceWindow("pdu-a1", timedelta(hours=1), start=SUNDAY)
    assert once.active(SUNDAY) and not once.active(SUNDAY + timedelta(hours=1))
    assert active_targets([weekly, nightly, once], SUNDAY + timedelta(minutes=30)) == [
        "gpu-node-007",
        "pdu-a1",
    ]


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"target": "rack-a1", "at": "02:00", "duration": "4x"}, "rack-a1: duration"),
        ({"target": "rack-a1", "duration": "4h"}, "give either start"),
        ({"target": "rack-a1", "at": "25:00", "duration": "4h"}, "is not HH:MM"),
        ({"target": "rack-a1", "at": "02:00", "duration": "4h", "days": ["funday"]}, "weekday"),
        ({"target": "", "at": "02:00", "duration": "4h"}, "needs a target"),
        ({"target": "n1", "start": "next tuesday", "duration": "1h"}, "n1: start"),
        ({"target": "n1", "at": "02:00", "duration": "9d"}, "at most 7 days"),
        ({"target": "n1", "at": "02:00", "duration": "1h", "cron": "x"}, "unknown field"),
    ],
)
def test_bad_windows_are_one_clear_configuration_error(
    window: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, maintenance=[window])
    assert message in str(err.value)
    with pytest.raises(MaintenanceError):
        MaintenanceWindow("", timedelta(hours=1), at=time(1, 0))


@pytest.mark.slow
def test_an_incident_inside_a_window_is_recorded_not_paged_then_pages_after(
    tmp_path: Path,
) -> None:
    from bot.replay import Replay, cycle_times
    from bot.wiring import REPLAY, build_pipeline, memory_repository
    from storage.simulator import FleetSimulator, FleetSpec, make_fault

    spec = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
    start = datetime(2026, 11, 5, tzinfo=UTC)
    onset = start + timedelta(hours=9)
    fault = make_fault("hbm", "gpu-node-003/2", onset, spec=spec, precursor=timedelta(hours=3))
    sim = FleetSimulator(spec, start=start, duration=timedelta(hours=13), seed=6101, faults=[fault])
    window_end = onset + timedelta(hours=2)
    settings = load_settings(
        None,
        fit_window_hours=6,
        model_dir=tmp_path / "models",
        maintenance=[
            {"target": "gpu-node-003", "start": onset.isoformat(), "duration": "2h"},
        ],
    )
    repo = memory_repository()
    pipeline = build_pipeline(
        settings, source=sim, topology=sim.topology, repository=repo, options=REPLAY
    )
    driver = Replay({"graph": pipeline}, refit_every=None)
    inside = cycle_times(onset, window_end - timedelta(minutes=5), timedelta(minutes=5))
    driver.run(inside)
    recorded = [
        r for r in repo.open_incidents() if r.incident.root_cause.id.startswith("gpu-node-003")
    ]
    assert recorded, "the fault is recorded while under maintenance"
    assert not [o for o in repo.outbox() if o.kind == "post"], "nothing is paged inside the window"
    after = cycle_times(window_end, window_end + timedelta(minutes=30), timedelta(minutes=5))
    driver.run(after)
    posts = [o for o in repo.outbox() if o.kind == "post"]
    assert posts and posts[0].payload["incident"]["root_cause"]["id"].startswith("gpu-node-003")
    repo.close()


@pytest.mark.slow
def test_a_replay_whose_refit_finds_no_healthy_rows_keeps_the_current_model(
    tmp_path: Path,
) -> None:
    """As the running bot's daily refit: an open incident over the whole fleet excludes every
    GPU from the next fit; the replay goes on with the model it has instead of stopping."""
    from analysis.types import GpuScore, Incident, RootCause
    from bot.replay import Replay, cycle_times
    from bot.wiring import REPLAY, build_pipeline, memory_repository
    from storage.simulator import FleetSimulator, FleetSpec

    spec = FleetSpec(racks=1, nodes_per_rack=2, gpus_per_node=4)
    start = datetime(2026, 11, 5, tzinfo=UTC)
    sim = FleetSimulator(spec, start=start, duration=timedelta(hours=10), seed=6102)
    settings = load_settings(None, fit_window_hours=4, model_dir=tmp_path / "models")
    repo = memory_repository()
    pipeline = build_pipeline(
        settings, source=sim, topology=sim.topology, repository=repo, options=REPLAY
    )
    driver = Replay({"graph": pipeline}, refit_every=timedelta(hours=1))
    first = start + timedelta(hours=5)
    driver.run([first])
    model = pipeline.current
    assert model is not None and not driver.failed_refits
    rack = sim.topology.racks[0].id
    whole = Incident(
        id="rack-incident", at=first, severity="warning", score=0.9,  # type: ignore[arg-type]
        root_cause=RootCause(rack, "rack"),
        gpus=tuple(GpuScore(n, str(g), 0.9) for n in sim.topology.racks[0].nodes for g in range(4)),
    )  # fmt: skip
    repo.apply_cycle(first - timedelta(hours=5), [whole], True)
    later = cycle_times(first + timedelta(hours=1), first + timedelta(hours=1, minutes=20),
                        timedelta(minutes=5))  # fmt: skip
    cycles = driver.run(later)["graph"]
    assert len(cycles) == len(later)
    assert [(name, at) for name, at, _ in driver.failed_refits] == [("graph", later[0])]
    assert "healthy feature rows" in driver.failed_refits[0][2]
    assert "every GPU is behind an open incident" in driver.failed_refits[0][2]
    assert pipeline.current is model
    repo.close()
