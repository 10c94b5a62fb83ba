"""``gpu-risk backtest``: the replay engine (past-only data), the CLI on a real Prometheus, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Self

import networkx as nx
import pandas as pd
import pytest
from typer.testing import CliRunner

from analysis.types import Assessment, FleetFrames, format_time
from bot.cli import build_app
from bot.commands.backtest import parse_duration, relevant_faults, run_backtest
from bot.commands.common import UserError
from bot.pipeline import Pipeline
from bot.replay import cycle_times
from bot.wiring import memory_repository
from storage.replay import CachedSource
from tests.fixtures import fleetdata as fd
from tests.fixtures.prometheus import PromqlBackend, free_port

pytest_plugins = ("tests.fixtures.prometheus",)


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Invoke the CLI; return exit code, stdout and stderr."""
    result = CliRunner().invoke(build_app(), list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


class PastOnlyProbe:
    """A learning scorer that records what data each fit and cycle was given."""

    name = "probe"
    needs_history = True
    self_gating = False
    min_window = timedelta(minutes=45)
    feature_window = None
    exclude = ()

    def __init__(self) -> None:
        """Start with empty records."""
        self.fits: list[tuple[pd.Timestamp, pd.Timestamp]] = []
        self.cycles: list[tuple[datetime, pd.Timestamp, pd.Timestamp]] = []

    def fit(self, history: FleetFrames, graph: nx.DiGraph) -> Self:
        """Record the history's time span."""
        self.fits.append((history.gpu["ts"].min(), history.gpu["ts"].max()))
        return self

    def assess(self, frames: FleetFrames, graph: nx.DiGraph, at: datetime) -> Assessment:
        """Record the cycle's data span; raise no incident."""
        self.cycles.append((at, frames.gpu["ts"].min(), frames.gpu["ts"].max()))
        return Assessment(at=at, scores=(), incidents=())


def test_each_cycle_sees_only_its_past_and_models_refit_on_the_past() -> None:
    from storage.simulator import FleetSimulator, FleetSpec

    start = datetime(2026, 10, 1, tzinfo=UTC)
    sim = FleetSimulator(
        FleetSpec(1, 2, 2), start=start, duration=timedelta(hours=20), seed=5, healthy=True
    )
    probe = PastOnlyProbe()
    first, last = start + timedelta(hours=8), start + timedelta(hours=19)
    pipeline = Pipeline(
        source=CachedSource(sim, horizon=last),
        topology=sim.topology,
        repository=memory_repository(),
        make_scorer=lambda: probe,
        fit_window=timedelta(hours=6),
        render=False,
    )
    report = run_backtest(
        {"probe": pipeline},
        [],
        start=first,
        end=last,
        step=timedelta(minutes=30),
        refit_every=timedelta(hours=4),
    )
    assert [c[0] for c in probe.cycles] == cycle_times(first, last, timedelta(minutes=30))
    for at, lo, hi in probe.cycles:
        # the scorer's own min_window (45 min) is longer than the window: it gets 45 min
        assert hi == pd.Timestamp(at) and lo == pd.Timestamp(at - timedelta(minutes=45))
    # fitted at 8:00, 12:00, 16:00 on [t - 6 h, t - window]: never on the cycle's data or later
    assert len(probe.fits) == 3
    for (lo, hi), at in zip(probe.fits, (8, 12, 16), strict=True):
        t = start + timedelta(hours=at)
        assert lo == pd.Timestamp(t - timedelta(hours=6))
        assert hi == pd.Timestamp(t - timedelta(minutes=45))
    # healthy fleet, no incident: 4 GPUs over 11.5 h
    score = report.detectors["probe"]
    assert score.n_incidents == 0 and score.recall is None
    assert report.gpu_days == pytest.approx(4 * 11.5 / 24)


def test_durations_cycles_and_fault_filter() -> None:
    assert parse_duration("5m", "--step") == timedelta(minutes=5)
    assert parse_duration("1d", "--step") == timedelta(days=1)
    for bad in ("5", "0m", "5x", "-1h"):
        with pytest.raises(UserError, match="--step"):
            parse_duration(bad, "--step")
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert len(cycle_times(t, t + timedelta(hours=1), timedelta(minutes=10))) == 7
    from analysis.types import Fault

    before = Fault("a", "fan", "n/0", ("n/0",), t - timedelta(hours=3), t - timedelta(hours=1))
    inside = Fault("b", "fan", "n/0", ("n/0",), t, t + timedelta(hours=1))
    after = Fault("c", "fan", "n/0", ("n/0",), t + timedelta(hours=9), None)
    assert relevant_faults([before, inside, after], t, t + timedelta(hours=2)) == (inside,)


@pytest.mark.prometheus
def test_backtest_on_a_real_prometheus(prometheus_server: PromqlBackend, tmp_path: Path) -> None:
    ds = prometheus_server.dataset
    report_dir = tmp_path / "report"
    args = [
        "backtest",
        "--prometheus-url",
        prometheus_server.url,
        "--topology",
        str(ds.topology),
        "--faults",
        str(ds.faults),
        "--start",
        format_time(ds.start + timedelta(hours=1, minutes=10)),
        "--end",
        format_time(fd.SCAN_AT),
        "--step",
        "5m",
        "--detectors",
        "static",
    ]
    code, out, err = run(*args, "--format", "json", "--report", str(report_dir))
    assert code == 0, err
    data = json.loads(out)
    static = data["detectors"]["static"]
    faults = {f["id"]: f["static"] for f in data["faults"]}
    # hot GPU (no failure) is warned once it crosses 85 °C; the others fire at their failure
    # (DBE, XID 79, node down) = too late to count as warnings, yet not false incidents.
    assert faults["f-hot"]["warned"] and faults["f-hot"]["lead_minutes"] is None
    for fid in ("f-hbm", "f-pcie", "f-node"):
        assert faults[fid]["warned"] is False, fid
    assert static["recall"] == 0.25
    assert static["false_incidents"] == 0 and static["precision"] == 1.0
    assert static["false_incidents_per_1k_gpu_days"] == 0.0
    assert (report_dir / "lead_times.png").read_bytes().startswith(b"\x89PNG")
    assert "| static | 0.25 (1/4) | 1.00 |" in (report_dir / "summary.md").read_text()
    assert json.loads((report_dir / "backtest.json").read_text()) == data
    code, out, err = run(*args)
    assert code == 0, err
    assert "static" in out and "recall" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--step", "5x"], "--step: '5x' is not a duration"),
        (["--end", "2026-11-01T00:00:00Z"], "must be after --start"),
        (["--start", "yesterday"], "is not an RFC 3339 time"),
        (["--faults", "MISSING"], "no such faults file"),
        (["--faults", "BAD"], "bad.json: fault #1: missing target, onset"),
        (["--detectors", "crystal-ball"], "detector 'crystal-ball' is not available"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, extra: list[str], message: str) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text("[]")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "x", "kind": "fan"}]))
    base = {
        "--prometheus-url": f"http://127.0.0.1:{free_port()}",
        "--faults": str(faults),
        "--start": "2026-11-02T00:00:00Z",
        "--end": "2026-11-02T01:00:00Z",
    }
    opts = dict(base)
    for key, value in zip(extra[::2], extra[1::2], strict=True):
        opts[key] = {"MISSING": str(tmp_path / "nope.json"), "BAD": str(bad)}.get(value, value)
    argv = [item for pair in opts.items() for item in pair]
    code, out, err = run("backtest", *argv)
    assert code == 2, (out, err)
    assert message in err
    assert "Traceback" not in out + err


