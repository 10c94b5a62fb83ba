"""An incident's metric panels cost the incident, not the fleet (``Evidence.picture_frames``).

A reduced cycle's frames hold the whole fleet; the panels are drawn from the incident's nodes and
``analysis.plots.PEER_NODES`` others, so the bot asks the source for exactly those nodes (every
series) and draws the same picture as from the fleet's frames.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import pandas as pd
import pytest

from analysis.plots import (
    incident_nodes,
    panel_gpu_metrics,
    panels,
    picture_nodes,
    render_incident_metrics,
)
from analysis.types import Assessment, FleetFrames, GpuScore, Incident, Reductions, RootCause
from bot.evidence import Evidence
from storage.source import MetricsSourceError, NodeSample, restrict
from tests.fixtures.explain_frames import START, STEP, make_fleet

AT = START + 29 * STEP
WINDOW = timedelta(minutes=20)


class Spy:
    """A source over a hand-made fleet's frames that records what it was asked for."""

    def __init__(self, frames: FleetFrames, fail: bool = False) -> None:
        """Serve ``frames``; ``fail``: every fetch fails as an unreachable TSDB would."""
        self.frames = frames
        self.fail = fail
        self.asked: list[Collection[str] | None] = []
        self.metrics: list[Sequence[str] | None] = []

    def fetch(
        self,
        start: datetime,
        end: datetime,
        step: timedelta,
        *,
        gpu_metrics: Sequence[str] | None = None,
        nodes: Collection[str] | None = None,
    ) -> FleetFrames:
        """The frames in [start, end], restricted as ``MetricsSource.fetch`` says."""
        self.asked.append(nodes)
        self.metrics.append(gpu_metrics)
        if self.fail:
            raise MetricsSourceError("connection refused")
        f = self.frames

        def cut(df: pd.DataFrame) -> pd.DataFrame:
            return df[(df["ts"] >= start) & (df["ts"] <= end)].reset_index(drop=True)

        window = replace(f, gpu=cut(f.gpu), node=cut(f.node), component=cut(f.component))
        window = replace(window, up=cut(f.up), start=start, end=end)
        return restrict(window, gpu_metrics=gpu_metrics, nodes=nodes)


def _incident(node: str, n: int = 2) -> Incident:
    """A node incident over its ``n`` GPUs."""
    return Incident(
        id=node,
        at=AT,
        severity="critical",
        score=0.95,
        root_cause=RootCause(node, "node"),
        gpus=tuple(GpuScore(node, str(i), 0.95) for i in range(n)),
    )


@pytest.fixture(scope="module")
def fleet_frames() -> tuple[FleetFrames, object]:
    """A 100-node fleet (more than PEER_NODES), its cycle window as a reduced cycle has it."""
    fleet = make_fleet(30, racks=10, nodes_per_rack=10, gpus_per_node=2, seed=3)
    reduced = Reductions(AT, WINDOW, timedelta(minutes=5), STEP, pd.DataFrame())
    return replace(fleet.frames, reduced=reduced), fleet.graph


def test_a_reduced_cycles_pictures_read_the_incidents_nodes_and_their_peers_alone(
    fleet_frames: tuple[FleetFrames, object],
) -> None:
    """One fetch for all new incidents, of their nodes and PEER_NODES others chosen from the
    graph (every series of them); the panels drawn from it are the panels of the fleet's
    frames, pixel for pixel."""
    frames, graph = fleet_frames
    spy = Spy(frames)
    evidence = Evidence(WINDOW, STEP, explains=False, render=True)
    incidents = [_incident("gpu-node-057"), _incident("gpu-node-012")]
    scores = tuple(g for inc in incidents for g in inc.gpus)
    images = evidence.images(
        incidents, [], frames, graph, Assessment(AT, scores, ()), at=AT, source=spy
    )
    assert set(images) == {inc.dedup_key for inc in incidents}
    assert len(spy.asked) == 1 and isinstance(spy.asked[0], NodeSample)
    asked = set(spy.asked[0])
    assert {"gpu-node-057", "gpu-node-012"} <= asked
    assert len(asked) == 2 + panels.PEER_NODES
    # of the GPU metrics, only those a panel of these incidents could show
    wanted = {m for inc in incidents for m in panel_gpu_metrics(inc)}
    assert spy.metrics[0] is not None and set(spy.metrics[0]) == wanted
    assert wanted < set(frames.gpu["metric"])
    picture = evidence.picture_frames(frames, incidents[:1], graph, AT, spy)
    assert set(picture.gpu["node"]) == set(
        picture_nodes(sorted(set(frames.gpu["node"])), {"gpu-node-057"})
    )
    assert picture.gpu["ts"].min() >= pd.Timestamp(AT - WINDOW)
    assert not picture.node.empty and not picture.component.empty
    # the same nodes as the renderer keeps of the whole fleet: the same picture
    window = spy.fetch(AT - WINDOW, AT, STEP)
    assert render_incident_metrics(incidents[0], picture) == render_incident_metrics(
        incidents[0], window
    )
    kept = panels._with_peer_nodes(window.gpu, incident_nodes(incidents[0]))
    assert set(kept["node"]) == set(picture.gpu["node"])


def test_stored_incidents_and_unreduced_frames_read_nothing_more(
    fleet_frames: tuple[FleetFrames, object],
) -> None:
    """An incident already posted is not drawn again, and frames that hold every series (a
    replay without reductions) are drawn from as they are: no fetch."""
    frames, graph = fleet_frames
    spy = Spy(frames)
    evidence = Evidence(WINDOW, STEP, explains=False, render=True)
    whole = replace(frames, reduced=None)
    assert evidence.picture_frames(whole, [_incident("gpu-node-057")], graph, AT, spy) is whole
    assessment = Assessment(AT, (), ())
    assert evidence.images([], [], frames, graph, assessment, at=AT, source=spy) == {}
    assert spy.asked == []


def test_a_failed_picture_read_draws_from_the_cycles_frames(
    fleet_frames: tuple[FleetFrames, object], caplog: pytest.LogCaptureFixture
) -> None:
    """The source failing for the pictures costs nothing but the peers' other series: the panels
    are drawn from the cycle's frames, and the failure is logged."""
    frames, graph = fleet_frames
    spy = Spy(frames, fail=True)
    evidence = Evidence(WINDOW, STEP, explains=False, render=True)
    incident = _incident("gpu-node-057")
    with caplog.at_level(logging.WARNING):
        got = evidence.picture_frames(frames, [incident], graph, AT, spy)
    assert got is frames
    assert "unavailable for the pictures" in caplog.text and "connection refused" in caplog.text
    images = evidence.images(
        [incident], [], frames, graph, Assessment(AT, incident.gpus, ()), at=AT, source=spy
    )
    assert images[incident.dedup_key]["metrics"].startswith(b"\x89PNG")
