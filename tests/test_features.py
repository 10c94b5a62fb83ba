"""Per-GPU features: levels, counter rates, XIDs, data health, peer, node and component context."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from analysis.features import (
    FLAG_COLUMNS,
    build_features,
    feature_columns,
    feature_history,
    flags_of,
)
from tests.fixtures.handmade_fleet import END, fleet


def test_hotter_than_siblings_at_same_power_beats_absolute_temperature() -> None:
    # gpu-node-001/0 draws 400 W and runs 10 °C hotter than expected; gpu-node-002/3 draws 550 W
    # and is hotter in absolute terms, but exactly as hot as its power predicts.
    # gpu-node-003/1 runs a job at 700 W while its siblings idle: no comparable peers.
    def override(node: str, gpu: str, metric: str, t: np.ndarray) -> np.ndarray | None:
        if (node, gpu) == ("gpu-node-001", "0") and metric == "DCGM_FI_DEV_GPU_TEMP":
            return np.full(t.size, 30.0 + 40.0 + 10.0)
        watts = {("gpu-node-002", "3"): 550.0, ("gpu-node-003", "1"): 700.0}.get((node, gpu))
        if watts is not None:
            if metric == "DCGM_FI_DEV_POWER_USAGE":
                return np.full(t.size, watts)
            if metric == "DCGM_FI_DEV_GPU_TEMP":
                return np.full(t.size, 30.0 + 0.1 * watts)
        return None

    frames, graph = fleet(override)
    f = build_features(frames, graph, END)
    assert f.loc["gpu-node-002/3", "temp"] > f.loc["gpu-node-001/0", "temp"]
    assert f["temp_vs_node"].idxmax() == "gpu-node-001/0"
    assert f.loc["gpu-node-001/0", "temp_vs_node"] > 7.0
    assert abs(f.loc["gpu-node-002/3", "temp_vs_node"]) < 3.0
    assert f["temp_vs_fleet"].idxmax() == "gpu-node-001/0"
    assert np.isnan(f.loc["gpu-node-003/1", "temp_vs_node"])
    assert np.isfinite(f.loc["gpu-node-003/1", "temp_at_power"])


def test_rack_and_fleet_peers_are_gpus_of_the_same_model() -> None:
    # gpu-node-001 holds air-cooled cards that run 25 °C hotter at the same watts than the
    # modules of every other node: that is their model, not a fault. Once the graph knows the
    # models (dcgm-exporter's modelName), they are compared with their own kind only.
    def override(node: str, gpu: str, metric: str, t: np.ndarray) -> np.ndarray | None:
        if node == "gpu-node-001" and metric == "DCGM_FI_DEV_GPU_TEMP":
            return np.full(t.size, 30.0 + 0.1 * (400.0 + 10 * int(gpu)) + 25.0)
        return None

    frames, graph = fleet(override)
    mixed = build_features(frames, graph, END)
    hot = [f"gpu-node-001/{g}" for g in range(4)]
    assert (mixed.loc[hot, "temp_vs_rack"] > 10).all()
    assert (mixed.loc[hot, "temp_vs_fleet"] > 10).all()
    for node, data in graph.nodes(data=True):
        if data.get("kind") == "node":
            data["model"] = "NVIDIA L40S" if node == "gpu-node-001" else "NVIDIA H200"
    by_model = build_features(frames, graph, END)
    assert (by_model.loc[hot, "temp_vs_rack"].abs() < 1).all()
    assert (by_model.loc[hot, "temp_vs_fleet"].abs() < 1).all()
    others = by_model.drop(index=hot)
    assert (others["temp_vs_fleet"].abs() < 1).all()


def test_counter_rates_handle_resets_and_sustained_rates() -> None:
    def override(node: str, gpu: str, metric: str, t: np.ndarray) -> np.ndarray | None:
        if (node, gpu) == ("gpu-node-001", "1") and metric == "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL":
            counts = 2.0 * t
            counts[45:] -= counts[45]  # counter reset (driver reload) must not count negative
            return counts
        if (node, gpu) == ("gpu-node-002", "0") and metric == "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL":
            return np.where(t >= 50, 100.0, 0.0)  # one benign burst
        return None

    frames, graph = fleet(override)
    f = build_features(frames, graph, END, window=timedelta(minutes=30))
    # 30 samples in the window give 29 steps; one is the reset: 28 x 2 errors in half an hour.
    assert np.isclose(f.loc["gpu-node-001/1", "ecc_sbe_rate"], np.log1p(28 * 2 * 2.0))
    # Sustained: without the largest single step (54 errors in half an hour).
    assert np.isclose(f.loc["gpu-node-001/1", "ecc_sbe_sustained"], np.log1p(108.0))
    # A one-off burst is a high rate but no sustained rate.
    assert np.isclose(f.loc["gpu-node-002/0", "ecc_sbe_rate"], np.log1p(200.0))
    assert f.loc["gpu-node-002/0", "ecc_sbe_sustained"] == 0.0
    assert f.drop(index=["gpu-node-001/1", "gpu-node-002/0"])["ecc_sbe_rate"].eq(0).all()


def test_a_burst_next_to_a_missed_scrape_is_not_a_sustained_rate() -> None:
    # A retrained link's one-off burst lands in a scrape that was missed: the counter steps by
    # 100 across the gap. Which minute it came in is unknown, so it is no evidence of a climb;
    # a steady climb with the same gap still is one.
    sbe = "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"

    def override(node: str, gpu: str, metric: str, t: np.ndarray) -> np.ndarray | None:
        if (node, gpu) == ("gpu-node-002", "0") and metric == sbe:
            return np.where(t >= 50, 100.0, 0.0)
        if (node, gpu) == ("gpu-node-001", "1") and metric == sbe:
            return 2.0 * t
        return None

    def drop(rows: pd.DataFrame) -> pd.DataFrame:
        gap = (rows["metric"] == sbe) & (rows["ts"] == END - timedelta(minutes=10))
        return rows[~gap]

    frames, graph = fleet(override, drop=drop)
    f = build_features(frames, graph, END, window=timedelta(minutes=30))
    assert np.isclose(f.loc["gpu-node-002/0", "ecc_sbe_rate"], np.log1p(200.0))
    assert f.loc["gpu-node-002/0", "ecc_sbe_sustained"] == 0.0
    assert f.loc["gpu-node-002/0", "ecc_sbe_excess"] == f.loc["gpu-node-003/0", "ecc_sbe_excess"]
    # 29 grid steps, two of them across the gap: 27 steps of 2, less the largest, per half hour
    assert np.isclose(f.loc["gpu-node-001/1", "ecc_sbe_sustained"], np.log1p(2 * 26 * 2.0))


def test_xids_split_into_hardware_and_application_and_flag_failure_grade() -> None:
    def override(node: str, gpu: str, metric: str, t: np.ndarray) -> np.ndarray | None:
        if metric != "DCGM_FI_DEV_XID_ERRORS":
            if (node, gpu) == ("gpu-node-003", "0") and metric == "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL":
                return (t >= 50).astype(float)
            if (node, gpu) == ("gpu-node-004", "1") and metric == "DCGM_FI_DEV_ROW_REMAP_FAILURE":
                return (t >= 55).astype(float)
            return None
        if (node, gpu) == ("gpu-node-001", "2"):
            return np.select([t >= 50, t >= 40], [79.0, 13.0], 0.0)
        if (node, gpu) == ("gpu-node-002", "2"):
            return np.select([t >= 45, t >= 40], [43.0, 31.0], 0.0)
        return None

    frames, graph = fleet(override)
    f = build_features(frames, graph, END)
    assert f.loc["gpu-node-001/2", ["xid_hw_events", "xid_app_events"]].tolist() == [1, 1]
    assert f.loc["gpu-node-002/2", ["xid_hw_events", "xid_app_events"]].tolist() == [0, 2]
    flags = flags_of(f)
    assert flags == {
        "gpu-node-001/2": ("hardware_xid",),
        "gpu-node-003/0": ("ecc_dbe_increase",),
        "gpu-node-004/1": ("row_remap_failure",),
    }
    # Flags and informational columns are not detector inputs.
    cols = feature_columns(f)
    assert not set(FLAG_COLUMNS) & set(cols)
    assert "xid_app_events" not in cols and "node" not in cols


def test_vanished_gpus_and_gaps() -> None:
    def drop(gpu: pd.DataFrame) -> pd.DataFrame:
        key = gpu["node"] + "/" + gpu["gpu"]
        gone = (key == "gpu-node-002/1") & (gpu["ts"] > END - timedelta(minutes=10))
        never = key == "gpu-node-004/3"
        minute = ((gpu["ts"] - gpu["ts"].min()) / pd.Timedelta(minutes=1)).astype(int)
        holes = (key == "gpu-node-003/2") & (minute % 2 == 0)
        return gpu[~(gone | never | holes)]

    frames, graph = fleet(drop=drop)
    # The GPU that never reported is known from the graph (e.g. built from the last cycle).
    graph.add_node("gpu-node-004/3", kind="gpu", node="gpu-node-004", gpu="3")
    graph.add_edge("gpu-node-004", "gpu-node-004/3", role="hosts")
    f = build_features(frames, graph, END)
    assert f.loc["gpu-node-002/1", "fail_vanished"]
    assert f.loc["gpu-node-002/1", "last_seen_min"] == 10.0
    assert f.loc["gpu-node-004/3", "fail_vanished"]
    assert not f.loc["gpu-node-003/2", "fail_vanished"]
    assert 0.4 < f.loc["gpu-node-003/2", "gap_frac"] < 0.6
    assert f["fail_vanished"].sum() == 2


def test_node_and_component_context_joined_through_the_graph() -> None:
    frames, graph = fleet(fan_override={("gpu-node-003", "FAN2"): 3000.0})
    f = build_features(frames, graph, END)
    on_node = f[f["node"] == "gpu-node-003"]
    assert np.allclose(on_node["fan_min"], 3000.0)
    assert (on_node["fan_spread"] < -0.5).all()
    assert (f[f["node"] != "gpu-node-003"]["fan_spread"] == 0).all()
    # PDU volts (rack 1 sags by 10 V) and switch errors (only leaf-a1 counts) reach the GPUs
    # behind each component, and only those.
    rack1 = f["rack"] == "rack-a1"
    assert np.allclose(f.loc[rack1, "pdu.output_volts"], 220.0)
    assert np.allclose(f.loc[~rack1, "pdu.output_volts"], 230.0)
    assert (f.loc[rack1, "switch.port_errors_total.rate"] > 5).all()
    assert (f.loc[~rack1, "switch.port_errors_total.rate"] == 0).all()
    # 3 a minute over 29 steps: the steps left once the largest fifth is dropped average 3
    # too, times 29: 87 in half an hour
    assert np.allclose(f.loc[rack1, "switch.port_errors_total.sustained"], np.log1p(174.0))


def test_the_node_features_declared_are_the_ones_written() -> None:
    """``NODE_FEATURES`` (which the explainer maps evidence through) is node_context's columns,
    with data and without; each names a metric the node exporters publish."""
    from analysis import catalog
    from analysis.context import NODE_FEATURES, node_context

    frames, _ = fleet()
    nodes = pd.Index(sorted(frames.node["node"].unique()))
    for node in (frames.node, frames.node.iloc[:0]):
        ctx = node_context(
            node, frames.up, nodes=nodes, at=pd.Timestamp(END), recent=timedelta(minutes=10)
        )
        assert list(ctx.columns) == list(NODE_FEATURES)
    assert {m for m in NODE_FEATURES.values() if m} <= set(catalog.NODE_METRICS)


def test_feature_history_stacks_cycles() -> None:
    frames, graph = fleet()
    times = [END - timedelta(minutes=10), END]
    rows = feature_history(frames, graph, times)
    assert rows.index.names == ["at", "gpu_key"]
    assert len(rows) == 2 * 16
    # Nothing after a cycle's time is read: the earlier cycle's window ends 10 minutes before.
    assert rows.xs(pd.Timestamp(times[0]), level="at")["last_seen_min"].eq(0).all()


def test_rack_level_temperature_needs_most_of_the_rack_comparable() -> None:
    """Two hot GPUs among many incomparable (idle) ones are not a hot rack."""
    from analysis.features import _group_median

    values = pd.Series([29.0, 30.0, *[np.nan] * 6, 1.0, 2.0, 1.5, 0.5])
    racks = pd.Series(["r4"] * 8 + ["r1"] * 4)
    med = _group_median(values, racks)
    assert med.iloc[:8].isna().all()  # 2 of 8 comparable: no rack signal
    assert med.iloc[8:].tolist() == [1.25] * 4  # all comparable: the rack's median


def test_features_read_only_catalogue_metrics() -> None:
    """Every exporter metric name the features read is one of analysis.catalog's: one list."""
    from analysis import catalog
    from analysis import features as ft

    derived = {catalog.XID_HARDWARE_COUNT, catalog.XID_OTHER_COUNT}
    assert {*ft.GAUGES, *ft.COUNTERS, ft.REMAP_FAILURE, ft.XID} | derived == set(
        ft.GPU_FEATURE_METRICS
    )
    assert set(ft.GPU_FEATURE_METRICS) - derived <= set(catalog.DCGM_METRICS)
    assert {ft.FAN, ft.INLET, ft.VOLTS, ft.NODE_POWER, ft.HWMON} <= set(catalog.NODE_METRICS)


