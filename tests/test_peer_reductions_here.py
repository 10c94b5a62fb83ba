"""The peer metrics' reductions computed from their raw samples, the rest asked of the source.

A cycle reads the peer metrics raw (the comparisons at equal power need every sample); asking a
TSDB for their reductions too made it read those samples again. ``FeaturePlan.leaving_out``
is the plan the server gets, ``with_reductions_of`` completes its table from the raw frame.
Against Prometheus and VictoriaMetrics: ``tests/test_reductions_promql.py::
test_a_cycle_asks_the_server_only_for_what_it_does_not_read_raw``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from analysis.context import PEER_METRICS
from analysis.feature_plan import FeaturePlan
from analysis.features import DEFAULT_RECENT, DEFAULT_WINDOW
from analysis.reduce_frames import with_reductions_of
from storage.simulator import FleetSimulator, FleetSpec, make_fault

START = datetime(2026, 11, 18, 8, 0, tzinfo=UTC)
STEP = timedelta(minutes=1)
SPEC = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
PLAN = FeaturePlan(DEFAULT_WINDOW, DEFAULT_RECENT, STEP)


@pytest.fixture(scope="module")
def sim() -> FleetSimulator:
    """Three hours of a 16-GPU fleet, a GPU running hot before its thermal fault."""
    fault = make_fault(
        "thermal_interface",
        "gpu-node-003/2",
        START + timedelta(hours=1),
        spec=SPEC,
        precursor=timedelta(hours=2),
    )
    return FleetSimulator(
        SPEC, start=START, duration=timedelta(hours=3), step=STEP, seed=11, faults=[fault]
    )


def test_a_plan_leaving_metrics_out_has_every_other_reduction_in_order() -> None:
    server = PLAN.leaving_out(PEER_METRICS)
    here = PLAN.of_only(PEER_METRICS)
    assert not {r.metric for r in server.reductions} & set(PEER_METRICS)
    assert {r.metric for r in here.reductions} == set(PEER_METRICS)
    assert len(server.reductions) + len(here.reductions) == len(PLAN.reductions)
    names = [r.name for r in PLAN.reductions]
    assert [r.name for r in server.reductions] == [
        n for n in names if n.split(":")[0] not in PEER_METRICS
    ]
    assert server == PLAN.leaving_out(PEER_METRICS) and server != PLAN  # a key, as plans are
    assert hash(server) == hash(PLAN.leaving_out(list(PEER_METRICS)))


@pytest.mark.parametrize("minutes", [0, 17, 95])
def test_the_completed_table_is_the_whole_plan_s(sim: FleetSimulator, minutes: int) -> None:
    """The source's table for the plan without the peer metrics, completed from the raw
    window (with its lead-in), equals the source's table for the whole plan."""
    at = START + timedelta(hours=1, minutes=minutes)
    raw = sim.fetch(at - DEFAULT_WINDOW - timedelta(minutes=12), at, STEP, gpu_metrics=PEER_METRICS)
    got = with_reductions_of(sim.reduce(PLAN.leaving_out(PEER_METRICS), at), raw.gpu, PEER_METRICS)
    want = sim.reduce(PLAN, at)
    assert (got.at, got.window, got.recent, got.step) == (
        want.at,
        want.window,
        want.recent,
        want.step,
    )
    pd.testing.assert_frame_equal(got.table, want.table, check_exact=True)
    assert want.table[[f"{m}:mean:recent" for m in PEER_METRICS]].notna().all().all()
