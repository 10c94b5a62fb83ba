"""The static baseline: the rules file (promtool), its evaluator on Prometheus, the Python scorer."""

from __future__ import annotations

import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from analysis.catalog import STATIC_RULE_XIDS
from analysis.graph import build_graph
from analysis.static_rules import RULES, StaticRules
from analysis.types import FleetFrames, ScanResult
from storage.metrics import PrometheusSource
from storage.topology import load_topology
from tests.fixtures import fleetdata as fd
from tests.fixtures.prometheus import PROMTOOL, PromqlBackend, require_binary
from tests.fixtures.rules import (
    DEFAULT_RULES_FILE,
    RulesError,
    evaluate_rules,
    firing_at,
    load_rules,
    parse_duration,
)
from tests.test_metrics_prometheus import CountingSession

pytest_plugins = ("tests.fixtures.prometheus",)

STEP = timedelta(minutes=1)
M = timedelta(minutes=1)


@pytest.mark.prometheus
def test_rules_file_passes_promtool() -> None:
    """The shipped rules file is valid Prometheus rules (promtool check rules)."""
    promtool = require_binary(PROMTOOL)
    out = subprocess.run(
        [promtool, "check", "rules", str(DEFAULT_RULES_FILE)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert "SUCCESS: 6 rules found" in out.stdout


def test_rules_file_and_python_scorer_name_the_same_rules() -> None:
    """Alert names, short names, severities and for: of the YAML match the Python scorer's."""
    rules = load_rules()
    assert [(r.alert, r.name, r.severity, r.for_) for r in rules] == [
        (r.alert, r.name, r.severity, r.for_) for r in RULES
    ]
    temp = next(r for r in rules if r.name == "temperature")
    assert temp.expr == f"DCGM_FI_DEV_GPU_TEMP > {StaticRules().temp_threshold:g}"
    xid = next(r for r in rules if r.name == "hardware_xid")
    # Both XID lists of the YAML (gauge == code, count{xid=~...}) are the catalogue's, exactly.
    gauge_codes = {int(c) for c in re.findall(r"DCGM_FI_DEV_XID_ERRORS == (\d+)", xid.expr)}
    counted = re.search(r'xid=~"([\d|]+)"', xid.expr)
    assert counted is not None
    assert gauge_codes == {int(c) for c in counted.group(1).split("|")} == STATIC_RULE_XIDS
    assert set(StaticRules().hardware_xids) == STATIC_RULE_XIDS


def test_parse_duration_and_bad_rules_files(tmp_path: Path) -> None:
    """Durations parse like Prometheus'; malformed files name the place."""
    assert parse_duration("5m") == timedelta(minutes=5)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("0s") == timedelta(0)
    assert parse_duration(None) == timedelta(0)
    with pytest.raises(RulesError, match="not a Prometheus duration"):
        parse_duration("5 minutes")
    bad = tmp_path / "r.yml"
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: X\n", encoding="utf-8")
    with pytest.raises(RulesError, match=r"group g, rules\[0\]: an alerting rule needs"):
        load_rules(bad)
    with pytest.raises(RulesError, match="not found"):
        load_rules(tmp_path / "missing.yml")


@pytest.mark.prometheus
def test_evaluator_replays_pending_and_firing(prometheus_server: PromqlBackend) -> None:
    """Each rule's expression runs once over the range; for: turns pending into firing."""
    session = CountingSession()
    src = PrometheusSource(prometheus_server.url, session=session, retries=0)
    start = fd.SCAN_AT - timedelta(minutes=90)
    episodes = evaluate_rules(src, start, fd.SCAN_AT, STEP)
    assert len(session.sent) == len(load_rules())  # one range query per rule
    got = {(e.rule, e.entity): (e.active_at, e.firing_at) for e in episodes}
    t = fd.SCAN_AT
    assert got[("temperature", "gpu-node-001/2")] == (t - 40 * M, t - 35 * M)  # for: 5m
    assert got[("hardware_xid", "gpu-node-002/1")] == (t - 20 * M, t - 20 * M)
    assert got[("dbe", "gpu-node-002/1")] == (t - 20 * M, t - 20 * M)
    assert got[("row_remap_failure", "gpu-node-002/1")] == (t - 15 * M, t - 15 * M)
    # XID 79 on the last sample, then silence: vanished once no sample in [t-5m, t].
    assert got[("hardware_xid", "gpu-node-003/3")] == (t - 30 * M, t - 30 * M)
    assert got[("vanished", "gpu-node-003/3")] == (t - 24 * M, t - 24 * M)
    assert got[("target_down", "gpu-node-004")] == (t - 25 * M, t - 23 * M)  # for: 2m
    for g in range(fd.GPUS_PER_NODE):
        assert ("vanished", f"gpu-node-004/{g}") in got
    # Application XID 13 and healthy GPUs never alert.
    assert not any(e.node == "gpu-node-002" and e.gpu == "3" for e in episodes)
    assert {e.entity for e in episodes} == {
        "gpu-node-001/2",
        "gpu-node-002/1",
        "gpu-node-003/3",
        "gpu-node-004",
        *(f"gpu-node-004/{g}" for g in range(fd.GPUS_PER_NODE)),
    }
    # Pending is not firing.
    temp = next(e for e in episodes if e.rule == "temperature")
    assert not temp.firing(t - 37 * M) and temp.firing(t - 35 * M) and temp.firing(t)


def _python_firing(frames: FleetFrames, at: datetime) -> set[tuple[str, str]]:
    """(rule, entity) firing at ``at`` according to the Python scorer."""
    return {(f.rule, f.entity) for f in StaticRules().firing(frames, at)}


@pytest.mark.prometheus
def test_python_scorer_agrees_with_prometheus(prometheus_server: PromqlBackend) -> None:
    """At every minute of 90, the Python rules fire exactly what Prometheus' rules fire."""
    src = PrometheusSource(prometheus_server.url, retries=0)
    start = fd.SCAN_AT - timedelta(minutes=90)
    episodes = evaluate_rules(src, start, fd.SCAN_AT, STEP)
    frames = src.fetch(fd.START, fd.SCAN_AT, STEP)
    checked = 0
    fired_somewhere = set()
    for k in range(0, 91):
        t = start + k * M
        prom = {(e.rule, e.entity) for e in firing_at(episodes, t)}
        py = _python_firing(frames, t)
        assert py == prom, f"at {t}: python-only {py - prom}, prometheus-only {prom - py}"
        fired_somewhere |= prom
        checked += 1
    assert checked == 91
    assert {r for r, _ in fired_somewhere} == {r.name for r in RULES}  # every rule exercised


@pytest.mark.prometheus
def test_static_scorer_incidents(prometheus_server: PromqlBackend) -> None:
    """One incident per failing GPU, one per vanished node; severity from the rules; JSON shape."""
    topo = load_topology(prometheus_server.dataset.topology)
    src = PrometheusSource(prometheus_server.url, topology=topo, retries=0)
    frames = src.fetch(fd.SCAN_AT - timedelta(hours=1), fd.SCAN_AT, STEP)
    scorer = StaticRules()
    assert scorer.fit(frames, build_graph(topo)) is scorer
    a = scorer.assess(frames, build_graph(topo, frames.gpus), fd.SCAN_AT)
    by_root = {(i.root_cause.kind, i.root_cause.id): i for i in a.incidents}
    assert set(by_root) == {
        ("gpu", "gpu-node-001/2"),
        ("gpu", "gpu-node-002/1"),
        ("gpu", "gpu-node-003/3"),
        ("node", "gpu-node-004"),
    }
    assert by_root[("gpu", "gpu-node-001/2")].severity == "warning"
    hbm = by_root[("gpu", "gpu-node-002/1")]
    assert hbm.severity == "critical" and hbm.score == 1.0
    assert set(hbm.signals) == {"xid:48", "dbe", "row_remap_failure"}
    assert hbm.explanation is not None and "GPU 1 on gpu-node-002" in hbm.explanation.summary
    node = by_root[("node", "gpu-node-004")]
    assert [g.gpu for g in node.gpus] == ["0", "1", "2", "3"]
    assert (
        node.severity == "critical" and "4 of 4 GPUs stopped reporting" in node.explanation.summary
    )  # type: ignore[union-attr]
    scores = {s.key: s.score for s in a.scores}
    assert len(scores) == 16
    assert scores["gpu-node-001/2"] == 1.0 and scores["gpu-node-002/3"] == 0.0
    doc = ScanResult(fd.SCAN_AT, len(a.scores), a.incidents, a.scores, "static").as_dict()
    first = doc["incidents"][0]
    assert set(first) >= {"id", "severity", "score", "root_cause", "gpus", "explanation"}
    assert set(first["explanation"]) >= {"summary", "factors"}
    assert set(first["explanation"]["factors"][0]) >= {"name", "entity", "share", "basis"}
    assert {f["basis"] for i in doc["incidents"] for f in i["explanation"]["factors"]} == {"rule"}
    # Before any fault, the same fleet is quiet.
    early = src.fetch(fd.START, fd.START + timedelta(hours=1), STEP)
    quiet = scorer.assess(early, build_graph(topo, early.gpus), fd.START + timedelta(hours=1))
    assert quiet.incidents == () and len(quiet.scores) == 16


def test_static_scorer_on_the_simulators_frames_needs_no_prometheus() -> None:
    """The demo path: the simulator's in-process frames through the same scorer, no server."""
    from storage.simulator import FleetSimulator, FleetSpec

    sim = fd.simulate(FleetSimulator, FleetSpec)
    at = fd.SIM_SCAN_AT
    scorer = StaticRules()
    frames = sim.fetch(at - scorer.min_window, at, STEP)
    a = scorer.assess(frames, build_graph(sim.topology, frames.gpus), at)
    assert {(i.root_cause.kind, i.root_cause.id) for i in a.incidents} == {
        ("node", "gpu-node-002"),
        ("gpu", "gpu-node-001/1"),
        ("gpu", "gpu-node-003/2"),
    }
    # Before the first failure, only precursors: the static rules stay silent (their blind spot).
    early_at = fd.SIM_START + timedelta(hours=1, minutes=55)
    early = sim.fetch(early_at - scorer.min_window, early_at, STEP)
    assert scorer.assess(early, build_graph(sim.topology, early.gpus), early_at).incidents == ()
