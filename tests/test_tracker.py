"""Incident tracker: failed stays failed until the hardware is back in service, healthy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from analysis.tracker import IncidentTracker
from analysis.types import Assessment, GpuScore, Incident, RootCause

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)
KEY = "n1/0"


def _features(util: float, *, seen: float = 1.0, vanished: bool = False) -> pd.DataFrame:
    """One GPU's feature row: utilisation, minutes since its last sample, a failure flag."""
    return pd.DataFrame(
        {"util": [util], "last_seen_min": [seen], "fail_vanished": [vanished], "fail_dbe": [False]},
        index=pd.Index([KEY], name="gpu_key"),
    )


def _cycle(
    minute: int, *, at_risk: bool, signals: tuple[str, ...] = (), **feats: float
) -> Assessment:
    """One cycle: the GPU at risk (with these signals) or quiet, with its feature row."""
    at = T0 + timedelta(minutes=minute)
    gpus = (GpuScore("n1", "0", 0.99 if at_risk else 0.1),)
    incidents = ()
    if at_risk:
        incidents = (
            Incident("x", at, "critical", 0.99, RootCause(KEY, "gpu"), gpus, signals=signals),
        )
    return Assessment(at=at, scores=gpus, incidents=incidents, features=_features(**feats))


def test_a_failed_gpu_that_is_drained_stays_open_until_back_in_service() -> None:
    t = IncidentTracker(open_after=1, close_after=2, repair_after=timedelta(minutes=30))
    assert t.update(_cycle(0, at_risk=True, util=90.0))
    assert t.update(_cycle(5, at_risk=True, signals=("hardware_xid",), util=90.0))
    assert set(t.failed) == {f"gpu:{KEY}"}
    # drained: reporting, idle, counters flat -> the model reads it as healthy; still failed
    for minute in range(10, 240, 5):
        assert t.update(_cycle(minute, at_risk=False, util=0.0)), minute
    # gone from the bus for a while: still failed
    assert t.update(_cycle(240, at_risk=False, util=0.0, seen=60.0, vanished=True))
    # repaired and back in service: closes after repair_after of healthy service, not before
    assert t.update(_cycle(245, at_risk=False, util=80.0))
    assert t.update(_cycle(270, at_risk=False, util=80.0))
    assert t.update(_cycle(275, at_risk=False, util=80.0)) == []
    assert t.failed == {}


def test_an_incident_without_failure_closes_after_quiet_cycles() -> None:
    t = IncidentTracker(open_after=1, close_after=2)
    assert t.update(_cycle(0, at_risk=True, util=90.0))
    assert t.update(_cycle(5, at_risk=False, util=90.0))
    assert t.update(_cycle(10, at_risk=False, util=90.0)) == []


def test_a_gpu_that_went_idle_is_not_resolved_until_it_runs_work_quietly() -> None:
    """A thermal-interface failure drains the GPU with no XID: at idle it cools and reads
    healthy, which is no evidence of repair; only quiet cycles with work close it."""
    t = IncidentTracker(open_after=1, close_after=2)
    assert t.update(_cycle(0, at_risk=True, util=90.0))
    for minute in range(5, 300, 5):
        assert t.update(_cycle(minute, at_risk=False, util=0.0)), minute
    assert t.failed == {}  # one GPU idle is not a failure (it may be its job ending)
    assert t.update(_cycle(300, at_risk=False, util=90.0))
    assert t.update(_cycle(305, at_risk=False, util=90.0)) == []
    rules = IncidentTracker(open_after=1, close_after=2, idle_is_quiet=True)
    assert rules.update(_cycle(0, at_risk=True, util=90.0))
    assert rules.update(_cycle(5, at_risk=False, util=0.0))
    assert rules.update(_cycle(10, at_risk=False, util=0.0)) == []


def test_failed_state_survives_a_failover() -> None:
    first = IncidentTracker(open_after=1, close_after=2, repair_after=timedelta(minutes=30))
    first.update(_cycle(0, at_risk=True, signals=("ecc_dbe_increase",), util=90.0))
    state, opened = first.state(), first.open_incidents
    second = IncidentTracker(open_after=1, close_after=2, repair_after=timedelta(minutes=30))
    second.restore(opened)
    second.load_state(state)
    for minute in range(5, 120, 5):
        assert second.update(_cycle(minute, at_risk=False, util=0.0)), minute
    assert second.failed


