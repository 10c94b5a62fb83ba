"""Sustained risk: a GPU whose risk held at a lower level for an hour is at risk too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from analysis.sustained import SustainedRisk
from analysis.tracker import IncidentTracker
from analysis.types import Assessment, GpuScore, Incident, RootCause

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)


def _held_at(rule: SustainedRisk, risk: dict[int, float], minutes: range) -> list[int]:
    """Feed one GPU's risk at ``minutes`` (default 0.1); return the minutes it was held."""
    held = []
    for m in minutes:
        if rule.update(T0 + timedelta(minutes=m), [GpuScore("n1", "0", risk.get(m, 0.1))]):
            held.append(m)
    return held


def test_risk_held_at_every_checkpoint_of_the_hour_is_held() -> None:
    """From minute 0 on at 0.6: held once the checkpoints 15 minutes apart span an hour."""
    rule = SustainedRisk(0.5, timedelta(hours=1))
    held = _held_at(rule, {m: 0.6 for m in range(0, 200, 5)}, range(0, 200, 5))
    assert held[0] == 60 and held == list(range(60, 200, 5))


def test_the_rule_means_the_same_at_one_and_five_minute_cycles() -> None:
    risk = {m: 0.6 for m in range(30, 150)}
    five = _held_at(SustainedRisk(0.5, timedelta(hours=1)), risk, range(0, 150, 5))
    one = _held_at(SustainedRisk(0.5, timedelta(hours=1)), risk, range(0, 150, 1))
    assert five[0] == one[0] == 90
    assert set(five) <= set(one)


def test_a_dip_at_a_checkpoint_breaks_it_and_a_gap_is_no_evidence() -> None:
    risk = {m: 0.6 for m in range(0, 300, 5)}
    risk[100] = 0.3  # the checkpoint of minutes 100, 115, ... 160: held again at 165
    held = _held_at(SustainedRisk(0.5, timedelta(hours=1)), risk, range(0, 300, 5))
    assert 95 in held and not set(range(100, 165, 15)) & set(held) and 165 in held
    # no cycle within 15 minutes before a checkpoint: nothing is known to have held
    gap = _held_at(
        SustainedRisk(0.5, timedelta(hours=1)),
        risk,
        [m for m in range(0, 300, 5) if not 200 <= m < 230],
    )
    # (checkpoints in [210, 230) have none: held again once the oldest is past them)
    assert 195 in gap and not [m for m in gap if 195 < m < 290] and 290 in gap


def test_what_it_keeps_survives_a_restart() -> None:
    risk = {m: 0.7 for m in range(0, 100, 5)}
    first = SustainedRisk(0.5, timedelta(hours=1))
    _held_at(first, risk, range(0, 50, 5))
    second = SustainedRisk(0.5, timedelta(hours=1))
    second.load_state(first.state())
    assert _held_at(second, risk, range(50, 100, 5)) == list(range(60, 100, 5))


def test_settings_of_the_rule_are_checked() -> None:
    with pytest.raises(ValueError, match="watch"):
        SustainedRisk(1.2)
    with pytest.raises(ValueError, match="checkpoint"):
        SustainedRisk(0.5, timedelta(minutes=5))


def test_the_settings_refuse_a_sustained_risk_above_the_threshold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.config import ConfigError, load_settings

    monkeypatch.setenv("GPU_RISK_SUSTAINED_RISK", "0.95")
    with pytest.raises(ConfigError, match="GPU_RISK_SUSTAINED_RISK"):
        load_settings(None)
    monkeypatch.setenv("GPU_RISK_SUSTAINED_RISK", "0.5")
    monkeypatch.setenv("GPU_RISK_SUSTAINED_FOR", "50m")
    with pytest.raises(ConfigError, match="15-minute"):
        load_settings(None)
    monkeypatch.setenv("GPU_RISK_SUSTAINED_FOR", "2h")
    assert load_settings(None).sustained_for == 7200


# ---------------------------------------------------------------- the tracker


