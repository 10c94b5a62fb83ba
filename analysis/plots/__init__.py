"""Incident pictures for Slack: the dependency subgraph and the key metrics, as PNG bytes.

matplotlib ``Figure`` + ``FigureCanvasAgg`` only (never pyplot: no global state, thread safe).
``dependency`` draws the subgraph, ``panels`` the metric history, ``common`` holds the colour map
and the PNG encoding.
"""

from __future__ import annotations

from analysis.plots.common import RISK_CMAP
from analysis.plots.dependency import LAYER_Y, MAX_GPU_BOXES, render_incident_graph
from analysis.plots.panels import (
    AFFECTED_COLOURS,
    DEFAULT_PANELS,
    MAX_HIGHLIGHTED,
    METRIC_INFO,
    NODE_SENSORS,
    RELATED,
    THROTTLE_COUNTERS,
    _series_for,
    incident_nodes,
    panel_gpu_metrics,
    picture_nodes,
    picture_read,
    render_incident_metrics,
)

__all__ = [
    "AFFECTED_COLOURS",
    "DEFAULT_PANELS",
    "LAYER_Y",
    "MAX_GPU_BOXES",
    "MAX_HIGHLIGHTED",
    "METRIC_INFO",
    "NODE_SENSORS",
    "RELATED",
    "RISK_CMAP",
    "THROTTLE_COUNTERS",
    "_series_for",
    "incident_nodes",
    "panel_gpu_metrics",
    "picture_nodes",
    "picture_read",
    "render_incident_graph",
    "render_incident_metrics",
]