def test_unreachable_prometheus_is_one_line_exit_2(tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text("[]")
    code, out, err = run(
        "backtest",
        "--prometheus-url",
        f"http://127.0.0.1:{free_port()}",
        "--faults",
        str(faults),
        "--start",
        "2026-11-02T00:00:00Z",
        "--end",
        "2026-11-02T01:00:00Z",
        "--detectors",
        "static",
        env={"GPU_RISK_PROMETHEUS_RETRIES": "0", "GPU_RISK_PROMETHEUS_TIMEOUT": "2"},
    )
    assert code == 2, (out, err)
    assert "127.0.0.1" in err and "Traceback" not in out + err


def test_load_faults_round_trip_and_errors(tmp_path: Path) -> None:
    from analysis.types import Fault
    from storage.datasets import DatasetError, load_faults

    t = datetime(2026, 11, 1, 10, tzinfo=UTC)
    faults = (
        Fault("a", "fan", "n1", ("n1/0", "n1/1"), t, t + timedelta(hours=2)),
        Fault("b", "pdu", "pdu-a1", ("n2/0",), t, None),
        Fault("c", "hbm", "n1/1", ("n1/1",), t, t + timedelta(hours=3), t + timedelta(hours=2)),
    )
    path = tmp_path / "faults.json"
    path.write_text(json.dumps([f.as_dict() for f in faults]))
    assert load_faults(path) == faults
    cases = {
        "{not json": "not valid JSON",
        '{"id": "a"}': "expected a JSON list",
        json.dumps([faults[0].as_dict(), faults[0].as_dict()]): "fault #2: duplicate id 'a'",
        json.dumps([{**faults[0].as_dict(), "affected": ["n1"]}]): "fault #1 (a): 'n1' is not",
        json.dumps([{**faults[0].as_dict(), "onset": "soon"}]): "fault #1 (a): 'soon' is not",
        json.dumps(
            [{**faults[0].as_dict(), "failure": "2026-11-01T09:00:00Z"}]
        ): "failure is before onset",
        json.dumps(
            [{**faults[2].as_dict(), "signal_start": "2026-11-01T14:00:00Z"}]
        ): "signal_start must lie between onset and failure",
    }
    for text, message in cases.items():
        path.write_text(text)
        with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_faults(path)


@pytest.mark.slow
def test_graph_model_with_hysteresis_and_explanations_on_the_simulator() -> None:
    """The product's scorer + hysteresis + explainer through the replay: warned early, explained."""
    from bot.config import Settings
    from bot.wiring import backtest_pipelines
    from storage.simulator import FleetSimulator, FleetSpec, make_fault

    start = datetime(2026, 10, 1, tzinfo=UTC)
    spec = FleetSpec(2, 2, 4)
    fault = make_fault("hbm", "gpu-node-003/1", start + timedelta(hours=27), spec=spec)
    assert fault.failure is not None
    sim = FleetSimulator(spec, start=start, duration=timedelta(hours=40), seed=21, faults=[fault])
    end = fault.failure + timedelta(minutes=40)
    pipelines = backtest_pipelines(
        Settings(), sim, sim.topology, detectors=["graph", "static"], explain=True, horizon=end
    )
    report = run_backtest(
        pipelines,
        sim.faults,
        start=fault.onset - timedelta(hours=1),
        end=end,
        step=timedelta(minutes=20),
    )
    graph = report.detectors["graph"].outcomes[0]
    static = report.detectors["static"].outcomes[0]
    assert graph.warned and graph.lead_minutes is not None and graph.lead_minutes > 0
    # hysteresis: a page needs two consecutive cycles, so never at the very first cycle
    assert graph.warned_at is not None and graph.warned_at > fault.onset - timedelta(hours=1)
    assert graph.top3 is not None  # the explainer ran: factor names were recorded
    assert not static.warned  # the static rules fire at the failure (DBE/XID), too late
    # (how quiet the model is on healthy GPUs is the scoring tests' business, not the replay's)
