"""The physical causal template: which variables explain an incident, and which edges join them.

- thermal: CRAC supply air -> inlet air -> GPU temperature <- power <- utilisation; fan speed ->
  GPU temperature (throttling and clocks are downstream symptoms, used for hints);
- power: PDU output voltage -> PSU voltage -> power (power violations are symptoms);
- memory: correctable ECC -> remapped rows -> uncorrectable ECC (memory XIDs are symptoms);
- NVLink: switch port errors -> NVLink CRC (XID 74 is a symptom); PCIe replays (XID 79).

The XID classes are the catalogue's (``analysis.catalog``), so every layer reads an XID alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import networkx as nx
import pandas as pd

from analysis.catalog import MEMORY_XIDS, NVLINK_XIDS, PCIE_XIDS
from analysis.context import NODE_FEATURES
from analysis.feature_plan import COUNTERS, GAUGES, TEMP
from analysis.features import NODE_TEMP, RACK_TEMP

GPU_SCOPE = "gpu"
NODE_SCOPE = "node"
Z_ANOMALOUS = 3.0
THROTTLE_KEYS = ("thermal_violation", "power_violation")  # µs counters -> share of time
LOAD_KEYS = ("util", "sm_clock")  # follow the workload: never a fault by themselves
# Counters are read as events in this trailing window (an incident's frames span ~30 min): sparse
# events such as a remapped row stay visible for the whole window, whatever the scrape step.
COUNTER_WINDOW_MINUTES = 30
COUNTER_UNIT = f" in {COUNTER_WINDOW_MINUTES} min"
# The floor of a count's spread: a z-score of 3 takes six events in the window (healthy links and
# HBM see a few retried CRC errors or corrected bits an hour), and a single new remapped row or
# uncorrectable error (rare enough in healthy HBM that one matters) on its own.
EVENT_SCALE = 2.0
RARE_EVENT_SCALE = 0.3

# The workload is conditioned on, not attributed to: GPU temperature is taken "at the same
# power" and power "at the same utilisation" (slopes fitted on the healthy history).
LOAD_ADJUST: tuple[tuple[str, str], ...] = (("temp", "power"), ("power", "util"))


@dataclass(frozen=True)
class Variable:
    """One variable of the causal template and how to read and describe it."""

    key: str
    scope: str  # gpu | node | pdu | cooling | switch
    metric: str  # metric name in the frames (the component's topology key for components)
    label: str
    unit: str
    subsystem: str
    counter: bool = False
    min_scale: float = 1.0
    relative: bool = False  # describe as a percentage change
    bad: int = 1  # the harmful direction: +1 higher is bad, -1 lower is bad, 0 both
    in_scm: bool = True  # False: a symptom (used for target choice and hints only)
    # A lifetime level (rows remapped so far): judged by its change from the entity's own
    # healthy level, since a healthy GPU may carry a few old remapped rows for good.
    own_level: bool = False

    def harm(self, z: float) -> float:
        """``z`` in the harmful direction: 0 for a deviation the harmless way (a cooler GPU)."""
        return abs(z) if self.bad == 0 else max(0.0, z * self.bad)


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "supply_temp",
        "cooling",
        "supply_temp_celsius",
        "CRAC supply air",
        "°C",
        "thermal",
        min_scale=0.3,
    ),
    Variable(
        "inlet", NODE_SCOPE, "ipmi_temperature_celsius", "inlet air", "°C", "thermal", min_scale=0.5
    ),
    # The slowest fan as a fraction of the node's median fan: the fan curve cancels out.
    Variable(
        "fan",
        NODE_SCOPE,
        "ipmi_fan_speed_rpm",
        "slowest fan vs its siblings",
        "",
        "thermal",
        min_scale=0.03,
        bad=-1,
    ),
    Variable(
        "temp", GPU_SCOPE, "DCGM_FI_DEV_GPU_TEMP", "GPU temperature", "°C", "thermal", min_scale=1.0
    ),
    Variable(
        "util",
        GPU_SCOPE,
        "DCGM_FI_DEV_GPU_UTIL",
        "GPU utilisation",
        "%",
        "power",
        min_scale=5.0,
        in_scm=False,
    ),
    Variable(
        "pdu_volts",
        "pdu",
        "output_volts",
        "PDU output voltage",
        "V",
        "power",
        min_scale=0.5,
        relative=True,
        bad=0,
    ),
    Variable(
        "psu_volts",
        NODE_SCOPE,
        "ipmi_voltage_volts",
        "PSU voltage",
        "V",
        "power",
        min_scale=0.05,
        relative=True,
        bad=0,
    ),
    Variable(
        "power",
        GPU_SCOPE,
        "DCGM_FI_DEV_POWER_USAGE",
        "power draw",
        "W",
        "power",
        min_scale=10.0,
        relative=True,
        bad=0,
    ),
    Variable(
        "sbe",
        GPU_SCOPE,
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "correctable ECC errors",
        COUNTER_UNIT,
        "memory",
        counter=True,
        min_scale=EVENT_SCALE,
    ),
    Variable(
        "remap",
        GPU_SCOPE,
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "remapped rows",
        "rows",
        "memory",
        own_level=True,
        min_scale=RARE_EVENT_SCALE,
    ),
    Variable(
        "dbe",
        GPU_SCOPE,
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "uncorrectable ECC (DBE)",
        COUNTER_UNIT,
        "memory",
        counter=True,
        min_scale=RARE_EVENT_SCALE,
    ),
    Variable(
        "port_errors",
        "switch",
        "port_errors",
        "switch port errors",
        COUNTER_UNIT,
        "network",
        counter=True,
        min_scale=EVENT_SCALE,
    ),
    Variable(
        "nvlink",
        GPU_SCOPE,
        "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
        "NVLink CRC errors",
        COUNTER_UNIT,
        "network",
        counter=True,
        min_scale=EVENT_SCALE,
    ),
    Variable(
        "pcie",
        GPU_SCOPE,
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        "PCIe replays",
        COUNTER_UNIT,
        "pcie",
        counter=True,
        min_scale=EVENT_SCALE,
    ),
    # Symptoms: downstream of the causes above, never attributed to.
    Variable(
        "thermal_violation",
        GPU_SCOPE,
        "DCGM_FI_DEV_THERMAL_VIOLATION",
        "thermal throttling",
        "of the time",
        "thermal",
        min_scale=0.05,
        in_scm=False,
    ),
    Variable(
        "sm_clock",
        GPU_SCOPE,
        "DCGM_FI_DEV_SM_CLOCK",
        "SM clock",
        "MHz",
        "thermal",
        min_scale=50.0,
        in_scm=False,
    ),
    Variable(
        "power_violation",
        GPU_SCOPE,
        "DCGM_FI_DEV_POWER_VIOLATION",
        "power capping",
        "of the time",
        "power",
        min_scale=0.05,
        in_scm=False,
    ),
    Variable(
        "uncorrectable_remap",
        GPU_SCOPE,
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "uncorrectable remapped rows",
        "rows",
        "memory",
        own_level=True,
        min_scale=RARE_EVENT_SCALE,
        in_scm=False,
    ),
    Variable(
        "remap_failure",
        GPU_SCOPE,
        "DCGM_FI_DEV_ROW_REMAP_FAILURE",
        "row remap failure",
        "",
        "memory",
        min_scale=0.1,
        in_scm=False,
    ),
    Variable(
        "xid_memory",
        GPU_SCOPE,
        "DCGM_FI_DEV_XID_ERRORS",
        "XID 48/63/64",
        "",
        "memory",
        min_scale=0.1,
        in_scm=False,
    ),
    Variable(
        "xid_nvlink",
        GPU_SCOPE,
        "DCGM_FI_DEV_XID_ERRORS",
        "XID 74",
        "",
        "network",
        min_scale=0.1,
        in_scm=False,
    ),
    Variable(
        "xid_pcie",
        GPU_SCOPE,
        "DCGM_FI_DEV_XID_ERRORS",
        "XID 79",
        "",
        "pcie",
        min_scale=0.1,
        in_scm=False,
    ),
)

VARS: Mapping[str, Variable] = {v.key: v for v in VARIABLES}

# The XID variables: each is 1 when the GPU's last XID is one of its class's codes.
XID_CODES: Mapping[str, frozenset[int]] = {
    "xid_memory": MEMORY_XIDS,
    "xid_nvlink": NVLINK_XIDS,
    "xid_pcie": PCIE_XIDS,
}


@dataclass(frozen=True)
class Edge:
    """A physical cause -> effect edge with the sign physics demands and a prior slope."""

    parent: str
    child: str
    sign: int
    prior: float  # slope in the child's units per parent unit; "ratio" edges scale by medians
    ratio: bool = False  # prior is an elasticity: child_median / parent_median * prior


EDGES: tuple[Edge, ...] = (
    Edge("supply_temp", "inlet", +1, 1.0),
    Edge("inlet", "temp", +1, 1.0),
    Edge("fan", "temp", -1, 12.0),
    Edge("pdu_volts", "psu_volts", +1, 1.0, ratio=True),
    Edge("psu_volts", "power", +1, 1.0, ratio=True),
    Edge("sbe", "remap", +1, 0.0),
    Edge("remap", "dbe", +1, 0.0),
    Edge("port_errors", "nvlink", +1, 0.0),
)


# For each subsystem, the candidate attribution targets in tiers: the first tier holding an
# anomalous variable wins, and within a tier the most anomalous one. The PSU rail comes before GPU
# power because it mediates a PDU sag (power capping follows it, non-linearly).
TARGETS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "thermal": (("temp", "inlet"), ("supply_temp",), ("fan",)),
    "power": (("psu_volts",), ("power",), ("pdu_volts",)),
    "memory": (("dbe", "remap"), ("sbe",)),
    "network": (("nvlink",), ("port_errors",)),
    "pcie": (("pcie",),),
}

COMPONENT_ROLES: Mapping[str, str] = {"pdu": "power", "cooling": "cooling", "switch": "network"}


def _component_key(metric: str) -> str | None:
    """Map a component's topology metric key to a template variable, or None."""
    m = metric.lower()
    if "volt" in m:
        return "pdu_volts"
    if "temp" in m or "celsius" in m:
        return "supply_temp"
    if "error" in m:
        return "port_errors"
    return None


