"""Shared by the incident pictures: the risk colour map and PNG encoding (Agg canvas, no pyplot)."""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure

RISK_CMAP = LinearSegmentedColormap.from_list(
    "risk", ["#2e9e5b", "#9ccc65", "#f6c244", "#f08c3a", "#d62f2f"]
)


def _png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes with the Agg canvas."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return buf.getvalue()
