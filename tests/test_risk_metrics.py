"""Per-GPU risk on the bot's /metrics: one series per GPU of the fleet, one per open incident, the
build; the shipped Prometheus rules pass promtool and evaluate on a real scrape of the bot; the
shipped Grafana dashboard is valid, queries only metrics that exist, and alerts link to it."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from analysis.types import GpuScore, Incident, Rack, RootCause, Topology
from bot.blocks.alert import DASHBOARD_UID, dashboard_url, link_text
from bot.blocks.common import BlockOptions
from bot.slack.server import make_wsgi_app, serve
from bot.telemetry import BotMetrics
from tests.fixtures.prometheus import (
    PROMETHEUS,
    PROMTOOL,
    Server,
    free_port,
    require_binary,
    wait_prometheus,
)

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "gpu-risk-rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "gpu-risk-dashboard.json"
AT = datetime(2026, 11, 22, 10, tzinfo=UTC)
TOPOLOGY = Topology(
    racks=(Rack("rack-a1", ("gpu-node-001", "gpu-node-002")), Rack("rack-a2", ("gpu-node-003",)))
)
#: Metric name prefixes of the exporters gpu-risk reads (dcgm-exporter, node/ipmi exporters).
EXPORTER_PREFIXES = ("DCGM_", "node_", "ipmi_")


def samples(metrics: BotMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The exposed samples of one metric: sorted non-empty labels -> value."""
    text = generate_latest(metrics.registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted((k, v) for k, v in s.labels.items() if v))] = s.value
    return out


def incident(ident: str, root: str, kind: str, severity: str = "warning") -> Incident:
    """An open incident (no GPUs needed for the metric)."""
    return Incident(ident, AT, severity, 0.95, RootCause(root, kind), ())  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the metrics


def test_one_score_series_per_gpu_of_the_fleet_and_gone_gpus_lose_theirs() -> None:
    metrics = BotMetrics.create()
    scores = [GpuScore("gpu-node-001", "0", 0.25), GpuScore("gpu-node-003", "7", 0.97)]
    metrics.record_risk(scores, [], TOPOLOGY, uuids={"gpu-node-001/0": "GPU-1234"})
    assert samples(metrics, "gpu_risk_score") == {
        (
            ("Hostname", "gpu-node-001"),
            ("UUID", "GPU-1234"),
            ("gpu", "0"),
            ("rack", "rack-a1"),
        ): 0.25,
        (("Hostname", "gpu-node-003"), ("gpu", "7"), ("rack", "rack-a2")): 0.97,
    }
    metrics.record_risk([GpuScore("gpu-node-003", "7", 0.5), GpuScore("other", "1", 0.1)], [])
    assert samples(metrics, "gpu_risk_score") == {
        (("Hostname", "gpu-node-003"), ("gpu", "7")): 0.5,  # no topology given: no rack
        (("Hostname", "other"), ("gpu", "1")): 0.1,
    }


def test_open_incidents_are_series_until_resolved_and_the_build_is_exported() -> None:
    metrics = BotMetrics.create()
    a = incident("abc", "pdu-a1", "pdu", "critical")
    b = incident("def", "gpu-node-001/3", "gpu")
    metrics.record_risk([], [a, b])
    assert samples(metrics, "gpu_risk_incident_open") == {
        (("id", "abc"), ("root_cause", "pdu-a1"), ("root_kind", "pdu"), ("severity", "critical")): 1,
        (("id", "def"), ("root_cause", "gpu-node-001/3"), ("root_kind", "gpu"), ("severity", "warning")): 1,
    }  # fmt: skip
    metrics.record_risk([], [b])  # a resolved
    assert [dict(k)["id"] for k in samples(metrics, "gpu_risk_incident_open")] == ["def"]
    ((labels, value),) = samples(metrics, "gpu_risk_build_info").items()
    assert value == 1 and dict(labels)["version"]


def test_a_good_cycle_records_the_risk() -> None:
    from bot.cycle_record import CycleRecorder

    class Recorder:
        """Stands in for the store and scorer of one good cycle."""

        def record_scan(self, *_args: Any) -> None:
            """Nothing to store."""

        def open_incidents(self) -> list[Any]:
            """One open incident."""
            return [type("Rec", (), {"incident": incident("x", "gpu-node-002", "node")})()]

    metrics = BotMetrics.create()
    record = CycleRecorder(Recorder(), TOPOLOGY, metrics)  # type: ignore[arg-type]
    assessment = type("A", (), {"scores": (GpuScore("gpu-node-002", "1", 0.4),)})()
    record.succeeded(AT, assessment, [], [], time.perf_counter())  # type: ignore[arg-type]
    assert samples(metrics, "gpu_risk_score") == {
        (("Hostname", "gpu-node-002"), ("gpu", "1"), ("rack", "rack-a1")): 0.4
    }
    assert [dict(k)["id"] for k in samples(metrics, "gpu_risk_incident_open")] == ["x"]
    assert samples(metrics, "gpu_risk_incidents_open") == {(): 1}


