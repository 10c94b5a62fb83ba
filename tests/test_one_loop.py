"""One alert loop: run, scan, backtest and demo are the same Pipeline and decide the same.

Each entry point is driven on the same simulated data; the incidents they hold open at the same
cycle must be the same (root cause, GPUs, severity, score), because they are one implementation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analysis.types import Incident
from bot.config import Settings, load_settings
from bot.replay import Replay, cycle_times
from storage.simulator import FleetSimulator, FleetSpec, make_fault

START = datetime(2026, 11, 5, tzinfo=UTC)
SPEC = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
ONSET = START + timedelta(hours=9)
CYCLE = timedelta(minutes=5)


def _fleet() -> FleetSimulator:
    """A 16-GPU fleet with a fan fault on one node and an HBM fault on one GPU."""
    faults = [
        make_fault("hbm", "gpu-node-003/2", ONSET, spec=SPEC, precursor=timedelta(hours=3)),
        make_fault("fan", "gpu-node-001", ONSET, spec=SPEC, precursor=timedelta(hours=3)),
    ]
    return FleetSimulator(SPEC, start=START, duration=timedelta(hours=13), seed=6101, faults=faults)


def _settings(tmp_path: Path, sim: FleetSimulator, **extra: object) -> Settings:
    """The fleet's topology file, short fits so the test stays quick; everything else as shipped."""
    from storage.topology import dump_topology

    dump_topology(sim.topology, tmp_path / "topology.yaml")
    return load_settings(
        None,
        topology=tmp_path / "topology.yaml",
        fit_window_hours=6,
        scan_interval=int(CYCLE.total_seconds()),
        model_dir=tmp_path / "models",
        **extra,
    )


def _view(incidents: tuple[Incident, ...] | list[Incident]) -> set[tuple[object, ...]]:
    """What a user is told: root cause, GPUs, severity, score (ids depend on when a run began)."""
    return {
        (
            i.dedup_key,
            i.root_cause.kind,
            tuple(sorted(g.key for g in i.gpus)),
            i.severity,
            round(i.score, 9),
        )
        for i in incidents
    }


@pytest.mark.slow
def test_scan_at_t_equals_the_backtest_cycle_at_t(tmp_path: Path) -> None:
    from bot.commands.scan import run_scan
    from bot.wiring import backtest_pipelines, load_topology_of

    sim = _fleet()
    settings = _settings(tmp_path, sim)
    # after the HBM failure: a cold fit this deep in a precursor absorbs it (README, Known limits)
    at = ONSET + timedelta(hours=3, minutes=15)
    scan = run_scan(settings, at=at, detector="graph", source=sim, explain=False)
    # the backtest starts where the scan's warm-up starts (the first checkpoint of a risk held
    # for GPU_RISK_SUSTAINED_FOR): same fit, same streaks
    first = at - timedelta(seconds=settings.sustained_for)
    topology = load_topology_of(settings)
    pipelines = backtest_pipelines(settings, sim, topology, detectors=["graph"], explain=False)
    cycles = Replay(pipelines).run(cycle_times(first, at, CYCLE))["graph"]
    assert cycles[-1].at == at
    assert scan.incidents, "the faults should be warned by now"
    assert _view(scan.incidents) == _view(cycles[-1].incidents)
    assert {s.key: s.score for s in scan.scores} == {s.key: s.score for s in cycles[-1].scores}


@pytest.mark.slow
def test_the_running_bot_and_the_replay_open_the_same_incidents(tmp_path: Path) -> None:
    from bot.wiring import (
        REPLAY,
        build_pipeline,
        build_runtime,
        load_topology_of,
        memory_repository,
    )

    sim = _fleet()
    settings = _settings(tmp_path, sim, database_url=f"sqlite:///{tmp_path / 'state.db'}")
    times = cycle_times(
        ONSET + timedelta(minutes=30), ONSET + timedelta(hours=2, minutes=30), CYCLE
    )
    now = {"t": times[0]}
    runtime = build_runtime(settings, source=sim, clock=lambda: now["t"])
    bot_cycles = []
    for t in times:
        now["t"] = t
        outcome = runtime.run_cycle()
        assert outcome.ok, outcome.error
        bot_cycles.append(outcome.incidents)
    replayed = build_pipeline(
        settings,
        source=sim,
        topology=load_topology_of(settings),
        repository=memory_repository(),
        options=REPLAY,
    )
    cycles = Replay({"graph": replayed}, refit_every=None).run(times)["graph"]
    assert any(bot_cycles), "the faults should open incidents"
    for mine, theirs in zip(bot_cycles, cycles, strict=True):
        assert _view(mine) == _view(theirs.incidents), theirs.at
        # the explanation the bot would post is the one the backtest scores
        assert [i.explanation for i in mine] == [i.explanation for i in theirs.incidents]
    # the bot committed what it decided: every incident it holds open is in its store
    stored = {r.incident.dedup_key for r in runtime.repository.open_incidents()}
    assert stored == {i.dedup_key for i in bot_cycles[-1]}
    runtime.repository.close()


@pytest.mark.slow
def test_scan_reports_a_gpu_that_fell_off_the_bus_within_the_fit_window(tmp_path: Path) -> None:
    """Like the running bot, a one-shot scan remembers GPUs seen in the fit window."""
    from bot.commands.scan import run_scan

    fault = make_fault("pcie", "gpu-node-002/1", ONSET, spec=SPEC, precursor=timedelta(hours=1))
    sim = FleetSimulator(SPEC, start=START, duration=timedelta(hours=13), seed=6102, faults=[fault])
    assert fault.failure is not None
    at = fault.failure + timedelta(hours=2)  # gone for 2 h: not in the 30-min scan window
    result = run_scan(_settings(tmp_path, sim), at=at, detector="graph", source=sim, explain=False)
    mine = [i for i in result.incidents if "gpu-node-002/1" in {g.key for g in i.gpus}]
    assert mine and "series_vanished" in mine[0].signals
    assert result.gpus_scored == SPEC.n_gpus


def test_every_loop_gets_the_configured_hysteresis_and_the_rules_resolve_as_rules(
    tmp_path: Path,
) -> None:
    """GPU_RISK_HOLD_RISK reaches the tracker of the run/scan/backtest loop; the static rules
    (Prometheus ``for:``) keep resolving when their expression stops firing."""
    from bot.wiring import backtest_pipelines, load_topology_of

    sim = _fleet()
    settings = _settings(tmp_path, sim, hold_risk=0.6)
    topology = load_topology_of(settings)
    pipes = backtest_pipelines(
        settings, sim, topology, detectors=["graph", "static"], explain=False
    )
    assert (pipes["graph"].tracker.hold, pipes["graph"].tracker.idle_is_quiet) == (0.6, False)
    assert (pipes["static"].tracker.hold, pipes["static"].tracker.idle_is_quiet) == (None, True)
    off = backtest_pipelines(
        _settings(tmp_path, sim, hold_risk=0), sim, topology, detectors=["graph"], explain=False
    )
    assert off["graph"].tracker.hold is None
