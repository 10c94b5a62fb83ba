"""Cordoned Kubernetes nodes count as under maintenance (issue 14 part 8).

The Prometheus reader reads kube-state-metrics' ``kube_node_spec_unschedulable`` from a real
Prometheus and VictoriaMetrics; the simulator reports the nodes under a drain; the pipeline
records a cordoned node's incident without posting it, and posts it once the node is uncordoned.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.metrics import PrometheusSource
from storage.replay import CachedSource
from storage.source import MetricsSource, MetricsSourceError
from tests.fixtures.prometheus import (
    backfill,
    import_into_victoria,
    start_prometheus,
    start_victoria,
    wait_prometheus,
)

T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
CORDONED = (T0 + timedelta(minutes=20), T0 + timedelta(minutes=40))


def _kube_state_metrics(path: Path) -> Path:
    """An hour of kube-state-metrics at one-minute steps in two clusters.

    gpu-node-002 (cluster a) is cordoned from minute 20 to minute 40; gpu-node-009 (cluster b)
    all the time; gpu-node-001 never.
    """
    lines = ["# TYPE kube_node_spec_unschedulable gauge"]
    for node, cluster in (("gpu-node-001", "a"), ("gpu-node-002", "a"), ("gpu-node-009", "b")):
        for minute in range(61):
            at = T0 + timedelta(minutes=minute)
            during = CORDONED[0] <= at < CORDONED[1]
            cordoned = node == "gpu-node-009" or (node == "gpu-node-002" and during)
            lines.append(
                f'kube_node_spec_unschedulable{{node="{node}",cluster="{cluster}"}} '
                f"{int(cordoned)} {at.timestamp():.0f}"
            )
    lines.append("# EOF")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@contextlib.contextmanager
def _serve(kind: str, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus or VictoriaMetrics holding the series; yields its URL."""
    data = _kube_state_metrics(tmp_path / "ksm.om")
    if kind == "prometheus":
        backfill(data, tmp_path / "tsdb")
        server = wait_prometheus(start_prometheus(tmp_path / "tsdb"))
    else:
        server = start_victoria(tmp_path / "vmdata")
        import_into_victoria(server, data)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("prometheus", marks=pytest.mark.prometheus),
        pytest.param("victoriametrics", marks=pytest.mark.victoriametrics),
    ],
)
def test_the_reader_returns_the_cordoned_nodes_at_a_time(kind: str, tmp_path: Path) -> None:
    with _serve(kind, tmp_path) as url:
        src = PrometheusSource(url, retries=0)
        assert isinstance(src, MetricsSource)
        assert src.cordoned(T0 + timedelta(minutes=10)) == {"gpu-node-009"}
        assert src.cordoned(T0 + timedelta(minutes=30)) == {"gpu-node-002", "gpu-node-009"}
        assert src.cordoned(T0 + timedelta(minutes=50)) == {"gpu-node-009"}
        # the series selector applies: one cluster of a shared Prometheus
        mine = PrometheusSource(url, retries=0, series_selector='{cluster="a"}')
        assert mine.cordoned(T0 + timedelta(minutes=10)) == frozenset()
        assert mine.cordoned(T0 + timedelta(minutes=30)) == {"gpu-node-002"}
        # no such series (no kube-state-metrics here): nobody is cordoned
        other = PrometheusSource(url, retries=0, series_selector='{cluster="zzz"}')
        assert other.cordoned(T0 + timedelta(minutes=30)) == frozenset()
        # and the cached replay source asks the source it wraps
        assert CachedSource(src).cordoned(T0 + timedelta(minutes=30)) == {
            "gpu-node-002",
            "gpu-node-009",
        }


def test_an_unreachable_source_is_one_clear_error() -> None:
    src = PrometheusSource("http://127.0.0.1:9", retries=0, timeout=2)
    with pytest.raises(MetricsSourceError, match="cannot reach Prometheus"):
        src.cordoned(T0)


