"""PrometheusSource against real Prometheus and VictoriaMetrics, plus its error paths."""

from __future__ import annotations

import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from analysis.types import GPU_COLUMNS, NODE_COLUMNS, GpuRef
from storage.metrics import DCGM_METRICS, NODE_METRICS, PrometheusSource, strip_port
from storage.source import MetricsSource, MetricsSourceError
from storage.topology import load_topology
from tests.fixtures import fleetdata as fd
from tests.fixtures.prometheus import (
    PromqlBackend,
    backfill,
    fake_promql,
    free_port,
    start_prometheus,
    wait_prometheus,
)
from tests.fixtures.signals import structural_signals

pytest_plugins = ("tests.fixtures.prometheus",)

STEP = timedelta(minutes=1)
WINDOW = (fd.SCAN_AT - timedelta(minutes=60), fd.SCAN_AT)

# bcrypt (cost 4) of "s3cret-pass", for Prometheus' --web.config.file basic_auth_users.
BCRYPT_HASH = "$2b$04$2KnqVy5w5MpsRAUuxIIsb.7ksqJAWfNSZO8NgTnYfKMP5XB3uXmhG"


class CountingSession(requests.Session):
    """A real requests session that counts the HTTP requests it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Record, then send."""
        params = kwargs.get("params") or {}
        self.sent.append(str(params.get("query", url)))
        return super().request(method, url, *args, **kwargs)


def _source(backend: PromqlBackend, **kw: Any) -> PrometheusSource:
    """A reader of the backend with the data set's topology."""
    return PrometheusSource(
        backend.url, topology=load_topology(backend.dataset.topology), retries=0, **kw
    )


# ------------------------------------------------------------------ ingestion, both backends


@pytest.mark.prometheus
@pytest.mark.victoriametrics
def test_fetch_returns_tidy_frames_of_the_whole_fleet(promql_backend: PromqlBackend) -> None:
    """Every GPU, node, component and target comes back, keyed and typed as FleetFrames says."""
    src = _source(promql_backend)
    assert isinstance(src, MetricsSource)
    frames = src.fetch(*WINDOW, STEP)

    assert tuple(frames.gpu.columns) == GPU_COLUMNS
    assert tuple(frames.node.columns) == NODE_COLUMNS
    assert str(frames.gpu["ts"].dtype) == "datetime64[ns, UTC]"
    assert frames.gpu["value"].dtype == "float64"
    assert len(frames.gpus) == promql_backend.dataset.gpu_count == 16
    assert set(frames.gpu["metric"]) == set(DCGM_METRICS)
    # Node from DCGM's Hostname, GPU index as a string; node series from instance minus port.
    assert {g.node for g in frames.gpus} == {
        "gpu-node-001",
        "gpu-node-002",
        "gpu-node-003",
        "gpu-node-004",
    }
    assert set(frames.node["node"]) == {g.node for g in frames.gpus}
    assert set(frames.node["sensor"]) >= {"FAN1", "FAN2", "Inlet Temp", ""}
    assert set(frames.component["component"]) == {"pdu-a1", "pdu-a2", "crac-1", "crac-2"}
    assert set(frames.component["metric"]) == {"output_watts", "supply_temp_celsius"}
    assert set(frames.up["job"]) == {"dcgm", "ipmi"}
    # One value per (series, step): 61 steps in a 60-minute closed window.
    per = frames.gpu.groupby(["node", "gpu", "metric"]).size()
    assert per.max() == 61

    temp = frames.gpu[frames.gpu["metric"] == "DCGM_FI_DEV_GPU_TEMP"]
    hot = temp[(temp["node"] == fd.HOT[0]) & (temp["gpu"] == fd.HOT[1])]
    assert hot["value"].iloc[-1] > 85
    assert temp[(temp["node"] == "gpu-node-002")]["value"].max() < 80
    # The PCIe GPU's series end where it fell off the bus.
    pcie = temp[(temp["node"] == fd.PCIE[0]) & (temp["gpu"] == fd.PCIE[1])]
    assert pcie["ts"].max() == pd.Timestamp(fd.SCAN_AT - timedelta(minutes=30))


