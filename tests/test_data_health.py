"""Data health against the node: a GPU off the bus is a failure, a node's scrape gap is not."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pandas as pd

from analysis.data_health import targets_down
from analysis.features import build_features, feature_columns
from tests.fixtures.handmade_fleet import END, fleet

NODE = "gpu-node-002"


def _gone(node: str | None = None, gpu: str | None = None):  # type: ignore[no-untyped-def]
    """A ``drop`` that removes the last 10 minutes of a node's (or one GPU's) samples."""

    def drop(frame: pd.DataFrame) -> pd.DataFrame:
        late = frame["ts"] > END - timedelta(minutes=10)
        who = frame["node"] == node if gpu is None else (frame["node"] + "/" + frame["gpu"]) == gpu
        return frame[~(late & who)]

    return drop


def _up_down(frames, node: str):  # type: ignore[no-untyped-def]
    """The node's scrape target answers ``up`` = 0 for the last 10 minutes."""
    up = frames.up.copy()
    late = (up["ts"] > END - timedelta(minutes=10)) & (up["node"] == node)
    up.loc[late, "value"] = 0.0
    return dataclasses.replace(frames, up=up)


def test_a_whole_node_scrape_gap_is_not_a_vanished_gpu() -> None:
    frames, graph = fleet(drop=_gone(node=NODE))
    f = build_features(_up_down(frames, NODE), graph, END)
    mine = f[f["node"] == NODE]
    assert len(mine) == 4
    assert mine["node_silent"].all()
    assert not f["fail_vanished"].any()
    assert (mine["last_seen_min"] == 10.0).all()  # the raw value stays for the tracker
    assert (mine["last_seen_vs_node"] == 0.0).all()
    assert (mine["gap_frac_vs_node"] == 0.0).all()
    # the scored columns are the node-relative ones, never the raw gap figures
    cols = feature_columns(f)
    assert {"gap_frac_vs_node", "last_seen_vs_node"} <= set(cols)
    assert not {"gap_frac", "last_seen_min", "up_down_frac", "node_silent"} & set(cols)


def test_a_gpu_gone_from_an_answering_exporter_has_vanished() -> None:
    frames, graph = fleet(drop=_gone(gpu=f"{NODE}/1"))
    f = build_features(frames, graph, END)
    assert f["fail_vanished"].sum() == 1
    assert f.loc[f"{NODE}/1", "fail_vanished"]
    assert f.loc[f"{NODE}/1", "last_seen_vs_node"] == 10.0
    assert f.loc[f"{NODE}/1", "gap_frac_vs_node"] > 0.2
    assert not f["node_silent"].any()


def test_every_gpu_gone_while_the_exporter_answers_is_a_failure() -> None:
    """DCGM lost all its GPUs (driver, baseboard) but the exporter is scraped fine: failure."""
    frames, graph = fleet(drop=_gone(node=NODE))
    f = build_features(frames, graph, END)
    assert f.loc[f["node"] == NODE, "fail_vanished"].all()
    assert f["fail_vanished"].sum() == 4
    assert not f["node_silent"].any()


def test_targets_down_reads_the_latest_up_of_each_job_and_doubts_silence() -> None:
    t = pd.Timestamp(END)
    up = pd.DataFrame(
        {
            "ts": [t - timedelta(minutes=2), t, t, t],
            "node": ["a", "a", "a", "b"],
            "job": ["dcgm", "dcgm", "ipmi", "dcgm"],
            "value": [0.0, 1.0, 0.0, 1.0],
        }
    )
    down = targets_down(up, pd.Index(["a", "b", "c"]))
    # a: ipmi's latest is 0; b: every target answers; c: no up at all, nothing says it answers
    assert down.to_dict() == {"a": True, "b": False, "c": True}
    assert targets_down(up.iloc[:0], pd.Index(["a"])).to_dict() == {"a": True}