# ---------------------------------------------------------------------- the dashboard


def dashboard() -> dict[str, Any]:
    """The shipped dashboard."""
    return dict(json.loads(DASHBOARD.read_text(encoding="utf-8")))


def panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' children included."""
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])


_LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
             "unless", "offset", "inf", "nan"}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels and keywords left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges ($__rate_interval)
    text = _LABEL_LISTS.sub("", text)
    names = set()
    for m in re.finditer(r"(?<![\w$.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        if m.group(2) is None and m.group(1).lower() not in _KEYWORDS:
            names.add(m.group(1))
    return names


def exported_names() -> set[str]:
    """Every sample name the bot exports (counters' _total, histograms' _bucket, ...)."""
    metrics = BotMetrics.create()
    metrics.record_risk([GpuScore("n", "0", 0.5)], [incident("i", "n", "node")])
    metrics.scans.labels("ok").inc()
    metrics.notifications_sent.labels("post").inc()
    metrics.outbox_rows.labels("dead").set(0)
    text = generate_latest(metrics.registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_metric_names_of_promql() -> None:
    assert metric_names(
        'histogram_quantile(0.9, sum by (le) (rate(a_bucket{x=~"$v"}[$__rate_interval])))'
    ) == {"a_bucket"}
    assert metric_names("count(b >= 0.9) or vector(0)") == {"b"}
    assert metric_names("time() - max without (instance) (c_seconds)") == {"c_seconds"}


def test_the_dashboard_is_valid_and_queries_only_metrics_that_exist() -> None:
    dash = dashboard()
    assert dash["uid"] == DASHBOARD_UID and dash["schemaVersion"] >= 38 and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("rack", "Hostname"):
        assert variables[name]["type"] == "query" and variables[name]["includeAll"]
        assert variables[name]["datasource"]["uid"] == "${datasource}"
    ours, rules = exported_names(), recorded_names()
    ids, exprs = [], []
    for p in panels(dash):
        ids.append(p["id"])
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]), p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}" and t["refId"]
            exprs.append(t["expr"])
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    kinds = {p["type"] for p in panels(dash)}
    assert {"heatmap", "table", "timeseries", "stat"} <= kinds
    unknown = {
        name
        for expr in exprs
        for name in metric_names(expr)
        if name not in ours and name not in rules and not name.startswith(EXPORTER_PREFIXES)
    }
    assert not unknown, f"the dashboard queries metrics nobody exports: {sorted(unknown)}"
    used = {name for expr in exprs for name in metric_names(expr)}
    assert {"gpu_risk_score", "gpu_risk_incident_open", "gpu_risk_scan_duration_seconds_bucket",
            "gpu_risk_last_successful_scan_timestamp_seconds",
            "gpu_risk_notifications_sent_total", "gpu_risk_notifications_failed_total"} <= used  # fmt: skip


def test_alert_links_open_the_dashboard_at_the_incident() -> None:
    gpu = Incident("i", AT, "warning", 0.9, RootCause("gpu-node-001/3", "gpu"), (GpuScore("gpu-node-001", "3", 0.9),))  # fmt: skip
    url = dashboard_url("https://grafana.example.com/", gpu, rack="rack-a1")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        f"https://grafana.example.com/d/{DASHBOARD_UID}/gpu-risk"
    )
    query = parse_qsl(parts.query)
    assert query == [
        ("orgId", "1"),
        ("from", str(int((AT - timedelta(hours=6)).timestamp() * 1000))),
        ("to", str(int((AT + timedelta(hours=1)).timestamp() * 1000))),
        ("var-Hostname", "gpu-node-001"),
        ("var-rack", "rack-a1"),
    ]
    rack = Incident("r", AT, "critical", 0.9, RootCause("rack-a2", "rack"), (GpuScore("gpu-node-003", "0", 0.9), GpuScore("gpu-node-004", "0", 0.9)))  # fmt: skip
    query = parse_qsl(urlsplit(dashboard_url("https://g", rack)).query)
    assert [v for k, v in query if k == "var-Hostname"] == ["gpu-node-003", "gpu-node-004"]
    assert ("var-rack", "rack-a2") in query
    many = Incident("p", AT, "warning", 0.9, RootCause("pdu-a1", "pdu"), tuple(GpuScore(f"n{i}", "0", 0.9) for i in range(20)))  # fmt: skip
    query = parse_qsl(urlsplit(dashboard_url("https://g", many)).query)
    assert ("var-Hostname", "$__all") in query and ("var-rack", "$__all") in query
    links = link_text(gpu, BlockOptions(grafana_url="https://grafana.example.com"))
    assert f"<https://grafana.example.com/d/{DASHBOARD_UID}/gpu-risk?orgId=1&from=" in links
    assert "|Grafana>" in links and "/explore?left=" in links


# ---------------------------------------------------------------------- the rules, for real


def recorded_names() -> set[str]:
    """The series the shipped rules record."""
    import yaml

    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return {r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r}


