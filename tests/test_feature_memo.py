"""An ablation featurises each cycle once for all its scorers, and decides exactly as each alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analysis.feature_memo import FeatureMemo
from analysis.scoring import FeatureScorer
from bot.config import load_settings
from bot.replay import Replay, cycle_times
from storage.simulator import FleetSimulator, FleetSpec, make_fault

START = datetime(2026, 11, 5, tzinfo=UTC)
SPEC = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
CYCLE = timedelta(minutes=5)


def _decisions(cycles: list) -> list[tuple[object, ...]]:  # type: ignore[type-arg]
    """Every cycle's scores and incidents, as compared."""
    return [
        (
            c.at,
            tuple((s.key, s.score) for s in c.scores),
            tuple((i.dedup_key, i.severity, i.score) for i in c.incidents),
        )
        for c in cycles
    ]


@pytest.mark.slow
def test_shared_features_change_no_decision(tmp_path: Path) -> None:
    from bot.wiring import backtest_pipelines

    onset = START + timedelta(hours=7)
    faults = [make_fault("hbm", "gpu-node-003/2", onset, spec=SPEC, precursor=timedelta(hours=2))]
    sim = FleetSimulator(SPEC, start=START, duration=timedelta(hours=10), seed=77, faults=faults)
    settings = load_settings(None, fit_window_hours=6, scan_interval=300)
    times = cycle_times(onset, onset + timedelta(hours=2, minutes=30), CYCLE)
    names = ["graph", "graph-noctx", "iforest"]
    together = backtest_pipelines(settings, sim, sim.topology, detectors=names, explain=False)
    shared = Replay(together, refit_every=timedelta(hours=1)).run(times)
    memos = {id(p.scorer.memo) for p in together.values() if isinstance(p.scorer, FeatureScorer)}
    assert len(memos) == 1, "one memo shared by every feature-based scorer"
    memo = next(p.scorer.memo for p in together.values())
    assert isinstance(memo, FeatureMemo)
    # every cycle and fit featurised once, reused by the two other scorers
    assert memo.hits == 2 * memo.misses
    assert sum(1 for c in shared["graph"] if c.incidents) > 0, "the fault should be warned"
    for name in names:
        alone = backtest_pipelines(settings, sim, sim.topology, detectors=[name], explain=False)
        assert getattr(alone[name].scorer, "memo", None) is None
        own = Replay(alone, refit_every=timedelta(hours=1)).run(times)[name]
        assert _decisions(own) == _decisions(shared[name]), name
