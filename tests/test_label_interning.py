"""Every read's frames name a node, GPU, sensor, component and job with the same string objects.

A running bot's window holds rows of some forty reads (``storage.rolling``: each cycle reads its
new minutes and keeps the rest); rows hold their labels as Python strings, so each read's own
copies of the same names lived as long as its rows did: at 100,000 GPUs the process grew by
50-140 MB a cycle until the oldest rows left the window. The frame builders intern them.
"""

from __future__ import annotations

import orjson

from storage.metrics import DEFAULT_LABEL_MAP
from storage.promql_frames import component_frame, gpu_frame, node_frame, up_frame

BODY = orjson.dumps(
    [
        {
            "metric": {
                "Hostname": "gpu-node-001",
                "gpu": "3",
                "instance": "gpu-node-001:9400",
                "job": "dcgm",
                "sensor": "Fan 1",
                "gpu_risk_component": "cdu-a1",
            },
            "values": [[1_763_640_000, "41"], [1_763_640_060, "42"]],
        }
    ]
)


def _read() -> list[dict[str, object]]:
    """One answer decoded as a read decodes it: new string objects each time."""
    return orjson.loads(BODY)  # type: ignore[no-any-return]


def test_two_reads_share_their_label_strings() -> None:
    first, second = _read(), _read()
    assert first[0]["metric"]["Hostname"] is not second[0]["metric"]["Hostname"]  # type: ignore[index]
    gpu_a, _ = gpu_frame("DCGM_FI_DEV_GPU_TEMP", first, DEFAULT_LABEL_MAP)
    gpu_b, _ = gpu_frame("DCGM_FI_DEV_GPU_TEMP", second, DEFAULT_LABEL_MAP)
    assert gpu_a is not None and gpu_b is not None
    for col in ("node", "gpu"):
        assert gpu_a[col].iloc[0] is gpu_b[col].iloc[0], col
    node_a = node_frame("ipmi_fan_speed_rpm", first, DEFAULT_LABEL_MAP)
    node_b = node_frame("ipmi_fan_speed_rpm", second, DEFAULT_LABEL_MAP)
    for col in ("node", "sensor"):
        assert node_a[col].iloc[0] is node_b[col].iloc[0], col
    assert (
        component_frame("flow", first)["component"].iloc[0]
        is (component_frame("flow", second)["component"].iloc[0])
    )
    up_a, up_b = up_frame(first, DEFAULT_LABEL_MAP), up_frame(second, DEFAULT_LABEL_MAP)
    for col in ("node", "job"):
        assert up_a[col].iloc[0] is up_b[col].iloc[0], col