_KEY_OF_METRIC: Mapping[str, str] = MappingProxyType(
    {v.metric: v.key for v in VARIABLES if v.scope in (GPU_SCOPE, NODE_SCOPE)}
)
# The detector's node and rack features by name, with the template variable each one reads
# (``analysis.context``'s node features, ``analysis.features``' temperature of a node or rack).
_NODE_FEATURE_KEYS: Mapping[str, str] = MappingProxyType(
    {
        feature: _KEY_OF_METRIC[metric]
        for feature, metric in {**NODE_FEATURES, RACK_TEMP: TEMP, NODE_TEMP: TEMP}.items()
        if metric is not None and metric in _KEY_OF_METRIC
    }
)
# A GPU feature is named after the metric it reduces: its prefix, longest first.
_GPU_FEATURE_PREFIXES: tuple[tuple[str, str], ...] = tuple(
    sorted(
        (
            (f"{short}_", _KEY_OF_METRIC[metric])
            for metric, short in {**GAUGES, **COUNTERS}.items()
            if metric in _KEY_OF_METRIC
        ),
        key=lambda pk: -len(pk[0]),
    )
)


def evidence_variable(feature: str) -> str | None:
    """The template variable a detector feature (``Evidence.feature``) reads, or None.

    GPU features are named after the metric they reduce (``temp_vs_node``, ``ecc_sbe_rate``:
    ``analysis.feature_plan``), node features after the sensor (``fan_spread``), upstream
    components' as ``<kind>.<metric>``. Workload descriptors (utilisation, clocks) read no
    variable: they are context, never a cause.
    """
    kind, dot, metric = feature.partition(".")
    if dot:
        key = _component_key(metric)
        return key if key is not None and VARS[key].scope == kind else None
    key = _NODE_FEATURE_KEYS.get(feature)
    if key is None:
        name = f"{feature}_"
        key = next((k for prefix, k in _GPU_FEATURE_PREFIXES if name.startswith(prefix)), None)
    return None if key is None or key in LOAD_KEYS else key


def _template(available: set[str]) -> nx.DiGraph:
    """Return the causal template restricted to the available SCM variables."""
    dag = nx.DiGraph()
    dag.add_nodes_from(k for k in available if k in VARS and VARS[k].in_scm)
    for e in EDGES:
        if e.parent in dag and e.child in dag:
            dag.add_edge(e.parent, e.child)
    return dag


def _harm(z: pd.Series) -> dict[str, float]:
    """Return each variable's z in its harmful direction (a cooler GPU is not an anomaly)."""
    out: dict[str, float] = {}
    for key, value in z.items():
        var = VARS.get(str(key))
        if var is None or var.key in LOAD_KEYS:
            continue
        out[var.key] = var.harm(float(value))
    return out