def test_a_component_whose_gpus_are_all_drained_stays_open_until_back_in_service() -> None:
    """A switch fails: its jobs die, the GPUs idle, its counters stop; no all-clear for that."""
    keys = ("n1/0", "n1/1")

    def cycle(minute: int, *, at_risk: bool, util: float) -> Assessment:
        """Both GPUs behind leaf-a1, at risk or quiet, at this utilisation."""
        at = T0 + timedelta(minutes=minute)
        gpus = tuple(GpuScore("n1", k[-1], 0.99 if at_risk else 0.1) for k in keys)
        rows = pd.DataFrame(
            {"util": [util] * 2, "last_seen_min": [1.0] * 2, "fail_vanished": [False] * 2},
            index=pd.Index(keys, name="gpu_key"),
        )
        incidents = ()
        if at_risk:
            root = RootCause("leaf-a1", "switch")
            incidents = (Incident("x", at, "critical", 0.99, root, gpus),)
        return Assessment(at=at, scores=gpus, incidents=incidents, features=rows)

    t = IncidentTracker(open_after=1, close_after=2, repair_after=timedelta(minutes=30))
    assert t.update(cycle(0, at_risk=True, util=90.0))
    for minute in range(5, 120, 5):  # drained: reporting, idle, nothing at risk any more
        assert t.update(cycle(minute, at_risk=False, util=0.0)), minute
    assert set(t.failed) == {"switch:leaf-a1"}
    for minute in range(120, 150, 5):  # back in service, healthy
        assert t.update(cycle(minute, at_risk=False, util=80.0)), minute
    assert t.update(cycle(150, at_risk=False, util=80.0)) == []


def test_an_incident_whose_gpus_all_go_silent_stays_open_as_failed() -> None:
    """A node under a fan warning shuts down: no data is no evidence of repair."""
    t = IncidentTracker(open_after=1, close_after=2, repair_after=timedelta(minutes=30))
    assert t.update(_cycle(0, at_risk=True, util=90.0))
    assert t.failed == {}
    for minute in range(5, 120, 5):
        assert t.update(_cycle(minute, at_risk=False, util=0.0, seen=minute + 0.0)), minute
    assert set(t.failed) == {f"gpu:{KEY}"}
    # back and busy for repair_after: closed
    for minute in range(120, 150, 5):
        assert t.update(_cycle(minute, at_risk=False, util=80.0)), minute
    assert t.update(_cycle(150, at_risk=False, util=80.0)) == []


def test_open_for_asks_the_streak_to_last_whatever_the_interval() -> None:
    """One-minute cycles need five minutes of streak, like two five-minute cycles."""
    fast = IncidentTracker(open_after=2, close_after=2, open_for=timedelta(minutes=5))
    for minute in range(5):
        assert fast.update(_cycle(minute, at_risk=True, util=90.0)) == [], minute
    opened = fast.update(_cycle(5, at_risk=True, util=90.0))
    assert len(opened) == 1
    assert opened[0].id == fast.open_incidents[0].id
    slow = IncidentTracker(open_after=2, close_after=2, open_for=timedelta(minutes=5))
    assert slow.update(_cycle(0, at_risk=True, util=90.0)) == []
    assert len(slow.update(_cycle(5, at_risk=True, util=90.0))) == 1
    # a break in the streak starts the clock again
    broken = IncidentTracker(open_after=2, close_after=2, open_for=timedelta(minutes=5))
    for minute in (0, 1, 2, 3):
        broken.update(_cycle(minute, at_risk=True, util=90.0))
    broken.update(_cycle(4, at_risk=False, util=90.0))
    for minute in (5, 6, 7, 8, 9):
        assert broken.update(_cycle(minute, at_risk=True, util=90.0)) == [], minute
    assert len(broken.update(_cycle(10, at_risk=True, util=90.0))) == 1


