"""FleetFrames.gpu_wide: the one per-GPU reshape of the tidy GPU frame; FleetFrames.gpus; sort_by_time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analysis.frames import sort_by_time
from analysis.types import FleetFrames, GpuRef, factorize_runs

START = datetime(2026, 11, 20, tzinfo=UTC)
STEP = timedelta(minutes=1)


def _frames(gpu: pd.DataFrame) -> FleetFrames:
    """Wrap a tidy GPU frame in FleetFrames (other frames empty)."""
    return FleetFrames(
        gpu,
        FleetFrames.empty_frame(("ts", "node", "metric", "sensor", "value")),
        FleetFrames.empty_frame(("ts", "component", "metric", "value")),
        FleetFrames.empty_frame(("ts", "node", "job", "value")),
        START,
        START + 10 * STEP,
        STEP,
    )


def _naive(gpu: pd.DataFrame) -> pd.DataFrame:
    """The obvious pivot gpu_wide must equal."""
    key = gpu["node"].astype(str) + "/" + gpu["gpu"].astype(str)
    g = pd.DataFrame({"key": key, "ts": gpu["ts"], "metric": gpu["metric"], "value": gpu["value"]})
    return (
        g.drop_duplicates(["key", "ts", "metric"], keep="last")
        .set_index(["key", "ts", "metric"])["value"]
        .unstack("metric")
    )


def _random_gpu(
    rng: np.random.Generator, n: int, nodes: int, gpus: int, steps: int
) -> pd.DataFrame:
    """Random tidy GPU rows with repeated cells, unsorted."""
    return pd.DataFrame(
        {
            "ts": [START + int(i) * STEP for i in rng.integers(0, steps, n)],
            "node": [f"gpu-node-{i:03d}" for i in rng.integers(0, nodes, n)],
            "gpu": [str(i) for i in rng.integers(0, gpus, n)],
            "metric": rng.choice(["B_METRIC", "A_METRIC", "C_METRIC"], n),
            "value": rng.normal(size=n),
        }
    )


@pytest.mark.parametrize(
    ("n", "nodes", "gpus", "steps"),
    [(500, 3, 4, 20), (3000, 40, 8, 3000)],  # a dense grid, and a sparse one (sorted path)
)
def test_equals_the_naive_pivot(n: int, nodes: int, gpus: int, steps: int) -> None:
    """Same frame as drop_duplicates(keep="last").set_index(...).unstack("metric")."""
    gpu = _random_gpu(np.random.default_rng(n), n, nodes, gpus, steps)
    wide = _frames(gpu).gpu_wide()
    pd.testing.assert_frame_equal(wide, _naive(gpu), check_freq=False)


def test_last_row_wins_and_keys_are_sorted() -> None:
    """A repeated (key, ts, metric) cell keeps the last row; keys come out sorted as text."""
    gpu = pd.DataFrame(
        {
            "ts": [START, START, START, START + STEP],
            "node": ["n2", "n10", "n10", "n2"],
            "gpu": ["0", "1", "1", "0"],
            "metric": ["T", "T", "T", "T"],
            "value": [1.0, 2.0, 3.0, 4.0],
        }
    )
    wide = _frames(gpu).gpu_wide()
    assert list(wide.index.names) == ["key", "ts"]
    assert list(wide.index.get_level_values("key")) == ["n10/1", "n2/0", "n2/0"]
    assert wide.loc[("n10/1", START), "T"] == 3.0
    assert wide["T"].tolist() == [3.0, 1.0, 4.0]


def test_metrics_are_reindexed_in_the_given_order() -> None:
    """Asked-for metrics come in that order; an absent one is a NaN column; others are dropped."""
    gpu = _random_gpu(np.random.default_rng(1), 200, 2, 2, 10)
    wide = _frames(gpu).gpu_wide(["C_METRIC", "MISSING", "A_METRIC"])
    assert list(wide.columns) == ["C_METRIC", "MISSING", "A_METRIC"]
    assert wide["MISSING"].isna().all()
    full = _naive(gpu[gpu["metric"].isin(["C_METRIC", "A_METRIC"])])
    pd.testing.assert_frame_equal(
        wide[["C_METRIC", "A_METRIC"]], full[["C_METRIC", "A_METRIC"]], check_freq=False
    )


def test_empty_frame() -> None:
    """No samples: an empty (key, ts) frame, with the asked-for columns."""
    empty = FleetFrames.empty_frame(("ts", "node", "gpu", "metric", "value"))
    assert _frames(empty).gpu_wide().empty
    wide = _frames(empty).gpu_wide(["A_METRIC"])
    assert wide.empty and list(wide.columns) == ["A_METRIC"]
    assert list(wide.index.names) == ["key", "ts"]


def test_runs_of_series_pivot_as_the_naive_pivot() -> None:
    """Rows in runs of one series (as the readers give them) with label objects shared along
    a run: the runs' labels are factorised once, the frame is the same."""
    gpu = _random_gpu(np.random.default_rng(7), 4000, 30, 8, 40)
    runs = gpu.sort_values(["node", "gpu", "metric", "ts"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(_frames(runs).gpu_wide(), _naive(runs), check_freq=False)


@pytest.mark.parametrize(("n", "nodes", "gpus", "steps"), [(3000, 30, 8, 40), (3000, 40, 8, 3000)])
def test_with_lead_pivots_the_lead_and_the_frame_as_if_joined(
    n: int, nodes: int, gpus: int, steps: int
) -> None:
    """``with_lead``: the lead's rows, then the frame's, without joining them: the naive pivot
    of the joined rows (a cell in both: the frame's row wins), with and without a filter."""
    rng = np.random.default_rng(11)
    lead, gpu = _random_gpu(rng, n, nodes, gpus, steps), _random_gpu(rng, n, nodes, gpus, steps)
    gpu.loc[gpu["metric"] == "B_METRIC", "metric"] = "D_METRIC"  # a metric only the frame has
    frames = replace(_frames(gpu), lead=lead)
    joined = pd.concat([lead, gpu], ignore_index=True)
    pd.testing.assert_frame_equal(frames.gpu_wide(with_lead=True), _naive(joined), check_freq=False)
    asked = ["C_METRIC", "B_METRIC"]
    pd.testing.assert_frame_equal(
        frames.gpu_wide(asked, with_lead=True),
        _frames(joined).gpu_wide(asked),
        check_freq=False,
    )
    pd.testing.assert_frame_equal(frames.gpu_wide(), _frames(gpu).gpu_wide(), check_freq=False)
    empty = replace(frames, lead=lead.iloc[:0])
    pd.testing.assert_frame_equal(empty.gpu_wide(with_lead=True), _naive(gpu), check_freq=False)


def test_gpus_are_every_pair_seen_once_sorted() -> None:
    """``FleetFrames.gpus``: each (node, gpu) seen, once, sorted, however the rows are ordered."""
    gpu = _random_gpu(np.random.default_rng(3), 2000, 12, 4, 30)
    pairs = gpu[["node", "gpu"]].drop_duplicates()
    want = tuple(sorted(GpuRef(n, g) for n, g in pairs.itertuples(index=False)))
    assert _frames(gpu).gpus == want
    runs = gpu.sort_values(["node", "gpu", "ts"], kind="stable").reset_index(drop=True)
    assert _frames(runs).gpus == want


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "10", None, float("nan")]), st.integers(1, 3)),
        max_size=30,
    ),
    st.booleans(),
    st.booleans(),
)
def test_factorizing_runs_is_factorizing_every_row(
    runs: list[tuple[object, int]], sort: bool, use_na_sentinel: bool
) -> None:
    """The same codes and uniques as ``pd.factorize`` of every row, missing values included."""
    values = np.array([v for v, n in runs for _ in range(n)], dtype=object)
    want_codes, want_uniques = pd.factorize(values, sort=sort, use_na_sentinel=use_na_sentinel)
    codes, uniques = factorize_runs(values, sort=sort, use_na_sentinel=use_na_sentinel)
    np.testing.assert_array_equal(codes, want_codes)
    assert [str(u) for u in uniques] == [str(u) for u in want_uniques]


@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 4) | st.none()), max_size=40),
    st.integers(0, 1000),
)
def test_sorting_by_time_is_pandas_stable_sort_renumbered(
    rows: list[tuple[int, int | None]], offset: int
) -> None:
    """``sort_by_time`` gives exactly ``sort_values("ts", kind="stable")`` renumbered 0..n-1:
    ties keep their order, a missing time goes last, every column's dtype is kept; a frame
    sorted already is returned itself."""
    ts = [None if t is None else START + t * STEP for _, t in rows]
    df = pd.DataFrame(
        {
            "node": [f"n{s}" for s, _ in rows],
            "gpu": [str(i % 3) for i in range(len(rows))],
            "metric": "m",
            "value": np.arange(len(rows), dtype="float64"),
            "ts": pd.to_datetime(pd.Series(ts, dtype=object), utc=True),
        },
        index=pd.RangeIndex(offset, offset + len(rows)),
    )
    want = df.sort_values("ts", kind="stable").reset_index(drop=True)
    got = sort_by_time(df)
    if df.empty or df["ts"].is_monotonic_increasing:
        assert got is df
    else:
        pd.testing.assert_frame_equal(got, want, check_index_type=True)
