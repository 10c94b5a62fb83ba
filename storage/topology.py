"""Read, validate and write ``topology.yaml``: racks, their nodes and upstream components.

The file is hostile until proven otherwise: at most ``MAX_TOPOLOGY_BYTES`` (checked before it is
read), UTF-8, no YAML aliases (no billion laughs), nested at most ``MAX_TOPOLOGY_DEPTH`` levels.
Every problem is one ``TopologyError`` line; values echoed in it are cut to ~80 characters.
"""

from __future__ import annotations

import os
import reprlib
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


# Limits of what load_topology reads: a real fleet's file is a few hundred kB at most.
MAX_TOPOLOGY_BYTES = 5 * 1024 * 1024
MAX_TOPOLOGY_DEPTH = 32
_ECHO_CHARS = 80


def _short(value: Any) -> str:
    """A bounded repr of a user value for an error message (never expands big or nested data)."""
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 2, 60, 60
    short.maxdict = short.maxlist = short.maxtuple = short.maxset = 4
    text = short.repr(value)
    text = " ".join(text.split())
    return text if len(text) <= _ECHO_CHARS else text[: _ECHO_CHARS - 3] + "..."


def _label(value: Any) -> str:
    """A user-given name for an error message: one line, at most ~80 characters, no quotes."""
    return _one_line(str(value), _ECHO_CHARS)


def _keys(keys: Any) -> str:
    """Unknown mapping keys for an error message (any YAML type, bounded)."""
    shown = sorted(_short(k) for k in keys)
    more = f" (+{len(shown) - 5} more)" if len(shown) > 5 else ""
    return "[" + ", ".join(shown[:5]) + "]" + more


def _one_line(text: str, limit: int = 200) -> str:
    """Collapse whitespace to one line and cut it to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader refusing aliases (no billion laughs) and nesting deeper than a limit."""

    def __init__(self, stream: str) -> None:
        """Read ``stream``; depth starts at zero."""
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Compose one node, refusing aliases and counting how deep the document nests."""
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise _RefusedError(
                f"line {mark.line + 1}, column {mark.column + 1}: YAML aliases (*name) are not "
                "supported: write the values out in full"
            )
        self._depth += 1
        try:
            if self._depth > MAX_TOPOLOGY_DEPTH:
                mark = self.peek_event().start_mark
                raise _RefusedError(
                    f"line {mark.line + 1}, column {mark.column + 1}: nested more than "
                    f"{MAX_TOPOLOGY_DEPTH} levels deep: a topology is racks -> nodes -> roles"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _RefusedError(Exception):
    """Raised inside the loader; turned into a TopologyError naming the file."""


def _read_text(p: Path) -> str:
    """Read a topology file as UTF-8, refusing oversized files before reading them."""
    try:
        with p.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_TOPOLOGY_BYTES:
                raise TopologyError(_too_big(p, size))
            raw = fh.read(MAX_TOPOLOGY_BYTES + 1)  # a pipe or growing file has no honest size
    except FileNotFoundError:
        raise TopologyError(f"{p}: file not found (give the path of your topology.yaml)") from None
    except IsADirectoryError:
        raise TopologyError(f"{p}: is a directory (give the path of your topology.yaml)") from None
    except OSError as exc:
        raise TopologyError(f"{p}: cannot read: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > MAX_TOPOLOGY_BYTES:
        raise TopologyError(_too_big(p, len(raw)))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TopologyError(
            f"{p}: not UTF-8 text at byte {exc.start}: save the topology as UTF-8 YAML"
        ) from None


def _too_big(p: Path, size: int) -> str:
    """The message for a file over MAX_TOPOLOGY_BYTES."""
    return (
        f"{p}: {size:,} bytes, over the {MAX_TOPOLOGY_BYTES // (1024 * 1024)} MB limit of a "
        "topology file: check the path points at your topology.yaml"
    )


def _code_point(character: Any) -> int:
    """The code point of the character PyYAML's reader refused (it gives an int or a str)."""
    if isinstance(character, int):
        return character
    return ord(str(character)[:1] or "\0")