def test_the_xid_counter_takes_precedence_over_the_last_xid_gauge() -> None:
    """XID 79 then XID 13 within a minute: the gauge keeps only 13, the counter keeps both."""
    from dataclasses import replace

    from analysis.catalog import XID_HARDWARE_COUNT, XID_OTHER_COUNT

    def override(node: str, gpu: str, metric: str, t: np.ndarray) -> np.ndarray | None:
        if (node, gpu) == ("gpu-node-001", "2") and metric == "DCGM_FI_DEV_XID_ERRORS":
            return np.where(t >= 50, 13.0, 0.0)  # the 79 before it was overwritten
        return None

    frames, graph = fleet(override)
    ts = sorted(frames.gpu["ts"].unique())
    rows = []
    for i, at in enumerate(ts):
        for key, hw, other in (("gpu-node-001/2", 1.0, 1.0), ("gpu-node-002/1", 0.0, 0.0)):
            node, gpu = key.split("/")
            late = i >= 50
            rows.append((at, node, gpu, XID_HARDWARE_COUNT, hw if late else 0.0))
            rows.append((at, node, gpu, XID_OTHER_COUNT, other if late else 0.0))
    extra = pd.DataFrame(rows, columns=["ts", "node", "gpu", "metric", "value"])
    gauge_only = build_features(frames, graph, END)
    assert gauge_only.loc["gpu-node-001/2", "xid_hw_events"] == 0  # the gauge lost it
    with_counter = replace(frames, gpu=pd.concat([frames.gpu, extra], ignore_index=True))
    f = build_features(with_counter, graph, END)
    assert f.loc["gpu-node-001/2", ["xid_hw_events", "xid_app_events"]].tolist() == [1, 1]
    assert flags_of(f)["gpu-node-001/2"] == ("hardware_xid",)
    assert f.loc["gpu-node-002/1", "xid_hw_events"] == 0


