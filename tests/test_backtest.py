"""The backtest replay helper on hand-made per-cycle Assessments."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from analysis.backtest import (
    figure_png,
    incident_log,
    lead_time_figure,
    replay,
    summary_markdown,
)
from analysis.types import (
    Assessment,
    Explanation,
    Factor,
    Fault,
    GpuScore,
    Incident,
    RootCause,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
GPUS = [GpuScore(f"n{n}", str(g), 0.1) for n in (1, 2) for g in range(4)]  # 8 GPUs


def at(hours: float) -> datetime:
    """Return T0 plus some hours."""
    return T0 + timedelta(hours=hours)


def gpu_incident(key: str, hours: float, factors: tuple[str, ...] = ()) -> Incident:
    """An incident blamed on one GPU."""
    node, gpu = key.split("/")
    exp = Explanation("x", tuple(Factor(f, key, 0.5) for f in factors)) if factors else None
    return Incident(
        id=f"i-{key}-{hours}",
        at=at(hours),
        severity="warning",
        score=0.9,
        root_cause=RootCause(key, "gpu"),
        gpus=(GpuScore(node, gpu, 0.9),),
        explanation=exp,
    )


def pdu_incident(hours: float, gpus: tuple[str, ...]) -> Incident:
    """An incident blamed on pdu-a1, its explanation's first factor the wrong one."""
    factors = (
        Factor("DCGM_FI_DEV_GPU_TEMP", gpus[0], 0.6),
        Factor("pdu_output_watts", "pdu-a1", 0.3),
    )
    return Incident(
        id=f"p-{hours}",
        at=at(hours),
        severity="critical",
        score=0.95,
        root_cause=RootCause("pdu-a1", "pdu"),
        gpus=tuple(GpuScore(*k.split("/"), 0.9) for k in gpus),
        explanation=Explanation("PDU sag", factors),
    )


def cycles(plan: dict[float, list[Incident]], until: float) -> list[Assessment]:
    """Hourly assessments from hour 0 to ``until``, with the planned incidents per hour."""
    return [
        Assessment(at=at(h), scores=tuple(GPUS), incidents=tuple(plan.get(h, [])))
        for h in range(int(until) + 1)
    ]


def test_incident_opens_on_first_cycle_closes_when_absent_and_reopens_as_new() -> None:
    inc = gpu_incident("n1/0", 2)
    log = incident_log(cycles({2: [inc], 3: [inc], 5: [inc]}, until=6))
    assert [(r.opened_at, r.closed_at) for r in log] == [(at(2), at(4)), (at(5), at(6))]
    assert log[0].id == "gpu:n1/0@2026-11-01T02:00:00Z"
    assert log[0].gpus == ("n1/0",) and log[0].root_cause_kind == "gpu"
    # still open after the last cycle
    open_log = incident_log(cycles({5: [inc], 6: [inc]}, until=6))
    assert open_log[0].closed_at is None


def test_order_of_assessments_does_not_matter_and_factors_come_later() -> None:
    plain = gpu_incident("n1/0", 1)
    explained = gpu_incident("n1/0", 2, ("ipmi_fan_speed_rpm", "DCGM_FI_DEV_GPU_TEMP"))
    seq = cycles({1: [plain], 2: [explained]}, until=3)
    log = incident_log(list(reversed(seq)))
    assert len(log) == 1
    assert log[0].opened_at == at(1)
    assert log[0].factors == ("ipmi_fan_speed_rpm", "DCGM_FI_DEV_GPU_TEMP")


def test_gpus_of_opening_cycle_are_kept() -> None:
    small = pdu_incident(1, ("n2/0",))
    grown = pdu_incident(2, ("n2/0", "n2/1", "n2/2"))
    (rec,) = incident_log(cycles({1: [small], 2: [grown]}, until=3))
    assert rec.gpus == ("n2/0",) and rec.root_cause_id == "pdu-a1"


FAN = Fault("fan-1", "fan", "n1/0", ("n1/0",), onset=at(5), failure=at(10))
PDU = Fault("pdu-1", "pdu", "pdu-a1", ("n2/0", "n2/1"), onset=at(12), failure=at(20))