def load_topology(path: str | Path, *, partial: bool = False) -> Topology:
    """Read and validate a topology file; raise TopologyError naming the place on any problem.

    ``partial``: the file completes a topology discovered from labels (``storage.discovery``):
    ``racks`` may be absent and a rack may have no ``nodes`` (the labels place them).
    """
    p = Path(path)
    text = _read_text(p)
    try:
        data = yaml.load(text, Loader=_LimitedLoader)  # a SafeLoader subclass: safe
    except _RefusedError as exc:
        raise TopologyError(f"{p}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = _one_line(exc.problem or exc.context or type(exc).__name__)
        raise TopologyError(f"{p}:{where} not valid YAML: {problem}") from None
    except yaml.reader.ReaderError as exc:
        raise TopologyError(
            f"{p}: not valid YAML: character #x{_code_point(exc.character):04x} at position "
            f"{exc.position} is not allowed in YAML: remove it"
        ) from None
    except yaml.YAMLError as exc:
        raise TopologyError(f"{p}: not valid YAML: {_one_line(str(exc))}") from None
    except (ValueError, OverflowError) as exc:  # e.g. 2026-13-45 read as a (bad) timestamp
        raise TopologyError(
            f"{p}: not valid YAML: a value cannot be read ({_one_line(str(exc), 80)}): quote it"
        ) from None
    return parse_topology(data, source=str(p), partial=partial)


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    """Return a tuple of strings from a YAML scalar or list, or raise naming ``where``."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return tuple(str(v) for v in value)
    raise TopologyError(f"{where}: expected a list of names, got {_short(value)}")


def parse_topology(data: Any, source: str = "topology", *, partial: bool = False) -> Topology:
    """Validate the parsed YAML of a topology file and build a Topology (``partial``: see
    :func:`load_topology`)."""
    if not isinstance(data, Mapping):
        raise TopologyError(f"{source}: expected a mapping with 'racks:' at the top level")
    unknown = set(data) - {"racks", "components", "nodes"}
    if unknown:
        raise TopologyError(
            f"{source}: unknown top-level key(s) {_keys(unknown)}; allowed: racks, components, nodes"
        )
    racks_raw = data.get("racks")
    if partial and racks_raw is None:
        racks_raw = []
    if not isinstance(racks_raw, list) or (not racks_raw and not partial):
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
        where = f"{source}: racks[{i}] ({_label(rid)})"
        extra = set(raw) - {"id", "nodes", *_ROLES}
        if extra:
            raise TopologyError(
                f"{where}: unknown key(s) {_keys(extra)}; allowed: id, nodes, power, cooling, network"
            )
        nodes_raw = raw.get("nodes")
        if partial and nodes_raw is None:
            nodes_raw = []
        if not isinstance(nodes_raw, list) or (not nodes_raw and not partial):
            raise TopologyError(f"{where}: 'nodes' must be a non-empty list")
        nodes: list[str] = []
        for j, entry in enumerate(nodes_raw):
            name, override = _parse_node_entry(entry, f"{where}.nodes[{j}]")
            if name in seen_nodes:
                raise TopologyError(
                    f"{where}.nodes[{j}]: node {_short(name)} is already in rack {_label(seen_nodes[name])}"
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
                f"{where} ({_label(name)}): unknown key(s) {_keys(extra)}; allowed: name, power, cooling, network"
            )
        kw = {
            role: _str_list(entry[role], f"{where}.{role}") if role in entry else None
            for role in _ROLES
        }
        return name, NodeOverride(**kw)
    raise TopologyError(
        f"{where}: expected a node name or a mapping with 'name', got {_short(entry)}"
    )


def _parse_components(raw: Any, source: str) -> dict[str, Component]:
    """Parse the optional ``components:`` mapping of id -> {kind, metrics}."""
    if not isinstance(raw, Mapping):
        raise TopologyError(f"{source}: 'components' must be a mapping of id -> {{kind, metrics}}")
    out: dict[str, Component] = {}
    for cid, spec in raw.items():
        where = f"{source}: components.{_label(cid)}"
        if not isinstance(spec, Mapping):
            raise TopologyError(f"{where}: expected a mapping with 'kind' and 'metrics'")
        kind = spec.get("kind")
        if kind not in COMPONENT_KINDS:
            raise TopologyError(
                f"{where}: kind must be one of {', '.join(COMPONENT_KINDS)}, got {_short(kind)}"
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
                        f"{source}: rack {_label(rack.id)} lists {_short(cid)} under {role}, but "
                        f"that component is kind {comp.kind!r} (expected {_ROLE_KIND[role]!r})"
                    )
    for node, ov in overrides.items():
        for role in _ROLES:
            for cid in getattr(ov, role) or ():
                comp = components.get(cid)
                if comp is not None and comp.kind != _ROLE_KIND[role]:
                    raise TopologyError(
                        f"{source}: node {_label(node)} lists {_short(cid)} under {role}, but that "
                        f"component is kind {comp.kind!r} (expected {_ROLE_KIND[role]!r})"
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