def test_a_half_busy_node_compares_busy_gpus_with_busy_ones_only() -> None:
    """Four GPUs run a job at 350 W, four idle at 60 W: nobody is compared with the node median."""

    def override(node: str, gpu: str, metric: str, t: np.ndarray) -> np.ndarray | None:
        if node != "gpu-node-001":
            return None
        busy = int(gpu) < 2
        watts = 350.0 if busy else 60.0
        if metric == "DCGM_FI_DEV_POWER_USAGE":
            return np.full(t.size, watts)
        if metric == "DCGM_FI_DEV_GPU_TEMP":
            # each GPU a little warmer than the last, as healthy GPUs are
            return np.full(t.size, 30.0 + 0.1 * watts + 0.5 * int(gpu))
        return None

    frames, graph = fleet(override)
    f = build_features(frames, graph, END)
    node = f[f["node"] == "gpu-node-001"]["temp_vs_node"]
    # each GPU against its one comparable sibling: half a degree apart, never 29 degrees
    assert node.abs().max() <= 0.5 + 1e-6
    assert node.notna().all()


def test_a_gpu_between_job_steps_is_not_compared_with_idle_peers() -> None:
    """A lone job dips to 170 W: within 150 W of siblings idling at 50 W, but not at their load."""

    def override(node: str, gpu: str, metric: str, t: np.ndarray) -> np.ndarray | None:
        if node != "gpu-node-001":
            return None
        watts = 170.0 if gpu == "0" else 50.0
        if metric == "DCGM_FI_DEV_POWER_USAGE":
            return np.full(t.size, watts)
        if metric == "DCGM_FI_DEV_GPU_TEMP":
            # still hot from the job's 340 W steps: 25 degrees over what 170 W predicts
            return np.full(t.size, 30.0 + 0.1 * watts + (25.0 if gpu == "0" else 0.0))
        return None

    frames, graph = fleet(override)
    f = build_features(frames, graph, END)
    assert np.isnan(f.loc["gpu-node-001/0", "temp_vs_node"])
    assert abs(f.loc["gpu-node-001/1", "temp_vs_node"]) < 1e-9