def test_the_shipped_rules_pass_promtool() -> None:
    promtool = require_binary(PROMTOOL)
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.fixture
def bot_metrics_server() -> Iterator[tuple[BotMetrics, int]]:
    """The bot's WSGI app serving a BotMetrics registry on a free port."""
    metrics = BotMetrics.create()
    server = serve(make_wsgi_app(metrics.registry), "127.0.0.1", 0)
    try:
        yield metrics, server.port
    finally:
        server.stop()


def _prometheus_with_rules(tmp_path: Path, bot_port: int) -> Server:
    """A real Prometheus scraping the bot every second with the shipped rules loaded."""
    binary = require_binary(PROMETHEUS)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [{RULES}]
scrape_configs:
  - job_name: gpu-risk
    static_configs:
      - targets: ["127.0.0.1:{bot_port}"]
""",
        encoding="utf-8",
    )
    data, log = tmp_path / "data", tmp_path / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Server("prometheus", f"http://127.0.0.1:{port}", proc, data, log)


def test_prometheus_scrapes_the_bot_and_the_recording_rules_evaluate(
    bot_metrics_server: tuple[BotMetrics, int], tmp_path: Path
) -> None:
    metrics, bot_port = bot_metrics_server
    scores = [
        GpuScore("gpu-node-001", "0", 0.2),
        GpuScore("gpu-node-002", "5", 0.95),
        GpuScore("gpu-node-003", "1", 0.6),
    ]
    metrics.record_risk(scores, [incident("abc", "gpu-node-002/5", "gpu", "critical")], TOPOLOGY)
    server = _prometheus_with_rules(tmp_path, bot_port)
    try:
        wait_prometheus(server)

        def query(expr: str) -> dict[str, float]:
            """Instant query: the ``rack`` (or empty) label of each series -> value."""
            r = requests.get(f"{server.url}/api/v1/query", params={"query": expr}, timeout=5)
            r.raise_for_status()
            result = r.json()["data"]["result"]
            return {s["metric"].get("rack", ""): float(s["value"][1]) for s in result}

        deadline = time.monotonic() + 20
        got: dict[str, float] = {}
        while time.monotonic() < deadline:
            got = query("rack:gpu_risk_score:max")
            if len(got) == 2:
                break
            time.sleep(0.2)
        assert got == {"rack-a1": 0.95, "rack-a2": 0.6}, server.log.read_text(errors="replace")[
            -2000:
        ]
        assert query("rack:gpu_risk_gpus_at_risk:count") == {"rack-a1": 1}
        scraped = requests.get(
            f"{server.url}/api/v1/query", params={"query": "gpu_risk_score"}, timeout=5
        ).json()["data"]["result"]
        assert len(scraped) == 3 and all("UUID" not in s["metric"] for s in scraped)
        assert query('up{job="gpu-risk"}') == {"": 1.0}
    finally:
        server.stop()


@pytest.mark.slow
def test_the_shipped_alert_fires_on_a_simulated_fault(tmp_path: Path) -> None:
    """A fault injected in the simulator, the bot's loop, /metrics scraped: the alert fires."""
    from datetime import UTC, datetime, timedelta

    from bot.config import load_settings
    from bot.replay import Replay, cycle_times
    from bot.wiring import REPLAY, build_pipeline, memory_repository
    from storage.simulator import FleetSimulator, FleetSpec, make_fault

    spec = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
    start = datetime(2026, 11, 5, tzinfo=UTC)
    onset = start + timedelta(hours=9)
    fault = make_fault("hbm", "gpu-node-003/2", onset, spec=spec, precursor=timedelta(hours=3))
    sim = FleetSimulator(spec, start=start, duration=timedelta(hours=13), seed=6101, faults=[fault])
    metrics = BotMetrics.create()
    settings = load_settings(None, fit_window_hours=6, model_dir=tmp_path / "models")
    pipeline = build_pipeline(
        settings,
        source=sim,
        topology=sim.topology,
        repository=memory_repository(),
        options=REPLAY,
        metrics=metrics,
    )
    at = onset + timedelta(hours=2)
    Replay({"graph": pipeline}, refit_every=None).run(
        cycle_times(at - timedelta(minutes=20), at, timedelta(minutes=5))
    )
    bot = serve(make_wsgi_app(metrics.registry), "127.0.0.1", 0)
    server = _prometheus_with_rules(tmp_path, bot.port)
    try:
        wait_prometheus(server)
        deadline = time.monotonic() + 30
        firing: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not firing:
            alerts = requests.get(f"{server.url}/api/v1/alerts", timeout=5).json()["data"]
            firing = [
                a
                for a in alerts["alerts"]
                if a["labels"]["alertname"] == "GpuRiskCriticalIncident" and a["state"] == "firing"
            ]
            time.sleep(0.2)
        assert firing, server.log.read_text(errors="replace")[-2000:]
        assert {a["labels"]["root_cause"] for a in firing} == {"gpu-node-003/2"}
    finally:
        server.stop()
        bot.stop()
