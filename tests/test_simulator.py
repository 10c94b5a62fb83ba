"""The fleet simulator: determinism, fault signatures, shared faults, files, CLI, live exporter."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from typer.testing import CliRunner

from analysis.types import FleetFrames
from bot.cli import build_app
from storage.simulator import FAULT_KINDS, FleetSimulator, FleetSpec, make_fault
from storage.simulator.exporter import LiveFleet, build_registry, start
from storage.simulator.faults import TARGET_LEVEL, draw_schedule
from storage.source import MetricsSource, MetricsSourceError
from storage.topology import load_topology

SPEC = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
T0 = datetime(2026, 11, 20, tzinfo=UTC)
DAY = timedelta(days=1)
MIN = timedelta(minutes=1)
ONSET = T0 + timedelta(hours=3)
SEED = 11

TARGETS = {
    "fan": "gpu-node-002",
    "thermal_interface": "gpu-node-002/1",
    "hbm": "gpu-node-002/1",
    "nvlink": "gpu-node-002/1",
    "pcie": "gpu-node-002/1",
    "pdu": "pdu-a1",
    "cooling": "crac-a1",
    "switch": "leaf-a1",
}


def _sim(faults: list | None = None, **kw: object) -> FleetSimulator:
    """A small fleet for one day; healthy unless faults are given."""
    args: dict = {"start": T0, "duration": DAY, "seed": SEED}
    args.update(kw)
    if faults is None and "healthy" not in args and "fault_rate" not in args:
        args["healthy"] = True
    return FleetSimulator(SPEC, faults=faults, **args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def healthy() -> FleetSimulator:
    """The healthy run every faulted run is compared with."""
    return _sim()


def _wide(frames: FleetFrames, metric: str) -> pd.DataFrame:
    """GPU metric as time x '<node>/<gpu>'."""
    df = frames.gpu[frames.gpu.metric == metric]
    out = df.assign(key=df.node + "/" + df.gpu).pivot(index="ts", columns="key", values="value")
    return out


def _node_wide(frames: FleetFrames, metric: str, sensor: str) -> pd.DataFrame:
    """Node metric as time x node."""
    df = frames.node[(frames.node.metric == metric) & (frames.node.sensor == sensor)]
    return df.pivot(index="ts", columns="node", values="value")


def _comp(frames: FleetFrames, component: str, metric: str) -> pd.Series:
    """One component series over time."""
    df = frames.component
    df = df[(df.component == component) & (df.metric == metric)]
    return df.set_index("ts")["value"]


def test_fleet_spec_topology_matches_names_and_roundtrips(tmp_path: Path) -> None:
    topo = FleetSpec().topology()
    assert len(topo.racks) == 4 and len(topo.nodes) == 32
    assert topo.racks[0].id == "rack-a1" and topo.racks[0].nodes[0] == "gpu-node-001"
    assert topo.upstream_of("gpu-node-009") == {
        "power": ("pdu-a2",),
        "cooling": ("crac-a2",),
        "network": ("leaf-a2",),
    }
    assert topo.components["crac-a3"].kind == "cooling"
    assert topo.components["pdu-a1"].metrics["output_volts"] == 'pdu_output_volts{pdu="pdu-a1"}'
    sim = _sim(duration=timedelta(hours=1))
    sim.write_history(tmp_path)
    assert load_topology(tmp_path / "topology.yaml") == sim.topology


def test_implements_metrics_source_and_fetch_honours_window_and_step(
    healthy: FleetSimulator,
) -> None:
    assert isinstance(healthy, MetricsSource)
    start, end = T0 + timedelta(hours=5), T0 + timedelta(hours=6)
    frames = healthy.fetch(start, end, timedelta(minutes=5))
    for df in (frames.gpu, frames.node, frames.component, frames.up):
        ts = sorted(df.ts.unique())
        assert ts[0] >= pd.Timestamp(start) and ts[-1] <= pd.Timestamp(end)
        assert all((t - pd.Timestamp(start)) % timedelta(minutes=5) == timedelta(0) for t in ts)
    assert len(frames.up.ts.unique()) == 13
    assert str(frames.gpu.ts.dtype) == "datetime64[ns, UTC]"
    assert list(frames.gpu.columns) == ["ts", "node", "gpu", "metric", "value"]
    assert list(frames.node.columns) == ["ts", "node", "metric", "sensor", "value"]
    assert set(frames.node.sensor) >= {"FAN1", "FAN6", "Inlet Temp", "PSU1 12V", ""}
    assert set(frames.component.metric) == {
        "output_watts",
        "output_volts",
        "supply_temp_celsius",
        "port_errors_total",
    }
    assert set(frames.up.job) == {"dcgm", "ipmi", "node"}
    assert len(frames.gpus) == SPEC.n_gpus
    # the 1-minute fetch of the same hour holds the 5-minute samples exactly
    fine = healthy.fetch(start, end, MIN).gpu
    merged = frames.gpu.merge(fine, on=["ts", "node", "gpu", "metric"], suffixes=("", "_1m"))
    assert len(merged) == len(frames.gpu)
    assert (merged.value == merged.value_1m).all()
    # outside the history: no rows; naive times: a clear error
    before = healthy.fetch(T0 - timedelta(hours=2), T0 - timedelta(hours=1), MIN)
    assert before.gpu.empty and before.up.empty
    with pytest.raises(MetricsSourceError, match="timezone"):
        healthy.fetch(datetime(2026, 11, 20, 5), datetime(2026, 11, 20, 6), MIN)


def test_same_seed_same_history_different_seed_differs(tmp_path: Path) -> None:
    a = _sim(fault_rate=40.0)
    b = _sim(fault_rate=40.0)
    c = _sim(fault_rate=40.0, seed=SEED + 1)
    assert a.faults == b.faults and len(a.faults) > 0
    window = (T0 + timedelta(hours=10), T0 + timedelta(hours=14), MIN)
    fa, fb, fc = a.fetch(*window), b.fetch(*window), c.fetch(*window)
    for name in ("gpu", "node", "component", "up"):
        pd.testing.assert_frame_equal(getattr(fa, name), getattr(fb, name))
    assert not fa.gpu.value.equals(fc.gpu.value)
    assert a.faults != c.faults
    a.write_history(tmp_path / "a")
    b.write_history(tmp_path / "b")
    for name in ("metrics.om", "topology.yaml", "faults.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_normal_behaviour_is_not_flat(healthy: FleetSimulator) -> None:
    frames = healthy.fetch(T0, T0 + DAY - MIN, MIN)
    util = _wide(frames, "DCGM_FI_DEV_GPU_UTIL")
    temp = _wide(frames, "DCGM_FI_DEV_GPU_TEMP")
    power = _wide(frames, "DCGM_FI_DEV_POWER_USAGE")
    assert util.max().max() > 80 and (util == 0).any().any()  # jobs and idle time
    assert temp.min().min() >= 25 and temp.max().max() < 86  # no healthy GPU throttles
    # temperature follows power
    assert np.corrcoef(temp.stack(), power.stack())[0, 1] > 0.8
    # per-GPU offsets: at the same (busy) time GPUs of a node differ
    assert temp.std(axis=1).mean() > 1.0
    # harmless application XIDs only, and some scrape gaps
    xids = set(frames.gpu[frames.gpu.metric == "DCGM_FI_DEV_XID_ERRORS"].value.unique())
    assert xids <= {0, 13, 31, 43}
    assert (frames.up.value == 0).any()


def _precursor(sim: FleetSimulator, kind: str) -> tuple[datetime, datetime]:
    """The last 40 % of the fault's precursor (where every signature is strong)."""
    f = sim.faults[0]
    assert f.kind == kind and f.failure is not None
    return f.onset + (f.failure - f.onset) * 0.6, f.failure - 2 * MIN


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_fault_has_its_precursor_and_nothing_else_moves(
    kind: str, healthy: FleetSimulator
) -> None:
    fault = make_fault(kind, TARGETS[kind], ONSET, spec=SPEC)
    sim = _sim([fault])
    assert sim.faults == (fault,)
    lo, hi = _precursor(sim, kind)
    f, h = sim.fetch(lo, hi, MIN), healthy.fetch(lo, hi, MIN)
    before_f = sim.fetch(T0, ONSET - MIN, MIN)
    before_h = healthy.fetch(T0, ONSET - MIN, MIN)
    pd.testing.assert_frame_equal(before_f.gpu, before_h.gpu)  # nothing before the onset
    affected = list(fault.affected)
    others = [k for k in SPEC.gpu_keys if k not in affected]

    def delta(metric: str) -> pd.Series:
        """Per GPU: faulted minus healthy, mean over the late precursor."""
        return (_wide(f, metric) - _wide(h, metric)).mean()

    def growth(frames: FleetFrames, metric: str) -> pd.Series:
        """Per GPU: counter increase over the late precursor."""
        w = _wide(frames, metric)
        return w.max() - w.min()

    if kind == "fan":
        fans = [_node_wide(f, "ipmi_fan_speed_rpm", f"FAN{k}") for k in range(1, 7)]
        hfans = [_node_wide(h, "ipmi_fan_speed_rpm", f"FAN{k}") for k in range(1, 7)]
        ratios = [(a / b)[fault.target].min() for a, b in zip(fans, hfans, strict=True)]
        assert min(ratios) < 0.4  # one fan winds down
        assert max(_wide(f, "DCGM_FI_DEV_GPU_TEMP")[affected].max()) >= 86
        assert growth(f, "DCGM_FI_DEV_THERMAL_VIOLATION")[affected].max() > 0
        assert (delta("DCGM_FI_DEV_SM_CLOCK")[affected] < 0).any()
        other_nodes = [n for n in SPEC.node_names if n != fault.target]
        for a, b in zip(fans, hfans, strict=True):
            assert ((a[other_nodes] - b[other_nodes]).abs().max() < 300).all()
    elif kind == "thermal_interface":
        d = delta("DCGM_FI_DEV_GPU_TEMP")
        assert d[affected[0]] > 8 and d[others].abs().max() < 1.5
    elif kind == "hbm":
        sbe_f, sbe_h = (
            growth(f, "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"),
            growth(h, "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"),
        )
        assert sbe_f[affected[0]] > 100
        assert (sbe_f[others] == sbe_h[others]).all()
        rows = _wide(f, "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS")
        assert rows[affected[0]].iloc[-1] > rows[affected[0]].iloc[0] - 0.5
        assert rows[affected[0]].iloc[-1] >= 1
        assert _wide(f, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL").max().max() == 0  # not yet
    elif kind == "nvlink":
        crc = growth(f, "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL")
        assert crc[affected[0]] > 1000
        hcrc = growth(h, "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL")
        assert (crc[others] == hcrc[others]).all()
    elif kind == "pcie":
        rep = growth(f, "DCGM_FI_DEV_PCIE_REPLAY_COUNTER")
        assert rep[affected[0]] > 200
        assert (rep[others] == growth(h, "DCGM_FI_DEV_PCIE_REPLAY_COUNTER")[others]).all()
    elif kind == "pdu":
        assert (
            _comp(f, "pdu-a1", "output_volts").min() < _comp(h, "pdu-a1", "output_volts").min() - 5
        )
        for psu in ("PSU1 12V", "PSU2 12V"):
            dv = _node_wide(f, "ipmi_voltage_volts", psu) - _node_wide(h, "ipmi_voltage_volts", psu)
            assert (dv.mean()[["gpu-node-001", "gpu-node-002"]] < -0.1).all()
            assert (dv.mean()[["gpu-node-003", "gpu-node-004"]] == 0).all()
        pv_f = growth(f, "DCGM_FI_DEV_POWER_VIOLATION")
        pv_h = growth(h, "DCGM_FI_DEV_POWER_VIOLATION")
        assert pv_f[affected].sum() > 2 * pv_h[affected].sum() + 60e6
        assert (pv_f[others] == pv_h[others]).all()
    elif kind == "cooling":
        supply = _comp(f, "crac-a1", "supply_temp_celsius") - _comp(
            h, "crac-a1", "supply_temp_celsius"
        )
        assert supply.mean() > 6
        inlet = (
            _node_wide(f, "ipmi_temperature_celsius", "Inlet Temp")
            - _node_wide(h, "ipmi_temperature_celsius", "Inlet Temp")
        ).mean()
        assert (inlet[["gpu-node-001", "gpu-node-002"]] > 5).all()
        assert (inlet[["gpu-node-003", "gpu-node-004"]].abs() < 0.5).all()
        assert (delta("DCGM_FI_DEV_GPU_TEMP")[affected] > 4).all()
    elif kind == "switch":
        errs_f = _comp(f, "leaf-a1", "port_errors_total")
        errs_h = _comp(h, "leaf-a1", "port_errors_total")
        assert errs_f.iloc[-1] - errs_f.iloc[0] > 10 * (errs_h.iloc[-1] - errs_h.iloc[0]) + 100
        du = _wide(f, "DCGM_FI_DEV_GPU_UTIL") - _wide(h, "DCGM_FI_DEV_GPU_UTIL")
        busy = _wide(h, "DCGM_FI_DEV_GPU_UTIL")[affected].mean() > 20
        assert (du[affected].min()[busy] < -5).all()
        assert (du[others] == 0).all().all()
    # GPUs of the other rack never see a GPU-, node- or rack-level fault on rack a1
    other_rack = [k for k in SPEC.gpu_keys if k.split("/")[0] in ("gpu-node-003", "gpu-node-004")]
    whole_f, whole_h = sim.fetch(T0, T0 + DAY - MIN, MIN), healthy.fetch(T0, T0 + DAY - MIN, MIN)
    gf = whole_f.gpu[(whole_f.gpu.node + "/" + whole_f.gpu.gpu).isin(other_rack)]
    gh = whole_h.gpu[(whole_h.gpu.node + "/" + whole_h.gpu.gpu).isin(other_rack)]
    pd.testing.assert_frame_equal(gf.reset_index(drop=True), gh.reset_index(drop=True))


@pytest.mark.parametrize("kind", ["pdu", "cooling", "switch"])
def test_shared_fault_reaches_every_node_behind_its_component(kind: str) -> None:
    fault = make_fault(kind, TARGETS[kind], ONSET, spec=SPEC)
    assert fault.affected == tuple(f"gpu-node-00{n}/{g}" for n in (1, 2) for g in range(4))
    sim = _sim([fault])
    assert fault.failure is not None
    after = sim.fetch(fault.failure + 5 * MIN, fault.failure + 60 * MIN, MIN)
    if kind in ("pdu", "cooling"):  # the rack goes dark: every node's targets are down
        up = after.up[after.up.node.isin(["gpu-node-001", "gpu-node-002"])]
        assert (up.value == 0).all() and len(up) > 0
        assert not after.gpu.node.isin(["gpu-node-001", "gpu-node-002"]).any()
        other = after.up[after.up.node.isin(["gpu-node-003", "gpu-node-004"])]
        assert other.value.mean() > 0.9
    else:  # links down: every job on the rack dies
        util = _wide(after, "DCGM_FI_DEV_GPU_UTIL")
        assert (util[list(fault.affected)] == 0).all().all()
    lo, hi = _precursor(sim, kind)
    pre = sim.fetch(lo, hi, MIN)
    if kind == "pdu":
        psu = _node_wide(pre, "ipmi_voltage_volts", "PSU1 12V")
        assert (
            psu[["gpu-node-001", "gpu-node-002"]].min()
            < psu[["gpu-node-003", "gpu-node-004"]].min().min() - 0.2
        ).all()
    elif kind == "cooling":
        inlet = _node_wide(pre, "ipmi_temperature_celsius", "Inlet Temp").mean()
        assert (
            inlet[["gpu-node-001", "gpu-node-002"]]
            > inlet[["gpu-node-003", "gpu-node-004"]].max() + 4
        ).all()


def test_pcie_fault_gpu_falls_off_the_bus_and_its_series_vanish() -> None:
    fault = make_fault("pcie", "gpu-node-003/2", ONSET, spec=SPEC, precursor=timedelta(hours=3))
    sim = _sim([fault])
    assert fault.failure is not None
    at_fail = sim.fetch(fault.failure, fault.failure, MIN).gpu
    xid = at_fail[
        (at_fail.node == "gpu-node-003")
        & (at_fail.gpu == "2")
        & (at_fail.metric == "DCGM_FI_DEV_XID_ERRORS")
    ]
    assert xid.value.tolist() == [79.0]
    after = sim.fetch(fault.failure + MIN, fault.failure + timedelta(hours=2), MIN)
    mine = after.gpu[(after.gpu.node == "gpu-node-003") & (after.gpu.gpu == "2")]
    assert mine.empty
    assert ("gpu-node-003", "1") in {(r.node, r.gpu) for r in after.gpus}
    dcgm_up = after.up[(after.up.node == "gpu-node-003") & (after.up.job == "dcgm")]
    assert dcgm_up.value.mean() > 0.9  # the exporter is fine; the GPU is gone
    # repaired later: the GPU is back with fresh counters
    repaired = sim.repairs[fault.id]
    later = sim.fetch(repaired + 10 * MIN, repaired + 20 * MIN, MIN).gpu
    back = later[(later.node == "gpu-node-003") & (later.gpu == "2")]
    assert not back.empty
    assert back[back.metric == "DCGM_FI_DEV_PCIE_REPLAY_COUNTER"].value.max() < 50


def test_hbm_failure_raises_dbe_xids_and_remap_failure() -> None:
    fault = make_fault("hbm", "gpu-node-001/0", ONSET, spec=SPEC)
    sim = _sim([fault])
    assert fault.failure is not None
    frames = sim.fetch(fault.failure, fault.failure + 10 * MIN, MIN)
    mine = frames.gpu[(frames.gpu.node == "gpu-node-001") & (frames.gpu.gpu == "0")]
    by = mine.groupby("metric").value
    assert by.max()["DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"] >= 1
    assert by.max()["DCGM_FI_DEV_ROW_REMAP_FAILURE"] == 1
    assert by.max()["DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"] == 1
    assert {48.0, 63.0, 64.0} <= set(mine[mine.metric == "DCGM_FI_DEV_XID_ERRORS"].value)
    assert mine[mine.metric == "DCGM_FI_DEV_GPU_UTIL"].value.iloc[3:].max() == 0
    # the opt-in count gauge keeps every code of the last 5 minutes (the gauge only the last)
    family = next(f for f in sim.families() if f.name == "DCGM_EXP_XID_ERRORS_COUNT")
    i = sim.index_at(fault.failure + 2 * MIN)
    seen = {
        dict(s.labels)["xid"]: s.values[i]
        for s in family.series
        if dict(s.labels)["Hostname"] == "gpu-node-001" and dict(s.labels)["gpu"] == "0"
    }
    assert seen["48"] == 1 and seen["63"] == 1 and seen["64"] == 1


def test_random_schedule_has_every_kind_stable_ids_and_no_overlap() -> None:
    spec = FleetSpec()
    end = T0 + timedelta(days=3)
    faults = draw_schedule(spec, start=T0, end=end, warmup=DAY, seed=5)
    assert faults == draw_schedule(spec, start=T0, end=end, warmup=DAY, seed=5)
    assert {f.kind for f in faults} == set(FAULT_KINDS)
    assert len({f.id for f in faults}) == len(faults)
    for f in faults:
        assert f.failure is not None and T0 + DAY <= f.onset < f.failure <= end
        lo, hi = (f.failure - f.onset) / timedelta(hours=1), TARGET_LEVEL[f.kind]
        assert 1.9 < lo < 12.1
        if hi == "gpu":
            assert f.affected == (f.target,)
    spans = {}
    for f in faults:
        for key in f.affected:
            spans.setdefault(key, []).append((f.onset, f.failure))
    for intervals in spans.values():
        intervals.sort()
        for (_a0, a1), (b0, _b1) in itertools.pairwise(intervals):
            assert b0 > a1  # never two faults at once on a GPU
    as_json = json.loads(json.dumps([f.as_dict() for f in faults]))
    assert set(as_json[0]) == {"id", "kind", "target", "affected", "onset", "failure"}


def test_fault_tables_cover_every_kind_and_name_real_metrics() -> None:
    from storage.simulator import FAULT_MIX, FAULT_SIGNALS, GPU_METRICS, NODE_SERIES
    from storage.simulator.faults import PRECURSOR_HOURS

    assert set(FAULT_MIX) == set(FAULT_SIGNALS) == set(PRECURSOR_HOURS) == set(FAULT_KINDS)
    assert abs(sum(FAULT_MIX.values()) - 1.0) < 1e-9
    components = {k for c in SPEC.topology().components.values() for k in c.metrics}
    known = set(GPU_METRICS) | {s[0] for s in NODE_SERIES} | components
    for kind, signals in FAULT_SIGNALS.items():
        assert set(signals) <= known, kind


def test_make_fault_rejects_targets_of_the_wrong_kind() -> None:
    with pytest.raises(ValueError, match="<node>/<gpu>"):
        make_fault("hbm", "gpu-node-001", ONSET, spec=SPEC)
    with pytest.raises(ValueError, match="pdu component"):
        make_fault("pdu", "crac-a1", ONSET, spec=SPEC)
    with pytest.raises(ValueError, match="unknown fault kind"):
        make_fault("gremlins", "gpu-node-001", ONSET, spec=SPEC)
    with pytest.raises(ValueError, match="node of this fleet"):
        make_fault("fan", "gpu-node-099", ONSET, spec=SPEC)


def _tiny() -> FleetSimulator:
    """A two-GPU fleet for a few hours with a switch fault (so a counter is in the file)."""
    spec = FleetSpec(racks=1, nodes_per_rack=1, gpus_per_node=2)
    fault = make_fault(
        "switch", "leaf-a1", T0 + timedelta(hours=1), spec=spec, precursor=timedelta(hours=2)
    )
    return FleetSimulator(spec, start=T0, duration=timedelta(hours=4), seed=3, faults=[fault])


def test_openmetrics_file_parses_and_matches_fetch(tmp_path: Path) -> None:
    sim = _tiny()
    sim.write_history(tmp_path)
    text = (tmp_path / "metrics.om").read_text()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["switch_port_errors"].type == "counter"
    assert families["DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"].type == "gauge"
    assert {"up", "ipmi_fan_speed_rpm", "pdu_output_volts", "node_hwmon_temp_celsius"} <= set(
        families
    )
    temp = families["DCGM_FI_DEV_GPU_TEMP"].samples
    labels = temp[0].labels
    assert {
        "gpu",
        "UUID",
        "device",
        "modelName",
        "Hostname",
        "pci_bus_id",
        "instance",
        "job",
    } <= set(labels)
    assert (
        labels["instance"] == "gpu-node-001:9400" and labels["modelName"] == "NVIDIA H100 80GB HBM3"
    )
    fan = families["ipmi_fan_speed_rpm"].samples[0]
    assert fan.labels["instance"] == "gpu-node-001:9290" and fan.labels["name"] == "FAN1"
    # the file and fetch() agree sample for sample
    frames = sim.fetch(sim.start, sim.end, MIN)
    g = frames.gpu[
        (frames.gpu.metric == "DCGM_FI_DEV_GPU_TEMP") & (frames.gpu.gpu == labels["gpu"])
    ]
    from_file = {float(s.timestamp): s.value for s in temp if s.labels["gpu"] == labels["gpu"]}
    from_fetch = {t.timestamp(): v for t, v in zip(g.ts, g.value, strict=True)}
    assert from_file == from_fetch
    faults = json.loads((tmp_path / "faults.json").read_text())
    assert faults[0]["kind"] == "switch" and faults[0]["onset"] == "2026-11-20T01:00:00Z"


@pytest.mark.prometheus
def test_promtool_loads_the_history(tmp_path: Path) -> None:
    promtool = shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
    )
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing under CI=true: apt-get install prometheus")
        pytest.skip("promtool not installed (apt-get install --no-install-recommends prometheus)")
    sim = _tiny()
    sim.write_history(tmp_path)
    result = subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=24h",
            str(tmp_path / "metrics.om"),
            str(tmp_path / "tsdb"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert any((tmp_path / "tsdb").iterdir())
    n_series = sum(len(f.series) for f in sim.families())
    assert str(n_series) in result.stdout


def test_cli_history_writes_three_files_and_rejects_bad_flags(tmp_path: Path) -> None:
    runner = CliRunner()
    args = [
        "simulate",
        "history",
        "--days",
        "0.25",
        "--racks",
        "1",
        "--nodes",
        "2",
        "--gpus",
        "2",
        "--seed",
        "4",
        "--start",
        "2026-11-20T00:00:00Z",
    ]
    r1 = runner.invoke(build_app(), [*args, "--out", str(tmp_path / "a")])
    assert r1.exit_code == 0, r1.output
    r2 = runner.invoke(build_app(), [*args, "--out", str(tmp_path / "b")])
    assert r2.exit_code == 0, r2.output
    for name in ("metrics.om", "topology.yaml", "faults.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert "DCGM_FI_DEV_GPU_TEMP{" in (tmp_path / "a" / "metrics.om").read_text()
    for bad in (["--step", "7x"], ["--gpus", "0"], ["--days", "-1"], ["--start", "yesterday"]):
        r = runner.invoke(build_app(), [*args, *bad, "--out", str(tmp_path / "c")])
        assert r.exit_code == 2, (bad, r.output)
        assert "Traceback" not in r.output


def test_live_exporter_serves_the_current_sample() -> None:
    now = [1_000_000.0]
    live = LiveFleet(SPEC, seed=2, speed=60.0, clock=lambda: now[0], origin=T0, healthy=True)
    text = generate_latest(build_registry(live)).decode()
    assert 'DCGM_FI_DEV_GPU_TEMP{Hostname="gpu-node-001"' in text
    assert (
        'switch_port_errors_total{instance="facility-exporter:9116",job="facility",switch="leaf-a1"}'
        in text
    )
    assert "\nup{" not in text
    now[0] += 600.0  # ten wall minutes at x60 = ten simulated hours
    assert live.now() == T0 + timedelta(hours=10)
    sim, _fam, index = live.snapshot()
    assert index == 600
    frames = sim.fetch(live.now(), live.now(), MIN)
    temp = frames.gpu[
        (frames.gpu.metric == "DCGM_FI_DEV_GPU_TEMP")
        & (frames.gpu.node == "gpu-node-001")
        & (frames.gpu.gpu == "0")
    ]
    server, _thread = start(live, host="127.0.0.1", port=0)
    try:
        port = server.server_port
        body = (
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        )
    finally:
        server.shutdown()
        server.server_close()
    line = next(
        x
        for x in body.splitlines()
        if x.startswith("DCGM_FI_DEV_GPU_TEMP{")
        and 'Hostname="gpu-node-001"' in x
        and 'gpu="0"' in x
    )
    assert float(line.rsplit(" ", 1)[1]) == temp.value.iloc[0]


def test_deploy_topology_example_loads_with_its_override() -> None:
    topo = load_topology(Path(__file__).resolve().parents[1] / "deploy" / "topology.example.yaml")
    assert topo.upstream_of("gpu-node-008") == {
        "power": ("pdu-a2", "pdu-a1"),
        "cooling": ("crac-a2",),
        "network": ("leaf-a1",),
    }
    assert topo.upstream_of("gpu-node-005")["network"] == ("leaf-a2",)
    sim_components = FleetSpec(racks=2, nodes_per_rack=4).topology().components
    assert dict(topo.components) == dict(sim_components)


def test_fetch_between_samples_takes_the_latest_sample_like_a_range_query(
    healthy: FleetSimulator,
) -> None:
    at = T0 + timedelta(hours=7, seconds=30)
    frames = healthy.fetch(at, at + timedelta(minutes=2), MIN)
    assert sorted(frames.gpu.ts.unique()) == [pd.Timestamp(at + k * MIN) for k in range(3)]
    exact = healthy.fetch(at - timedelta(seconds=30), at - timedelta(seconds=30), MIN).gpu
    first = frames.gpu[frames.gpu.ts == pd.Timestamp(at)]
    assert first.value.tolist() == exact.value.tolist()


@pytest.mark.parametrize(
    ("kind", "metric"),
    [
        ("hbm", "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"),
        ("nvlink", "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL"),
        ("pcie", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER"),
    ],
)
def test_counter_precursors_accelerate_towards_the_failure(kind: str, metric: str) -> None:
    fault = make_fault(kind, "gpu-node-004/3", ONSET, spec=SPEC)
    sim = _sim([fault])
    assert fault.failure is not None
    span = fault.failure - fault.onset
    thirds = [
        sim.fetch(fault.onset + span * k / 3, fault.onset + span * (k + 1) / 3 - MIN, MIN)
        for k in range(3)
    ]
    rises = []
    for frames in thirds:
        w = _wide(frames, metric)["gpu-node-004/3"]
        rises.append(w.iloc[-1] - w.iloc[0])
    assert rises[0] < rises[1] < rises[2]
    assert rises[0] >= 1  # already visible in the first third


def test_cli_history_injects_the_faults_of_a_faults_file(tmp_path: Path) -> None:
    spec = FleetSpec(racks=1, nodes_per_rack=2, gpus_per_node=2)
    fault = make_fault(
        "pcie", "gpu-node-002/1", T0 + timedelta(hours=1), spec=spec, precursor=timedelta(hours=2)
    )
    src = tmp_path / "in.json"
    src.write_text(json.dumps([fault.as_dict() | {"affected": []}]))
    args = [
        "simulate",
        "history",
        "--days",
        "0.25",
        "--racks",
        "1",
        "--nodes",
        "2",
        "--gpus",
        "2",
        "--start",
        "2026-11-20T00:00:00Z",
    ]
    r = CliRunner().invoke(build_app(), [*args, "--faults", str(src), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    written = json.loads((tmp_path / "o" / "faults.json").read_text())
    assert written == [fault.as_dict()]
    src.write_text(json.dumps([fault.as_dict() | {"target": "gpu-node-009/1"}]))
    r = CliRunner().invoke(build_app(), [*args, "--faults", str(src), "--out", str(tmp_path / "p")])
    assert r.exit_code == 2 and "gpu-node-009/1" in r.output
