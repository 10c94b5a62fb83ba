"""How the explainer reads counters and lifetime levels.

Counters are counted over a trailing window (sparse events such as a remapped row stay visible for
the whole window, whatever the scrape step); remapped rows are a lifetime level judged against the
GPU's own healthy level; and a fault that shows on the last samples only is read on them. Also
the hints these readings feed, and ``Explainer.warm`` (every kind's models fitted with a refit).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from analysis.explain import Explainer
from analysis.explain.prepare import _window_counts
from analysis.explain.scm import _choose_target
from analysis.explain.template import COUNTER_WINDOW_MINUTES
from analysis.types import FleetFrames
from tests.fixtures.explain_frames import START, HandFleet, make_fleet
from tests.test_explain import _edit, _hand_incident, _incident

MEMORY_METRICS = {
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
}


def _series(values: dict[str, list[float]], step_min: int = 10) -> pd.Series:
    """A counter indexed (key, ts): one list of samples per key, ``step_min`` apart."""
    keys, stamps, out = [], [], []
    for key, vals in values.items():
        for i, v in enumerate(vals):
            keys.append(key)
            stamps.append(pd.Timestamp(START + timedelta(minutes=i * step_min)))
            out.append(v)
    idx = pd.MultiIndex.from_arrays([keys, stamps], names=["key", "ts"])
    return pd.Series(out, index=idx, dtype=float)


def test_window_counts_keep_a_sparse_event_for_the_whole_window() -> None:
    """One increment is counted at every sample within the window after it, then drops out."""
    assert COUNTER_WINDOW_MINUTES == 30  # the expectations below are written for 30 minutes
    counts = _window_counts(
        _series({"a": [0, 0, 1, 1, 1, 1, 1], "b": [4, 4, 4, 4, 4, 4, 4]}), "key"
    )
    assert counts.loc["a"].tolist() == [0, 0, 1, 1, 1, 0, 0]
    assert counts.loc["b"].tolist() == [0] * 7  # a constant counter, even a non-zero one


def test_window_counts_handle_resets_gaps_and_unsorted_input() -> None:
    """A reset is no increase, a missing sample stays missing, the increase across it counts."""
    raw = _series({"a": [5, 7, 2, 3, np.nan, 6, 6], "b": [0, 1, 2, 3, 4, 5, 6]})
    counts = _window_counts(raw, "key")
    a = counts.loc["a"].tolist()
    assert a[:4] == [0, 2, 2, 3]  # +2, then a reset (no increase), then +1
    assert np.isnan(a[4])
    assert a[5:] == [4, 3]  # +3 across the gap, counted at the next sample
    assert counts.loc["b"].tolist() == [0, 1, 2, 3, 3, 3, 3]
    shuffled = raw.sample(frac=1.0, random_state=0)
    pd.testing.assert_series_equal(
        _window_counts(shuffled, "key").sort_index(), counts.sort_index()
    )


def test_a_memory_fault_on_the_last_two_samples_is_explained_by_memory() -> None:
    """Correctable ECC and two remapped rows from the last two minutes on: memory, not noise.

    Read as the median of the last five per-sample increments, both were 0 and the explanation
    fell to whatever else deviated.
    """
    fleet = make_fleet(120, seed=8)
    explainer = Explainer().fit(fleet.window(0, 59), fleet.graph)
    frames = fleet.window(60, 119)
    kw = {"node": "gpu-node-001", "gpu": "2"}
    frames = _edit(frames, "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", 80.0, since=118, **kw)
    frames = _edit(frames, "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", 2.0, since=118, **kw)
    exp = explainer.explain(_hand_incident(fleet.graph, "gpu-node-001/2", 120), frames, fleet.graph)
    assert exp.factors, exp.summary
    assert exp.factors[0].name in MEMORY_METRICS, [(f.name, f.detail) for f in exp.factors]
    assert "in 30 min" in exp.factors[0].detail or "rows" in exp.factors[0].detail


def _carrying_old_rows() -> tuple[HandFleet, Explainer, FleetFrames]:
    """A fleet whose gpu-node-001/2 has carried two remapped rows all along: the explainer fitted
    on its first hour, the frames of its second."""
    fleet = make_fleet(120, seed=8)
    kw = {"node": "gpu-node-001", "gpu": "2"}
    rows = "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"
    explainer = Explainer().fit(_edit(fleet.window(0, 59), rows, 2.0, since=0, **kw), fleet.graph)
    return fleet, explainer, _edit(fleet.window(60, 119), rows, 2.0, since=0, **kw)


def test_old_remapped_rows_do_not_take_the_blame_for_a_hot_gpu() -> None:
    """A GPU that has carried two remapped rows all along runs hot: temperature, not memory."""
    fleet, explainer, frames = _carrying_old_rows()
    kw = {"node": "gpu-node-001", "gpu": "2"}
    frames = _edit(frames, "DCGM_FI_DEV_GPU_TEMP", 92.0, since=112, **kw)
    exp = explainer.explain(_hand_incident(fleet.graph, "gpu-node-001/2", 120), frames, fleet.graph)
    assert exp.factors, exp.summary
    assert exp.factors[0].name == "DCGM_FI_DEV_GPU_TEMP", [(f.name, f.detail) for f in exp.factors]
    assert not any(f.name in MEMORY_METRICS for f in exp.factors[:2])


def test_old_remapped_rows_on_one_gpu_give_a_node_no_ecc_hint() -> None:
    """A node's incident where one GPU has carried two remapped rows all along: no "climbing" hint.

    The worst GPU's level against the node's average would read as rows climbing on every node
    with a GPU that carries old rows; new rows do (the test's second half).
    """
    fleet, explainer, frames = _carrying_old_rows()
    kw = {"node": "gpu-node-001", "gpu": "2"}
    frames = _edit(
        frames, "ipmi_fan_speed_rpm:FAN3", 600.0, node="gpu-node-001", gpu=None, since=100
    )
    gpus = tuple(f"gpu-node-001/{g}" for g in range(4))
    incident = _incident("gpu-node-001", "node", gpus, START + timedelta(minutes=119))
    exp = explainer.explain(incident, frames, fleet.graph)
    assert not any("remapped rows are climbing" in h for h in exp.hints), exp.hints
    frames = _edit(frames, "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", 6.0, since=110, **kw)
    exp = explainer.explain(incident, frames, fleet.graph)
    assert any("remapped rows are climbing" in h for h in exp.hints), exp.hints


def test_a_node_gone_silent_is_not_called_xid_79() -> None:
    """GPUs that stopped reporting with their node's sensors: node down, not fell off the bus."""
    fleet = make_fleet(120, seed=8)
    explainer = Explainer().fit(fleet.window(0, 59), fleet.graph)
    frames = fleet.window(60, 119)
    cut = START + timedelta(minutes=110)
    gone = "gpu-node-002"
    frames = replace(
        frames,
        gpu=frames.gpu[~((frames.gpu["node"] == gone) & (frames.gpu["ts"] >= cut))],
        node=frames.node[~((frames.node["node"] == gone) & (frames.node["ts"] >= cut))],
    )
    gpus = tuple(f"{n}/{g}" for n in ("gpu-node-001", gone) for g in range(4))
    incident = _incident("rack-a1", "rack", gpus, START + timedelta(minutes=119))
    hints = " ".join(explainer.explain(incident, frames, fleet.graph).hints)
    assert f"{gone} stopped reporting" in hints, hints
    assert "fell off the bus" not in hints, hints
    # one GPU gone from a node that still reports is the XID 79 case
    frames = replace(
        fleet.window(60, 119),
        gpu=fleet.window(60, 119).gpu.query("not (node == @gone and gpu == '1' and ts >= @cut)"),
    )
    hints = " ".join(explainer.explain(incident, frames, fleet.graph).hints)
    assert f"{gone}/1 fell off the bus" in hints, hints
    assert "stopped reporting" not in hints, hints


def test_a_late_scrape_is_not_a_vanished_gpu() -> None:
    """GPUs of a node missing only the latest sample (a late scrape) get no vanished hint."""
    fleet = make_fleet(120, seed=8)
    explainer = Explainer().fit(fleet.window(0, 59), fleet.graph)
    frames = fleet.window(60, 119)
    late = START + timedelta(minutes=119)
    frames = replace(
        frames,
        gpu=frames.gpu[~((frames.gpu["node"] == "gpu-node-002") & (frames.gpu["ts"] >= late))],
    )
    gpus = tuple(f"{n}/{g}" for n in ("gpu-node-001", "gpu-node-002") for g in range(4))
    incident = _incident("rack-a1", "rack", gpus, late)
    hints = " ".join(explainer.explain(incident, frames, fleet.graph).hints)
    assert "fell off the bus" not in hints and "stopped reporting" not in hints, hints


def test_a_warmed_explainer_fits_nothing_on_the_alert_path_and_explains_alike() -> None:
    """``warm()`` (a refit's background work) builds the models the first explanation uses."""
    fleet = make_fleet(240, fault="thermal_interface", target="gpu-node-002/1", onset=150, seed=4)
    history = fleet.window(0, 140)
    lazy = Explainer().fit(history, fleet.graph)
    warmed = Explainer().fit(history, fleet.graph).warm()
    fitted = dict(warmed.models_)
    assert {kind for kind, _t, _n in fitted} >= {"gpu", "node", "rack"}, sorted(fitted)
    incident = _hand_incident(fleet.graph, "gpu-node-002/1", 240)
    frames = fleet.window(180, 239)
    assert warmed.explain(incident, frames, fleet.graph) == lazy.explain(
        incident, frames, fleet.graph
    )
    assert warmed.models_.keys() == fitted.keys()  # nothing fitted when explaining
    assert lazy.models_  # the lazy one fitted on first use


def test_warm_before_fit_is_a_clear_error() -> None:
    """Warming an unfitted explainer says what to do."""
    with pytest.raises(RuntimeError, match="before fit"):
        Explainer().warm()


def test_a_throttled_gpus_power_drop_is_the_heats_symptom() -> None:
    """Hot and thermally throttled with its power down: thermal is the target, not power; the
    same power drop without throttling stays a power question."""
    z = pd.Series({"power": -8.7, "temp": 3.6, "thermal_violation": 3.3, "util": 0.8})
    assert _choose_target(z) == ("thermal", "temp")
    assert _choose_target(z.drop("thermal_violation")) == ("power", "power")