def _incident(at: datetime, root: RootCause, keys: tuple[str, ...]) -> Incident:
    gpus = tuple(GpuScore(k.split("/")[0], k.split("/")[1], 0.95) for k in keys)
    return Incident("x", at, "warning", 0.95, root, gpus)


def _rows(keys: tuple[str, ...], util: float) -> pd.DataFrame:
    return pd.DataFrame(
        {"util": [util] * len(keys), "last_seen_min": [1.0] * len(keys)},
        index=pd.Index(keys, name="gpu_key"),
    )


def test_an_incident_whose_persistence_was_judged_opens_at_first_sight() -> None:
    t = IncidentTracker(open_after=2, open_for=timedelta(minutes=5))
    inc = _incident(T0, RootCause("n1/0", "gpu"), ("n1/0",))
    cycle = Assessment(T0, inc.gpus, (inc,), features=_rows(("n1/0",), 90.0))
    assert t.update(cycle) == []
    t2 = IncidentTracker(open_after=2, open_for=timedelta(minutes=5))
    assert [i.dedup_key for i in t2.update(cycle, at_once=["gpu:n1/0"])] == ["gpu:n1/0"]


def test_a_broader_incident_held_open_unseen_does_not_swallow_a_new_fault_under_it() -> None:
    """A switch incident opened on a blip, then its rack went idle (held open: idle is no
    evidence of health); hours later a GPU under it fails slowly: that is its own incident.
    While the switch incident is still seen, the GPU's is that incident going on."""
    rack = ("n1/0", "n1/1", "n2/0", "n2/1")
    switch = RootCause("sw-1", "switch")
    t = IncidentTracker(open_after=1, close_after=2, close_for=timedelta(minutes=25))
    scores = tuple(GpuScore(k[:2], k[-1], 0.1) for k in rack)

    def cycle(minute: int, incidents: tuple[Incident, ...], util: float) -> Assessment:
        at = T0 + timedelta(minutes=minute)
        return Assessment(at, scores, incidents, features=_rows(rack, util))

    assert t.update(cycle(0, (_incident(T0, switch, rack),), 90.0))
    gpu = _incident(T0, RootCause("n2/1", "gpu"), ("n2/1",))
    seen = t.update(cycle(5, (_incident(T0, switch, rack), gpu), 90.0))
    assert [i.dedup_key for i in seen] == ["switch:sw-1"]
    for minute in range(10, 240, 5):  # the rack idles: the switch incident is held open
        assert [i.dedup_key for i in t.update(cycle(minute, (), 0.0))] == ["switch:sw-1"]
    opened = t.update(cycle(240, (gpu,), 0.0))
    assert sorted(i.dedup_key for i in opened) == ["gpu:n2/1", "switch:sw-1"]


def test_a_broader_incident_whose_gpus_went_silent_still_takes_what_is_under_it() -> None:
    """A node under a fan warning shut down (silent: failed); a GPU of it reads odd when it
    comes back before its repair: that is the node's failure going on, not a new page."""
    node = ("n1/0", "n1/1")
    t = IncidentTracker(open_after=1, close_after=2, close_for=timedelta(minutes=25))
    scores = tuple(GpuScore("n1", k[-1], 0.1) for k in node)
    silent = pd.DataFrame(
        {"util": [0.0, 0.0], "last_seen_min": [30.0, 30.0]}, index=pd.Index(node, name="gpu_key")
    )
    t.update(Assessment(T0, scores, (_incident(T0, RootCause("n1", "node"), node),), silent))
    for minute in range(5, 120, 5):
        at = T0 + timedelta(minutes=minute)
        assert [i.dedup_key for i in t.update(Assessment(at, scores, (), silent))] == ["node:n1"]
    assert set(t.failed) == {"node:n1"}
    at = T0 + timedelta(minutes=120)
    gpu = _incident(at, RootCause("n1/1", "gpu"), ("n1/1",))
    back = t.update(Assessment(at, scores, (gpu,), features=_rows(node, 50.0)))
    assert [i.dedup_key for i in back] == ["node:n1"]


# ---------------------------------------------------------------- the loop


