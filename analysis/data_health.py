"""Data health judged against the GPU's node: who stopped reporting, and whether that is hardware.

Pure. A GPU whose series stop while its node's exporters still answer fell off the bus (PCIe,
driver, baseboard): a failure-grade signal (``fail_vanished``). A whole node going quiet at once
while its scrape targets are down (``up`` = 0, or no ``up`` at all) is a scrape gap, an exporter
restart, a reboot or a node that is down: Prometheus cannot tell them apart, and none of them is
evidence about the GPUs' hardware. Such a node is ``node_silent``: its GPUs raise no failure flag,
and their data-health features are taken against the node's freshest GPU, so a node-wide gap
scores zero while one GPU dropping out of a reporting node stands out. (Whether a silent node is
*down* is the job of the user's ``up == 0`` alert; an open incident whose GPUs all go silent is
kept open as failed by :class:`analysis.tracker.IncidentTracker`.)
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

#: Columns :func:`data_health` adds or overwrites in the feature table.
HEALTH_COLUMNS: tuple[str, ...] = (
    "gap_frac_vs_node",
    "last_seen_vs_node",
    "node_silent",
    "fail_vanished",
)


def targets_down(up: pd.DataFrame, nodes: pd.Index) -> pd.Series:
    """Per node: whether any of its scrape targets' latest ``up`` sample is 0, or it has none.

    Parameters
    ----------
    up : pd.DataFrame
        ``ts, node, job, value`` (Prometheus ``up`` of each scrape target) over the window.
    nodes : pd.Index
        The nodes to answer for.

    Returns
    -------
    pd.Series
        Boolean, indexed by ``nodes``: True where the node's exporters were not all answering at
        their latest scrape (or never reported ``up``, so nothing says they were).
    """
    if up.empty:
        return pd.Series(True, index=nodes, dtype=bool)
    latest = up.sort_values("ts").groupby(["node", "job"], sort=False)["value"].last()
    down = (latest < 0.5).groupby(level="node").any()
    return down.reindex(nodes, fill_value=True).astype(bool)


def data_health(
    features: pd.DataFrame,
    node_of: pd.Series,
    up: pd.DataFrame,
    *,
    vanish_after: timedelta,
) -> pd.DataFrame:
    """Return the node-relative data-health columns and the vanished flag of each GPU.

    Parameters
    ----------
    features : pd.DataFrame
        Feature rows (index: GPU key) with ``gap_frac`` and ``last_seen_min``.
    node_of : pd.Series
        Node of each GPU key (same index).
    up : pd.DataFrame
        The window's ``up`` samples (``ts, node, job, value``).
    vanish_after : timedelta
        A GPU with no sample for this long counts as gone.

    Returns
    -------
    pd.DataFrame
        :data:`HEALTH_COLUMNS`, indexed like ``features``.
    """
    index = features.index
    nodes = node_of.to_numpy()
    gap = features["gap_frac"].astype(float)
    seen = features["last_seen_min"].astype(float)
    vanished = seen >= vanish_after / timedelta(minutes=1)
    all_gone = vanished.groupby(nodes).transform("all").astype(bool)
    down = targets_down(up, pd.Index(sorted(set(nodes)))).reindex(nodes).to_numpy()
    silent = all_gone & pd.Series(down, index=index, dtype=bool)
    out = pd.DataFrame(index=index)
    out["gap_frac_vs_node"] = gap - gap.groupby(nodes).transform("min")
    out["last_seen_vs_node"] = seen - seen.groupby(nodes).transform("min")
    out["node_silent"] = silent
    out["fail_vanished"] = vanished & ~silent
    return out
