"""The exporter metrics gpu-risk reads, by their real names: one list for every layer.

dcgm-exporter fields (default counters plus the opt-in ones of deploy/dcgm-exporter/counters.csv)
and the ipmi_exporter / node_exporter series. The Prometheus reader queries exactly these, the
simulator emits them, and the features and explanations use the same names.
"""

from __future__ import annotations

DCGM_METRICS: tuple[str, ...] = (
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_MEMORY_TEMP",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_MEM_CLOCK",
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_XID_ERRORS",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE",
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
    "DCGM_FI_DEV_THERMAL_VIOLATION",
    "DCGM_FI_DEV_POWER_VIOLATION",
)

#: dcgm-exporter's opt-in XID counter (deploy/dcgm-exporter/counters.csv): XIDs of each code
#: (label ``xid``) within its window (``--xid-count-window-size``, default 5 min). Unlike the
#: default ``DCGM_FI_DEV_XID_ERRORS`` gauge, which holds only the LAST code, it loses none.
XID_COUNT = "DCGM_EXP_XID_ERRORS_COUNT"
#: The per-class sums of :data:`XID_COUNT` per GPU the reader derives (PromQL ``sum by`` over
#: the ``xid`` label, codes from :data:`HARDWARE_XIDS`), as two GPU series.
XID_HARDWARE_COUNT = "gpu_risk:xid_hardware_count"
XID_OTHER_COUNT = "gpu_risk:xid_other_count"

# ipmi_exporter / node_exporter series, label ``instance="<node>:<port>"``.
NODE_METRICS: tuple[str, ...] = (
    "ipmi_fan_speed_rpm",
    "ipmi_temperature_celsius",
    "ipmi_dcmi_power_consumption_current_watts",
    "ipmi_voltage_volts",
    "node_hwmon_temp_celsius",
)

# ---------------------------------------------------------------------------------------------
# Hardware dependency graph: the kinds of entity and of shared component.
# ---------------------------------------------------------------------------------------------

#: Every kind of node in the dependency graph, leaf first.
ENTITY_KINDS: tuple[str, ...] = ("gpu", "node", "rack", "pdu", "cooling", "switch")
#: The shared facility components a topology file may name (``kind:`` of a component).
COMPONENT_KINDS: tuple[str, ...] = ("pdu", "cooling", "switch")
#: Entities upstream of a GPU, in the order an incident's root cause is searched.
UPSTREAM_KINDS: tuple[str, ...] = ("pdu", "cooling", "switch", "rack", "node")

# ---------------------------------------------------------------------------------------------
# XID error codes, classed by what failed. Source: NVIDIA's "XID Errors" catalogue
# (docs.nvidia.com/deploy/xid-errors), whose "possible causes" column names hardware, driver or
# user application; codes not listed here are treated as unknown (counted, never a fault alone).
# ---------------------------------------------------------------------------------------------

#: Memory: 48 double-bit ECC error, 63 row-remapping / page-retirement event, 64 row remapper or
#: page-retirement failure, 92 high single-bit ECC rate, 94 contained ECC error, 95 uncontained
#: ECC error, 140 unrecovered ECC error.
MEMORY_XIDS: frozenset[int] = frozenset({48, 63, 64, 92, 94, 95, 140})
#: NVLink: 74 NVLink error (link training, CRC or replay failure).
NVLINK_XIDS: frozenset[int] = frozenset({74})
#: PCIe / bus: 79 GPU has fallen off the bus.
PCIE_XIDS: frozenset[int] = frozenset({79})
#: Other hardware: 54 auxiliary power not connected, 56 display engine error, 57 FB link training,
#: 58 unstable video memory interface, 61/62 internal micro-controller breakpoint/halt, 68 video
#: processor exception, 69 graphics engine class error, 119/120 GSP RPC timeout/error,
#: 121 C2C link error.
OTHER_HARDWARE_XIDS: frozenset[int] = frozenset({54, 56, 57, 58, 61, 62, 68, 69, 119, 120, 121})
#: Every XID that means the hardware is failing.
HARDWARE_XIDS: frozenset[int] = MEMORY_XIDS | NVLINK_XIDS | PCIE_XIDS | OTHER_HARDWARE_XIDS
#: User application or driver-side: 13 graphics engine exception, 31 GPU memory page fault,
#: 32 invalid push buffer stream, 43 GPU stopped processing, 45 preemptive cleanup, 109 context
#: switch timeout. They follow jobs, not hardware.
APPLICATION_XIDS: frozenset[int] = frozenset({13, 31, 32, 43, 45, 109})
#: The XIDs the static baseline rule ``GPUHardwareXid`` pages on (as in storage/static-rules.yml):
#: the hardware classes less the display/video codes (54, 56, 57, 58, 68, 69, 121) that
#: data-centre GPUs running compute do not raise.
STATIC_RULE_XIDS: frozenset[int] = MEMORY_XIDS | NVLINK_XIDS | PCIE_XIDS | {61, 62, 119, 120}


def xid_class(code: int) -> str:
    """Return ``memory``, ``nvlink``, ``pcie``, ``hardware``, ``application`` or ``unknown``."""
    for name, codes in (
        ("memory", MEMORY_XIDS),
        ("nvlink", NVLINK_XIDS),
        ("pcie", PCIE_XIDS),
        ("hardware", OTHER_HARDWARE_XIDS),
        ("application", APPLICATION_XIDS),
    ):
        if code in codes:
            return name
    return "unknown"


def xid_regex(codes: frozenset[int]) -> str:
    """Return a PromQL label regex matching exactly these XID codes (``48|61|...``)."""
    return "|".join(str(c) for c in sorted(codes))
