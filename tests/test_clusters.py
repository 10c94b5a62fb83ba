"""One bot watching two clusters (``GPU_RISK_CLUSTERS``), end to end.

Two simulated clusters with the same node names live in ONE real VictoriaMetrics, told apart by
a ``cluster`` label (each cluster's series selector) and a tenant header each: cluster ``a``'s
GPU fails (the simulator's HBM fault), cluster ``b`` is healthy. The real bot (``build_runtime``
from settings: Prometheus readers, static rules, SQLite state, the real slack-bolt app against
the fake Slack, a real Alertmanager) must open exactly one incident, in cluster a's channel and
naming cluster a, with Alertmanager and ``/metrics`` labelled ``cluster``, and leave cluster b's
channel empty. A cluster whose Prometheus is down or hangs must not hold up the other's cycle.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.clusters import clusters_of
from bot.config import ConfigError, load_settings, problems
from bot.wiring import Runtime, build_runtime
from tests.fixtures import fleetdata as fd
from tests.fixtures.prometheus import (
    Dataset,
    Server,
    free_port,
    openmetrics_to_prometheus_text,
    start_victoria,
)
from tests.fixtures.slack import ADMIN, SECRET, fake_slack  # noqa: F401 - pytest fixture
from tests.test_alertmanager import Alertmanager, alertmanager, wait_for  # noqa: F401
from tests.test_discovery import post_lines
from tests.test_risk_metrics import samples
from tests.test_tenancy import with_cluster

pytest_plugins = ("tests.fixtures.prometheus",)

CHANNEL = {"a": "C0ALERTSA", "b": "C0ALERTSB"}
SCAN_AT = fd.SIM_START + timedelta(hours=2, minutes=10)  # cluster a's HBM has failed (2:00)


class Clock:
    """The bot's clock, settable."""

    def __init__(self) -> None:
        self.at = SCAN_AT

    def __call__(self) -> Any:
        return self.at


@pytest.fixture(scope="module")
def healthy_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cluster b: the test fleet's simulation (same nodes, same seed) without any fault."""
    from storage.simulator import FleetSimulator, FleetSpec

    spec = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
    sim = FleetSimulator(
        spec, start=fd.SIM_START, duration=fd.SIM_DURATION, step=fd.STEP, seed=fd.SIM_SEED
    )
    out = tmp_path_factory.mktemp("healthy")
    sim.write_history(out)
    return out / "metrics.om"


@pytest.fixture(scope="module")
def shared_vm(
    tmp_path_factory: pytest.TempPathFactory, sim_dataset: Dataset, healthy_dataset: Path
) -> Iterator[Server]:
    """ONE VictoriaMetrics holding cluster a (faulty) and cluster b (healthy), same node names."""
    server = start_victoria(tmp_path_factory.mktemp("vm-clusters") / "vmdata")
    try:
        for name, om in (("a", sim_dataset.openmetrics), ("b", healthy_dataset)):
            lines = list(openmetrics_to_prometheus_text(om.read_text(encoding="utf-8")))
            post_lines(server, with_cluster(lines, name))
        yield server
    finally:
        server.stop()