def test_a_slow_thermal_fault_below_the_threshold_pages_once_its_risk_held(
    tmp_path: Path,
) -> None:
    """The product's loop on a simulated fleet: a thermal interface failing over sixteen hours
    sits between risk 0.5 and 0.9 from about six hours in to nearly nine. With the rule its
    GPU's incident opens once its risk held an hour, saying so; without it, none by then."""
    from analysis.scoring import GraphRiskModel
    from bot.pipeline import Pipeline
    from storage.repository import Repository
    from storage.simulator import FleetSimulator, FleetSpec, make_fault

    start = datetime(2026, 11, 2, tzinfo=UTC)
    spec = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=8)
    onset, key = start + timedelta(hours=10), "gpu-node-002/3"
    fault = make_fault("thermal_interface", key, onset, spec=spec, precursor=timedelta(hours=16))
    sim = FleetSimulator(spec, start=start, duration=timedelta(hours=27), seed=4, faults=[fault])

    def first_page(sustained: float, name: str) -> tuple[datetime, Incident] | None:
        repo = Repository.from_url(f"sqlite:///{tmp_path / name}")
        pipeline = Pipeline(
            source=sim,
            topology=sim.topology,
            repository=repo,
            make_scorer=lambda: GraphRiskModel(random_state=0),
            fit_window=timedelta(hours=8),
            sustained_risk=sustained,
        )
        at = onset  # fitted on the eight hours before the fault
        try:
            while at <= onset + timedelta(hours=8, minutes=30):
                assert pipeline.run_cycle(at).ok
                mine = [
                    r.incident
                    for r in repo.open_incidents()
                    if key in {g.key for g in r.incident.gpus}
                ]
                if mine:
                    return at, mine[0]
                at += timedelta(minutes=10)
        finally:
            repo.close()
        return None

    page = first_page(0.5, "held.db")
    assert page is not None, f"no incident on {key}"
    at, held = page
    assert onset + timedelta(hours=6, minutes=30) <= at <= onset + timedelta(hours=8)
    assert held.signals[0] == "risk held >= 0.50 for 60 min"
    assert held.root_cause.id == key and held.score < 0.9 and held.severity == "warning"
    assert first_page(0.0, "plain.db") is None


def test_a_one_shot_scan_runs_the_checkpoints_the_running_bot_judges() -> None:
    """The warm-up cycles a streak needs, and one at each checkpoint of the held risk."""
    from bot.commands.scan import scan_times

    at, five = T0 + timedelta(hours=3), timedelta(minutes=5)
    rule = SustainedRisk(0.5, timedelta(hours=1))
    assert scan_times(at, five, 1, None) == [at - five, at]
    times = scan_times(at, five, 1, rule)
    assert times == sorted({at - five, *rule.checkpoints(at)})
    assert times[0] == at - timedelta(hours=1) and len(times) == 6
    # the rule judged on just those cycles holds as on every cycle of the hour
    alone = SustainedRisk(0.5, timedelta(hours=1))
    for t in times:
        held = alone.update(t, [GpuScore("n1", "0", 0.6)])
    assert held == {"n1/0"}


def test_the_level_study_counts_held_healthy_gpus_and_leads() -> None:
    """``benchmarks.held_risk``: a healthy GPU held is a page, one under a fault is a lead."""
    from benchmarks.held_risk import Replayed, judge

    fleet = Replayed(seed=100, gpu_days=1.0)
    failure = T0 + timedelta(hours=4)
    fleet.faults = [("ti-1", "n2/0", ("n2/0",), T0, failure)]
    for m in range(0, 180, 5):
        scores = (GpuScore("n1", "0", 0.55), GpuScore("n2", "0", 0.65), GpuScore("n3", "0", 0.1))
        fleet.cycles.append((T0 + timedelta(minutes=m), scores, frozenset()))
    assert judge(fleet, 0.5, timedelta(hours=1)) == {"false_pages": 1, "leads": {"ti-1": 180.0}}
    assert judge(fleet, 0.6, timedelta(hours=1)) == {"false_pages": 0, "leads": {"ti-1": 180.0}}
    assert judge(fleet, 0.7, timedelta(hours=1))["leads"] == {}
