"""The metrics-source interface the pipeline reads through (Prometheus or the simulator).

A source returns raw frames (``fetch``) and the feature plan's per-GPU reductions (``reduce``):
Prometheus computes them in PromQL (``storage.promql_reduce``), an in-memory source over its own
frames with the same definitions (:func:`reduce_fetched`, ``analysis.reduce_frames``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol, TypeVar, runtime_checkable

from analysis.feature_plan import FeaturePlan, grid_time
from analysis.reduce_frames import reduce_frames
from analysis.types import FleetFrames, Reductions

A = TypeVar("A")
B = TypeVar("B")


class MetricsSourceError(RuntimeError):
    """The metrics source could not answer; the message says what failed and what to check."""


class NodeSample(frozenset[str]):
    """Nodes whose whole context a fetch reads: the history of a sampled model fit.

    ``fetch(..., nodes=NodeSample(names))`` returns these nodes' GPU series, their node-exporter
    series and ``up``, and every component series (PDU, cooling, switch: shared by the whole
    fleet, so never cut). A plain collection of names reads only the nodes' GPU series (the raw
    series of an incident). A frozenset, so every source that only filters by membership
    honours it through :func:`restrict`.
    """


@runtime_checkable
class MetricsSource(Protocol):
    """Anything that returns the fleet's frames and reductions, and the cordoned nodes."""

    def fetch(
        self,
        start: datetime,
        end: datetime,
        step: timedelta,
        *,
        gpu_metrics: Sequence[str] | None = None,
        nodes: Collection[str] | None = None,
    ) -> FleetFrames:
        """Return every GPU, node, component and ``up`` series in [start, end] at ``step``.

        ``gpu_metrics``: read only these GPU metrics (None: all). ``nodes``: read only the GPU
        series of these nodes (the raw series of an incident), the other frames empty; a
        :class:`NodeSample`: these nodes' GPU, node and ``up`` series and every component's.
        """
        ...

    def reduce(self, plan: FeaturePlan, at: datetime) -> Reductions:
        """Return the plan's per-GPU reductions at the grid time at or before ``at``.

        ``analysis.feature_plan.grid_time(at, plan.step)``: the window ``(t - plan.window, t]``
        on the grid of multiples of ``plan.step``. MetricsSourceError when it cannot answer.
        """
        ...

    def cordoned(self, at: datetime) -> frozenset[str]:
        """Return the nodes cordoned (unschedulable) at ``at``: treated as under maintenance.

        Node names as the GPU frames name them (the DCGM ``Hostname``); empty when nothing is
        cordoned or the source does not know. MetricsSourceError when the source cannot answer.
        """
        ...


def side_by_side(source: object, first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
    """``(first(), second())``: two independent reads of ``source``, the second sent from another
    thread while the first runs when the source allows it (``concurrent_reads``: a TSDB computes
    one while this process decodes the other), one after the other otherwise.

    A failure is raised as one after the other raises it: the first's before the second's (the
    second is then still waited for, not abandoned mid-request).
    """
    if not getattr(source, "concurrent_reads", False):
        return first(), second()
    with ThreadPoolExecutor(1, thread_name_prefix="read") as pool:
        later = pool.submit(second)
        done = first()
        return done, later.result()


def restrict(
    frames: FleetFrames,
    *,
    gpu_metrics: Sequence[str] | None = None,
    nodes: Collection[str] | None = None,
) -> FleetFrames:
    """What ``fetch`` returns for ``gpu_metrics`` and ``nodes``, cut from complete frames."""
    gpu = frames.gpu
    if gpu_metrics is not None:
        gpu = gpu[gpu["metric"].isin(list(gpu_metrics))]
    if nodes is None:
        return frames if gpu is frames.gpu else replace(frames, gpu=gpu.reset_index(drop=True))
    names = list(nodes)
    gpu = gpu[gpu["node"].isin(names)].reset_index(drop=True)
    if isinstance(nodes, NodeSample):
        node, up = frames.node, frames.up
        return replace(
            frames,
            gpu=gpu,
            node=node[node["node"].isin(names)].reset_index(drop=True),
            up=up[up["node"].isin(names)].reset_index(drop=True),
        )
    return replace(
        frames,
        gpu=gpu,
        node=frames.node.iloc[0:0],
        component=frames.component.iloc[0:0],
        up=frames.up.iloc[0:0],
    )


def reduce_fetched(source: MetricsSource, plan: FeaturePlan, at: datetime) -> Reductions:
    """``reduce`` for a source whose frames are in memory: fetch the window, reduce it here."""
    when = grid_time(at, plan.step)
    frames = source.fetch(when - plan.window, when, plan.step, gpu_metrics=plan.metrics)
    table = reduce_frames(frames.gpu, plan, when)
    return Reductions(at=when, window=plan.window, recent=plan.recent, step=plan.step, table=table)
