"""Read, validate and write ``topology.yaml``: racks, their nodes and upstream components."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from analysis.catalog import COMPONENT_KINDS
from analysis.types import Component, NodeOverride, Rack, Topology

_ROLES = ("power", "cooling", "network")
_ROLE_KIND = {"power": "pdu", "cooling": "cooling", "network": "switch"}


class TopologyError(ValueError):
    """A topology file is malformed; the message names the place and the problem."""


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology file; raise TopologyError naming the place on any problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TopologyError(f"{p}: file not found (give the path of your topology.yaml)") from None
    except OSError as exc:
        raise TopologyError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TopologyError(f"{p}:{where}: not valid YAML: {problem}") from None
    return parse_topology(data, source=str(p))


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    """Return a tuple of strings from a YAML scalar or list, or raise naming ``where``."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return tuple(str(v) for v in value)
    raise TopologyError(f"{where}: expected a list of names, got {value!r}")


def parse_topology(data: Any, source: str = "topology") -> Topology:
    """Validate the parsed YAML of a topology file and build a Topology."""
    if not isinstance(data, Mapping):
        raise TopologyError(f"{source}: expected a mapping with 'racks:' at the top level")
    unknown = set(data) - {"racks", "components", "nodes"}
    if unknown:
        raise TopologyError(
            f"{source}: unknown top-level key(s) {sorted(unknown)}; allowed: racks, components, nodes"
        )
    racks_raw = data.get("racks")
    if not isinstance(racks_raw, list) or not racks_raw:
        raise TopologyError(f"{source}: 'racks' must be a non-empty list of racks")
    components = _parse_components(data.get("components") or {}, source)
    racks: list[Rack] = []
    seen_nodes: dict[str, str] = {}
    overrides: dict[str, NodeOverride] = {}
    for i, raw in enumerate(racks_raw):
        where = f"{source}: racks[{i}]"
        if not isinstance(raw, Mapping):
            raise TopologyError(f"{where}: expected a mapping with id and nodes")
        rid = raw.get("id")
        if not isinstance(rid, str) or not rid:
            raise TopologyError(f"{where}: missing 'id' (a rack name such as rack-a1)")
        where = f"{source}: racks[{i}] ({rid})"
        extra = set(raw) - {"id", "nodes", *_ROLES}
        if extra:
            raise TopologyError(
                f"{where}: unknown key(s) {sorted(extra)}; allowed: id, nodes, power, cooling, network"
            )
        nodes_raw = raw.get("nodes")
        if not isinstance(nodes_raw, list) or not nodes_raw:
            raise TopologyError(f"{where}: 'nodes' must be a non-empty list")
        nodes: list[str] = []
        for j, entry in enumerate(nodes_raw):
            name, override = _parse_node_entry(entry, f"{where}.nodes[{j}]")
            if name in seen_nodes:
                raise TopologyError(
                    f"{where}.nodes[{j}]: node {name!r} is already in rack {seen_nodes[name]}"
                )
            seen_nodes[name] = rid
            nodes.append(name)
            if override is not None:
                overrides[name] = override
        roles = {role: _str_list(raw.get(role), f"{where}.{role}") for role in _ROLES}
        racks.append(Rack(id=rid, nodes=tuple(nodes), **roles))
    if len({r.id for r in racks}) != len(racks):
        raise TopologyError(f"{source}: rack ids must be unique")
    _check_roles(racks, overrides, components, source)
    return Topology(racks=tuple(racks), components=components, node_overrides=overrides)


def _parse_node_entry(entry: Any, where: str) -> tuple[str, NodeOverride | None]:
    """A node is a name, or a mapping ``{name: ..., power: [...], ...}`` overriding the rack."""
    if isinstance(entry, str | int):
        return str(entry), None
    if isinstance(entry, Mapping):
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise TopologyError(f"{where}: a node mapping needs 'name'")
        extra = set(entry) - {"name", *_ROLES}
        if extra:
            raise TopologyError(
                f"{where} ({name}): unknown key(s) {sorted(extra)}; allowed: name, power, cooling, network"
            )
        kw = {
            role: _str_list(entry[role], f"{where}.{role}") if role in entry else None
            for role in _ROLES
        }
        return name, NodeOverride(**kw)
    raise TopologyError(f"{where}: expected a node name or a mapping with 'name', got {entry!r}")


def _parse_components(raw: Any, source: str) -> dict[str, Component]:
    """Parse the optional ``components:`` mapping of id -> {kind, metrics}."""
    if not isinstance(raw, Mapping):
        raise TopologyError(f"{source}: 'components' must be a mapping of id -> {{kind, metrics}}")
    out: dict[str, Component] = {}
    for cid, spec in raw.items():
        where = f"{source}: components.{cid}"
        if not isinstance(spec, Mapping):
            raise TopologyError(f"{where}: expected a mapping with 'kind' and 'metrics'")
        kind = spec.get("kind")
        if kind not in COMPONENT_KINDS:
            raise TopologyError(
                f"{where}: kind must be one of {', '.join(COMPONENT_KINDS)}, got {kind!r}"
            )
        metrics = spec.get("metrics") or {}
        if not isinstance(metrics, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in metrics.items()
        ):
            raise TopologyError(f"{where}.metrics: expected a mapping of name -> PromQL string")
        out[str(cid)] = Component(id=str(cid), kind=kind, metrics=dict(metrics))
    return out


def _check_roles(
    racks: list[Rack],
    overrides: Mapping[str, NodeOverride],
    components: Mapping[str, Component],
    source: str,
) -> None:
    """A component declared under components: must be used in a role that matches its kind."""
    for rack in racks:
        for role in _ROLES:
            for cid in getattr(rack, role):
                comp = components.get(cid)
                if comp is not None and comp.kind != _ROLE_KIND[role]:
                    raise TopologyError(
                        f"{source}: rack {rack.id} lists {cid!r} under {role}, but components.{cid} "
                        f"is kind {comp.kind!r} (expected {_ROLE_KIND[role]!r})"
                    )
    for node, ov in overrides.items():
        for role in _ROLES:
            for cid in getattr(ov, role) or ():
                comp = components.get(cid)
                if comp is not None and comp.kind != _ROLE_KIND[role]:
                    raise TopologyError(
                        f"{source}: node {node} lists {cid!r} under {role}, but components.{cid} "
                        f"is kind {comp.kind!r} (expected {_ROLE_KIND[role]!r})"
                    )


def topology_to_dict(topology: Topology) -> dict[str, Any]:
    """Return the YAML-ready form of a Topology (the inverse of parse_topology)."""
    racks: list[dict[str, Any]] = []
    for rack in topology.racks:
        nodes: list[Any] = []
        for n in rack.nodes:
            ov = topology.node_overrides.get(n)
            if ov is None:
                nodes.append(n)
            else:
                entry: dict[str, Any] = {"name": n}
                for role in _ROLES:
                    if getattr(ov, role) is not None:
                        entry[role] = list(getattr(ov, role))
                nodes.append(entry)
        item: dict[str, Any] = {"id": rack.id, "nodes": nodes}
        for role in _ROLES:
            if getattr(rack, role):
                item[role] = list(getattr(rack, role))
        racks.append(item)
    out: dict[str, Any] = {"racks": racks}
    if topology.components:
        out["components"] = {
            c.id: {"kind": c.kind, "metrics": dict(c.metrics)} for c in topology.components.values()
        }
    return out


def dump_topology(topology: Topology, path: str | Path) -> None:
    """Write a Topology as YAML to ``path``."""
    Path(path).write_text(
        yaml.safe_dump(topology_to_dict(topology), sort_keys=False), encoding="utf-8"
    )
