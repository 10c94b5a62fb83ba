"""Rule hints: operator advice for the obvious physical cases (a dead fan, a DBE, a sagging PDU).

The hints read the group's worst recent value of each template variable against its normal level
(``ref``); every threshold is named below.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from analysis.explain.group import Group
from analysis.explain.prepare import _Prepared, _worst_fan

# Latest samples of each GPU whose worst (max) value the hints read.
RECENT_SAMPLES = 5
# GPU temperature (°C) above which the GPU is called hot (data-centre GPUs throttle near 90 °C).
HOT_GPU_C = 90.0
# A fan below this speed (rpm) has failed ...
DEAD_FAN_RPM = 1000.0
# ... as has one at less than half its normal share of the node's median fan (change vs normal).
DEAD_FAN_CHANGE = -0.5
# A fan this much slower than its normal share (change vs normal) is worth replacing now.
SLOW_FAN_CHANGE = -0.25
# Inlet air this many °C above its normal level points at the rack's cooling.
INLET_RISE_C = 4.0
# CRAC supply air this many °C above its normal level points at the cooling unit.
SUPPLY_RISE_C = 2.0
# "Clearly above normal": over this multiple of the normal level (and over normal + a floor).
ABOVE_NORMAL_FACTOR = 3.0
# Floors of "clearly above normal", in each variable's units (counters: events in the counter
# window, ``COUNTER_WINDOW_MINUTES``):
THERMAL_THROTTLE_FLOOR = 0.05  # share of the time thermally throttled
POWER_CAP_FLOOR = 0.1  # share of the time power capped
SBE_COUNT_FLOOR = 20.0  # correctable ECC errors
REMAP_ROWS_FLOOR = 0.5  # remapped rows more than the GPU's own normal (one new row is enough)
PCIE_REPLAY_FLOOR = 20.0  # PCIe replays
NVLINK_CRC_FLOOR = 20.0  # NVLink CRC errors
PORT_ERROR_FLOOR = 10.0  # switch port errors
# A GPU silent this long (or two scrape steps, if longer) while its peers report has vanished.
VANISHED_AFTER = pd.Timedelta(minutes=5)
# A supply voltage (PDU output or PSU rail) below this fraction of normal is a sag (-1.5 %).
VOLTAGE_SAG_RATIO = 0.985


def _grace(stamps: pd.Index) -> pd.Timedelta:
    """How long a GPU may miss samples before it counts as gone: a late or missed scrape is not."""
    step = pd.Series(stamps).diff().median() if len(stamps) > 1 else pd.Timedelta(0)
    step = step if isinstance(step, pd.Timedelta) and not pd.isna(step) else pd.Timedelta(0)
    return max(VANISHED_AFTER, 2 * step)


def _silent_nodes(prepared: _Prepared, nodes: set[str]) -> list[str]:
    """Return those of ``nodes`` whose node sensors (fans) stopped before the latest sample."""
    fans = prepared.fans
    if fans.empty or not nodes:
        return []
    stamps = fans.index.to_frame(index=False)
    last = stamps.groupby("node")["ts"].max()
    latest = stamps["ts"].max()
    if not prepared.rows.empty:
        latest = max(latest, prepared.rows.index.get_level_values("ts").max())
    cut = latest - _grace(pd.Index(stamps["ts"].unique()).sort_values())
    return sorted(n for n in nodes if n in last.index and last[n] < cut)


def _hints(
    sample: pd.Series, ref: Mapping[str, float], group: Group, prepared: _Prepared
) -> list[str]:
    """Rule-of-thumb actions for the obvious physical cases."""
    hints: list[str] = []
    rows = prepared.rows
    worst: pd.Series
    if not rows.empty:
        keys = rows.index.get_level_values("key")
        part = rows[keys.isin(group.gpus)]
        worst = (
            part.groupby(level="key").tail(RECENT_SAMPLES).max()
            if not part.empty
            else pd.Series(dtype=float)
        )
        vanished = []
        if not part.empty:
            last_seen = part.index.to_frame(index=False).groupby("key")["ts"].max()
            stamps = rows.index.get_level_values("ts").unique().sort_values()
            latest = stamps.max()
            cut = latest - _grace(stamps)
            vanished = sorted(str(k) for k, ts in last_seen.items() if ts < cut)
    else:
        worst = pd.Series(dtype=float)
        vanished = []

    def get(key: str, src: pd.Series) -> float:
        """Return ``src[key]`` as a float, NaN when missing."""
        v = src.get(key, float("nan"))
        return float(v) if v is not None else float("nan")

    temp = get("temp", worst)
    sensor, change, rpm, _sib = _worst_fan(group, prepared)
    dead_fan = not math.isnan(rpm) and (rpm < DEAD_FAN_RPM or change < DEAD_FAN_CHANGE)
    if temp > HOT_GPU_C and dead_fan:
        hints.append(
            f"GPU at {temp:.0f} °C with {sensor} at {rpm:.0f} rpm: replace the failed fan on "
            f"{', '.join(group.nodes)} (cooling)."
        )
    elif temp > HOT_GPU_C:
        hints.append(f"GPU at {temp:.0f} °C: check airflow, fans and the thermal interface.")
    if not (temp > HOT_GPU_C and dead_fan) and not math.isnan(change) and change < SLOW_FAN_CHANGE:
        hints.append(
            f"{sensor} on {', '.join(group.nodes)} runs {abs(change) * 100:.0f} % slower than "
            "normal: replace the fan before the GPUs throttle."
        )
    inlet = get("inlet", sample)
    if not math.isnan(inlet) and "inlet" in ref and inlet - ref["inlet"] > INLET_RISE_C:
        cid = group.components.get("cooling", "the rack's cooling unit")
        hints.append(
            f"Inlet air {inlet - ref['inlet']:.0f} °C above normal: check {cid} (CRAC/CDU) and "
            "blanking panels."
        )

    def above(key: str, floor: float) -> bool:
        """Whether the group's worst recent value clearly exceeds its normal level."""
        v = get(key, worst)
        r = float(ref.get(key, 0.0) or 0.0)
        return not math.isnan(v) and v > max(floor, ABOVE_NORMAL_FACTOR * r, r + floor)

    # remapped rows are a lifetime level: new ones are the group's level over its own normal (the
    # worst GPU's level against the group's would flag every GPU that carries old rows)
    new_rows = get("remap", sample) - float(ref.get("remap", 0.0) or 0.0)
    if above("thermal_violation", THERMAL_THROTTLE_FLOOR):
        hints.append("Thermal throttling is active: clocks are reduced and jobs run slower.")
    if get("dbe", worst) > 0 or get("xid_memory", worst) > 0:
        hints.append(
            "Uncorrectable ECC (DBE / XID 48/63/64): drain the node, reset the GPU; if it "
            "repeats or row remapping failed, RMA the GPU (HBM)."
        )
    elif get("remap_failure", worst) > 0:
        hints.append("Row remap failure: the HBM is out of spare rows: drain and RMA the GPU.")
    elif above("sbe", SBE_COUNT_FLOOR) or new_rows > REMAP_ROWS_FLOOR:
        hints.append(
            "Correctable ECC errors and remapped rows are climbing: schedule a GPU reset to "
            "apply pending remaps and watch for DBE."
        )
    # GPUs gone with their node's own sensors are a node down, drained or unscraped: not XID 79
    silent_nodes = _silent_nodes(prepared, {k.rpartition("/")[0] for k in vanished})
    if silent_nodes:
        hints.append(
            f"{', '.join(silent_nodes)} stopped reporting (GPUs and node sensors): check whether "
            "the node is down or drained, or its exporters stopped."
        )
    vanished = [k for k in vanished if k.rpartition("/")[0] not in silent_nodes]
    if get("xid_pcie", worst) > 0 or vanished:
        gone = ", ".join(vanished) if vanished else "the GPU"
        hints.append(
            f"XID 79: {gone} fell off the bus: drain the node, reseat the GPU / check the riser, "
            "then run dcgmi diag."
        )
    elif above("pcie", PCIE_REPLAY_FLOOR):
        hints.append("PCIe replays are climbing: check the riser and slot; reseat at next drain.")
    if get("xid_nvlink", worst) > 0 or above("nvlink", NVLINK_CRC_FLOOR):
        hints.append(
            "NVLink CRC errors / XID 74: run `nvidia-smi nvlink -e` and dcgmi diag -r 3; reseat "
            "or replace the NVLink/NVSwitch path."
        )
    for key, comp_kind, text in (
        ("pdu_volts", "pdu", "check {cid}, its breakers and the PSUs it feeds"),
        ("psu_volts", "pdu", "check {cid} and the node PSUs"),
    ):
        v = get(key, sample)
        r = ref.get(key)
        if not math.isnan(v) and r and v < VOLTAGE_SAG_RATIO * r:
            cid = group.components.get(comp_kind, "the PDU")
            hints.append(
                f"Supply voltage sag ({(v - r) / r * 100:+.0f} %): " + text.format(cid=cid) + "."
            )
            break
    if above("power_violation", POWER_CAP_FLOOR):
        hints.append("Power capping is active (power violations): GPUs run below their limit.")
    v = get("supply_temp", sample)
    r = ref.get("supply_temp")
    if not math.isnan(v) and r is not None and v - r > SUPPLY_RISE_C:
        cid = group.components.get("cooling", "the cooling unit")
        hints.append(f"{cid} supply air is {v - r:.0f} °C above normal: check the CRAC/CDU.")
    v = get("port_errors", sample)
    r = ref.get("port_errors")
    if not math.isnan(v) and r is not None and v > max(PORT_ERROR_FLOOR, ABOVE_NORMAL_FACTOR * r):
        cid = group.components.get("switch", "the leaf switch")
        hints.append(f"{cid} port errors are rising: check cables/optics and the switch logs.")
    return hints