def test_close_for_asks_the_quiet_to_last_whatever_the_interval() -> None:
    """One-minute cycles close after 25 quiet minutes, like five five-minute cycles."""
    fast = IncidentTracker(open_after=1, close_after=5, close_for=timedelta(minutes=25))
    assert fast.update(_cycle(0, at_risk=True, util=90.0))
    for minute in range(1, 25):
        assert fast.update(_cycle(minute, at_risk=False, util=90.0)), minute
    assert fast.update(_cycle(25, at_risk=False, util=90.0)) == []
    # a flicker back into risk restarts the quiet clock: the same incident, no second page
    flicker = IncidentTracker(open_after=1, close_after=5, close_for=timedelta(minutes=25))
    first = flicker.update(_cycle(0, at_risk=True, util=90.0))[0].id
    for minute in range(1, 10):
        flicker.update(_cycle(minute, at_risk=False, util=90.0))
    assert flicker.update(_cycle(10, at_risk=True, util=90.0))[0].id == first
    for minute in range(11, 35):
        assert flicker.update(_cycle(minute, at_risk=False, util=90.0)), minute
    assert flicker.update(_cycle(35, at_risk=False, util=90.0)) == []
    # the quiet clock survives a failover
    moved = IncidentTracker(open_after=1, close_after=5, close_for=timedelta(minutes=25))
    moved.update(_cycle(0, at_risk=True, util=90.0))
    moved.update(_cycle(1, at_risk=False, util=90.0))
    again = IncidentTracker(open_after=1, close_after=5, close_for=timedelta(minutes=25))
    again.restore(moved.open_incidents)
    again.load_state(moved.state())
    for minute in range(2, 25):
        assert again.update(_cycle(minute, at_risk=False, util=90.0)), minute
    assert again.update(_cycle(25, at_risk=False, util=90.0)) == []


def test_close_for_changes_nothing_at_five_minute_cycles() -> None:
    """At five-minute cycles five quiet cycles already span 25 minutes: the same decisions."""
    import random

    rng = random.Random(11)
    pattern = [rng.random() < 0.3 for _ in range(600)]
    plain = IncidentTracker(open_after=2, close_after=5)
    timed = IncidentTracker(
        open_after=2, close_after=5, open_for=timedelta(0), close_for=timedelta(minutes=25)
    )
    for i, at_risk in enumerate(pattern):
        cycle = _cycle(5 * i, at_risk=at_risk, util=90.0)
        assert [x.id for x in plain.update(cycle)] == [x.id for x in timed.update(cycle)], i


def _risk_cycle(minute: int, risks: dict[str, float], *, component: str = "") -> Assessment:
    """One cycle at these per-GPU risks: at-risk (>= 0.9) GPUs form one incident, under
    ``component`` when given and two or more are at risk, else each its own GPU incident."""
    at = T0 + timedelta(minutes=minute)
    scores = tuple(GpuScore(*k.split("/"), r) for k, r in risks.items())
    hot = tuple(s for s in scores if s.score >= 0.9)
    if component and len(hot) >= 2:
        cause = RootCause(component, "component")
        incidents: tuple[Incident, ...] = (Incident("x", at, "warning", 0.95, cause, hot),)
    else:
        incidents = tuple(
            Incident("x", at, "warning", s.score, RootCause(s.key, "gpu"), (s,)) for s in hot
        )
    rows = pd.DataFrame({"util": 90.0, "last_seen_min": 1.0}, index=pd.Index(list(risks)))
    return Assessment(at=at, scores=scores, incidents=incidents, features=rows)


def _pages(tracker: IncidentTracker, risks_by_cycle: list[dict[str, float]], **kw: str) -> int:
    """How many incidents the tracker opened over these cycles (5 minutes apart)."""
    seen: set[str] = set()
    for i, risks in enumerate(risks_by_cycle):
        seen.update(inc.id for inc in tracker.update(_risk_cycle(5 * i, risks, **kw)))
    return len(seen)


def test_a_gpu_hovering_at_the_threshold_is_one_incident_with_hold_and_three_without() -> None:
    """Risk 0.95 for two cycles, 0.8 for six, three times over: hold 0.75 keeps it one page."""
    hover = ([{KEY: 0.95}] * 2 + [{KEY: 0.8}] * 6) * 3
    assert _pages(IncidentTracker(open_after=2, close_after=5), hover) == 3
    assert _pages(IncidentTracker(open_after=2, close_after=5, hold=0.75), hover) == 1