@pytest.mark.prometheus
@pytest.mark.victoriametrics
def test_structural_signals_from_fetched_frames(promql_backend: PromqlBackend) -> None:
    """Gaps, up == 0 and vanished GPUs are read from the shape of the data."""
    frames = _source(promql_backend).fetch(*WINDOW, STEP)
    expected = [*frames.gpus, GpuRef("gpu-node-009", "0")]
    sig = structural_signals(frames, expected_gpus=expected)

    gappy = GpuRef(*fd.GAPPY)
    assert sig.gap_steps(gappy) == 2 * len(DCGM_METRICS)
    assert set(sig.gaps["longest_gap_steps"]) == {2}
    assert sig.gap_steps(GpuRef("gpu-node-001", "1")) == 0
    dead = [GpuRef(fd.DEAD_NODE, str(g)) for g in range(fd.GPUS_PER_NODE)]
    assert set(sig.vanished) == {GpuRef(*fd.PCIE), *dead}
    assert sig.vanished_nodes == (fd.DEAD_NODE,)
    assert sig.down_nodes == (fd.DEAD_NODE,)
    assert set(sig.down["job"]) == {"dcgm", "ipmi"}
    assert sig.missing == (GpuRef("gpu-node-009", "0"),)


@pytest.mark.prometheus
def test_one_query_per_metric_whatever_the_fleet_size(tmp_path: Path) -> None:
    """2 GPUs or 128 GPUs in one Prometheus: a fetch sends the same number of requests."""
    from storage.simulator import FleetSimulator, FleetSpec

    data = tmp_path / "tsdb"
    fleets = {}
    for day, spec in ((1, FleetSpec(1, 1, 2)), (2, FleetSpec(2, 8, 8))):
        start = fd.SIM_START + timedelta(days=day)
        sim = FleetSimulator(spec, start=start, duration=timedelta(minutes=40), seed=day)
        sim.write_history(tmp_path / f"day{day}")
        backfill(tmp_path / f"day{day}" / "metrics.om", data)  # both fleets, one TSDB
        fleets[spec.n_gpus] = (sim, start + timedelta(minutes=35))
    server = wait_prometheus(start_prometheus(data))
    try:
        counts = {}
        for n_gpus, (sim, at) in fleets.items():
            session = CountingSession()
            src = PrometheusSource(server.url, topology=sim.topology, session=session, retries=0)
            frames = src.fetch(at - timedelta(minutes=30), at, STEP)
            counts[n_gpus] = (
                len(session.sent),
                len(frames.gpus),
                frames.component["component"].nunique(),
            )
            assert src.last_stats is not None and src.last_stats.requests == len(session.sent)
            # Never a per-node or per-GPU selector.
            assert not any("Hostname=" in q or "gpu=" in q for q in session.sent)
    finally:
        server.stop()
    # output_watts, output_volts, supply_temp_celsius, port_errors_total: one query each for
    # every PDU/CRAC/switch of the fleet (3 components of a rack, 1 or 2 racks); the XID counter
    # summed per class (hardware, other): two more.
    expected = len(DCGM_METRICS) + len(NODE_METRICS) + 4 + 1 + 2  # + up
    assert counts == {2: (expected, 2, 3), 128: (expected, 128, 6)}


@pytest.mark.prometheus
@pytest.mark.victoriametrics
def test_label_map_relabels(promql_backend: PromqlBackend) -> None:
    """A relabel map picks other labels (here: the GPU's UUID instead of its index)."""
    frames = _source(promql_backend, label_map={"gpu": "UUID"}).fetch(*WINDOW, STEP)
    assert len(frames.gpus) == 16
    assert all(g.gpu.startswith("GPU-") for g in frames.gpus)
    with pytest.raises(MetricsSourceError, match="unknown key"):
        PrometheusSource(promql_backend.url, topology=None, label_map={"hostname": "x"})


@pytest.mark.prometheus
def test_bad_component_promql_is_one_clear_error(
    prometheus_server: PromqlBackend, tmp_path: Path
) -> None:
    """A PromQL error in the topology file names the query and what to check."""
    topo = tmp_path / "topology.yaml"
    topo.write_text(
        "racks:\n  - id: r1\n    nodes: [gpu-node-001]\n    power: [pdu-a1]\n"
        "components:\n  pdu-a1: {kind: pdu, metrics: {output_watts: 'sum(pdu_output_watts{'}}\n",
        encoding="utf-8",
    )
    src = PrometheusSource(prometheus_server.url, topology=load_topology(topo), retries=0)
    with pytest.raises(MetricsSourceError) as err:
        src.fetch(*WINDOW, STEP)
    msg = str(err.value)
    assert "rejected the query" in msg and "output_watts" in msg and "\n" not in msg