def clusters_file(tmp_path: Path, b: dict[str, Any] | None = None, name: str = "clusters") -> Path:
    """clusters.yaml: a and b on the shared store by selector and tenant, each its channel."""
    doc = {
        "clusters": [
            {
                "name": "a",
                "series_selector": '{cluster="a"}',
                "prometheus_headers": {"X-Scope-OrgID": "tenant-a"},
                "slack_channel": CHANNEL["a"],
                "alertmanager_labels": {"team": "ml-a"},
            },
            {
                "name": "b",
                "series_selector": '{cluster="b"}',
                "prometheus_headers": {"X-Scope-OrgID": "tenant-b"},
                "slack_channel": CHANNEL["b"],
                **(b or {}),
            },
        ]
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def runtime_for(tmp_path: Path, url: str, topology: Path, **extra: Any) -> Runtime:
    """The bot as ``gpu-risk run`` builds it from settings, on the bot's settable clock."""
    values: dict[str, Any] = {
        "prometheus_url": url,
        "topology": topology,
        "detector": "static",
        "open_after": 1,
        "database_url": f"sqlite:///{tmp_path / 'state.db'}",
        "http_host": "127.0.0.1",
        "http_port": free_port(),
        "scan_interval": 1,
        "prometheus_retries": 0,
        "prometheus_timeout": 5,
    }
    settings = load_settings(**{**values, **extra})
    return build_runtime(settings, clock=Clock())


def alert_headers(messages: list[dict[str, Any]]) -> list[str]:
    """The header text of each alert message."""
    return [b["text"]["text"] for m in messages for b in m["blocks"] if b["type"] == "header"]


@pytest.mark.victoriametrics
def test_a_fault_in_one_cluster_pages_only_that_clusters_channel(
    tmp_path: Path,
    shared_vm: Server,
    sim_dataset: Dataset,
    fake_slack: Any,  # noqa: F811
    alertmanager: Alertmanager,  # noqa: F811
) -> None:
    runtime = runtime_for(
        tmp_path,
        shared_vm.url,
        sim_dataset.topology,
        clusters=clusters_file(tmp_path),
        slack_bot_token=fake_slack.bot_token,
        slack_signing_secret=SECRET,
        slack_api_url=fake_slack.api_url,
        slack_admins=[ADMIN],
        alertmanager_url=alertmanager.url,
    )
    try:
        assert set(runtime.each()) == {"a", "b"}
        assert runtime.scan() is True  # both clusters' cycles
        runtime.dispatch()
        # exactly one incident: cluster a's HBM fault; cluster b's same GPU is healthy
        (rec,) = runtime.repository.incidents()
        assert (rec.cluster, rec.dedup_key) == ("a", "gpu:gpu-node-001/1")
        # in cluster a's channel, naming the cluster; cluster b's channel gets nothing
        (post,) = fake_slack.channel_messages(CHANNEL["a"])
        assert post["text"].startswith("a: [")
        assert alert_headers([post]) == [f"a: {rec.incident.title}"]
        fields = [f["text"] for b in post["blocks"] for f in b.get("fields", [])]
        assert "*Cluster*\n`a`" in fields
        assert fake_slack.channel_messages(CHANNEL["b"]) == []
        # Alertmanager holds one alert, labelled with cluster a and its own label
        (alert,) = wait_for("cluster a's alert", lambda: alertmanager.alerts("a"))
        assert alert["labels"]["root_cause"] == "gpu-node-001/1"
        assert alert["labels"]["team"] == "ml-a"
        assert alertmanager.alerts("b") == []
        # /metrics: each cluster's 16 GPUs with the same Hostnames, the incident in cluster a
        scores = samples(runtime.metrics, "gpu_risk_score")
        by_cluster = {c: {dict(k)["Hostname"] for k in scores if dict(k)["cluster"] == c}
                      for c in "ab"}  # fmt: skip
        assert len(scores) == 32 and by_cluster["a"] == by_cluster["b"]
        (open_,) = samples(runtime.metrics, "gpu_risk_incident_open")
        assert dict(open_)["cluster"] == "a"
        assert samples(runtime.metrics, "gpu_risk_cluster_up") == {
            (("cluster", "a"),): 1.0,
            (("cluster", "b"),): 1.0,
        }
        # /gpu-risk status lists each cluster
        status = runtime.slack.service.command("status", ADMIN)
        text = str(status.blocks)
        assert "Cluster `a`" in text and "Cluster `b`" in text
        # the next cycle says nothing new anywhere
        runtime.pipeline.source  # noqa: B018 - the first cluster's reader exists
        clock = runtime.clock
        assert isinstance(clock, Clock)
        clock.at += timedelta(minutes=1)
        assert runtime.scan() is True
        runtime.dispatch()
        assert len(fake_slack.channel_messages(CHANNEL["a"])) == 1
        assert fake_slack.channel_messages(CHANNEL["b"]) == []
        assert len(runtime.repository.incidents()) == 1
    finally:
        runtime.stop()


@pytest.mark.victoriametrics
def test_an_unreachable_prometheus_fails_only_its_clusters_cycle(
    tmp_path: Path,
    shared_vm: Server,
    sim_dataset: Dataset,
    fake_slack: Any,  # noqa: F811
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    runtime = runtime_for(
        tmp_path,
        shared_vm.url,
        sim_dataset.topology,
        clusters=clusters_file(tmp_path, {"prometheus_url": closed}),
        slack_bot_token=fake_slack.bot_token,
        slack_signing_secret=SECRET,
        slack_api_url=fake_slack.api_url,
    )
    try:
        assert runtime.scan() is False  # cluster b's source failed...
        runtime.dispatch()
        a, b = runtime.repository.scoped("a"), runtime.repository.scoped("b")
        # ...but cluster a scanned and paged in its channel
        assert a.status().last_ok_scan is not None and a.status().data_source == "ok"
        assert [r.dedup_key for r in a.open_incidents()] == ["gpu:gpu-node-001/1"]
        assert len(fake_slack.channel_messages(CHANNEL["a"])) == 1
        # cluster b's failed cycle is recorded as b's, and said in b's channel only
        (failed,) = b.scans()
        assert not failed.ok and failed.cluster == "b" and "127.0.0.1" in (failed.error or "")
        assert b.status().data_source == "degraded" and b.open_incidents() == []
        (note,) = fake_slack.channel_messages(CHANNEL["b"])
        assert "cluster `b` degraded" in note["blocks"][0]["text"]["text"]
        assert samples(runtime.metrics, "gpu_risk_cluster_up") == {
            (("cluster", "a"),): 1.0,
            (("cluster", "b"),): 0.0,
        }
        assert samples(runtime.metrics, "gpu_risk_data_source_up") == {(): 0.0}
    finally:
        runtime.stop()


@contextlib.contextmanager
def hanging_prometheus() -> Iterator[tuple[str, threading.Event]]:
    """A PromQL endpoint that holds every request until released, then answers 503."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            """Hang until released, then refuse."""
            release.wait(60)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", release
    finally:
        release.set()
        server.shutdown()
        server.server_close()


@pytest.mark.victoriametrics
def test_a_hanging_prometheus_does_not_hold_up_the_other_clusters_scans(
    tmp_path: Path, shared_vm: Server, sim_dataset: Dataset
) -> None:
    """Each cluster is its own scheduler job: cluster a's scans are recorded while cluster b's
    first request is still held by its Prometheus (b's cycle cannot have finished)."""
    with hanging_prometheus() as (url, release):
        runtime = runtime_for(
            tmp_path,
            shared_vm.url,
            sim_dataset.topology,
            clusters=clusters_file(tmp_path, {"prometheus_url": url}),
            prometheus_timeout=60,
        )
        try:
            runtime.start()
            jobs = {j.id for j in runtime.scheduler.get_jobs()}
            assert {"scan:a", "scan:b"} <= jobs and "scan" not in jobs
            a, b = runtime.repository.scoped("a"), runtime.repository.scoped("b")
            wait_for("two scans of cluster a", lambda: len(a.scans()) >= 2, timeout=60)
            assert not release.is_set() and b.scans() == []  # b's first cycle still waits
            release.set()
            (failed, *_) = wait_for("cluster b's failed scan", b.scans, timeout=60)
            assert not failed.ok
            assert all(s.ok for s in a.scans())
        finally:
            release.set()
            runtime.stop()


def test_the_clusters_file_is_checked_with_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "clusters.yaml"
    path.write_text(
        "clusters:\n"
        "  - {name: a, series_selector: 'cluster=a'}\n"
        "  - {name: 'b c', slack_chanel: C1}\n"
        "  - {name: d, alertmanager_labels: {severity: x}}\n"
        "  - {name: e}\n  - {name: e}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_settings(clusters=path)
    lines = str(err.value).splitlines()[1:]
    assert len(lines) == 5, lines
    assert all(line.strip().startswith(f"clusters (GPU_RISK_CLUSTERS): {path}") for line in lines)
    text = str(err.value)
    assert "clusters[0] (a).series_selector: 'cluster=a' is not a list of label matchers" in text
    assert "clusters[1] (b c).name: 'b c' is not a cluster name" in text
    assert "clusters[1] (b c).slack_chanel: Extra inputs are not permitted" in text
    assert "clusters[2] (d).alertmanager_labels: 'severity' is set by gpu-risk itself" in text
    assert "cluster 'e' is listed twice" in text
    with pytest.raises(ConfigError, match="cannot read the clusters file"):
        load_settings(clusters=tmp_path / "missing.yaml")


def test_each_cluster_inherits_the_global_settings_it_does_not_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "topology-b.yaml").write_text("racks: []\n", encoding="utf-8")
    path = clusters_file(tmp_path, {"topology": "topology-b.yaml", "prometheus_url": "http://b:1"})
    monkeypatch.setenv("GPU_RISK_CLUSTERS", str(path))
    settings = load_settings(prometheus_url="http://shared:9090", slack_routes={"critical": "C9"})
    a, b = clusters_of(settings)
    assert (a.name, a.key, a.settings.cluster, b.name) == ("a", "a", "a", "b")
    assert a.settings.prometheus_url == "http://shared:9090"
    assert b.settings.prometheus_url == "http://b:1"
    assert a.settings.prometheus_headers == {"X-Scope-OrgID": "tenant-a"}
    assert b.settings.topology == tmp_path / "topology-b.yaml"  # relative to the file
    assert a.settings.topology is None
    # a cluster with its own channel gets every alert there (not the global critical route)
    assert a.settings.slack_routes == {} and a.settings.slack_channel == CHANNEL["a"]
    assert dict(a.labels) == {"team": "ml-a"} and dict(b.labels) == {}
    # without a clusters file: one cluster, exactly the settings as they are
    monkeypatch.delenv("GPU_RISK_CLUSTERS")
    (one,) = clusters_of(plain := load_settings(cluster="prod"))
    assert (one.name, one.key, one.settings) == ("prod", "", plain)
    # problems name the cluster they are about
    no_url = load_settings(clusters=clusters_file(tmp_path, {"prometheus_url": "http://b:1"}))
    assert problems(no_url, needs=("prometheus",)) == [
        "cluster a: GPU_RISK_PROMETHEUS_URL is not set: give the base URL of your Prometheus"
    ]


@pytest.mark.victoriametrics
def test_check_and_scan_go_through_each_cluster(
    tmp_path: Path, shared_vm: Server, sim_dataset: Dataset
) -> None:
    """``gpu-risk check`` checks every cluster (a broken one named, exit 1); ``gpu-risk scan``
    scans one cluster with ``--cluster``."""
    import json

    from typer.testing import CliRunner

    from bot.cli import build_app

    closed = f"http://127.0.0.1:{free_port()}"
    env = {
        "GPU_RISK_PROMETHEUS_URL": shared_vm.url,
        "GPU_RISK_TOPOLOGY": str(sim_dataset.topology),
        "GPU_RISK_PROMETHEUS_RETRIES": "0",
        "GPU_RISK_DETECTOR": "static",
        "GPU_RISK_OPEN_AFTER": "1",
        "COLUMNS": "200",
    }
    at = SCAN_AT.strftime("%Y-%m-%dT%H:%M:%SZ")
    runner = CliRunner()
    good = {**env, "GPU_RISK_CLUSTERS": str(clusters_file(tmp_path))}
    result = runner.invoke(build_app(), ["check", "--at", at], env=good)
    assert result.exit_code == 0, result.output
    # what both clusters find alike is said once; the clusters' topologies each
    assert f"✓ Prometheus at {shared_vm.url} answers" in result.output
    assert "cluster a: topology: 2 racks" in result.output
    assert "cluster b: topology: 2 racks" in result.output
    broken = clusters_file(tmp_path, {"prometheus_url": closed}, name="broken")
    bad = {**env, "GPU_RISK_CLUSTERS": str(broken)}
    result = runner.invoke(build_app(), ["check", "--at", at], env=bad)
    assert result.exit_code == 1, result.output
    assert f"✓ cluster a: Prometheus at {shared_vm.url} answers" in result.output
    assert (
        [line for line in result.output.splitlines() if line.startswith("✗")]
        == [line for line in result.output.splitlines() if line.startswith("✗ cluster b:")]
        != []
    )
    scans = {}
    for name in "ab":
        result = runner.invoke(
            build_app(),
            ["scan", "--at", at, "--cluster", name, "--format", "json", "--no-explain"],
            env=good,
        )
        assert result.exit_code == 0, result.output
        scans[name] = json.loads(result.output)
    assert [i["root_cause"]["id"] for i in scans["a"]["incidents"]] == ["gpu-node-001/1"]
    assert scans["b"]["incidents"] == [] and scans["b"]["gpus_scored"] == 16
    result = runner.invoke(build_app(), ["scan", "--at", at, "--cluster", "c"], env=good)
    assert result.exit_code == 2 and "no such cluster" in result.output


def test_the_shipped_example_clusters_file_is_valid(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "deploy" / "clusters.example.yaml"
    settings = load_settings(clusters=example, prometheus_url="http://prometheus:9090")
    assert [c.name for c in clusters_of(settings)] == ["train-a", "infer-b", "lab"]


def test_a_cluster_without_channels_uses_the_global_routes(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("clusters: [{name: a}, {name: b, slack_routes: {critical: C0B}}]\n")
    settings = load_settings(clusters=path, slack_channel="C0ALL", slack_routes={"rack-1": "C0R"})
    a, b = clusters_of(settings)
    assert (a.settings.slack_channel, a.settings.slack_routes) == ("C0ALL", {"rack-1": "C0R"})
    assert (b.settings.slack_channel, b.settings.slack_routes) == ("C0ALL", {"critical": "C0B"})


def test_each_clusters_model_is_fitted_and_kept_apart(tmp_path: Path) -> None:
    """A learning detector: each cluster's pipeline fits its own model, written under its own
    subdirectory of the model dir and indexed with its cluster."""
    from storage.simulator import FleetSimulator, FleetSpec

    spec = FleetSpec(racks=1, nodes_per_rack=2, gpus_per_node=2)
    sims = {
        name: FleetSimulator(spec, start=fd.SIM_START, duration=timedelta(hours=3), seed=seed)
        for name, seed in (("a", 3), ("b", 4))
    }
    settings = load_settings(
        clusters=clusters_file(tmp_path),
        detector="iforest",
        fit_window_hours=2,
        database_url=f"sqlite:///{tmp_path / 'state.db'}",
        model_dir=tmp_path / "models",
        http_port=free_port(),
    )
    runtime = build_runtime(settings, sources=sims, clock=Clock())
    try:
        at = fd.SIM_START + timedelta(hours=2, minutes=30)
        for pipeline in runtime.each().values():
            pipeline.refit(at)
        for name in "ab":
            (path,) = (tmp_path / "models" / name).glob("*.joblib")
            model = runtime.repository.scoped(name).latest_model()
            assert model is not None and model.cluster == name and model.path == str(path)
        assert not list((tmp_path / "models").glob("*.joblib"))  # none shared at the top
    finally:
        runtime.stop()
