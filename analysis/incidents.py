"""Group at-risk GPUs into incidents under the root cause that explains them. Pure.

A facility component (PDU, cooling unit, switch) or a rack becomes the root cause when its
dependents deviate jointly (at least ``min_fraction`` of the nodes behind it, and two or more, have
at least ``min_fraction`` of their GPUs at risk), or when its own signals are anomalous and at
least two GPUs behind it (on two or more nodes) are at risk. When several entities cover the same
GPUs (one rack, one PDU, one CRAC and one leaf switch per rack), the one whose own and
characteristic signals deviate most is named; with no such evidence the rack is. An entity with
evidence is preferred to a larger one without (a cooling unit that covers two failing switches'
racks does not explain them), and among entities with evidence the larger joint pattern (GPUs on
the nodes it has hit) wins, then the stronger evidence: one straggler GPU at risk elsewhere does
not make a broader entity the cause. A rack or component without a signal of its own is never named for
GPUs whose node's own hardware explains them (one fan slower than the node's others): three
failing fans in one rack are three node incidents, not the rack. A node becomes the root cause
when at least three and ``min_fraction`` of its GPUs are at risk, when its own signals (fans, node
temperature, scrape targets) explain two or more at-risk GPUs, or when its own hardware (one fan
slower than the others, scrape targets down) explains a single one. A component's own and
characteristic evidence counts only in the harmful direction (a PDU voltage sag, warmer supply
air or GPUs, switch errors) and never from output power (which falls whenever the GPUs behind it
fail or go idle). Everything else stays one GPU's incident.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime

import networkx as nx
import numpy as np
import pandas as pd

from analysis.features import flags_of
from analysis.graph import gpus_behind
from analysis.types import (
    Evidence,
    GpuRef,
    GpuScore,
    Incident,
    RootCause,
    Severity,
    format_time,
)

# Characteristic evidence of each upstream kind: feature columns (prefix match) whose deviation
# (``z.<column>`` written by the scorer, in robust standard deviations) points at that kind.
SIGNATURES: dict[str, tuple[str, ...]] = {
    "pdu": ("pdu.", "volts_dev", "volts_dip", "power_viol_rate"),
    "cooling": ("cooling.", "inlet", "inlet_vs_fleet", "rack_temp_vs_fleet"),
    "switch": ("switch.",),
    "rack": (),
    "node": (
        "fan_min",
        "fan_mean",
        "fan_spread",
        "fan_min_vs_fleet",
        "node_temp_vs_fleet",
    ),
}
OWN_PREFIX: dict[str, str] = {"pdu": "pdu.", "cooling": "cooling.", "switch": "switch."}
# The harmful direction of a component's known own metrics (+1 high, -1 low); other metrics of
# the component count both ways. A PDU whose output watts fall because the GPUs behind it failed
# or went idle is a consequence, not a cause: watts are not evidence (the scorer does not even
# score them), and a PDU voltage that rises is not a sag.
OWN_DIRECTION: dict[str, int] = {
    "pdu.output_volts": -1,
    "cooling.supply_temp": 1,
    "switch.": 1,
}
OWN_IGNORED: tuple[str, ...] = ("pdu.output_watts",)
# The harmful direction of the characteristic evidence of a facility kind: GPUs behind a PDU
# whose voltage sags and whose power capping fires, warmer air and GPUs behind a cooling unit.
# The other way round is a consequence: a rack whose GPUs throttle or drain behind a sagging
# PDU runs cooler than the fleet, which is no evidence against its cooling unit.
SIGNATURE_DIRECTION: dict[str, int] = {
    **OWN_DIRECTION,
    "volts_": -1,
    "power_viol_rate": 1,
    "inlet": 1,
    "rack_temp_vs_fleet": 1,
}
# Node evidence that can name a node for a single at-risk GPU: the node's own hardware, in the
# harmful direction: one fan slower than the node's others. Fans that all slow down together
# follow the load (a job ended, a GPU was drained): that is not a fan fault. Scrape targets down
# are not hardware evidence (:mod:`analysis.data_health`). A node's GPUs running warm as a group
# needs at least two GPUs at risk.
NODE_HARDWARE: dict[str, int] = {"fan_spread": -1}
FACILITY_ORDER: dict[str, int] = {"pdu": 0, "cooling": 0, "switch": 0, "rack": 1}

DEFAULT_MIN_FRACTION = 0.5
DEFAULT_EVIDENCE_Z = 4.0
DEFAULT_CRITICAL = 0.99
#: An incident's evidence (what a false-alarm verdict teaches, :mod:`analysis.feedback`): every
#: deviation of at least ``EVIDENCE_MIN_Z`` (below it a feature is within healthy noise), at most
#: ``EVIDENCE_PER_GPU`` per GPU and ``EVIDENCE_MAX`` per incident, largest first. A verdict must see
#: the whole pattern: an allowance that misses one deviating feature leaves the pattern paging.
EVIDENCE_MIN_Z = 2.0
EVIDENCE_PER_GPU = 12
EVIDENCE_MAX = 512


def incident_id(dedup_key: str, first_at: datetime) -> str:
    """Return a stable id from an incident's dedup key and the first cycle it was seen."""
    raw = f"{dedup_key}|{format_time(first_at)}".encode()
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()[:16]