@pytest.mark.prometheus
def test_basic_auth_against_real_prometheus(
    prometheus_server: PromqlBackend, tmp_path: Path
) -> None:
    """--web.config.file basic auth: right password reads the fleet, wrong one is a clear 401."""
    data = tmp_path / "tsdb"
    backfill(prometheus_server.dataset.openmetrics, data)
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  sre: '{BCRYPT_HASH}'\n", encoding="utf-8")
    server = start_prometheus(data, web_config=web)
    try:
        wait_prometheus(server, auth=("sre", "s3cret-pass"))
        ok = PrometheusSource(server.url, basic_auth=("sre", "s3cret-pass"), retries=0)
        assert len(ok.fetch(*WINDOW, STEP).gpus) == 16
        for kw in ({"basic_auth": ("sre", "wrong")}, {}, {"bearer_token": "abc"}):
            with pytest.raises(MetricsSourceError) as err:
                PrometheusSource(server.url, retries=0, **kw).fetch(*WINDOW, STEP)
            assert "HTTP 401" in str(err.value)
            assert "GPU_RISK_PROMETHEUS_USERNAME" in str(err.value)
    finally:
        server.stop()


def test_bearer_token_is_sent_as_authorization_header() -> None:
    """The bearer token goes in the Authorization header of every query."""
    with fake_promql("record") as fake:
        src = PrometheusSource(fake.url, bearer_token="tok-123", retries=0)
        frames = src.fetch(*WINDOW, STEP)
    assert len(frames.gpus) == 1
    assert fake.requests and all(
        r["headers"].get("Authorization") == "Bearer tok-123" for r in fake.requests
    )


@pytest.mark.prometheus
def test_tls_ca_file_and_verify_switch(prometheus_server: PromqlBackend, tmp_path: Path) -> None:
    """HTTPS Prometheus: unknown CA is a one-line TLS error; ca_file or verify_tls=False reads."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    data = tmp_path / "tsdb"
    backfill(prometheus_server.dataset.openmetrics, data)
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n", encoding="utf-8"
    )
    server = start_prometheus(data, web_config=web)
    url = server.url.replace("http://", "https://")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "/-/ready", verify=str(cert), timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.05)
        with pytest.raises(MetricsSourceError, match="TLS") as err:
            PrometheusSource(url, retries=0).fetch(*WINDOW, STEP)
        assert "GPU_RISK_PROMETHEUS_CA_FILE" in str(err.value)
        assert (
            len(PrometheusSource(url, ca_file=str(cert), retries=0).fetch(*WINDOW, STEP).gpus) == 16
        )
        assert (
            len(PrometheusSource(url, verify_tls=False, retries=0).fetch(*WINDOW, STEP).gpus) == 16
        )
    finally:
        server.stop()


# ------------------------------------------------------------------ error paths


def _one_line(exc: pytest.ExceptionInfo[MetricsSourceError]) -> str:
    """The error's message, asserted to be one line."""
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


def test_unreachable_prometheus() -> None:
    """Nothing listening: a quick one-line error naming the URL and what to check."""
    url = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(MetricsSourceError) as err:
        PrometheusSource(url, retries=1, timeout=1).fetch(*WINDOW, STEP)
    msg = _one_line(err)
    assert "cannot reach Prometheus" in msg and url in msg and "connection refused" in msg
    assert time.monotonic() - t0 < 5  # our own Retry, not the client's 3 x backoff


def test_slow_prometheus_times_out() -> None:
    """A server that does not answer within the timeout is reported as slow, not hung."""
    with fake_promql("slow") as fake:
        t0 = time.monotonic()
        with pytest.raises(MetricsSourceError) as err:
            PrometheusSource(fake.url, retries=1, timeout=0.3).fetch(*WINDOW, STEP)
        elapsed = time.monotonic() - t0
    msg = _one_line(err)
    assert "did not answer" in msg and "0.3s" in msg and "GPU_RISK_PROMETHEUS_TIMEOUT" in msg
    assert len(fake.requests) == 2  # one try + one retry
    assert elapsed < 3


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("500", "HTTP 500"),
        ("badjson", "not a Prometheus API response"),
        ("html", "not a Prometheus API response"),
        ("empty", "has no DCGM series"),
        ("halfempty", "half-empty: no DCGM_FI_DEV_GPU_TEMP"),
    ],
)
def test_erroring_or_empty_answers(mode: str, expected: str) -> None:
    """HTTP errors, garbage, and empty or half-empty answers become one clear line."""
    with fake_promql(mode) as fake, pytest.raises(MetricsSourceError) as err:
        PrometheusSource(fake.url, retries=0, timeout=2).fetch(*WINDOW, STEP)
    msg = _one_line(err)
    assert expected in msg and fake.url in msg


