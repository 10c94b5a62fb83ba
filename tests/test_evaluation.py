"""The evaluation arithmetic on hand-made cases: backtest scoring, F1 protocols, Hit@P%."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from analysis.attribution import RobustZAttributor
from analysis.detectors import DETECTORS, make_detector
from analysis.evaluation import (
    EXPECTED_FACTORS,
    BenignKindScore,
    EvaluationSettings,
    IncidentRecord,
    InterpretationSegment,
    bootstrap_ratio,
    compare_detectors,
    component_ids,
    evaluate_series,
    event_metrics,
    factor_matches,
    fault_level,
    gpu_days_of,
    hit_at_p,
    mean_table,
    parse_interpretation,
    point_adjust,
    point_adjusted_metrics,
    point_metrics,
    quantile_threshold,
    roc_auc,
    score_detector,
    segments,
    subsample_rows,
)
from analysis.evaluation.bootstrap import bootstrap_median
from analysis.evaluation.matrix import RATES, ScenarioResult
from analysis.evaluation.records import BacktestReport
from analysis.types import BenignEvent, Component, Fault, Rack, Topology

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    """Return T0 plus some hours."""
    return T0 + timedelta(hours=hours)


def inc(
    iid: str,
    hours: float,
    gpus: tuple[str, ...] = (),
    *,
    root: str | None = None,
    kind: str = "gpu",
    factors: tuple[str, ...] = (),
) -> IncidentRecord:
    """Build an incident record opened at T0 + hours."""
    return IncidentRecord(
        id=iid,
        opened_at=at(hours),
        root_cause_id=root if root is not None else (gpus[0] if gpus else ""),
        root_cause_kind=kind,
        gpus=gpus,
        factors=factors,
    )


ISSUE7_CELL = (
    "warned",
    "warned_at",
    "lead_minutes",
    "incident",
    "root_cause_correct",
    "top1",
    "top3",
)

FAN = Fault("f-fan", "fan", "n1/0", ("n1/0",), onset=at(10), failure=at(14))
LATE = Fault("f-late", "hbm", "n1/1", ("n1/1",), onset=at(10), failure=at(14))
PDU = Fault("f-pdu", "pdu", "pdu-a1", ("n2/0", "n2/1"), onset=at(20), failure=at(26))
OPEN = Fault("f-open", "nvlink", "n3/0", ("n3/0",), onset=at(30), failure=None)


# ---------------------------------------------------------------- backtest arithmetic


def test_warning_two_hours_before_failure_is_120_minutes_lead() -> None:
    score = score_detector([FAN], [inc("i1", 12, ("n1/0",))], gpu_days=16)
    (outcome,) = score.outcomes
    assert outcome.warned and outcome.warned_at == at(12)
    assert outcome.lead_minutes == pytest.approx(120.0)
    assert score.median_lead_minutes == pytest.approx(120.0)
    assert score.recall == 1.0 and score.precision == 1.0


def test_warning_after_failure_is_missed_but_not_false() -> None:
    # 30 min after the failure: late (missed) but within the 1 h grace, so not a false incident.
    score = score_detector([LATE], [inc("i1", 14.5, ("n1/1",))], gpu_days=16)
    assert not score.outcomes[0].warned
    assert score.outcomes[0].lead_minutes is None
    assert score.recall == 0.0
    assert score.n_false_incidents == 0 and score.precision == 1.0
    # At the failure instant exactly: still missed (window is [onset - slack, failure)).
    exact = score_detector([LATE], [inc("i2", 14, ("n1/1",))], gpu_days=16)
    assert not exact.outcomes[0].warned
    # Long after the grace: missed AND false.
    later = score_detector([LATE], [inc("i3", 16, ("n1/1",))], gpu_days=16)
    assert later.n_false_incidents == 1 and later.precision == 0.0


def test_incident_on_healthy_gpu_is_false_and_counted_per_1k_gpu_days() -> None:
    log = [inc("ok", 12, ("n1/0",)), inc("bad", 12, ("n9/7",))]
    score = score_detector([FAN], log, gpu_days=gpu_days_of(16, T0, at(48)))
    assert score.n_false_incidents == 1
    assert score.precision == 0.5
    # 1 false incident over 16 GPUs x 2 days = 1 / 32 GPU-days = 31.25 per 1,000 GPU-days.
    assert score.false_incidents_per_1k_gpu_days == pytest.approx(31.25)


def test_slack_window_and_first_warning_counts() -> None:
    slack = timedelta(minutes=30)
    # opened exactly at onset - slack: counts; the earliest of two warnings gives the lead.
    log = [inc("b", 13, ("n1/0",)), inc("a", 9.5, ("n1/0",))]
    score = score_detector([FAN], log, gpu_days=1, slack=slack)
    assert score.outcomes[0].incident_id == "a"
    assert score.outcomes[0].lead_minutes == pytest.approx(270.0)
    # one minute earlier than onset - slack: neither a warning nor a true incident.
    early = score_detector([FAN], [inc("e", 9.5 - 1 / 60, ("n1/0",))], gpu_days=1, slack=slack)
    assert not early.outcomes[0].warned and early.n_false_incidents == 1


def test_fault_without_failure_is_warned_after_onset_with_no_lead() -> None:
    score = score_detector([OPEN], [inc("i", 31, ("n3/0",))], gpu_days=1)
    assert score.outcomes[0].warned and score.outcomes[0].lead_minutes is None
    assert score.recall == 1.0 and score.median_lead_minutes is None
    assert score.lead_minutes == ()


def test_root_cause_accuracy_on_shared_component_faults() -> None:
    right = inc("r", 22, ("n2/0", "n2/1"), root="pdu-a1", kind="pdu")
    wrong = inc("w", 22, ("n2/0",), root="n2/0", kind="gpu")
    assert score_detector([PDU], [right], gpu_days=1).root_cause_accuracy == 1.0
    assert score_detector([PDU], [wrong], gpu_days=1).root_cause_accuracy == 0.0
    # An incident naming the component with no GPU listed still touches the fault.
    bare = inc("b", 22, (), root="pdu-a1", kind="pdu")
    assert score_detector([PDU], [bare], gpu_days=1).outcomes[0].warned
    # Non-shared faults are outside the denominator.
    only_gpu = score_detector([FAN], [inc("i", 12, ("n1/0",))], gpu_days=1)
    assert only_gpu.root_cause_accuracy is None and only_gpu.n_shared_faults == 0
    # A target declared shared through shared_targets counts even with an unknown kind.
    custom = Fault("f-x", "mystery", "cdu-9", ("n2/0",), onset=at(20), failure=at(26))
    s = score_detector([custom], [wrong], gpu_days=1, shared_targets={"cdu-9"})
    assert s.n_shared_faults == 1 and s.root_cause_accuracy == 0.0


def test_explanation_top1_and_top3() -> None:
    factors = ("DCGM_FI_DEV_GPU_TEMP", "ipmi_fan_speed_rpm", "DCGM_FI_DEV_POWER_USAGE")
    score = score_detector([FAN], [inc("i", 12, ("n1/0",), factors=factors)], gpu_days=1)
    assert score.explanation_top1 == 0.0 and score.explanation_top3 == 1.0
    # what the warning blamed is kept, right or wrong, for whoever reads why it missed
    (outcome,) = score.outcomes
    assert outcome.as_dict()["factors_strict"] == list(factors)
    first = score_detector([FAN], [inc("i", 12, ("n1/0",), factors=factors[1:])], gpu_days=1)
    assert first.explanation_top1 == 1.0
    # a warning without factors is wrong when the detector explains other incidents ...
    other = Fault("f-2", "hbm", "n1/1", ("n1/1",), onset=at(10), failure=at(14))
    log = [inc("i", 12, ("n1/0",), factors=()), inc("j", 12, ("n1/1",), factors=("ECC_DBE",))]
    mixed = score_detector([FAN, other], log, gpu_days=1)
    assert mixed.explanation_top1 == 0.5 and mixed.n_explained_faults == 2
    # ... and undefined for a detector that never explains anything (e.g. static rules)
    none = score_detector([FAN], [inc("i", 12, ("n1/0",), factors=())], gpu_days=1)
    assert none.explanation_top1 is None and none.explanation_top3 is None


def test_expected_factor_mapping_covers_simulator_kinds() -> None:
    for kind in ("fan", "thermal_interface", "hbm", "nvlink", "pcie", "pdu", "cooling", "switch"):
        assert EXPECTED_FACTORS[kind], kind
    assert factor_matches("hbm", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", EXPECTED_FACTORS)
    assert factor_matches(
        "nvlink", "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", EXPECTED_FACTORS
    )
    assert factor_matches("pcie", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER", EXPECTED_FACTORS)
    assert factor_matches("cooling", "Inlet Temp", EXPECTED_FACTORS)
    assert not factor_matches("fan", "DCGM_FI_DEV_GPU_TEMP", EXPECTED_FACTORS)
    assert not factor_matches("unknown-kind", "fan", EXPECTED_FACTORS)


def test_compare_detectors_json_shape() -> None:
    logs = {
        "graph": [inc("g1", 12, ("n1/0",)), inc("g2", 22, ("n2/0",), root="pdu-a1", kind="pdu")],
        "static": [inc("s1", 13.5, ("n1/0",)), inc("s2", 30, ("n7/0",))],
    }
    report = compare_detectors([FAN, PDU], logs, gpu_days=32.0)
    data = report.as_dict()
    assert set(data["detectors"]) == {"graph", "static"}
    g, s = data["detectors"]["graph"], data["detectors"]["static"]
    assert g["recall"] == 1.0 and s["recall"] == 0.5
    assert g["median_lead_minutes"] == pytest.approx((120 + 240) / 2)
    assert s["median_lead_minutes"] == pytest.approx(30.0)
    assert g["false_incidents_per_1k_gpu_days"] == 0.0
    assert s["false_incidents_per_1k_gpu_days"] == pytest.approx(1 / 32 * 1000, abs=1e-3)
    assert g["root_cause_accuracy"] == 1.0 and s["root_cause_accuracy"] is None
    rows = {r["id"]: r for r in data["faults"]}
    assert rows["f-fan"]["graph"]["lead_minutes"] == 120.0
    assert rows["f-fan"]["graph"]["warned_at"] == "2026-11-01T12:00:00Z"
    issue7 = {k: rows["f-pdu"]["static"][k] for k in ISSUE7_CELL}
    assert issue7 == {
        "warned": False,
        "warned_at": None,
        "lead_minutes": None,
        "incident": None,
        "root_cause_correct": None,
        "top1": None,
        "top3": None,
    }


def test_empty_log_and_bad_gpu_days() -> None:
    score = score_detector([FAN], [], gpu_days=10)
    assert score.recall == 0.0 and score.precision is None
    assert score.false_incidents_per_1k_gpu_days == 0.0
    assert score_detector([FAN], [], gpu_days=0).false_incidents_per_1k_gpu_days is None
    with pytest.raises(ValueError, match="gpu_days"):
        score_detector([FAN], [], gpu_days=-1)
    assert gpu_days_of(8, at(0), at(36)) == pytest.approx(12.0)


# ---------------------------------------------------------------- labelled-series protocols

Y = np.array([0, 0, 1, 1, 1, 0, 0, 1, 1, 0])
P = np.array([0, 1, 0, 1, 0, 0, 0, 0, 0, 1])


def test_segments_are_half_open_runs() -> None:
    assert segments(Y) == ((2, 5), (7, 9))
    assert segments([1, 1, 0, 1]) == ((0, 2), (3, 4))
    assert segments([]) == ()
    assert segments([0, 0]) == ()


def test_point_wise_f1_by_hand() -> None:
    # tp = 1 (row 3), fp = 2 (rows 1, 9), fn = 4 (rows 2, 4, 7, 8)
    m = point_metrics(Y, P)
    assert m.precision == pytest.approx(1 / 3)
    assert m.recall == pytest.approx(1 / 5)
    assert m.f1 == pytest.approx(0.25)


def test_point_adjust_by_hand() -> None:
    # Segment [2, 5) has a hit at row 3 -> rows 2..4 all count; [7, 9) has none -> unchanged.
    assert point_adjust(Y, P).tolist() == [0, 1, 1, 1, 1, 0, 0, 0, 0, 1]
    m = point_adjusted_metrics(Y, P)  # tp 3, fp 2, fn 2
    assert (m.precision, m.recall, m.f1) == pytest.approx((0.6, 0.6, 0.6))
    assert point_adjusted_metrics(Y, P).f1 > point_metrics(Y, P).f1


def test_event_f1_by_hand() -> None:
    # 1 of 2 true segments hit; predicted runs [1,2), [3,4), [9,10): only [3,4) overlaps.
    m = event_metrics(Y, P)
    assert m.recall == pytest.approx(0.5)
    assert m.precision == pytest.approx(1 / 3)
    assert m.f1 == pytest.approx(0.4)
    # one long predicted run covering both segments: 1 predicted event, correct; recall 1.
    long = event_metrics(Y, [0, 0, 1, 1, 1, 1, 1, 1, 1, 0])
    assert (long.precision, long.recall, long.f1) == (1.0, 1.0, 1.0)
    assert event_metrics(Y, np.zeros(10)).f1 == 0.0


def test_protocols_reject_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="equal length"):
        point_metrics([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="equal length"):
        event_metrics([0, 1], [0])


def test_roc_auc_and_threshold_from_training_scores() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert math.isnan(roc_auc([0, 0, 0], [0.1, 0.2, 0.3]))
    assert quantile_threshold(np.arange(100), 0.99) == pytest.approx(98.01)
    with pytest.raises(ValueError, match="quantile"):
        quantile_threshold([1.0, 2.0], 1.0)
    with pytest.raises(ValueError, match="no training scores"):
        quantile_threshold([], 0.9)


def test_hit_at_p_by_hand() -> None:
    rankings = [(3, 1, 2, 5, 4), (4, 1, 2, 3, 5)]
    truths = [{1, 2}, {4}]
    # segment 1: top-2 {3,1} -> 1/2; top-floor(3) {3,1,2} -> 1. segment 2: top-1 {4} -> 1 both.
    assert hit_at_p(rankings, truths, 100) == pytest.approx(0.75)
    assert hit_at_p(rankings, truths, 150) == pytest.approx(1.0)
    # |D| = 3 -> Hit@150 uses floor(4.5) = 4 dims.
    assert hit_at_p([(9, 8, 7, 1, 2, 3)], [{1, 2, 3}], 150) == pytest.approx(1 / 3)
    assert math.isnan(hit_at_p([], [], 100))
    with pytest.raises(ValueError, match="rankings"):
        hit_at_p([(1,)], [], 100)


def test_parse_interpretation() -> None:
    segs = parse_interpretation("10-15:1,3\n\n20-22:2\n", n_rows=30)
    assert segs == (InterpretationSegment(10, 15, (1, 3)), InterpretationSegment(20, 22, (2,)))
    with pytest.raises(ValueError, match="line 1"):
        parse_interpretation("10:1,2")
    with pytest.raises(ValueError, match="line 2: END 5 must be greater"):
        parse_interpretation("1-2:1\n9-5:1")
    with pytest.raises(ValueError, match="past the 30 test rows"):
        parse_interpretation("25-31:1", n_rows=30)
    with pytest.raises(ValueError, match="1-based"):
        parse_interpretation("1-3:0,2")


def test_mean_table_skips_undefined() -> None:
    table = mean_table(
        {
            "a": {"f1_point": 0.2, "hit_at_100": None, "roc_auc": 0.5},
            "b": {"f1_point": 0.4, "hit_at_100": 0.5, "roc_auc": float("nan")},
        }
    )
    assert table["f1_point"] == pytest.approx(0.3)
    assert table["hit_at_100"] == 0.5 and table["roc_auc"] == 0.5
    assert table["hit_at_150"] is None


# ---------------------------------------------------------------- detectors, attribution


def test_subsample_is_seeded_and_bounded() -> None:
    assert subsample_rows(10, 20).tolist() == list(range(10))
    a = subsample_rows(1000, 100, random_state=3)
    assert a.size == 100 and np.all(np.diff(a) > 0)
    assert a.tolist() == subsample_rows(1000, 100, random_state=3).tolist()
    assert a.tolist() != subsample_rows(1000, 100, random_state=4).tolist()


@pytest.mark.parametrize("name", DETECTORS)
def test_each_detector_scores_an_outlier_higher(name: str) -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(500, 4))
    probe = np.vstack([np.zeros(4), np.full(4, 8.0)])
    det = make_detector(name, random_state=0).fit(train)
    scores = det.decision_function(probe)
    assert scores.shape == (2,)
    assert scores[1] > scores[0]
    again = make_detector(name, random_state=0).fit(train).decision_function(probe)
    assert np.allclose(scores, again)


def test_unknown_detector_names_the_choices() -> None:
    with pytest.raises(ValueError, match="iforest, ecod, copod, hbos"):
        make_detector("lstm")


def test_robust_z_ranks_the_shifted_dims_first() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(400, 5))
    train[:, 4] = 0.0  # constant in training: floored scale, no infinite score
    seg = rng.normal(size=(20, 5))
    seg[:, 2] += 9.0
    seg[:, 0] -= 5.0
    seg[:, 4] = 0.001  # a rounding-level change of a dim that was constant in training
    att = RobustZAttributor().fit(train)
    ranking = att.rank(seg)
    assert ranking[:2] == (3, 1)
    assert sorted(ranking) == [1, 2, 3, 4, 5]
    assert np.isfinite(att.deviation(seg)).all()
    with pytest.raises(ValueError, match="expected 5 dims"):
        att.rank(np.zeros((2, 3)))


def test_evaluate_series_on_an_injected_segment() -> None:
    rng = np.random.default_rng(2)
    train = rng.normal(size=(2000, 6))
    test = rng.normal(size=(600, 6))
    labels = np.zeros(600, dtype=int)
    test[300:330, 1] += 7.0
    test[300:330, 4] += 7.0
    labels[300:330] = 1
    interp = (InterpretationSegment(300, 330, (2, 5)),)
    settings = EvaluationSettings(detector="iforest", quantile=0.99, max_train_rows=1000)
    out = evaluate_series(train, test, labels, interp, settings)
    assert out["recall_event"] == 1.0
    assert out["recall_point"] > 0.5
    assert out["f1_point_adjusted"] >= out["f1_point"]
    assert out["roc_auc"] > 0.95
    assert out["hit_at_100"] == 1.0 and out["hit_at_150"] == 1.0
    assert out["train_rows_used"] == 1000 and out["segments"] == 1
    assert out == evaluate_series(train, test, labels, interp, settings)  # deterministic


# ---------------------------------------------------------------- strict matching (issue 11)

NODE_FAULT = Fault(
    "f-node", "fan", "n1", tuple(f"n1/{g}" for g in range(4)), onset=at(10), failure=at(14)
)
GPU_FAULT = Fault("f-gpu", "hbm", "n1/2", ("n1/2",), onset=at(10), failure=at(14))
TOPOLOGY = Topology(
    racks=(Rack("rack-a1", ("n1", "n2"), power=("pdu-a1",), cooling=("crac-a1",)),),
    components={"pdu-a1": Component("pdu-a1", "pdu")},
)


def test_component_ids_and_fault_levels() -> None:
    ids = component_ids(TOPOLOGY)
    assert ids == {"rack-a1", "pdu-a1", "crac-a1"}
    assert fault_level(NODE_FAULT, ids) == "node"
    assert fault_level(GPU_FAULT, ids) == "gpu"
    assert fault_level(PDU, ids) == "component"
    assert fault_level(Fault("x", "odd", "fleet", (), onset=at(1)), ids) == "other"


def test_rack_incident_over_a_node_fault_counts_loosely_not_strictly() -> None:
    rack = inc("r", 12, ("n1/0", "n1/1", "n2/0"), root="rack-a1", kind="rack")
    score = score_detector([NODE_FAULT], [rack], 1, shared_targets=component_ids(TOPOLOGY))
    (o,) = score.outcomes
    assert o.warned and not o.warned_strict and o.lead_minutes_strict is None
    assert score.recall == 1.0 and score.recall_strict == 0.0
    assert o.escalated and score.n_escalated == 1 and score.n_node_faults == 1
    # a component incident too; the node itself or one of its GPUs names the target
    pdu = inc("p", 12, ("n1/0",), root="pdu-a1", kind="pdu")
    assert not score_detector([NODE_FAULT], [pdu], 1).outcomes[0].warned_strict
    for root, kind in (("n1", "node"), ("n1/3", "gpu")):
        named = score_detector([NODE_FAULT], [inc("n", 12, ("n1/3",), root=root, kind=kind)], 1)
        assert named.outcomes[0].warned_strict and named.outcomes[0].escalated is False
        assert named.outcomes[0].lead_minutes_strict == pytest.approx(120.0)


def test_gpu_incident_on_the_fault_gpu_counts_strictly() -> None:
    right = score_detector([GPU_FAULT], [inc("g", 11, ("n1/2",))], 1)
    assert right.outcomes[0].warned_strict and right.median_lead_minutes_strict == 180.0
    # a neighbour GPU blamed: not the target
    other = inc("o", 11, ("n1/2",), root="n1/1")
    assert not score_detector([GPU_FAULT], [other], 1).outcomes[0].warned_strict
    # decision: a node incident on the GPU's node counts when it lists the GPU
    node = inc("n", 11, ("n1/1", "n1/2"), root="n1", kind="node")
    assert score_detector([GPU_FAULT], [node], 1).outcomes[0].warned_strict
    node_without = inc("m", 11, ("n1/1",), root="n1", kind="node")
    assert not score_detector([GPU_FAULT], [node_without], 1).outcomes[0].warned_strict


def test_unknown_kind_targeting_a_topology_component_is_a_shared_fault() -> None:
    ticket = Fault("t-1", "PSU brownout (ticket 4411)", "pdu-a1", ("n2/0", "n2/1"), at(20), at(26))
    right = inc("r", 22, ("n2/0", "n2/1"), root="pdu-a1", kind="pdu")
    score = score_detector([ticket], [right], 1, shared_targets=component_ids(TOPOLOGY))
    (o,) = score.outcomes
    assert o.level == "component" and o.root_cause_correct and o.one_incident
    assert score.root_cause_accuracy == 1.0 and score.one_incident_rate == 1.0
    assert o.warned_strict and o.gpus_paged == 2 and o.gpus_affected == 2


def test_exactly_one_incident_naming_the_component() -> None:
    comp = component_ids(TOPOLOGY)
    one = [inc("c", 22, ("n2/0", "n2/1"), root="pdu-a1", kind="pdu")]
    many = [*one, inc("g", 23, ("n2/1",))]
    gpu_only = [inc("g", 22, ("n2/0",)), inc("h", 22, ("n2/1",))]
    assert score_detector([PDU], one, 1, shared_targets=comp).n_one_incident == 1
    extra = score_detector([PDU], many, 1, shared_targets=comp)
    assert extra.n_one_incident == 0 and extra.one_incident_rate == 0.0
    assert extra.outcomes[0].warned_strict  # named, but not in one page
    split = score_detector([PDU], gpu_only, 1, shared_targets=comp)
    assert split.one_incident_rate == 0.0 and not split.outcomes[0].warned_strict
    assert split.outcomes[0].warned and split.outcomes[0].gpus_paged == 2
    # an incident after failure + grace is not this fault's page
    late = [*one, inc("z", 28, ("n2/1",))]
    assert score_detector([PDU], late, 1, shared_targets=comp).n_one_incident == 1
    # GPU faults have no one-incident rate
    assert score_detector([GPU_FAULT], [inc("g", 11, ("n1/2",))], 1).one_incident_rate is None


def test_false_all_clear_is_a_warning_resolved_before_the_repair() -> None:
    def closed(hours: float | None) -> IncidentRecord:
        """A warning at 11 h that closed at ``hours``."""
        return replace(inc("w", 11, ("n1/2",)), closed_at=at(hours) if hours else None)

    assert score_detector([GPU_FAULT], [closed(12)], 1).n_false_all_clear == 1
    assert score_detector([GPU_FAULT], [closed(None)], 1).n_false_all_clear == 0
    # closed after the failure: only an all-clear when the repair is known to be later
    assert score_detector([GPU_FAULT], [closed(15)], 1).n_false_all_clear == 0
    later = score_detector([GPU_FAULT], [closed(15)], 1, repair_after=timedelta(hours=3))
    assert later.n_false_all_clear == 1 and later.outcomes[0].false_all_clear
    fixed = score_detector([GPU_FAULT], [closed(15)], 1, repairs={"f-gpu": at(14.5)})
    assert fixed.n_false_all_clear == 0


def test_pages_during_benign_events_per_kind() -> None:
    churn = BenignEvent("b1", "job_churn", "n5", ("n5/0", "n5/1"), at(1), at(2))
    reboot = BenignEvent("b2", "drain_reboot", "n6", ("n6/0",), at(3), at(4))
    churn2 = BenignEvent("b3", "job_churn", "n7", ("n7/0",), at(5), at(6))
    log = [
        inc("p1", 1.5, ("n5/0",)),
        inc("p2", 2.5, ("n5/1",)),  # within the hour of grace after the event
        inc("p3", 9, ("n6/0",)),  # long after the reboot: false, but not the reboot's
        inc("t", 12, ("n1/2",)),  # the real fault's warning
    ]
    score = score_detector([GPU_FAULT], log, 1, benign=[churn, reboot, churn2])
    assert score.benign["job_churn"] == BenignKindScore("job_churn", 2, 1, 2)
    assert score.benign["drain_reboot"] == BenignKindScore("drain_reboot", 1, 0, 0)
    assert score.n_false_incidents == 3
    assert score.as_dict()["benign"]["job_churn"] == {"events": 2, "events_paged": 1, "pages": 2}


def test_bootstrap_ratio_is_seeded_and_brackets_the_pooled_value() -> None:
    warned, faults = [3, 4, 0, 5, 2], [4, 5, 1, 5, 4]
    a = bootstrap_ratio(warned, faults, resamples=500, seed=1)
    b = bootstrap_ratio(warned, faults, resamples=500, seed=1)
    assert a == b and a.value == pytest.approx(14 / 19)
    assert a.low is not None and a.high is not None and a.low <= a.value <= a.high
    assert a.low >= 0.0 and a.high <= 1.0
    assert bootstrap_ratio([0], [0]).value is None
    rate = bootstrap_ratio([1, 0], [500.0, 500.0], scale=1000.0, resamples=200)
    assert rate.value == pytest.approx(1.0) and rate.text("{:.1f}").startswith("1.0 [")
    med = bootstrap_median([[60.0, 120.0], [], [30.0]], resamples=200)
    assert med.value == pytest.approx(60.0) and med.den == 3
    with pytest.raises(ValueError, match="numerators"):
        bootstrap_ratio([1], [1, 2])


def test_an_hour_ahead_counts_apart_the_faults_whose_precursor_is_shorter() -> None:
    # a 40-minute precursor cannot be warned an hour ahead; the 4-hour one was, 2 h before
    short = Fault("f-short", "nvlink", "n2/0", ("n2/0",), onset=at(20), failure=at(20 + 2 / 3))
    # a 4-hour step precursor, quiet until 40 minutes before its failure: warned 30 min ahead
    quiet = Fault("f-step", "pcie", "n2/1", ("n2/1",), at(30), at(34), signal_start=at(34 - 2 / 3))
    logs = {
        "graph": [inc("g", 12, ("n1/2",)), inc("s", 20.2, ("n2/0",)), inc("q", 33.5, ("n2/1",))]
    }
    report = compare_detectors([GPU_FAULT, short, quiet], logs, 2.0, benign=())
    (score,) = report.detectors.values()
    assert RATES["warn_1h"](score) == (1.0, 3.0)
    assert RATES["warn_1h_reachable"](score) == (1.0, 2.0)
    assert RATES["warn_1h_visible"](score) == (1.0, 1.0)  # only the hbm fault could be
    assert RATES["visible_1h"](score) == (1.0, 3.0)
    # the stored table comes back with every figure the matrix pools (gpu-risk eval --pool)
    stored = json.loads(json.dumps(report.as_dict()))
    again = BacktestReport.from_dict(stored)
    assert again.as_dict() == report.as_dict()
    (back,) = again.detectors.values()
    assert [o.precursor_minutes for o in back.outcomes] == [240.0, pytest.approx(40.0), 240.0]
    assert [o.visible_minutes for o in back.outcomes] == pytest.approx([240.0, 40.0, 40.0])
    assert RATES["warn_1h_reachable"](back) == (1.0, 2.0)
    assert RATES["warn_1h_visible"](back) == (1.0, 1.0)
    result = ScenarioResult(7, False, timedelta(minutes=5), 16, 1.5, report, {"seed": 7})
    assert ScenarioResult.from_dict(json.loads(json.dumps(result.as_dict()))) == replace(
        result, report=again
    )
