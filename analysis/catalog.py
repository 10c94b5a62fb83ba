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

# ipmi_exporter / node_exporter series, label ``instance="<node>:<port>"``.
NODE_METRICS: tuple[str, ...] = (
    "ipmi_fan_speed_rpm",
    "ipmi_temperature_celsius",
    "ipmi_dcmi_power_consumption_current_watts",
    "ipmi_voltage_volts",
    "node_hwmon_temp_celsius",
)