def test_a_job_ending_in_the_window_is_not_a_temperature_trend() -> None:
    """GPU 0 runs 3 degrees cooler than its siblings busy, 2 warmer idle: a step, not a slope.

    On the next node GPU 1 warms away from its siblings by 0.1 degree a minute across the same
    job end: a trend.
    """

    def override(node: str, gpu: str, metric: str, t: np.ndarray) -> np.ndarray | None:
        if node not in {"gpu-node-001", "gpu-node-002"}:
            return None
        busy = t < 40
        watts = np.where(busy, 600.0, 60.0)
        if metric == "DCGM_FI_DEV_POWER_USAGE":
            return watts
        if metric == "DCGM_FI_DEV_GPU_TEMP":
            step = np.where(busy, -3.0, 2.0) if node == "gpu-node-001" else 0.1 * t
            return 30.0 + 0.1 * watts + (step if gpu == str(int(node[-1]) - 1) else 0.0)
        return None

    frames, graph = fleet(override)
    f = build_features(frames, graph, END)
    assert abs(f.loc["gpu-node-001/0", "temp_vs_node_slope"]) < 1e-9
    assert abs(f.loc["gpu-node-002/1", "temp_vs_node_slope"] - 0.1) < 1e-9


def test_a_comparison_level_is_taken_at_the_gpus_current_load() -> None:
    """GPU 0 runs 3 degrees cooler than its siblings busy and 2 warmer idle. On gpu-node-001
    the job ended 8 minutes before the end of the window: the level is its idle offset (+2), not
    a busy-idle mix (+1) it never had, taken at idle power. On gpu-node-002 it ended 4 minutes
    before: too few samples at the current load to say anything."""

    def override(node: str, gpu: str, metric: str, t: np.ndarray) -> np.ndarray | None:
        if node not in {"gpu-node-001", "gpu-node-002"}:
            return None
        busy = t < (52 if node == "gpu-node-001" else 56)
        watts = np.where(busy, 600.0, 60.0)
        if metric == "DCGM_FI_DEV_POWER_USAGE":
            return watts
        if metric == "DCGM_FI_DEV_GPU_TEMP":
            return 30.0 + 0.1 * watts + (np.where(busy, -3.0, 2.0) if gpu == "0" else 0.0)
        return None

    frames, graph = fleet(override)
    f = build_features(frames, graph, END)
    assert f.loc["gpu-node-001/0", "temp_vs_node"] == pytest.approx(2.0, abs=1e-9)
    assert f.loc["gpu-node-001/0", "power_level"] == pytest.approx(60.0)
    assert np.isnan(f.loc["gpu-node-002/0", "temp_vs_node"])