def _as_scores(scores: Mapping[str, float] | pd.Series | Iterable[GpuScore]) -> dict[str, float]:
    """Normalise the accepted score containers to {gpu_key: score}."""
    if isinstance(scores, pd.Series):
        return {str(k): float(v) for k, v in scores.items()}
    if isinstance(scores, Mapping):
        return {str(k): float(v) for k, v in scores.items()}
    return {s.key: float(s.score) for s in scores}


def evidence(
    features: pd.DataFrame | None,
    gpus: Iterable[str],
    columns: Iterable[str],
    directions: Mapping[str, int] | None = None,
) -> float:
    """Median over ``gpus`` of the largest ``|z|`` among the matching feature columns (0 if none).

    ``directions`` (column prefix -> +1 high, -1 low): those columns count only that way.
    """
    prefixes = tuple(columns)
    if features is None or features.empty or not prefixes:
        return 0.0
    zcols = [
        c
        for c in features.columns
        if isinstance(c, str) and c.startswith("z.") and c[2:].startswith(prefixes)
    ]
    return _median_of_largest(features, gpus, zcols, directions or {})


def own_evidence(
    features: pd.DataFrame | None,
    gpus: Iterable[str],
    prefix: str | tuple[str, ...],
    directions: Mapping[str, int] = OWN_DIRECTION,
) -> float:
    """Like :func:`evidence` over an entity's own columns, counted in the harmful direction."""
    if features is None or features.empty:
        return 0.0
    prefixes = tuple("z." + p for p in ((prefix,) if isinstance(prefix, str) else prefix))
    zcols = [
        c
        for c in features.columns
        if isinstance(c, str) and c.startswith(prefixes) and not c[2:].startswith(OWN_IGNORED)
    ]
    return _median_of_largest(features, gpus, zcols, directions)


def _median_of_largest(
    features: pd.DataFrame, gpus: Iterable[str], zcols: list[str], directions: Mapping[str, int]
) -> float:
    """Median over ``gpus`` of the largest of ``zcols``: ``|z|``, or ``z`` in the direction
    ``directions`` gives the column (by prefix, without ``z.``) and 0 the other way."""
    rows = [g for g in gpus if g in features.index]
    if not zcols or not rows:
        return 0.0
    block = features.loc[rows, zcols].astype(float)
    for col in zcols:
        sign = next((d for p, d in directions.items() if col[2:].startswith(p)), 0)
        block[col] = (block[col] * sign).clip(lower=0.0) if sign else block[col].abs()
    value = float(block.max(axis=1).median())
    return 0.0 if np.isnan(value) else value


