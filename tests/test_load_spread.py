"""A temperature comparison at a load the GPU's history never reached is judged with a wider spread.

Each GPU has its own thermal resistance, so its offset from its peers grows with the load: a GPU
+3 °C over its idle node may be +9 °C when the whole node runs a job. On a mostly idle fleet its
own baseline holds only the idle offset, and the first job paged (development fleet 130).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.load_spread import DEFAULT_LOAD_SPREAD, load_spread
from analysis.scoring import GraphRiskModel


def _rows(slopes: dict[str, float], busy: bool = True) -> tuple[pd.DataFrame, pd.Index]:
    """Six idle (50 W) and six busy (300 W) fit rows per GPU, offset = 1 + slope x watts."""
    records = []
    for key, slope in slopes.items():
        for i in range(12):
            watts = 300.0 if busy and i % 2 else 50.0 + i
            records.append(
                {"gpu_key": key, "power_level": watts, "temp_vs_node": 1 + slope * watts}
            )
    frame = pd.DataFrame(records)
    keys = pd.Index(frame.pop("gpu_key"))
    return frame, keys


def test_the_fleets_spread_of_offset_slopes_is_measured_on_gpus_seen_at_both_loads() -> None:
    slopes = {f"n/{i}": s for i, s in enumerate(np.linspace(-0.02, 0.02, 11))}
    rows, keys = _rows(slopes)
    usual, spread = load_spread(rows, keys, ["temp_vs_node", "util_excess"])
    want = 1.4826 * np.median(np.abs(np.array(list(slopes.values()))))
    assert spread["temp_vs_node"] == pytest.approx(want)
    assert list(spread.index) == ["temp_vs_node"]  # only the load-dependent comparisons
    assert list(usual.loc["n/0"]) == [pytest.approx(51.1), 300.0]  # 5th and 95th percentiles


def test_an_idle_only_history_assumes_the_default_spread() -> None:
    rows, keys = _rows({f"n/{i}": 0.01 for i in range(11)}, busy=False)
    usual, spread = load_spread(rows, keys, ["temp_vs_node"])
    assert spread["temp_vs_node"] == DEFAULT_LOAD_SPREAD
    assert usual.loc["n/0", "hi"] < 61


def test_the_spread_widens_with_the_distance_from_the_gpus_usual_load_only() -> None:
    model = GraphRiskModel()
    model.scale_ = pd.Series({"temp_vs_node": 0.7, "pcie_replay_rate": 1.0})
    model.own_scale_ = pd.DataFrame(columns=["temp_vs_node", "pcie_replay_rate"], dtype=float)
    model.power_range_ = pd.DataFrame(
        {"lo": [50.0, 50.0], "hi": [55.0, 300.0]}, index=["n/0", "n/1"]
    )
    model.load_spread_ = pd.Series({"temp_vs_node": 0.01})
    keys = pd.Index(["n/0", "n/1"])
    scale = model._scale_for(keys, pd.Series([295.0, 300.0]))
    # n/0 is 240 W above the loads it was seen at: sqrt(0.7^2 + (0.01 x 240)^2) = 2.5; n/1 was
    # seen at 300 W
    assert scale[0, 0] == pytest.approx(float(np.hypot(0.7, 2.4)))
    assert scale[1, 0] == pytest.approx(0.7)
    assert list(scale[:, 1]) == [1.0, 1.0]  # a counter's spread does not depend on the load
    # without the power (an old caller) or a learnt spread (an old model) nothing widens
    assert scale.shape == model._scale_for(keys).shape
    assert model._scale_for(keys)[0, 0] == 0.7