def test_a_temperature_slope_needs_most_of_the_window() -> None:
    """GPU 1 of two nodes warms 0.1 degree a minute away from its siblings; gpu-node-002 stopped
    reporting for 21 of the window's 30 minutes (a reboot, a scrape gap). The few samples it has
    left still line up, but a slope over them is several times noisier than over a whole window:
    no slope is taken there, rather than a wild one (dev seed 101 paged twice on exactly this).
    """

    def override(node: str, gpu: str, metric: str, t: np.ndarray) -> np.ndarray | None:
        if gpu == "1" and metric == "DCGM_FI_DEV_GPU_TEMP":
            return 30.0 + 0.1 * (400.0 + 10.0) + 0.1 * t
        return None

    def drop(gpu: pd.DataFrame) -> pd.DataFrame:
        minute = (gpu["ts"] - gpu["ts"].min()) / pd.Timedelta(minutes=1)
        gap = (gpu["node"] == "gpu-node-002") & minute.between(35, 55)
        return gpu[~gap]

    frames, graph = fleet(override, drop=drop)
    f = build_features(frames, graph, END)
    assert abs(f.loc["gpu-node-001/1", "temp_vs_node_slope"] - 0.1) < 1e-9
    assert np.isfinite(f.loc["gpu-node-001/1", "temp_at_power_slope"])
    assert np.isnan(f.loc["gpu-node-002/1", "temp_vs_node_slope"])
    assert np.isnan(f.loc["gpu-node-002/1", "temp_at_power_slope"])


