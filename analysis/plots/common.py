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
    # zlib level 3: ~10 % faster to encode than PIL's default 6, files ~3 % larger (charts of
    # flat colour compress well either way)
    fig.savefig(buf, format="png", dpi=fig.dpi, pil_kwargs={"compress_level": 3})
    return buf.getvalue()
