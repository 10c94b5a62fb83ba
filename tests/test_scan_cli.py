"""`gpu-risk scan` end to end: simulator history in Prometheus / VictoriaMetrics, and error paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from analysis.types import GpuRef, format_time, parse_time
from bot.cli import build_app
from tests.fixtures import fleetdata as fd
from tests.fixtures.prometheus import PromqlBackend, fake_promql, free_port

pytest_plugins = ("tests.fixtures.prometheus",)

# Settings that would leak in from the developer's shell.
_ENV_KEYS = [k for k in os.environ if k.startswith("GPU_RISK_")]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No GPU_RISK_* variable from the outside world."""
    for key in _ENV_KEYS:
        monkeypatch.delenv(key, raising=False)


def _scan(*args: str, env: dict[str, str] | None = None) -> Any:
    """Run `gpu-risk scan ARGS` in process (typer's CliRunner), stderr kept apart."""
    return CliRunner().invoke(build_app(), ["scan", *args], env=env, catch_exceptions=False)


def _assert_one_line_error(result: Any, *needles: str) -> None:
    """Exit 2, nothing on stdout, exactly one line on stderr containing the needles."""
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


# ------------------------------------------------------------------ done when: finds the faults


@pytest.mark.prometheus
@pytest.mark.victoriametrics
def test_scan_finds_the_simulated_faults(sim_backend: PromqlBackend) -> None:
    """Simulator history with HBM, PCIe and fan faults: scan --at finds each, and nothing else."""
    ds = sim_backend.dataset
    at = format_time(fd.SIM_SCAN_AT)
    result = _scan(
        "--prometheus-url", sim_backend.url,
        "--topology", str(ds.topology),
        "--at", at,
        "--format", "json",
        "--detector", "static",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["at"] == at and doc["detector"] == "static"
    assert doc["gpus_scored"] == ds.gpu_count == 16

    faults = json.loads(ds.faults.read_text(encoding="utf-8"))
    failed = [f for f in faults if f["failure"] and parse_time(f["failure"]) <= fd.SIM_SCAN_AT]
    assert {f["kind"] for f in failed} == {"hbm", "pcie", "fan"}
    incidents = doc["incidents"]
    roots = {(i["root_cause"]["kind"], i["root_cause"]["id"]) for i in incidents}
    for f in failed:
        kind = "node" if "/" not in f["target"] else "gpu"
        assert (kind, f["target"]) in roots, f"{f['kind']} fault on {f['target']} not found"
        inc = next(i for i in incidents if i["root_cause"]["id"] == f["target"])
        assert {f"{g['node']}/{g['gpu']}" for g in inc["gpus"]} == set(f["affected"])
        assert inc["severity"] == "critical" and inc["score"] == 1.0
    # Nothing on healthy GPUs.
    affected = {a for f in failed for a in f["affected"]}
    flagged = {f"{g['node']}/{g['gpu']}" for i in incidents for g in i["gpus"]}
    assert flagged == affected
    assert len(incidents) == len(failed)
    # Each incident speaks the stable JSON shape of issue 3.
    for inc in incidents:
        assert set(inc) >= {"id", "severity", "score", "root_cause", "gpus", "explanation"}
        assert inc["root_cause"]["kind"] in {"gpu", "node", "rack", "pdu", "cooling", "switch"}
        assert inc["explanation"]["summary"]
        for factor in inc["explanation"]["factors"]:
            assert set(factor) >= {"name", "entity", "share"}
        for g in inc["gpus"]:
            GpuRef(g["node"], g["gpu"])
    pcie = next(i for i in incidents if i["root_cause"]["id"] == "gpu-node-003/2")
    assert "vanished" in pcie["signals"]
    hbm = next(i for i in incidents if i["root_cause"]["id"] == "gpu-node-001/1")
    assert "row_remap_failure" in hbm["signals"]


@pytest.mark.prometheus
def test_scan_text_through_the_console_script(prometheus_server: PromqlBackend) -> None:
    """The installed `gpu-risk` script prints a readable table; settings come from the env."""
    env = {
        **os.environ,
        "GPU_RISK_PROMETHEUS_URL": prometheus_server.url,
        "GPU_RISK_TOPOLOGY": str(prometheus_server.dataset.topology),
        "GPU_RISK_DETECTOR": "static",
        "COLUMNS": "160",
    }
    out = subprocess.run(
        [str(Path(sys.executable).parent / "gpu-risk"), "scan", "--at", format_time(fd.SCAN_AT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert f"scan at {format_time(fd.SCAN_AT)}: 16 GPUs scored, 4 incidents" in out.stdout
    for root in (
        "node gpu-node-004",
        "gpu gpu-node-002/1",
        "gpu gpu-node-003/3",
        "gpu gpu-node-001/2",
    ):
        assert root in out.stdout
    assert "critical" in out.stdout and "GpuTemperatureHigh" in out.stdout


@pytest.mark.prometheus
def test_flags_override_environment(prometheus_server: PromqlBackend) -> None:
    """--prometheus-url wins over GPU_RISK_PROMETHEUS_URL; the topology comes from the env."""
    env = {
        "GPU_RISK_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "GPU_RISK_TOPOLOGY": str(prometheus_server.dataset.topology),
    }
    at = format_time(fd.SCAN_AT)
    ok = _scan(
        "--prometheus-url", prometheus_server.url,
        "--at", at,
        "--format", "json",
        "--detector", "static",
        env=env,
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert len(json.loads(ok.stdout)["incidents"]) == 4
    bad = _scan("--at", at, "--format", "json", "--detector", "static", env=env)
    _assert_one_line_error(bad, "cannot reach Prometheus", env["GPU_RISK_PROMETHEUS_URL"])


@pytest.mark.prometheus
def test_settings_from_a_config_file(prometheus_server: PromqlBackend, tmp_path: Path) -> None:
    """--config YAML supplies URL, topology and detector."""
    cfg = tmp_path / "gpu-risk.yaml"
    cfg.write_text(
        f"prometheus_url: {prometheus_server.url}\n"
        f"topology: {prometheus_server.dataset.topology}\n"
        "detector: static\n",
        encoding="utf-8",
    )
    res = _scan("--config", str(cfg), "--at", format_time(fd.SCAN_AT), "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["detector"] == "static" and len(doc["incidents"]) == 4


# ------------------------------------------------------------------ error paths: exit 2, one line


def test_unreachable_prometheus_exits_2() -> None:
    """Nothing listening on the port."""
    url = f"http://127.0.0.1:{free_port()}"
    _assert_one_line_error(
        _scan("--prometheus-url", url, env={"GPU_RISK_PROMETHEUS_RETRIES": "0"}),
        "cannot reach Prometheus",
        url,
    )


def test_slow_prometheus_exits_2() -> None:
    """A server that sleeps past GPU_RISK_PROMETHEUS_TIMEOUT."""
    env = {"GPU_RISK_PROMETHEUS_TIMEOUT": "0.3", "GPU_RISK_PROMETHEUS_RETRIES": "0"}
    with fake_promql("slow") as fake:
        _assert_one_line_error(
            _scan("--prometheus-url", fake.url, env=env), "did not answer", "0.3s"
        )


@pytest.mark.parametrize(
    ("mode", "needle"),
    [
        ("500", "HTTP 500"),
        ("badjson", "not a Prometheus API response"),
        ("empty", "no DCGM series"),
        ("halfempty", "half-empty"),
    ],
)
def test_erroring_or_half_empty_prometheus_exits_2(mode: str, needle: str) -> None:
    """HTTP 500, broken JSON, empty and half-empty answers."""
    with fake_promql(mode) as fake:
        _assert_one_line_error(
            _scan("--prometheus-url", fake.url, env={"GPU_RISK_PROMETHEUS_RETRIES": "0"}),
            needle,
            fake.url,
        )


def test_user_mistakes_exit_2(tmp_path: Path) -> None:
    """No URL, a bad --at, a missing topology file, an unknown detector."""
    _assert_one_line_error(_scan(), "--prometheus-url", "GPU_RISK_PROMETHEUS_URL")
    url = f"http://127.0.0.1:{free_port()}"
    _assert_one_line_error(_scan("--prometheus-url", url, "--at", "yesterday"), "RFC 3339")
    _assert_one_line_error(
        _scan("--prometheus-url", url, "--topology", str(tmp_path / "nope.yaml")), "not found"
    )
    _assert_one_line_error(
        _scan("--prometheus-url", url, "--detector", "crystal-ball"), "crystal-ball", "static"
    )


def test_real_process_never_prints_a_traceback() -> None:
    """The console script itself: half-empty Prometheus -> one line, exit 2."""
    with fake_promql("halfempty") as fake:
        out = subprocess.run(
            [str(Path(sys.executable).parent / "gpu-risk"), "scan", "--prometheus-url", fake.url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("GPU_RISK_")}},
        )
    assert out.returncode == 2
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "half-empty" in out.stderr
    assert "Traceback" not in out.stderr


# ------------------------------------------------------------------ the graph model, explained


@pytest.mark.slow
def test_scan_with_the_graph_model_warns_before_failure_and_explains() -> None:
    """An HBM fault in its precursor: the one-shot scan fits on the past, warns and says why."""
    from datetime import timedelta

    from bot.commands.scan import run_scan
    from bot.config import load_settings
    from storage.simulator import FleetSimulator, FleetSpec, make_fault

    spec = FleetSpec(racks=2, nodes_per_rack=2, gpus_per_node=4)
    start = parse_time("2026-11-01T00:00:00Z")
    onset = start + timedelta(hours=12)
    fault = make_fault("hbm", "gpu-node-003/2", onset, spec=spec, precursor=timedelta(hours=4))
    sim = FleetSimulator(spec, start=start, duration=timedelta(hours=17), seed=4101, faults=[fault])
    settings = load_settings(None, fit_window_hours=10, scan_interval=300)
    at = onset + timedelta(hours=3)  # an hour before the failure
    assert fault.failure is not None and at < fault.failure
    result = run_scan(settings, at=at, detector="graph", source=sim)
    doc = result.as_dict()
    assert doc["detector"] == "graph" and doc["gpus_scored"] == spec.n_gpus
    mine = [
        i
        for i in doc["incidents"]
        if "gpu-node-003/2" in {f"{g['node']}/{g['gpu']}" for g in i["gpus"]}
    ]
    assert mine, f"no warning for the failing GPU: {doc['incidents']}"
    assert mine[0]["root_cause"] == {"id": "gpu-node-003/2", "kind": "gpu"}
    assert mine[0]["explanation"]["summary"]
    top = mine[0]["explanation"]["factors"][0]["name"]
    assert "ECC" in top or "REMAPPED" in top, top