def test_the_simulator_reports_nodes_under_a_drain_as_cordoned() -> None:
    from storage.simulator.scenario import draw_scenario

    scenario = draw_scenario(1, max_gpus=32)
    sim = scenario.simulator()
    assert isinstance(sim, MetricsSource)
    drains = [e for e in scenario.benign if e.kind == "drain_reboot"]
    assert drains, "seed 1 draws a drain_reboot"
    drain = drains[0]
    middle = drain.start + (drain.end - drain.start) / 2
    assert sim.cordoned(drain.start - timedelta(minutes=1)) == frozenset()
    assert sim.cordoned(drain.start) == sim.cordoned(middle) == {drain.target}
    assert sim.cordoned(drain.end) == frozenset()
    assert CachedSource(sim).cordoned(middle) == {drain.target}
    # other benign events do not cordon anything
    others = [e for e in scenario.benign if e.kind != "drain_reboot"]
    for e in others:
        if not any(d.start <= e.start < d.end for d in drains):
            assert sim.cordoned(e.start) == frozenset()


@pytest.mark.slow
def test_a_cordoned_nodes_incident_is_recorded_not_posted(tmp_path: Path) -> None:
    from bot.config import load_settings
    from bot.replay import Replay, cycle_times
    from bot.wiring import REPLAY, build_pipeline, memory_repository
    from storage.simulator import FleetSimulator, FleetSpec, make_fault

    spec = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
    start = datetime(2026, 11, 5, tzinfo=UTC)
    onset = start + timedelta(hours=9)
    uncordoned = onset + timedelta(hours=2)
    fault = make_fault("hbm", "gpu-node-003/2", onset, spec=spec, precursor=timedelta(hours=3))

    class Cordoning(FleetSimulator):
        """The simulated fleet with gpu-node-003 cordoned until ``uncordoned``."""

        reads = 0

        def cordoned(self, at: datetime) -> frozenset[str]:
            """gpu-node-003 while cordoned; everything else from the simulator (no drains)."""
            Cordoning.reads += 1
            extra = {"gpu-node-003"} if at < uncordoned else set()
            return super().cordoned(at) | extra

    sim = Cordoning(spec, start=start, duration=timedelta(hours=13), seed=6101, faults=[fault])
    settings = load_settings(None, fit_window_hours=6, model_dir=tmp_path / "models")
    repo = memory_repository()
    pipeline = build_pipeline(
        settings, source=sim, topology=sim.topology, repository=repo, options=REPLAY
    )
    driver = Replay({"graph": pipeline}, refit_every=None)
    inside = cycle_times(onset, uncordoned - timedelta(minutes=5), timedelta(minutes=5))
    driver.run(inside)
    assert Cordoning.reads >= len(inside)  # read once per cycle
    recorded = [
        r for r in repo.open_incidents() if r.incident.root_cause.id.startswith("gpu-node-003")
    ]
    assert recorded, "the fault is recorded while its node is cordoned"
    assert not [o for o in repo.outbox() if o.kind == "post"], "nothing is paged while cordoned"
    after = cycle_times(uncordoned, uncordoned + timedelta(minutes=30), timedelta(minutes=5))
    driver.run(after)
    posts = [o for o in repo.outbox() if o.kind == "post"]
    assert posts and posts[0].payload["incident"]["root_cause"]["id"].startswith("gpu-node-003")
    repo.close()


def test_a_failed_cordon_read_does_not_fail_the_cycle(tmp_path: Path) -> None:
    from analysis.maintenance import MaintenanceWindow
    from analysis.scoring import GraphRiskModel
    from bot.pipeline import Pipeline
    from storage.repository import Repository
    from storage.simulator import FleetSimulator, FleetSpec

    class Broken(FleetSimulator):
        """A source whose cordon read fails."""

        def cordoned(self, at: datetime) -> frozenset[str]:
            """Always fails."""
            raise MetricsSourceError("kube-state-metrics: 503")

    spec = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
    sim = Broken(spec, start=T0, duration=timedelta(hours=8), seed=3, healthy=True)
    repo = Repository.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    pipeline = Pipeline(
        source=sim,
        topology=sim.topology,
        repository=repo,
        make_scorer=lambda: GraphRiskModel(random_state=0),
        fit_window=timedelta(hours=6),
        render=False,
        maintenance=[MaintenanceWindow("rack-a1", timedelta(hours=1), start=T0)],
    )
    at = T0 + timedelta(hours=7, minutes=30)
    repo.add_maintenance(
        MaintenanceWindow("gpu-node-002", timedelta(hours=1), start=at - timedelta(minutes=5)),
        "U1",
        at,
    )
    assert pipeline.maintenance_targets(at) == ["gpu-node-002"]  # stored; settings' one is over
    assert pipeline.run_cycle(at).ok
    repo.close()
