"""The topology from metric labels, completed by ``topology.yaml`` for what labels cannot say.

Kubernetes already knows where many nodes are: kube-state-metrics exports every node label as
``kube_node_labels{node="...", label_topology_kubernetes_io_zone="...", ...}``, NVIDIA's network
operator adds ``network.topology.nvidia.com/*`` labels (``label_network_topology_nvidia_com_*``),
and any exporter may carry a rack or PDU label. ``GPU_RISK_TOPOLOGY_LABELS`` maps a role to the
``metric:label`` that names it, e.g.::

    {"rack": "kube_node_labels:label_topology_kubernetes_io_zone",
     "switch": "kube_node_labels:label_network_topology_nvidia_com_leaf"}

Roles: ``rack``, ``switch`` (network), ``pdu`` (power), ``cooling``. ``GPU_RISK_TOPOLOGY_NODE_LABEL``
(default ``node``) is the label of those series naming the node, as DCGM's ``Hostname`` does.
One instant query per distinct metric, for the whole fleet, with the series selector applied.

The file (``GPU_RISK_TOPOLOGY``, read with ``partial=True``: racks may list no nodes) adds what
labels cannot say: which PDU and cooling unit feed a rack, and every component's PromQL. Where
the file and the labels disagree the file wins, and the disagreement is reported. Every fact of
the result carries where it came from (:class:`Discovered`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from analysis.types import NodeOverride, Rack, Topology
from storage.source import MetricsSourceError

#: Roles a label may name, and the topology field each fills (``rack`` is the rack itself).
ROLE_ALIASES: Mapping[str, str] = {
    "rack": "rack",
    "switch": "network",
    "network": "network",
    "pdu": "power",
    "power": "power",
    "cooling": "cooling",
}
#: The component roles of a rack, in topology order.
ROLES: tuple[str, ...] = ("power", "cooling", "network")
#: The component kind of each role (as in ``topology.yaml``).
ROLE_KIND: Mapping[str, str] = {"power": "pdu", "cooling": "cooling", "network": "switch"}

FROM_LABELS = "labels"
FROM_FILE = "file"

_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?$", re.DOTALL)


class DiscoveryError(ValueError):
    """``GPU_RISK_TOPOLOGY_LABELS`` is malformed; the message says which entry and why."""


@dataclass(frozen=True)
class LabelSource:
    """One role read from labels: ``role`` (rack, power, cooling, network) from ``metric``'s
    ``label``."""

    role: str
    metric: str
    label: str


def parse_label_sources(mapping: Mapping[str, Any] | None) -> tuple[LabelSource, ...]:
    """Validate ``GPU_RISK_TOPOLOGY_LABELS``: role -> ``"metric:label"`` (or {metric, label})."""
    out: list[LabelSource] = []
    seen: dict[str, str] = {}
    for key, raw in (mapping or {}).items():
        role = ROLE_ALIASES.get(str(key).lower())
        if role is None:
            raise DiscoveryError(
                f"topology label role {key!r} is unknown: use rack, switch, pdu or cooling"
            )
        if role in seen:
            raise DiscoveryError(f"topology label roles {seen[role]!r} and {key!r} are the same")
        seen[role] = str(key)
        if isinstance(raw, Mapping):
            metric, label = str(raw.get("metric") or ""), str(raw.get("label") or "")
        elif isinstance(raw, str) and ":" in raw:
            metric, label = (part.strip() for part in raw.rsplit(":", 1))
        else:
            raise DiscoveryError(
                f"topology label {key!r}: {raw!r} is not metric:label, e.g. "
                "kube_node_labels:label_topology_kubernetes_io_zone"
            )
        if not _METRIC.match(metric) or not _LABEL.match(label):
            raise DiscoveryError(
                f"topology label {key!r}: {raw!r} is not metric:label (a metric name or "
                "selector, a colon, a label name)"
            )
        out.append(LabelSource(role, metric, label))
    return tuple(out)


class InstantQuerier(Protocol):
    """What discovery needs of a reader: instant queries and the series selector."""

    def query(
        self, query: str, at: datetime | None = None, *, what: str = ""
    ) -> list[tuple[dict[str, str], float]]:
        """Run an instant query; return (labels, value) per series."""
        ...

    def select(self, promql: str) -> str:
        """Add the series selector to a plain selector."""
        ...


@dataclass(frozen=True)
class LabelFacts:
    """What the labels say: node -> role -> component or rack id, and anything odd."""

    roles: Mapping[str, Mapping[str, str]]
    sources: tuple[LabelSource, ...]
    notes: tuple[str, ...] = ()


def read_label_facts(
    querier: InstantQuerier,
    sources: Sequence[LabelSource],
    *,
    node_label: str = "node",
    at: datetime | None = None,
) -> LabelFacts:
    """One instant query per distinct metric; per node, the value of each mapped label."""
    by_metric: dict[str, list[LabelSource]] = {}
    for src in sources:
        by_metric.setdefault(src.metric, []).append(src)
    roles: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    for metric, members in by_metric.items():
        series = querier.query(querier.select(metric), at, what=f"topology labels ({metric})")
        if not series:
            notes.append(
                f"{metric}: no series{' at ' + at.isoformat() if at else ''}: check that it is "
                "scraped (kube-state-metrics for kube_node_labels) and the series selector"
            )
            continue
        unnamed = 0
        for labels, _ in series:
            node = labels.get(node_label, "")
            if not node:
                unnamed += 1
                continue
            for src in members:
                value = labels.get(src.label, "")
                if not value:
                    continue
                known = roles.setdefault(node, {}).get(src.role)
                if known is not None and known != value:
                    notes.append(
                        f"node {node}: {src.label} is both {known!r} and {value!r}; using "
                        f"{min(known, value)!r}"
                    )
                    value = min(known, value)
                roles[node][src.role] = value
        if unnamed:
            notes.append(
                f"{metric}: {unnamed} series without a {node_label!r} label were skipped "
                "(set GPU_RISK_TOPOLOGY_NODE_LABEL)"
            )
    for src in sources:
        if not any(src.role in r for r in roles.values()):
            notes.append(f"no node has {src.metric}'s label {src.label} ({_role_name(src.role)})")
    return LabelFacts(roles=roles, sources=tuple(sources), notes=tuple(notes))


def _role_name(role: str) -> str:
    """How a role is called to a user (the setting's spelling)."""
    return {"network": "switch", "power": "pdu"}.get(role, role)


@dataclass(frozen=True)
class Discovered:
    """The merged topology and where each fact of it came from.

    ``node_from``: node -> where its rack came from (``labels`` or ``file``); ``role_from``:
    (node, role) -> where that node's power/cooling/network came from; ``rack_from``: rack ->
    ``file``, ``labels`` or ``file+labels``; ``conflicts``: the file and the labels disagreed
    (the file won); ``notes``: anything else worth knowing (nodes without a rack label...).
    """

    topology: Topology
    node_from: Mapping[str, str] = field(default_factory=dict)
    role_from: Mapping[tuple[str, str], str] = field(default_factory=dict)
    rack_from: Mapping[str, str] = field(default_factory=dict)
    conflicts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def component_links(self) -> list[dict[str, Any]]:
        """Each component, the racks it serves (all nodes, or which ones) and where it came from."""
        topo = self.topology
        out: dict[str, dict[str, Any]] = {}
        for rack in topo.racks:
            for node in rack.nodes:
                for role, comps in topo.upstream_of(node).items():
                    for cid in comps:
                        entry = out.setdefault(
                            cid,
                            {
                                "id": cid,
                                "kind": topo.component_kind(cid),
                                "metrics": cid in topo.components,
                                "racks": {},
                            },
                        )
                        served = entry["racks"].setdefault(
                            rack.id, {"role": role, "nodes": [], "from": set()}
                        )
                        served["nodes"].append(node)
                        served["from"].add(self.role_from.get((node, role), FROM_FILE))
        for cid, comp in topo.components.items():
            out.setdefault(cid, {"id": cid, "kind": comp.kind, "metrics": True, "racks": {}})
        result = []
        for cid in sorted(out):
            entry = out[cid]
            racks = []
            for rid, served in entry["racks"].items():
                rack = next(r for r in topo.racks if r.id == rid)
                whole = len(served["nodes"]) == len(rack.nodes)
                racks.append(
                    {
                        "rack": rid,
                        "role": served["role"],
                        "nodes": None if whole else sorted(served["nodes"]),
                        "from": "+".join(sorted(served["from"])),
                    }
                )
            entry["racks"] = racks
            result.append(entry)
        return result

    def as_dict(self) -> dict[str, Any]:
        """The ``gpu-risk topology show --format json`` shape."""
        return {
            "racks": [
                {
                    "id": rack.id,
                    "from": self.rack_from.get(rack.id, FROM_FILE),
                    "nodes": [
                        {
                            "name": n,
                            "from": self.node_from.get(n, FROM_FILE),
                            "upstream": {
                                _role_name(role): {
                                    "ids": list(ids),
                                    "from": self.role_from.get((n, role), FROM_FILE),
                                }
                                for role, ids in self.topology.upstream_of(n).items()
                                if ids
                            },
                        }
                        for n in rack.nodes
                    ],
                }
                for rack in self.topology.racks
            ],
            "components": self.component_links(),
            "conflicts": list(self.conflicts),
            "notes": list(self.notes),
        }


def file_only(topology: Topology) -> Discovered:
    """A file-only topology as a Discovered (everything from the file)."""
    return Discovered(
        topology=topology,
        node_from=dict.fromkeys(topology.nodes, FROM_FILE),
        rack_from={r.id: FROM_FILE for r in topology.racks},
    )


def merge_topology(file: Topology | None, facts: LabelFacts) -> Discovered:
    """Merge what the labels say with the file; the file wins every disagreement (reported).

    A node listed in the file stays in its file rack; a node only the labels know joins the rack
    its label names (a file rack of that id, or a new one). Per node and role, the file's value
    (a node override, else its rack's) wins; otherwise the label's. The result is compressed back
    to racks (each rack's most common value, or the file's) and node overrides.
    """
    file = file if file is not None else Topology(racks=())
    label_of = {s.role: s.label for s in facts.sources}
    conflicts: list[str] = []
    notes: list[str] = list(facts.notes)
    rack_of: dict[str, str] = {}
    node_from: dict[str, str] = {}
    members: dict[str, list[str]] = {r.id: [] for r in file.racks}
    for rack in file.racks:
        for node in rack.nodes:
            rack_of[node], node_from[node] = rack.id, FROM_FILE
            members[rack.id].append(node)
            said = facts.roles.get(node, {}).get("rack")
            if said is not None and said != rack.id:
                conflicts.append(
                    f"node {node}: labels say rack {said} ({label_of.get('rack')}), the file "
                    f"says {rack.id}: using the file"
                )
    no_rack: list[str] = []
    for node in sorted(facts.roles):
        if node in rack_of:
            continue
        said = facts.roles[node].get("rack")
        if said is None:
            no_rack.append(node)
            continue
        rack_of[node], node_from[node] = said, FROM_LABELS
        members.setdefault(said, []).append(node)
    if no_rack:
        shown = ", ".join(no_rack[:5]) + (
            f" (+{len(no_rack) - 5} more)" if len(no_rack) > 5 else ""
        )
        notes.append(
            f"{len(no_rack)} node(s) have no rack label and are not in the file: {shown}; they "
            "are scored without shared components"
        )

    file_racks = {r.id: r for r in file.racks}
    effective: dict[tuple[str, str], tuple[str, ...]] = {}
    role_from: dict[tuple[str, str], str] = {}
    for node, rid in rack_of.items():
        override = file.node_overrides.get(node)
        for role in ROLES:
            from_file: tuple[str, ...] | None = None
            if override is not None and getattr(override, role) is not None:
                from_file = getattr(override, role)
            elif rid in file_racks and getattr(file_racks[rid], role):
                from_file = getattr(file_racks[rid], role)
            said = facts.roles.get(node, {}).get(role)
            if from_file is not None:
                effective[(node, role)], role_from[(node, role)] = from_file, FROM_FILE
                if said is not None and said not in from_file:
                    conflicts.append(
                        f"node {node}: labels say {_role_name(role)} {said} ({label_of.get(role)}), "
                        f"the file says {', '.join(from_file) or 'none'}: using the file"
                    )
            elif said is not None:
                effective[(node, role)], role_from[(node, role)] = (said,), FROM_LABELS
            else:
                effective[(node, role)] = ()

    racks: list[Rack] = []
    overrides: dict[str, NodeOverride] = {}
    rack_from: dict[str, str] = {}
    order = [r.id for r in file.racks] + sorted(set(members) - set(file_racks))
    for rid in order:
        nodes = members.get(rid, [])
        if not nodes:
            notes.append(
                f"rack {rid} (file): no nodes in the file and none in the labels: left out"
            )
            continue
        values: dict[str, tuple[str, ...]] = {}
        for role in ROLES:
            fixed = getattr(file_racks[rid], role) if rid in file_racks else ()
            if fixed:
                values[role] = fixed
            else:
                counts = Counter(effective[(n, role)] for n in nodes)
                values[role] = min(counts, key=lambda v: (-counts[v], v))
        racks.append(Rack(id=rid, nodes=tuple(nodes), **values))
        for node in nodes:
            own = {
                role: effective[(node, role)]
                for role in ROLES
                if effective[(node, role)] != values[role]
            }
            if own:
                overrides[node] = NodeOverride(**own)
        sources = {node_from[n] for n in nodes}
        if rid in file_racks:
            sources.add(FROM_FILE)
        rack_from[rid] = "+".join(sorted(sources))
    topology = Topology(
        racks=tuple(racks), components=dict(file.components), node_overrides=overrides
    )
    _check_kinds(topology, conflicts)
    return Discovered(
        topology=topology,
        node_from=node_from,
        role_from=role_from,
        rack_from=rack_from,
        conflicts=tuple(conflicts),
        notes=tuple(notes),
    )


def _check_kinds(topology: Topology, conflicts: list[str]) -> None:
    """A label naming a declared component under the wrong role (a PDU as a switch) is reported."""
    for node in topology.nodes:
        for role, ids in topology.upstream_of(node).items():
            for cid in ids:
                comp = topology.components.get(cid)
                if comp is not None and comp.kind != ROLE_KIND[role]:
                    conflicts.append(
                        f"node {node}: {cid} is used as {_role_name(role)} but the file declares "
                        f"it kind {comp.kind}"
                    )


def discover_topology(
    querier: InstantQuerier,
    sources: Sequence[LabelSource],
    file: Topology | None,
    *,
    node_label: str = "node",
    at: datetime | None = None,
) -> Discovered:
    """Read the labels (one instant query per metric) and merge them with the file."""
    facts = read_label_facts(querier, sources, node_label=node_label, at=at)
    if not facts.roles and (file is None or not file.racks):
        raise MetricsSourceError(
            "topology from labels: no node has any of the mapped labels "
            f"({', '.join(f'{s.metric}:{s.label}' for s in sources)}) and the topology file "
            "lists no racks: check GPU_RISK_TOPOLOGY_LABELS, GPU_RISK_TOPOLOGY_NODE_LABEL and "
            "the series selector"
        )
    return merge_topology(file, facts)
