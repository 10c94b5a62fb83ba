"""Risk scoring: calibration, failure-grade floors, persistence, hysteresis, and the claim on
simulated faults (the graph model warns before the failure and before the static rules; healthy
fleets stay quiet). Simulator seeds here are not the tuning seeds (see
tests/fixtures/scoring_scenarios.py)."""

from __future__ import annotations

import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis.calibration import TailCalibrator
from analysis.features import RAW_LEVEL_COLUMNS, slice_frames
from analysis.fit_window import Exclusion, NotEnoughHistoryError, fit_times
from analysis.scorer import Scorer
from analysis.scoring import (
    FleetMismatchError,
    GraphRiskModel,
    IForestBaseline,
    ModelFormatError,
    NotFittedError,
    fleet_fingerprint,
)
from analysis.tracker import IncidentTracker
from analysis.types import Assessment, Fault, FleetFrames, GpuScore, Incident, RootCause
from storage.model_store import ModelStore
from tests.fixtures.scoring_scenarios import (
    FAULT_SEED,
    HEALTHY_SEED,
    HEALTHY_SPEC,
    T0,
    TUNING_SEEDS,
    fault_run,
    healthy_run,
    simulate,
)

SMALL_DURATION = timedelta(hours=8)


@pytest.fixture(scope="module")
def small() -> tuple:
    """A small healthy fleet (2 racks x 4 nodes x 4 GPUs), 8 hours, and a model fitted on 6."""
    frames, graph = simulate(HEALTHY_SPEC, HEALTHY_SEED + 100, SMALL_DURATION, None)
    history = slice_frames(frames, T0 - timedelta(minutes=1), T0 + timedelta(hours=6))
    model = GraphRiskModel(fit_window=timedelta(hours=6), fit_cycles=24).fit(history, graph)
    return frames, graph, model


def test_test_seeds_are_not_tuning_seeds() -> None:
    assert FAULT_SEED not in TUNING_SEEDS and HEALTHY_SEED not in TUNING_SEEDS


def test_calibration_maps_history_to_a_fleet_independent_scale() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(0.0, 1.0, 20_000)
    cal = TailCalibrator(decades=6).fit(train)
    grid = np.linspace(-3, 12, 200)
    risk = cal.transform(grid)
    assert np.all((risk >= 0) & (risk <= 1))
    assert np.all(np.diff(risk) >= 0)
    # risk 0.5 = 1 in 1,000 healthy rows: about 0.1 % of fresh healthy rows reach it.
    fresh = cal.transform(rng.normal(0.0, 1.0, 200_000))
    assert 0.0003 < (fresh >= 0.5).mean() < 0.003
    # Shifting and scaling the raw scores (another detector, another fleet) changes nothing.
    cal2 = TailCalibrator(decades=6).fit(train * 7 + 3)
    assert np.allclose(cal2.transform(grid * 7 + 3), risk)
    assert cal.transform([50.0])[0] == 1.0
    with pytest.raises(ValueError, match="at least 10"):
        TailCalibrator().fit([1.0, 2.0])


def test_scorers_follow_the_protocol_and_refuse_to_assess_unfitted(small: tuple) -> None:
    frames, graph, _ = small
    assert isinstance(GraphRiskModel(), Scorer) and isinstance(IForestBaseline(), Scorer)
    with pytest.raises(NotFittedError, match="call fit"):
        GraphRiskModel().assess(frames, graph, T0 + timedelta(hours=7))
    with pytest.raises(ValueError, match="unknown detector"):
        GraphRiskModel(detector="lof")


def test_healthy_window_scores_are_calibrated_and_quiet(small: tuple) -> None:
    frames, graph, model = small
    a = model.assess(frames, graph, T0 + timedelta(hours=7))
    risk = np.array([s.score for s in a.scores])
    assert len(risk) == 32 and np.all((risk >= 0) & (risk <= 1))
    assert np.median(risk) < 0.5
    assert a.features is not None and "risk" in a.features and "z.temp_vs_node" in a.features


