"""Hostile topology files: every input is a Topology or one short TopologyError line, quickly."""

from __future__ import annotations

import string
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.types import Topology
from storage.topology import (
    MAX_TOPOLOGY_BYTES,
    MAX_TOPOLOGY_DEPTH,
    TopologyError,
    load_topology,
    parse_topology,
)

FUZZ = settings(
    deadline=None,
    derandomize=True,
    max_examples=250,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# The 300-odd byte "billion laughs": 9^9 strings once expanded.
ALIAS_BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def _outcome(path: Path) -> Topology | str:
    """Load ``path``; return the topology or the error's message, asserted short and one line."""
    try:
        return load_topology(path)
    except TopologyError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and "\r" not in msg, msg
        assert len(msg) < 400, msg
        assert msg.startswith(str(path)), msg
        return msg


def _write(tmp_path: Path, content: bytes | str) -> Path:
    """Write ``content`` to a fresh topology file."""
    path = tmp_path / "topology.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    """A few hundred bytes that expand to 387 million strings: refused in milliseconds."""
    assert len(ALIAS_BOMB) < 400
    t0 = time.perf_counter()
    msg = _outcome(_write(tmp_path, ALIAS_BOMB))
    elapsed = time.perf_counter() - t0
    assert isinstance(msg, str) and "aliases" in msg and "line 2" in msg
    assert elapsed < 0.5, elapsed


def test_any_alias_is_refused_even_a_harmless_one(tmp_path: Path) -> None:
    """Merge keys and plain aliases need aliases: refused with where and what to do."""
    text = "racks:\n  - &r {id: r1, nodes: [n1]}\n  - *r\n"
    msg = _outcome(_write(tmp_path, text))
    assert isinstance(msg, str) and "line 3" in msg and "write the values out" in msg


def test_fifty_megabytes_are_refused_before_reading(tmp_path: Path) -> None:
    """A 50 MB file is refused from its size, in well under a second."""
    path = tmp_path / "topology.yaml"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("racks:\n")
        line = "  - {id: r, nodes: [n]}\n"
        fh.write(line * (50 * 1024 * 1024 // len(line)))
    t0 = time.perf_counter()
    msg = _outcome(path)
    elapsed = time.perf_counter() - t0
    assert isinstance(msg, str) and "5 MB limit" in msg
    assert elapsed < 0.1, elapsed


def test_a_large_but_legal_fleet_still_loads(tmp_path: Path) -> None:
    """Just under the limit: 500 racks of 20 nodes each load."""
    racks = [
        {"id": f"rack-{r}", "nodes": [f"n-{r}-{n}" for n in range(20)], "power": [f"pdu-{r}"]}
        for r in range(500)
    ]
    path = _write(tmp_path, yaml.safe_dump({"racks": racks}))
    assert path.stat().st_size < MAX_TOPOLOGY_BYTES
    topo = load_topology(path)
    assert isinstance(topo, Topology) and len(topo.nodes) == 10_000


def test_non_utf8_is_reported_with_its_byte(tmp_path: Path) -> None:
    """Latin-1 bytes: 'not UTF-8 text at byte N', no UnicodeDecodeError."""
    msg = _outcome(_write(tmp_path, b"racks:\n  - id: r\xe9ck\n"))
    assert isinstance(msg, str) and "not UTF-8 text at byte 16" in msg


@pytest.mark.parametrize(
    "text",
    [
        "racks: " + "[" * 20_000 + "]" * 20_000,
        "racks: " + "{a: " * 20_000 + "b" + "}" * 20_000,
        "".join("  " * i + "a:\n" for i in range(1500)),
        "racks:\n" + "".join("  " * i + "- \n" for i in range(1, 1500)),
    ],
    ids=["flow-lists", "flow-maps", "block-maps", "block-lists"],
)
def test_deep_nesting_is_refused_without_recursion_error(tmp_path: Path, text: str) -> None:
    """20,000 levels deep: one line naming the limit, no RecursionError."""
    msg = _outcome(_write(tmp_path, text))
    assert isinstance(msg, str) and f"more than {MAX_TOPOLOGY_DEPTH} levels" in msg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("racks: 2026-13-45\n", "a value cannot be read"),
        ("racks: a\x00b\n", "#x0000"),
        ("racks: [{id: r, nodes: [n]}]\n1: x\nb: y\n", "unknown top-level key(s)"),
        ("racks: [{id: r, nodes: [n], 7: x, z: y}]\n", "unknown key(s)"),
        ("racks: [{id: r, nodes: [n], power: {" + "k: v, " * 5000 + "}}]\n", "expected a list"),
        ("racks: [{id: '" + "r" * 100_000 + "', nodes: 1}]\n", "non-empty list"),
        ("racks: !!python/object:os.system {}\n", "not valid YAML"),
        ("racks: [{id: r, nodes: [1.5]}]\n", "expected a node name"),
        ("racks: [{id: r, nodes: [n]}]\ncomponents: {p: {kind: [pdu]}}\n", "kind must be"),
        ("racks: [{id: r, nodes: [n]}]\ncomponents: {p: {kind: {a: b}}}\n", "kind must be"),
        ("", "expected a mapping"),
        ("\ufeffracks: [{id: r, nodes: [n]}]\n", ""),
    ],
)
def test_odd_values_are_short_errors(tmp_path: Path, text: str, expected: str) -> None:
    """Timestamps that are no dates, NULs, mixed-type keys, huge values: short, bounded lines."""
    out = _outcome(_write(tmp_path, text))
    if expected:
        assert isinstance(out, str) and expected in out, out
    else:
        assert isinstance(out, Topology)


# ------------------------------------------------------------------ generated inputs

YAMLISH = st.text(
    alphabet=st.sampled_from(list(string.ascii_letters[:6] + "0123-_ :,[]{}&*!|>'\"#?%@`\n\t.")),
    max_size=200,
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
DOCS = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=5)
    ),
    max_leaves=30,
)
NAMES = st.text(min_size=0, max_size=12) | st.integers() | st.none() | st.floats()
ROLE = st.none() | NAMES | st.lists(NAMES, max_size=3) | st.dictionaries(NAMES, NAMES, max_size=2)
NODE = NAMES | st.fixed_dictionaries(
    {"name": NAMES}, optional={"power": ROLE, "cooling": ROLE, "network": ROLE, "x": NAMES}
)
RACK = st.fixed_dictionaries(
    {"id": NAMES},
    optional={
        "nodes": st.lists(NODE, max_size=4) | NAMES,
        "power": ROLE,
        "cooling": ROLE,
        "network": ROLE,
        "extra": NAMES,
    },
)
COMPONENT = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from(["pdu", "cooling", "switch", "fan"]) | NAMES,
        "metrics": st.dictionaries(NAMES, NAMES, max_size=2) | NAMES,
    },
)
TOPOLOGY_LIKE = st.fixed_dictionaries(
    {"racks": st.lists(RACK, max_size=4) | NAMES},
    optional={
        "components": st.dictionaries(NAMES, COMPONENT | NAMES, max_size=3) | NAMES,
        "nodes": NAMES,
        "other": NAMES,
    },
)


def _safe_dump(data: Any) -> str:
    """YAML text of ``data`` (keys of any type, nothing sorted)."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=False)


@FUZZ
@given(content=st.binary(max_size=400))
def test_random_bytes(tmp_path: Path, content: bytes) -> None:
    """Random bytes: a topology or one short TopologyError line."""
    _outcome(_write(tmp_path, content))


@FUZZ
@given(text=YAMLISH)
def test_random_yaml_punctuation(tmp_path: Path, text: str) -> None:
    """Text made of YAML's syntax characters (anchors, tags, flow, blocks, directives)."""
    _outcome(_write(tmp_path, text))


@FUZZ
@given(data=DOCS)
def test_random_documents(tmp_path: Path, data: Any) -> None:
    """Any YAML document (nested lists/maps of any scalars) loads or is one line."""
    _outcome(_write(tmp_path, _safe_dump(data)))


@FUZZ
@given(data=TOPOLOGY_LIKE)
def test_random_topology_shapes(tmp_path: Path, data: Any) -> None:
    """Almost-topologies with wrong types in every place: valid, or one line naming the place."""
    _outcome(_write(tmp_path, _safe_dump(data)))
    try:
        parse_topology(data)
    except TopologyError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400


@settings(FUZZ, max_examples=80)
@given(depth=st.integers(min_value=1, max_value=200), width=st.integers(0, 3))
def test_nesting_at_and_beyond_the_limit(tmp_path: Path, depth: int, width: int) -> None:
    """Nested lists of any depth: past the limit refused by name, below it judged on content."""
    text = "racks: " + "[" * depth + ", ".join(["x"] * width) + "]" * depth
    out = _outcome(_write(tmp_path, text))
    levels = 1 + depth + (1 if width else 0)  # the top mapping, the lists, the scalars
    if levels > MAX_TOPOLOGY_DEPTH:
        assert isinstance(out, str) and "levels deep" in out
    else:
        assert isinstance(out, str) and "levels deep" not in out


@settings(FUZZ, max_examples=25)
@given(n=st.integers(min_value=1, max_value=20_000), kind=st.sampled_from(["flow", "block"]))
def test_huge_lists(tmp_path: Path, n: int, kind: str) -> None:
    """Long node lists (with duplicates past the first) load or fail on the duplicate, quickly."""
    names = [f"n{i % 5000}" for i in range(n)]
    if kind == "flow":
        text = "racks: [{id: r, nodes: [" + ", ".join(names) + "]}]\n"
    else:
        text = "racks:\n  - id: r\n    nodes:\n" + "".join(f"      - {x}\n" for x in names)
    out = _outcome(_write(tmp_path, text))
    if n > 5000:
        assert isinstance(out, str) and "already in rack r" in out
    else:
        assert isinstance(out, Topology) and len(out.nodes) == n