def make_runs() -> dict[str, list[Assessment]]:
    """graph warns both faults early with the right cause; static warns the fan late only."""
    fan_g = gpu_incident("n1/0", 8, ("ipmi_fan_speed_rpm",))
    pdu_g = pdu_incident(14, ("n2/0", "n2/1"))
    fan_s = gpu_incident("n1/0", 9.5)
    noise = gpu_incident("n1/3", 3)
    graph = cycles({8: [fan_g], 9: [fan_g], 14: [pdu_g], 15: [pdu_g]}, until=23)
    static = [
        Assessment(at=at(h / 2), scores=tuple(GPUS), incidents=tuple(inc))
        for h, inc in (
            (0, []),
            (6, [noise]),
            (7, []),
            (19, [fan_s]),
            (20, []),
            (46, []),
        )
    ]
    return {"graph": graph, "static": static}


def test_replay_table_by_hand() -> None:
    report = replay(make_runs(), [FAN, PDU])
    # 8 GPUs over 24 h (graph: hours 0..23 plus one hourly step) = 8 GPU-days.
    assert report.gpu_days == pytest.approx(8.0)
    data = report.as_dict()
    g, s = data["detectors"]["graph"], data["detectors"]["static"]
    assert g["recall"] == 1.0 and g["precision"] == 1.0
    assert g["lead_minutes"] == [120.0, 360.0]
    assert g["median_lead_minutes"] == 240.0
    assert g["root_cause_accuracy"] == 1.0
    assert g["explanation_top1"] == 0.5 and g["explanation_top3"] == 1.0  # pdu: 2nd factor
    assert g["false_incidents_per_1k_gpu_days"] == 0.0
    assert s["recall"] == 0.5 and s["precision"] == 0.5
    assert s["median_lead_minutes"] == 30.0
    assert s["false_incidents_per_1k_gpu_days"] == pytest.approx(1 / 8 * 1000)
    assert s["explanation_top1"] is None  # static rules never carry factors: undefined
    rows = {r["id"]: r for r in data["faults"]}
    assert rows["fan-1"]["graph"]["warned_at"] == "2026-11-01T08:00:00Z"
    assert rows["fan-1"]["static"]["lead_minutes"] == 30.0
    assert rows["pdu-1"]["static"]["warned"] is False
    json.dumps(data)  # JSON-serialisable as is
    explicit = replay(make_runs(), [FAN, PDU], n_gpus=16, start=at(0), end=at(48))
    assert explicit.gpu_days == pytest.approx(32.0)


def test_summary_and_figure() -> None:
    report = replay(make_runs(), [FAN, PDU])
    md = summary_markdown(report)
    assert "| graph | 1.00 (2/2) | 1.00 | 1.00 (2/2) | 240 | 240 | 0.0 | 1.00 | 0.50 | 1.00 |" in md
    assert "| static | 0.50 (1/2) | 0.50 | 0.50 (1/2) | 30 | 30 | 125.0 | – | – | – |" in md
    # the graph's PDU warning closed at 16:00, before the 20:00 failure: a false all-clear
    assert "| graph | 1/1 | 3/3 | – | 1 |" in md
    assert "| static | 0/1 | 1/3 | – | 0 |" in md
    assert "| pdu | 1 / 1 of 1 | 0 / 0 of 1 |" in md
    fig = lead_time_figure(report)
    ax = fig.axes[0]
    labels = [t.get_text().split("\n") for t in ax.get_xticklabels()]
    assert labels == [
        ["fan (n=1)", "graph: 0 missed", "static: 0 missed"],
        ["pdu (n=1)", "graph: 0 missed", "static: 1 missed"],
    ]
    png = figure_png(fig)
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_replay_without_cycles_needs_a_period() -> None:
    with pytest.raises(ValueError, match="no cycles"):
        replay({"graph": []}, [FAN])
    empty = replay({"graph": []}, [FAN], n_gpus=4, start=at(0), end=at(24))
    assert empty.detectors["graph"].recall == 0.0