def severity_of(score: float, flags: Iterable[str], critical: float = DEFAULT_CRITICAL) -> Severity:
    """Return critical for failure-grade signals or a score at ``critical``, else warning."""
    if any(True for _ in flags) or score >= critical:
        return "critical"
    return "warning"


def _top_signals(features: pd.DataFrame | None, gpus: list[str], n: int = 3) -> list[str]:
    """Return the ``n`` feature deviations that are largest across the incident's GPUs."""
    if features is None or features.empty:
        return []
    zcols = [c for c in features.columns if isinstance(c, str) and c.startswith("z.")]
    rows = [g for g in gpus if g in features.index]
    if not zcols or not rows:
        return []
    med = features.loc[rows, zcols].astype(float).median(axis=0)
    top = med.abs().sort_values(ascending=False).head(n)
    return [f"{c[2:]}={med[c]:+.1f}sd" for c in top.index if abs(med[c]) >= 3.0]


def gpu_evidence(
    features: pd.DataFrame | None,
    gpus: Iterable[str],
    per_gpu: int = EVIDENCE_PER_GPU,
    min_z: float = EVIDENCE_MIN_Z,
    limit: int = EVIDENCE_MAX,
) -> tuple[Evidence, ...]:
    """Return each GPU's ``per_gpu`` largest deviations with ``|z| >= min_z`` (``z.`` columns).

    Parameters
    ----------
    features : pd.DataFrame or None
        The scorer's feature table (index: GPU key) with ``z.<column>`` deviations.
    gpus : iterable of str
        The GPU keys whose evidence is wanted, in the order given.
    per_gpu, min_z, limit
        How many deviations per GPU at most, the smallest ``|z|`` that counts, and how many in
        all (the largest ``|z|`` are kept).

    Returns
    -------
    tuple of Evidence
        Per GPU in the order given, largest ``|z|`` first; ``z`` rounded to 3 decimals (as stored).
    """
    if features is None or features.empty or per_gpu < 1:
        return ()
    zcols = [c for c in features.columns if isinstance(c, str) and c.startswith("z.")]
    rows = [g for g in gpus if g in features.index]
    if not zcols or not rows:
        return ()
    block = features.loc[rows, zcols].to_numpy(dtype=np.float64)
    mag = np.nan_to_num(np.abs(block), nan=0.0)
    order = np.argsort(-mag, axis=1, kind="stable")[:, :per_gpu]
    kept = [(i, int(j)) for i in range(len(rows)) for j in order[i] if mag[i, j] >= min_z]
    if len(kept) > limit:  # the largest overall, still grouped by GPU
        kept = sorted(sorted(kept, key=lambda ij: -mag[ij])[:limit], key=lambda ij: ij[0])
    return tuple(
        Evidence(str(rows[i]), zcols[j][2:], round(float(block[i, j]), 3)) for i, j in kept
    )


def _node_shares(graph: nx.DiGraph, at_risk: list[str]) -> dict[str, float]:
    """Return, per node with an at-risk GPU, the share of its GPUs at risk."""
    count: dict[str, int] = {}
    for key in at_risk:
        node = GpuRef.parse(key).node
        count[node] = count.get(node, 0) + 1
    return {
        n: c / max(len(gpus_behind(graph, n)) if n in graph else c, 1) for n, c in count.items()
    }


def _nodes_on_own_hardware(
    features: pd.DataFrame | None,
    at_risk: list[str],
    node_of: Mapping[str, str],
    evidence_z: float,
) -> set[str]:
    """Return the nodes whose own hardware (:data:`NODE_HARDWARE`) explains their at-risk GPUs."""
    if features is None or features.empty:
        return set()
    by_node: dict[str, list[str]] = {}
    for key in at_risk:
        by_node.setdefault(node_of[key], []).append(key)
    return {
        node
        for node, members in by_node.items()
        if _hardware_evidence(features, members) >= evidence_z
    }


def _hardware_evidence(features: pd.DataFrame | None, gpus: Iterable[str]) -> float:
    """Evidence that a node's own hardware (:data:`NODE_HARDWARE`) explains ``gpus``."""
    return own_evidence(features, gpus, tuple(NODE_HARDWARE), NODE_HARDWARE)


