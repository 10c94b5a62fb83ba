"""concat_frames orders a fetch's samples exactly as a stable sort on their labels and time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.types import GPU_COLUMNS, NODE_COLUMNS
from storage.promql_frames import concat_frames, sorted_order

T0 = 1_763_640_000.0


def _series(
    node: str, gpu: str, metric: str, times: list[float], rng: np.random.Generator
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(pd.Series(times, dtype="float64"), unit="s", utc=True),
            "node": pd.Series([node] * len(times), dtype="object"),
            "gpu": pd.Series([gpu] * len(times), dtype="object"),
            "metric": metric,
            "value": rng.normal(size=len(times)),
        }
    )


def _parts(seed: int) -> list[pd.DataFrame]:
    """Parts as a fetch makes them: one metric's series one after the other, in the server's
    order (not sorted), each with ascending times and gaps; a NaN value; a series returned twice
    (two exporters) with overlapping and with adjacent times; labels that sort differently as
    text ('gpu-node-10' < 'gpu-node-2', '10' < '2')."""
    rng = np.random.default_rng(seed)
    nodes = [f"gpu-node-{i}" for i in (2, 10, 1, 33)]
    parts = []
    for metric in ("DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_TEMP", "A_METRIC"):
        series = []
        for node in rng.permutation(nodes):
            for gpu in rng.permutation(["0", "1", "2", "10"]):
                times = [T0 + 60 * i for i in range(12) if rng.random() > 0.2]
                series.append(_series(str(node), str(gpu), metric, times, rng))
        part = pd.concat(series, ignore_index=True)
        part.loc[3, "value"] = np.nan
        parts.append(part)
    # the same series again, later times (adjacent run) and the same times (overlap)
    parts.append(_series("gpu-node-2", "1", "A_METRIC", [T0 + 60 * i for i in range(12, 15)], rng))
    parts.append(_series("gpu-node-1", "0", "A_METRIC", [T0 + 60 * i for i in range(4)], rng))
    return parts


def _reference(parts: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    df = pd.concat(parts, ignore_index=True)[list(columns)]
    df["value"] = df["value"].astype("float64")
    keys = [c for c in columns if c not in ("value", "ts")] + ["ts"]
    return df.dropna(subset=["value"]).sort_values(keys, kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("seed", range(5))
def test_concat_frames_is_the_stable_sort(seed: int) -> None:
    parts = _parts(seed)
    pd.testing.assert_frame_equal(
        concat_frames(parts, GPU_COLUMNS), _reference(parts, GPU_COLUMNS), check_exact=True
    )
    # the parts' own runs give the order, without joining them (a series continued in a
    # later part: a run of its own), and a part in another time unit is joined as pandas does
    runs = [p.dropna(subset=["value"]) for p in parts[:-1]]
    assert sorted_order(runs, ["node", "gpu", "metric", "ts"]) is not None
    for joined in (parts[:-1], [*parts[:-2], parts[-2].astype({"ts": "datetime64[ms, UTC]"})]):
        pd.testing.assert_frame_equal(
            concat_frames(joined, GPU_COLUMNS), _reference(joined, GPU_COLUMNS), check_exact=True
        )
    # without the overlapping series the runs give the order themselves (no fallback)
    clean = pd.concat(parts[:-1], ignore_index=True).dropna(subset=["value"])
    order = sorted_order(clean, ["node", "gpu", "metric", "ts"])
    assert order is not None
    want = clean.sort_values(["node", "gpu", "metric", "ts"], kind="stable")
    assert (clean.index.to_numpy()[order] == want.index.to_numpy()).all()


def test_overlapping_runs_and_odd_keys_fall_back_to_the_sort() -> None:
    parts = _parts(0)
    both = pd.concat(parts, ignore_index=True).dropna(subset=["value"])
    assert sorted_order(both, ["node", "gpu", "metric", "ts"]) is None  # overlapping runs
    back = parts[0].iloc[::-1].reset_index(drop=True)  # a run's times go back
    assert sorted_order(back, ["node", "gpu", "metric", "ts"]) is None
    pd.testing.assert_frame_equal(
        concat_frames([back], GPU_COLUMNS), _reference([back], GPU_COLUMNS), check_exact=True
    )
    missing = parts[0].copy()
    missing.loc[5:9, "gpu"] = None  # a label missing: pandas puts it last
    assert sorted_order(missing, ["node", "gpu", "metric", "ts"]) is None
    pd.testing.assert_frame_equal(
        concat_frames([missing], GPU_COLUMNS),
        _reference([missing], GPU_COLUMNS),
        check_exact=True,
    )


def test_node_frames_sort_on_node_metric_sensor() -> None:
    rng = np.random.default_rng(3)
    parts = []
    for metric in ("ipmi_fan_speed_rpm", "ipmi_temperature_celsius"):
        rows = []
        for node in ("n2", "n10", "n1"):
            for sensor in ("FAN2", "FAN10", ""):
                times = [T0 + 60 * i for i in range(5)]
                rows.append(
                    pd.DataFrame(
                        {
                            "ts": pd.to_datetime(pd.Series(times), unit="s", utc=True),
                            "node": pd.Series([node] * 5, dtype="object"),
                            "metric": metric,
                            "sensor": pd.Series([sensor] * 5, dtype="object"),
                            "value": rng.normal(size=5),
                        }
                    )
                )
        parts.append(pd.concat(rows, ignore_index=True))
    pd.testing.assert_frame_equal(
        concat_frames(parts, NODE_COLUMNS), _reference(parts, NODE_COLUMNS), check_exact=True
    )
