"""The fleet's common shift of the own-history features (``analysis.common_mode``): a hall
warming every GPU is no GPU's deviation, one GPU warming alone still is."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from analysis.common_mode import MIN_GPUS, QUANTILE, SHIFT_PREFIX, remove_common_mode
from analysis.features import slice_frames
from analysis.scoring import GraphRiskModel
from analysis.types import FleetFrames
from tests.fixtures.scoring_scenarios import HEALTHY_SEED, HEALTHY_SPEC, T0, simulate

TEMP = "DCGM_FI_DEV_GPU_TEMP"
LONE = "gpu-node-002/1"
AT = T0 + timedelta(hours=7)
DEGREES = 10.0


def _table(values: list[float]) -> pd.DataFrame:
    keys = pd.Index([f"n{i // 4}/{i % 4}" for i in range(len(values))], name="gpu_key")
    return pd.DataFrame({"temp_at_power": values, "temp_vs_node": values}, index=keys)


def test_one_cycle_loses_its_lower_quartile_and_keeps_the_rest() -> None:
    values = [30.0 + i for i in range(12)]
    out = remove_common_mode(_table(values))
    shift = float(np.quantile(values, QUANTILE))
    assert out["temp_at_power"].tolist() == pytest.approx([v - shift for v in values])
    # a comparison with peers has no common shift to lose
    assert out["temp_vs_node"].tolist() == values
    # every GPU warmed by 5 degrees: the same values after
    warmer = remove_common_mode(_table([v + 5 for v in values]))
    assert warmer["temp_at_power"].tolist() == pytest.approx(out["temp_at_power"].tolist())


def test_a_small_fleet_keeps_its_values() -> None:
    few = _table([30.0 + i for i in range(MIN_GPUS - 1)])
    pd.testing.assert_frame_equal(remove_common_mode(few), few)


def test_each_cycle_of_a_fit_loses_its_own_shift() -> None:
    a, b = _table([30.0 + i for i in range(12)]), _table([40.0 + i for i in range(12)])
    rows = pd.concat([a, b], keys=[pd.Timestamp("2026-01-01"), pd.Timestamp("2026-01-02")])
    rows.index = rows.index.set_names(["at", "gpu_key"])
    out = remove_common_mode(rows, by="at")
    first, second = (
        out.xs(pd.Timestamp("2026-01-01"), level="at"),
        out.xs(pd.Timestamp("2026-01-02"), level="at"),
    )
    pd.testing.assert_series_equal(first["temp_at_power"], second["temp_at_power"])
    pd.testing.assert_frame_equal(first, remove_common_mode(a))


def _warmer(frames: FleetFrames, gpus: pd.Series, degrees: float) -> FleetFrames:
    """GPU temperatures ``degrees`` higher on ``gpus`` (a mask of frames.gpu) from 6.5 h on."""
    g = frames.gpu
    hit = gpus & (g["metric"] == TEMP) & (g["ts"] >= pd.Timestamp(T0 + timedelta(hours=6.5)))
    return replace(frames, gpu=g.assign(value=g["value"].where(~hit, g["value"] + degrees)))


class _Plain(GraphRiskModel):
    """The product model without the common shift taken out (the model before version 14)."""

    common_mode = False


@pytest.fixture(scope="module")
def fitted() -> tuple:
    """A small healthy fleet (2 racks x 4 nodes x 4 GPUs), the model fitted on its first 6 h,
    with and without the common shift taken out."""
    frames, graph = simulate(HEALTHY_SPEC, HEALTHY_SEED + 100, timedelta(hours=8), None)
    history = slice_frames(frames, T0 - timedelta(minutes=1), T0 + timedelta(hours=6))
    fit = {"fit_window": timedelta(hours=6), "fit_cycles": 24}
    return (
        frames,
        graph,
        GraphRiskModel(**fit).fit(history, graph),
        _Plain(**fit).fit(history, graph),
    )


def test_a_hall_warming_every_gpu_is_no_gpu_s_deviation(fitted: tuple) -> None:
    """Every GPU 10 degrees warmer at the same power (an ambient change): its temperature at
    power against its own history stays within its usual spread; without the common shift
    taken out most GPUs read several sd (what paged on development fleet 103)."""
    frames, graph, model, plain = fitted
    warm = _warmer(frames, pd.Series(True, index=frames.gpu.index), DEGREES)
    table = model.assess(warm, graph, AT).features
    assert table["z.temp_at_power"].abs().max() < 2.0, table["z.temp_at_power"].describe()
    assert plain.assess(warm, graph, AT).features["z.temp_at_power"].median() > 4.0
    # judged with the spread of its deviations as they were (taken without the shift, it was a
    # quarter narrower here; half on development fleet 134, where a job's start then paged)
    assert model.scale_["temp_at_power"] >= 0.85 * plain.scale_["temp_at_power"]


def test_one_gpu_warming_alone_still_reads_as_its_own(fitted: tuple) -> None:
    frames, graph, model, plain = fitted
    node, gpu = LONE.split("/")
    g = frames.gpu
    lone = _warmer(frames, (g["node"] == node) & (g["gpu"].astype(str) == gpu), DEGREES)
    table = model.assess(lone, graph, AT).features
    # as strong as before: the same spread, the same deviation (the fleet's shift is steady)
    mine = table.loc[LONE, "z.temp_at_power"]
    before = plain.assess(lone, graph, AT).features.loc[LONE, "z.temp_at_power"]
    assert mine > 4.0
    assert mine >= 0.9 * before
    assert table.drop(index=LONE)["z.temp_at_power"].abs().max() < 2.0


def test_rows_of_an_assessed_cycle_score_as_they_did_within_it(fitted: tuple) -> None:
    """An assessed table carries its cycle's shift: a row of it scores as in the assessment
    (computed from one row alone, there would be no shift to take out)."""
    frames, graph, model, _ = fitted
    node, gpu = LONE.split("/")
    g = frames.gpu
    lone = _warmer(frames, (g["node"] == node) & (g["gpu"].astype(str) == gpu), DEGREES)
    table = model.assess(lone, graph, AT).features
    assert table.filter(like=SHIFT_PREFIX).notna().all().all()
    for key in (LONE, "gpu-node-001/0"):
        one = model.score_features(table.loc[[key]])
        assert float(one.iloc[0]) == pytest.approx(float(table.loc[key, "risk"]))
    # without the shift it carries, the row alone is judged without one
    bare = table.loc[[LONE]].drop(columns=table.filter(like=SHIFT_PREFIX).columns)
    alone = float(model.standardise(bare).loc[LONE, "temp_at_power"])
    assert alone != pytest.approx(float(table.loc[LONE, "z.temp_at_power"]), abs=1.0)