def test_failure_grade_signals_floor_the_risk(small: tuple) -> None:
    frames, graph, model = small
    at = T0 + timedelta(hours=7)
    gpu = frames.gpu.copy()
    late = gpu["ts"] > at - timedelta(minutes=5)
    dbe = (gpu["node"] == "gpu-node-002") & (gpu["gpu"] == "1")
    dbe &= gpu["metric"] == "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"
    gpu.loc[dbe & late, "value"] += 1.0
    gone = (gpu["node"] == "gpu-node-005") & (gpu["gpu"] == "3") & late
    frames = type(frames)(
        gpu=gpu[~gone].reset_index(drop=True),
        node=frames.node,
        component=frames.component,
        up=frames.up,
        start=frames.start,
        end=frames.end,
        step=frames.step,
    )
    a = model.assess(frames, graph, at)
    risk = {s.key: s.score for s in a.scores}
    assert risk["gpu-node-002/1"] == 1.0 and risk["gpu-node-005/3"] == 1.0
    by_gpu = {g.key: i for i in a.incidents for g in i.gpus}
    assert by_gpu["gpu-node-002/1"].severity == "critical"
    assert "ecc_dbe_increase" in by_gpu["gpu-node-002/1"].signals
    assert "series_vanished" in by_gpu["gpu-node-005/3"].signals
    # The plain baseline has no floor: its scores come from the forest alone.
    base = IForestBaseline(fit_window=timedelta(hours=6), fit_cycles=24)
    base.fit(slice_frames(frames, T0 - timedelta(minutes=1), T0 + timedelta(hours=6)), graph)
    assert set(base.columns_) <= set(RAW_LEVEL_COLUMNS)
    b = base.assess(frames, graph, at)
    assert all(i.root_cause.kind == "gpu" for i in b.incidents)


def test_persistence_refuses_another_fleet_and_keeps_scores(small: tuple, tmp_path: Path) -> None:
    frames, graph, model = small
    at = T0 + timedelta(hours=7)
    store = ModelStore(tmp_path)
    path = store.save(model)
    assert path.name == f"graph-{fleet_fingerprint(graph)}.joblib"
    loaded = store.load(GraphRiskModel, fleet_fingerprint(graph))
    assert loaded is not None and loaded.columns_ == model.columns_
    before = [s.score for s in model.assess(frames, graph, at).scores]
    after = [s.score for s in loaded.assess(frames, graph, at).scores]
    assert before == after
    # Another fleet: one GPU fewer, or the same GPUs behind another topology.
    other = graph.copy()
    other.remove_node("gpu-node-008/3")
    with pytest.raises(FleetMismatchError, match="refit"):
        GraphRiskModel.from_bytes(model.to_bytes(), fingerprint=fleet_fingerprint(other))
    with pytest.raises(FleetMismatchError):
        loaded.check_fleet(other)
    assert store.load(GraphRiskModel, fleet_fingerprint(other)) is None
    with pytest.raises(ModelFormatError, match="not 'iforest'"):
        IForestBaseline.from_bytes(model.to_bytes())
    with pytest.raises(ModelFormatError, match="not a gpu-risk model"):
        GraphRiskModel.from_bytes(b"garbage")


def test_exclusions_leave_known_incidents_out_of_training(small: tuple) -> None:
    frames, graph, _ = small
    history = slice_frames(frames, T0 - timedelta(minutes=1), T0 + timedelta(hours=6))
    kw = {"fit_window": timedelta(hours=6), "fit_cycles": 24}
    full = GraphRiskModel(**kw).fit(history, graph)  # type: ignore[arg-type]
    ex = Exclusion("gpu-node-001", T0, T0 + timedelta(hours=6))
    part = GraphRiskModel(exclude=[ex], **kw).fit(history, graph)  # type: ignore[arg-type]
    assert full.n_train_rows_ - part.n_train_rows_ == 4 * 24
    fault = Fault(
        "hbm-1", "hbm", "gpu-node-003/2", ("gpu-node-003/2",), T0 + timedelta(hours=3), None
    )
    one = GraphRiskModel(exclude=[Exclusion.from_fault(fault)], **kw)  # type: ignore[arg-type]
    cycles = fit_times(T0, T0 + timedelta(hours=6), one.window, 24)
    after_onset = sum(t >= fault.onset for t in cycles)
    assert 0 < after_onset < 24
    assert full.n_train_rows_ - one.fit(history, graph).n_train_rows_ == after_onset
    # every GPU behind incidents open since before the history: the refusal says so, with counts
    racks = [n for n, d in graph.nodes(data=True) if d.get("kind") == "rack"]
    everything = [Exclusion(r, T0 - timedelta(days=1)) for r in racks]
    with pytest.raises(NotEnoughHistoryError) as refused:
        GraphRiskModel(exclude=everything, **kw).fit(history, graph)  # type: ignore[arg-type]
    assert "0 healthy feature rows to fit on out of 768 GPU-cycles" in str(refused.value)
    assert "768 under open or known incidents" in str(refused.value)
    assert "every GPU is behind an open incident" in str(refused.value)