def test_held_incident_closes_once_its_risk_falls_below_the_hold() -> None:
    t = IncidentTracker(open_after=2, close_after=5, hold=0.75)
    for i, risk in enumerate([0.95, 0.95] + [0.8] * 10):
        assert t.update(_risk_cycle(5 * i, {KEY: risk})) or i == 0, i
    for i in range(12, 16):
        assert t.update(_risk_cycle(5 * i, {KEY: 0.5})), i
    assert t.update(_risk_cycle(5 * 16, {KEY: 0.5})) == []


def test_a_component_incident_is_held_by_two_of_its_gpus_not_one() -> None:
    """A shared cause needs the pattern of its dependents; one GPU near the threshold is not it."""
    keys = ("n1/0", "n2/0", "n3/0")
    hot = {k: 0.95 for k in keys}
    one = {keys[0]: 0.8, keys[1]: 0.1, keys[2]: 0.1}
    two = {keys[0]: 0.8, keys[1]: 0.8, keys[2]: 0.1}
    held = IncidentTracker(open_after=2, close_after=3, hold=0.75)
    assert _pages(held, [hot, hot] + [two] * 8, component="pdu-a") == 1
    assert held.open_incidents and held.open_incidents[0].root_cause.id == "pdu-a"
    closes = IncidentTracker(open_after=2, close_after=3, hold=0.75)
    _pages(closes, [hot, hot] + [one] * 3, component="pdu-a")
    assert closes.open_incidents == []


def test_hold_must_be_a_risk() -> None:
    with pytest.raises(ValueError, match="hold must be a risk"):
        IncidentTracker(hold=1.5)


def test_a_failed_gpus_service_must_be_unbroken_to_close_it() -> None:
    """Back at work, idle again, back at work: the hour of service counts from the last return."""
    t = IncidentTracker(open_after=1, close_after=2, repair_after=timedelta(minutes=60))
    t.update(_cycle(0, at_risk=True, signals=("hardware_xid",), util=90.0))
    assert t.update(_cycle(5, at_risk=False, util=80.0))  # in service since 5
    assert t.update(_cycle(30, at_risk=False, util=0.0))  # idle: service broken
    assert t.update(_cycle(40, at_risk=False, util=80.0))  # in service since 40
    assert t.update(_cycle(70, at_risk=False, util=80.0)), "65 min after 5, but only 30 since 40"
    assert t.update(_cycle(100, at_risk=False, util=80.0)) == []


def test_a_failed_gpu_at_risk_again_is_no_repair() -> None:
    """In service, then at risk again for hours: the hour of service before it does not close
    the incident at the first quiet cycle after (a drained node's fan still failing)."""
    t = IncidentTracker(open_after=1, close_after=2, repair_after=timedelta(minutes=60))
    t.update(_cycle(0, at_risk=True, signals=("hardware_xid",), util=90.0))
    assert t.update(_cycle(5, at_risk=False, util=80.0))  # in service since 5
    for minute in range(10, 120, 5):  # at risk again: not healthy service
        assert t.update(_cycle(minute, at_risk=True, util=80.0))
    assert t.update(_cycle(120, at_risk=False, util=80.0)), "115 min after 5, but at risk since"
    assert t.update(_cycle(175, at_risk=False, util=80.0)), "55 min of healthy service"
    assert t.update(_cycle(180, at_risk=False, util=80.0)) == []