def test_group_slope_is_each_gpus_least_squares_slope_within_its_regimes() -> None:
    """``analysis.stats.group_slope``: per GPU and column, the least-squares slope of the
    column's own non-missing samples against time, pooled within the GPU's regimes (each
    regime's own mean taken out); a NaN in one column does not move another's slope, and a GPU
    with no spread in time has none."""
    from analysis.stats import group_slope

    rng = np.random.default_rng(11)
    n = 240
    keys = pd.Index(np.repeat(["a/0", "a/1", "b/0"], n // 3))
    t = np.tile(np.arange(n // 3, dtype=np.float64), 3)
    regime = rng.random(n) < 0.5
    values = pd.DataFrame(
        {
            "x": 0.3 * t + 5.0 * regime + rng.normal(0, 0.2, n),
            "y": -0.1 * t + rng.normal(0, 0.2, n),
        }
    )
    values.loc[rng.random(n) < 0.2, "x"] = np.nan
    index = pd.Index(["a/0", "a/1", "b/0", "c/0"])
    got = group_slope(values, t, keys, index, regime=regime)
    for key in ["a/0", "a/1", "b/0"]:
        for column in ["x", "y"]:
            mine = (keys == key) & values[column].notna().to_numpy()
            tt, vv, rr = t[mine], values[column].to_numpy()[mine], regime[mine]
            dt, dv = tt.copy(), vv.copy()
            for r in (False, True):
                dt[rr == r] -= tt[rr == r].mean()
                dv[rr == r] -= vv[rr == r].mean()
            assert got.loc[key, column] == pytest.approx((dt * dv).mean() / (dt * dt).mean())
    assert got.loc["a/0", "x"] == pytest.approx(0.3, abs=0.02)
    assert got.loc["b/0", "y"] == pytest.approx(-0.1, abs=0.02)
    assert got.loc["c/0"].isna().all()  # no samples
    flat = group_slope(values, np.zeros(n), keys, index)
    assert flat.isna().all().all()  # no spread in time: no slope