def test_a_model_stored_before_exclusions_moved_still_loads(
    small: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Models the running bot stored pickled their exclusions as ``analysis.scoring.Exclusion``."""
    frames, graph, _ = small
    history = slice_frames(frames, T0 - timedelta(minutes=1), T0 + timedelta(hours=6))
    ex = Exclusion("gpu-node-001", T0, T0 + timedelta(hours=6))
    model = GraphRiskModel(exclude=[ex], fit_window=timedelta(hours=6), fit_cycles=24)
    model.fit(history, graph)  # type: ignore[arg-type]
    monkeypatch.setattr(Exclusion, "__module__", "analysis.scoring")
    stored = model.to_bytes()
    monkeypatch.undo()
    pickled = zlib.decompress(stored)  # joblib's zlib-compressed pickle
    assert b"analysis.scoring" in pickled and b"analysis.fit_window" not in pickled
    loaded = GraphRiskModel.from_bytes(stored, fingerprint=fleet_fingerprint(graph))
    assert loaded.exclude == (ex,)


@pytest.mark.slow
def test_other_detectors_plug_in_behind_the_same_interface(small: tuple) -> None:
    frames, graph, _ = small
    history = slice_frames(frames, T0 - timedelta(minutes=1), T0 + timedelta(hours=6))
    model = GraphRiskModel(detector="ecod", fit_window=timedelta(hours=6), fit_cycles=12)
    a = model.fit(history, graph).assess(frames, graph, T0 + timedelta(hours=7))
    risk = np.array([s.score for s in a.scores])
    assert np.all((risk >= 0) & (risk <= 1)) and np.median(risk) < 0.5


def _assessment(at: datetime, keys: list[str], kind: str = "gpu", rc: str = "") -> Assessment:
    gpus = tuple(GpuScore(k.split("/")[0], k.split("/")[1], 0.95) for k in keys)
    if not keys:
        return Assessment(at=at, scores=(), incidents=())
    inc = Incident(
        id=f"cycle-{at:%H%M}",
        at=at,
        severity="warning",
        score=0.95,
        root_cause=RootCause(rc or keys[0], kind),  # type: ignore[arg-type]
        gpus=gpus,
    )
    return Assessment(at=at, scores=gpus, incidents=(inc,))


def test_tracker_opens_after_n_closes_after_m_and_keeps_the_id() -> None:
    h = IncidentTracker(open_after=2, close_after=3)
    t = [datetime(2026, 11, 22, 10, i, tzinfo=UTC) for i in range(12)]
    assert h.update(_assessment(t[0], ["n1/0"])) == []
    opened = h.update(_assessment(t[1], ["n1/0"]))
    assert len(opened) == 1
    first_id = opened[0].id
    # A blip down does not close it; the id stays the one of the first cycle of the streak.
    assert [i.id for i in h.update(_assessment(t[2], []))] == [first_id]
    assert [i.id for i in h.update(_assessment(t[3], ["n1/0"]))] == [first_id]
    for i in range(4, 6):
        assert h.update(_assessment(t[i], [])) != []
    assert h.update(_assessment(t[6], [])) == []
    # A single spike never opens anything.
    assert h.update(_assessment(t[7], ["n2/0"])) == []
    assert h.update(_assessment(t[8], [])) == []


def test_tracker_lets_a_broader_incident_supersede_narrower_ones() -> None:
    h = IncidentTracker(open_after=1, close_after=5)
    t = [datetime(2026, 11, 22, 10, i, tzinfo=UTC) for i in range(3)]
    assert len(h.update(_assessment(t[0], ["n1/0"]))) == 1
    both = h.update(_assessment(t[1], ["n1/0", "n1/1", "n2/0"], kind="pdu", rc="pdu-a1"))
    assert [i.root_cause.id for i in both] == ["pdu-a1"]


@pytest.mark.slow
def test_every_fault_kind_warned_before_failure_and_before_static_rules() -> None:
    run = fault_run()
    for fault in run.faults:
        lead = run.graph_outcomes[fault.id].lead_minutes(fault)
        static = run.static_outcomes[fault.id].lead_minutes(fault)
        assert lead is not None and lead > 0, f"{fault.kind}: no warning before the failure"
        if static is not None:
            assert lead > static, f"{fault.kind}: graph {lead} min, static {static} min"
    # Nothing fired on GPUs that no fault touched.
    assert run.unmatched == []


@pytest.mark.slow
def test_healthy_fleet_stays_quiet() -> None:
    run = healthy_run()
    per_1k = len(run.opened) / run.gpu_days * 1000
    print(f"false incidents: {len(run.opened)} in {run.gpu_days:.0f} GPU-days = {per_1k:.0f}/1k")
    # 16 GPU-days, every 10 minutes: at most one false incident (<= 62.5 per 1,000 GPU-days).
    assert len(run.opened) <= 1, [i.dedup_key for i in run.opened.values()]


def test_make_scorer_wires_the_models() -> None:
    from analysis.scorer import SCORERS
    from bot.config import Settings
    from bot.wiring import scorer_factory

    settings = Settings(threshold=0.8, window_minutes=20, fit_window_hours=12)

    def make_scorer(name: str, settings: Settings) -> object:
        """Build one scorer the way the composition root does."""
        return scorer_factory(settings, name)()

    graph_model = make_scorer("graph", settings)
    assert isinstance(graph_model, GraphRiskModel) and graph_model.detector == "iforest"
    assert graph_model.threshold == 0.8 and graph_model.window == timedelta(minutes=20)
    assert graph_model.fit_window == timedelta(hours=12)
    ecod = make_scorer("ecod", settings)
    assert isinstance(ecod, GraphRiskModel) and ecod.detector == "ecod"
    assert isinstance(make_scorer("iforest", settings), IForestBaseline)
    product = {"graph", "ecod", "copod", "hbos"}  # the graph model over each tabular detector
    baselines = {"iforest", "static", "graph-noctx", "guard"}  # what the ablation compares
    assert product | baselines == set(SCORERS)


def test_fit_needs_enough_history() -> None:
    frames, graph = simulate(HEALTHY_SPEC, HEALTHY_SEED + 200, timedelta(minutes=20), None)
    with pytest.raises(ValueError, match="history too short"):
        GraphRiskModel().fit(frames, graph)
    assert pd.Timestamp(frames.end) > pd.Timestamp(frames.start)


def test_guard_is_bonferroni_adjusted_and_a_counter_wiggle_is_not_a_page() -> None:
    from analysis.calibration import FeatureTails

    rng = np.random.default_rng(1)
    healthy = rng.normal(0.0, 1.0, (2000, 40))
    tails = FeatureTails().fit(healthy)
    assert tails.n_tested == 40
    wiggle = np.zeros((1, 40))
    wiggle[0, 7] = 4.0
    # A 4-sd move of one of 40 features: far from the 7 decades of risk 1.0.
    assert tails.score(wiggle)[0] / 7.0 < 0.5
    climb = np.zeros((1, 40))
    climb[0, 7] = 25.0
    assert tails.score(climb)[0] / 7.0 >= 1.0
    # Testing more features makes the same single deviation less surprising.
    more = FeatureTails().fit(rng.normal(0.0, 1.0, (2000, 400)))
    wide = np.zeros((1, 400))
    wide[0, 7] = 8.0
    narrow = np.zeros((1, 40))
    narrow[0, 7] = 8.0
    assert more.score(wide)[0] < tails.score(narrow)[0]


def test_the_guard_without_its_history_scores_the_same_bits() -> None:
    """``keep_sorted=False`` drops the fitted history when no value below a column's 95th
    percentile can clear the Bonferroni bar (more than 20 tested features): the scores are
    the same bits, whatever the rows (tails, ties, zeros, NaN, features that never moved)."""
    from analysis.calibration import IGNORE, FeatureTails

    rng = np.random.default_rng(5)
    healthy = rng.normal(0.0, 1.0, (3000, 42))
    healthy[:, 3] = 0.0  # never moved
    healthy[:, 4] = np.round(healthy[:, 4])  # ties at the percentile
    healthy[:, 5] = np.abs(rng.standard_cauchy(3000))  # a heavy tail
    directions = [0, 1, -1, 0, 0, 1, IGNORE] + [0] * 35
    rows = rng.normal(0.0, 2.0, (5000, 42)) * rng.choice([0.0, 1.0, 4.0], (5000, 1))
    rows[:50, 3] = 0.5  # the first move of a feature that never moved
    rows[50:60, 9] = np.nan
    rows[60:70] = np.quantile(np.abs(healthy), 0.95, axis=0)  # exactly at each percentile
    full = FeatureTails(directions).fit(healthy)
    compact = FeatureTails(directions, keep_sorted=False).fit(healthy)
    assert full.sorted_ is not None and compact.sorted_ is None
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(compact.score(rows), full.score(rows))
    assert (full.score(rows) > 0).sum() > 100  # the tails did page some rows
    with pytest.raises(ValueError, match="keep_sorted=True"):
        compact.neg_log_p(rows)
    # Three features: 5 % is far above the bar of 1/3, the history decides: it is kept.
    few = FeatureTails(keep_sorted=False).fit(healthy[:, :3])
    assert few.sorted_ is not None
    np.testing.assert_array_equal(
        few.score(rows[:, :3]), FeatureTails().fit(healthy[:, :3]).score(rows[:, :3])
    )


@pytest.mark.parametrize("n", [40, 599, 600, 4000])
def test_the_guard_fitted_column_by_column_learns_the_whole_matrix_bits(n: int) -> None:
    """The guard's fit takes each column alone (a whole-matrix temporary is 0.5 GB at 100,000
    GPUs): its tails are the bits numpy gives the whole matrix at once, on both sides of
    numpy's 600-row switch in ``nanmedian``, with NaN, ties, a feature that never moved and a
    column with no value above its percentile."""
    from analysis.calibration import FeatureTails

    rng = np.random.default_rng(n)
    z = rng.standard_t(3, (n, 7))
    z[rng.random((n, 7)) < 0.1] = np.nan
    z[:, 2] = 0.0  # never moved: nothing above its percentile
    z[:, 3] = np.round(z[:, 3])  # ties at the percentile
    z[:, 4] = np.nan  # never read
    guard = FeatureTails([1, -1, 0, 1, 0, 1, -1]).fit(z)
    a = guard._oriented(z)
    u = np.quantile(a, guard.tail_quantile, axis=0)
    exceed = np.where(a > u, a - u, np.nan)
    exceed[:, np.isnan(exceed).all(axis=0)] = 0.0
    with np.errstate(invalid="ignore"):
        beta = np.nanmedian(exceed, axis=0) / np.log(2)
    floor = np.where((a > u).sum(axis=0) >= 20, guard.min_beta, guard.min_beta_unobserved)
    beta = np.clip(np.nan_to_num(beta), floor, guard.max_beta)
    p_u = np.maximum((a > u).mean(axis=0), guard.min_p_tail)
    for learnt, whole in ((guard.u_, u), (guard.beta_, beta), (guard.p_u_, p_u)):
        assert learnt.dtype == whole.dtype == np.float64
        np.testing.assert_array_equal(learnt.view(np.int64), whole.view(np.int64))


def test_the_guard_reads_each_feature_in_its_harmful_direction() -> None:
    from analysis.calibration import IGNORE, FeatureTails, risk_direction

    expected = {
        "temp_vs_node": 1,
        "node_temp_vs_fleet": 1,  # a node running cold is idle or drained
        "rack_temp_vs_fleet": 1,
        "fan_spread": -1,
        "volts_dip": -1,
        "ecc_sbe_sustained": 1,
        "temp_vs_node_slope": 1,
        "power_vs_node": 0,
        "thermal_viol_rate": IGNORE,
        "temp_at_power_slope": IGNORE,  # a node's heat soak after a job: left to the forest
    }
    assert {c: risk_direction(c) for c in expected} == expected
    rng = np.random.default_rng(2)
    tails = FeatureTails([risk_direction(c) for c in expected]).fit(
        rng.normal(0.0, 1.0, (2000, len(expected)))
    )
    cold, hot = np.zeros((2, len(expected)))
    cold[1], hot[1] = -30.0, 30.0
    assert tails.score(cold[None])[0] == 0.0 and tails.score(hot[None])[0] > 7.0


def test_temperature_against_the_rack_or_fleet_is_trusted_to_a_degree() -> None:
    """At the lagged power a quiet fleet's healthy spread of these fell to 0.4 °C, and a fan
    profile change of a few degrees read +10 sd (tests/test_benign_events.py)."""
    from analysis.calibration import scale_floor

    for column in ("node_temp_vs_fleet", "rack_temp_vs_fleet", "temp_vs_fleet", "temp_vs_rack"):
        assert scale_floor(column, 0.0) == 1.0
    # a GPU against its own node's GPUs keeps the finer floor (a thermal-interface precursor)
    assert scale_floor("temp_vs_node", 0.0) == scale_floor("temp_at_power", 40.0) == 0.3
    assert scale_floor("inlet_vs_fleet", 0.0) == 0.3


def _slow_fan_on_node_3(small: tuple) -> tuple[FleetFrames, Any, FleetFrames]:
    """The small fleet with gpu-node-003's FAN2 always 15 % slower (healthy), and its 6-hour
    fit history."""
    frames, graph, _ = small
    node = frames.node
    slow = (node["node"] == "gpu-node-003") & (node["sensor"] == "FAN2")
    frames = replace(
        frames, node=node.assign(value=node["value"].where(~slow, node["value"] * 0.85))
    )
    history = slice_frames(frames, T0 - timedelta(minutes=1), T0 + timedelta(hours=6))
    return frames, graph, history


def test_a_gpu_without_fit_rows_of_its_own_is_judged_against_its_nodes_usual_self(
    small: tuple,
) -> None:
    """A node with a steady quirk (one fan always 15 % slower, healthy): a GPU of it that was
    under an incident the whole fit window has no baseline of its own; its node's GPUs' usual
    self stands in, so the quirk is no deviation (the fleet's baseline made it one)."""
    frames, graph, history = _slow_fan_on_node_3(small)
    ex = Exclusion("gpu-node-003/2", T0 - timedelta(days=1))
    model = GraphRiskModel(exclude=[ex], fit_window=timedelta(hours=6), fit_cycles=24)
    model.fit(history, graph)
    assert "gpu-node-003/2" not in model.baseline_.index
    table = model.assess(frames, graph, T0 + timedelta(hours=7)).features
    z = table.loc[[f"gpu-node-003/{g}" for g in range(4)], "z.fan_spread"]
    assert table.loc["gpu-node-003/0", "fan_spread"] < -0.1  # the quirk is there
    assert z.abs().max() < 2.0, z.to_dict()
    # the fleet's usual self would have read it as a failing fan
    model.node_baseline_ = model.node_baseline_.iloc[0:0]
    lone = model.assess(frames, graph, T0 + timedelta(hours=7)).features
    assert lone.loc["gpu-node-003/2", "z.fan_spread"] < -4.0


def test_a_node_under_an_incident_all_fit_window_keeps_the_usual_self_the_last_fit_learnt(
    small: tuple,
) -> None:
    """A node with a steady quirk (one fan always 15 % slower, healthy) whose every GPU was under
    an open incident the whole fit window: neither its GPUs nor its node have fit rows. Refitted
    with the previous model's usual selves (``usual_before``, as the pipeline does), the quirk is
    still no deviation; without them, the fleet's usual self makes it a failing fan."""
    frames, graph, history = _slow_fan_on_node_3(small)
    kw = {"fit_window": timedelta(hours=6), "fit_cycles": 24}
    before = GraphRiskModel(**kw).fit(history, graph)  # type: ignore[arg-type]
    assert before.own_.loc["gpu-node-003/2", "fan_spread"] < -0.1
    ex = Exclusion("gpu-node-003", T0 - timedelta(days=1))
    gpus = [f"gpu-node-003/{g}" for g in range(4)]
    at = T0 + timedelta(hours=7)

    lone = GraphRiskModel(exclude=[ex], **kw).fit(history, graph)  # type: ignore[arg-type]
    assert lone.own_.index.intersection(gpus).empty
    assert lone.assess(frames, graph, at).features.loc[gpus, "z.fan_spread"].max() < -4.0

    kept = GraphRiskModel(exclude=[ex], **kw)  # type: ignore[arg-type]
    kept.usual_before = before.own_
    kept.fit(history, graph)
    z = kept.assess(frames, graph, at).features.loc[gpus, "z.fan_spread"]
    assert z.abs().max() < 2.0, z.to_dict()
    pd.testing.assert_frame_equal(kept.own_.loc[gpus], before.own_.loc[gpus])
    # what is stored is the model's own usual selves, not the previous model's too
    stored = GraphRiskModel.from_bytes(kept.to_bytes(), fingerprint=fleet_fingerprint(graph))
    assert stored.usual_before is None and stored.own_.shape == kept.own_.shape