def _episodes(tracker: IncidentTracker, severity: str, quiet_minutes: int) -> tuple[int, int]:
    """Three 20-minute at-risk episodes ``quiet_minutes`` apart at five-minute cycles, then a
    quiet day: (incidents opened, "resolved" before the last episode)."""
    ids: list[str] = []
    closed_early = 0
    minute = 0
    open_now = False
    for episode in range(3):
        for _ in range(4):
            at = T0 + timedelta(minutes=minute)
            gpus = (GpuScore("n1", "0", 0.999 if severity == "critical" else 0.95),)
            inc = Incident("x", at, severity, gpus[0].score, RootCause(KEY, "gpu"), gpus)  # type: ignore[arg-type]
            out = tracker.update(Assessment(at, gpus, (inc,), _features(util=90.0)))
            ids += [i.id for i in out if i.id not in ids]
            open_now = bool(out)
            minute += 5
        for _ in range(quiet_minutes // 5 if episode < 2 else 24 * 12):
            out = tracker.update(_cycle(minute, at_risk=False, util=90.0))
            if open_now and not out and episode < 2:
                closed_early += 1
            open_now = bool(out)
            minute += 5
    return len(ids), closed_early


def test_a_critical_incident_is_not_resolved_by_an_hour_of_quiet() -> None:
    """A precursor that comes back after an hour: critical evidence stays one open incident
    (no "resolved", no second page); a warning closes and pages again, as before."""

    def tracker() -> IncidentTracker:
        return IncidentTracker(
            open_after=2,
            close_after=5,
            close_for=timedelta(minutes=25),
            close_for_critical=timedelta(hours=3),
        )

    assert _episodes(tracker(), "critical", 60) == (1, 0)
    assert _episodes(tracker(), "warning", 60) == (3, 2)
    # quiet longer than close_for_critical: resolved, and the next episode is a new incident
    assert _episodes(tracker(), "critical", 200) == (3, 2)
    # without the setting, critical incidents close after close_for like any other
    plain = IncidentTracker(open_after=2, close_after=5, close_for=timedelta(minutes=25))
    assert _episodes(plain, "critical", 60) == (3, 2)


def test_the_critical_hold_survives_a_failover() -> None:
    """The new leader knows the open incident was critical though it is warning-level now."""
    kw = {"close_for": timedelta(minutes=25), "close_for_critical": timedelta(hours=3)}
    t = IncidentTracker(open_after=1, close_after=5, **kw)  # type: ignore[arg-type]
    t.update(_cycle(0, at_risk=True, util=90.0))  # critical (0.99)
    gpus = (GpuScore("n1", "0", 0.95),)
    later = Incident("x", T0, "warning", 0.95, RootCause(KEY, "gpu"), gpus)
    t.update(Assessment(T0 + timedelta(minutes=5), gpus, (later,), _features(util=90.0)))
    moved = IncidentTracker(open_after=1, close_after=5, **kw)  # type: ignore[arg-type]
    moved.restore(t.open_incidents)
    moved.load_state(t.state())
    for minute in range(10, 5 + 180, 5):
        assert moved.update(_cycle(minute, at_risk=False, util=90.0)), minute
    assert moved.update(_cycle(5 + 180, at_risk=False, util=90.0)) == []


def test_close_for_critical_below_close_for_is_refused() -> None:
    with pytest.raises(ValueError, match=r"close_for_critical .* must be at least close_for"):
        IncidentTracker(close_for=timedelta(hours=1), close_for_critical=timedelta(minutes=5))


def test_a_failed_incident_is_not_superseded_by_a_broader_one() -> None:
    """A GPU failed (hardware XID, drained), then a component incident covering it opens: the
    GPU's incident stays open as failed (closing it would say "resolved" about a dead GPU) until
    the GPU is back in service; a narrower incident that has not failed is superseded at once."""
    t = IncidentTracker(open_after=1, close_after=2, repair_after=timedelta(minutes=30))
    t.update(_cycle(0, at_risk=True, signals=("hardware_xid",), util=90.0))
    assert set(t.failed) == {f"gpu:{KEY}"}
    at = T0 + timedelta(minutes=5)
    gpus = (GpuScore("n1", "0", 0.99), GpuScore("n2", "0", 0.99))
    pdu = Incident("p", at, "critical", 0.99, RootCause("pdu-a1", "pdu"), gpus)
    both = t.update(Assessment(at, gpus, (pdu,), features=_features(0.0)))
    assert sorted(i.dedup_key for i in both) == ["gpu:n1/0", "pdu:pdu-a1"]
    # back in service and quiet: the GPU's own repair closes it
    for minute in range(10, 45, 5):
        t.update(_cycle(minute, at_risk=False, util=80.0))
    assert f"gpu:{KEY}" not in {i.dedup_key for i in t.open_incidents}
    # without a failure the narrower incident is superseded at once
    s = IncidentTracker(open_after=1, close_after=5)
    s.update(_cycle(0, at_risk=True, util=90.0))
    assert [
        i.dedup_key for i in s.update(Assessment(at, gpus, (pdu,), features=_features(90.0)))
    ] == ["pdu:pdu-a1"]