def test_construction_errors_and_helpers() -> None:
    """Bad URLs and conflicting auth are refused up front; ports are stripped from instances."""
    with pytest.raises(MetricsSourceError, match="http://"):
        PrometheusSource("localhost:9090")
    with pytest.raises(MetricsSourceError, match="either"):
        PrometheusSource("http://x", bearer_token="t", basic_auth=("u", "p"))
    assert strip_port("gpu-node-001:9290") == "gpu-node-001"
    assert strip_port("10.0.0.7:9100") == "10.0.0.7"
    assert strip_port("[::1]:9100") == "::1"
    assert strip_port("gpu-node-001") == "gpu-node-001"


def test_port_in_use_is_really_closed() -> None:
    """Sanity: free_port returns a port nobody listens on (used by the unreachable tests)."""
    port = free_port()
    with socket.socket() as s, pytest.raises(OSError):
        s.settimeout(0.5)
        s.connect(("127.0.0.1", port))


@pytest.mark.prometheus
@pytest.mark.victoriametrics
def test_frames_from_the_server_equal_the_simulators_own(sim_backend: PromqlBackend) -> None:
    """Simulator history read back through PromQL equals the simulator's in-process frames."""
    from storage.simulator import FleetSimulator, FleetSpec  # the same run as the fixture's

    ds = sim_backend.dataset
    start, end = fd.SIM_SCAN_AT - timedelta(minutes=45), fd.SIM_SCAN_AT
    src = PrometheusSource(sim_backend.url, topology=load_topology(ds.topology), retries=0)
    got = src.fetch(start, end, STEP)
    sim = fd.simulate(FleetSimulator, FleetSpec)
    want = sim.fetch(start, end, STEP)
    for name, keys in (
        ("gpu", ["ts", "node", "gpu", "metric"]),
        ("node", ["ts", "node", "metric", "sensor"]),
        ("component", ["ts", "component", "metric"]),
        ("up", ["ts", "node", "job"]),
    ):
        a, b = getattr(got, name), getattr(want, name)[list(getattr(got, name).columns)]
        if name == "node":
            # node_exporter's hwmon series are told apart by chip/sensor (several per node);
            # the simulator emits one per node with no sensor name.
            hw = a["metric"] == "node_hwmon_temp_celsius"
            assert a.loc[hw, "sensor"].str.contains("/").all()
            a = a.assign(sensor=a["sensor"].where(~hw, ""))
        a = a.sort_values(keys).reset_index(drop=True)
        b = b.sort_values(keys).reset_index(drop=True)
        assert len(a) == len(b) > 0, name
        pd.testing.assert_frame_equal(
            a, b, check_exact=False, rtol=1e-6, atol=1e-6, check_dtype=False, obj=name
        )


def test_missing_binary_skips_with_install_hint_but_fails_on_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Off CI a missing server binary skips with the apt-get line; under CI=true it fails."""
    from tests.fixtures.prometheus import require_binary

    missing = "/nonexistent/bin/prometheus-that-is-not-there"
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install"):
        require_binary(missing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_binary(missing)


def test_counters_csv_enables_every_metric_the_bot_reads() -> None:
    """deploy/dcgm-exporter/counters.csv is dcgm-exporter's format and enables what we query."""
    path = Path(__file__).resolve().parent.parent / "deploy" / "dcgm-exporter" / "counters.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# Format"
    fields = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, kind, help_text = (part.strip() for part in line.split(",", 2))
        assert kind in {"gauge", "counter"}, line
        assert name.startswith(("DCGM_FI_", "DCGM_EXP_")) and help_text, line
        fields.append(name)
    assert len(fields) == len(set(fields))
    assert set(DCGM_METRICS) | {"DCGM_EXP_XID_ERRORS_COUNT"} <= set(fields)