def find_incidents(
    scores: Mapping[str, float] | pd.Series | Iterable[GpuScore],
    features: pd.DataFrame | None,
    graph: nx.DiGraph,
    at: datetime,
    threshold: float,
    *,
    min_fraction: float = DEFAULT_MIN_FRACTION,
    evidence_z: float = DEFAULT_EVIDENCE_Z,
    critical: float = DEFAULT_CRITICAL,
) -> list[Incident]:
    """Group the GPUs scoring at least ``threshold`` into incidents, each under its root cause.

    Parameters
    ----------
    scores : mapping, Series or GpuScores
        Calibrated risk per GPU key.
    features : pd.DataFrame or None
        The scorer's feature table (index: GPU key) with ``z.<column>`` deviations and ``fail_*``
        flags; without it grouping relies on the fraction of GPUs at risk alone.
    graph : nx.DiGraph
        The dependency graph.
    at : datetime
        The cycle's time (used in the incident id).
    threshold : float
        Calibrated risk that counts as at risk.
    min_fraction, evidence_z, critical : float
        Share of a node's GPUs at risk that makes the node "hit", and of the nodes behind a
        component or rack hit that makes it the root cause; deviation (robust sd, from the
        ``z.`` columns) that counts as an entity's own evidence; score that is critical alone.

    Returns
    -------
    list[Incident]
        Incidents sorted by score (highest first); ``explanation`` is None (``explain`` adds it).
    """
    risk = _as_scores(scores)
    at_risk = sorted(k for k, s in risk.items() if s >= threshold)
    if not at_risk:
        return []
    flags = flags_of(features) if features is not None else {}
    node_of = {k: GpuRef.parse(k).node for k in at_risk}

    # 1. Facility components and racks: shared by at-risk GPUs on two or more nodes.
    members_of: dict[str, list[str]] = {}
    for key in at_risk:
        if key not in graph:
            continue
        for anc in nx.ancestors(graph, key):
            if graph.nodes[anc].get("kind") in FACILITY_ORDER:
                members_of.setdefault(anc, []).append(key)
    risky_share = _node_shares(graph, at_risk)
    own_hardware = _nodes_on_own_hardware(features, at_risk, node_of, evidence_z)
    candidates: list[tuple[tuple[int, int], float, int, str, list[str]]] = []
    for ent, behind in members_of.items():
        kind = str(graph.nodes[ent]["kind"])
        own = own_evidence(features, behind, OWN_PREFIX[kind]) if kind in OWN_PREFIX else 0.0
        # Without a signal of its own, a rack or component is named only for a pattern the nodes
        # cannot explain: GPUs of a node whose own hardware explains them (one fan slower than
        # its others) are that node's, however many such nodes share the rack.
        theirs = set() if own >= evidence_z else own_hardware
        members = [m for m in behind if node_of[m] not in theirs]
        if len(members) < 2 or len({node_of[m] for m in members}) < 2:
            continue
        nodes_behind = [n for n in graph.successors(ent) if graph.nodes[n].get("kind") == "node"]
        hit = [
            n for n in nodes_behind if risky_share.get(n, 0.0) >= min_fraction and n not in theirs
        ]
        joint = len(hit) >= 2 and len(hit) / max(len(nodes_behind), 1) >= min_fraction
        ev = max(own, evidence(features, members, SIGNATURES[kind], SIGNATURE_DIRECTION))
        if joint or own >= evidence_z:
            strength = ev if ev >= evidence_z else 0.0
            # With evidence a component beats the rack; without any, the rack is named.
            pref = FACILITY_ORDER[kind] if strength > 0 else 1 - FACILITY_ORDER[kind]
            pattern = sum(1 for m in members if node_of[m] in hit)
            candidates.append(((pattern, len(members)), strength, pref, ent, members))
    # Entities with evidence of their own first (a switch whose ports err explains its GPUs
    # better than a cooling unit that merely covers them and another switch's), then the
    # largest joint pattern (GPUs on the nodes it has hit); among an equal pattern the
    # strongest evidence, then the most GPUs. A broader entity does not win by a straggler: a
    # GPU at risk for its own reasons on a node it has not hit (a PDU that failed under one rack
    # is not the hall's switch because of a switch error burst and one unrelated GPU).
    candidates.sort(key=lambda c: (c[1] <= 0, -c[0][0], -c[1], -c[0][1], c[2], c[3]))
    assigned: set[str] = set()
    groups: list[tuple[str, str, list[str]]] = []
    for _, _, _, ent, members in candidates:
        free = [m for m in members if m not in assigned]
        if len(free) < 2 or len({node_of[m] for m in free}) < 2:
            continue
        if len(free) < len(members) and len(free) / len(members) < 0.5:
            continue
        groups.append((ent, str(graph.nodes[ent]["kind"]), free))
        assigned.update(free)

    # 2. Nodes: most of their GPUs at risk, or their own signals explain at-risk GPUs: two or
    # more, or a single one when it is the node's own hardware (fans, scrape targets). A node
    # incident with one GPU would otherwise flip with that GPU's own incident cycle to cycle.
    by_node: dict[str, list[str]] = {}
    for key in at_risk:
        if key not in assigned:
            by_node.setdefault(node_of[key], []).append(key)
    for node, members in sorted(by_node.items()):
        on_node = gpus_behind(graph, node) if node in graph else members
        frac = len(members) / max(len(on_node), 1)
        own = evidence(features, members, SIGNATURES["node"])
        hardware = _hardware_evidence(features, members)
        if (
            (len(members) >= 3 and frac >= min_fraction)
            or (len(members) >= 2 and own >= evidence_z)
            or hardware >= evidence_z
        ):
            groups.append((node, "node", members))
            assigned.update(members)

    # 3. Whatever is left is one GPU's own trouble.
    for key in at_risk:
        if key not in assigned:
            groups.append((key, "gpu", [key]))

    incidents: list[Incident] = []
    for ent, kind, members in groups:
        gpus = tuple(
            GpuScore(GpuRef.parse(m).node, GpuRef.parse(m).gpu, risk[m]) for m in sorted(members)
        )
        top = max(g.score for g in gpus)
        fl = sorted({f for m in members for f in flags.get(m, ())})
        rc = RootCause(id=ent, kind=kind)  # type: ignore[arg-type]
        dedup = f"{kind}:{ent}"
        incidents.append(
            Incident(
                id=incident_id(dedup, at),
                at=at,
                severity=severity_of(top, fl, critical),
                score=top,
                root_cause=rc,
                gpus=gpus,
                explanation=None,
                signals=tuple(fl + _top_signals(features, list(members))),
                evidence=gpu_evidence(features, [g.key for g in gpus]),
            )
        )
    incidents.sort(key=lambda i: (-i.score, i.root_cause.id))
    return incidents


def per_gpu_incidents(
    scores: Mapping[str, float] | pd.Series | Iterable[GpuScore],
    features: pd.DataFrame | None,
    at: datetime,
    threshold: float,
    *,
    critical: float = DEFAULT_CRITICAL,
) -> list[Incident]:
    """Return one incident per GPU at risk, no grouping (the plain baseline's view)."""
    risk = _as_scores(scores)
    flags = flags_of(features) if features is not None else {}
    out = []
    for key in sorted(k for k, s in risk.items() if s >= threshold):
        ref = GpuRef.parse(key)
        fl = flags.get(key, ())
        out.append(
            Incident(
                id=incident_id(f"gpu:{key}", at),
                at=at,
                severity=severity_of(risk[key], fl, critical),
                score=risk[key],
                root_cause=RootCause(id=key, kind="gpu"),
                gpus=(GpuScore(ref.node, ref.gpu, risk[key]),),
                signals=tuple(fl),
                evidence=gpu_evidence(features, [key]),
            )
        )
    out.sort(key=lambda i: (-i.score, i.root_cause.id))
    return out
