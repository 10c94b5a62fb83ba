"""``gpu-risk eval``: seeds protocol, a tiny dev matrix end to end, the ablation scorers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis.ablation import ABLATION_SCORERS, GuardOnlyModel, NoContextModel, is_context_column
from analysis.evaluation.protocol import DEV_SEEDS, HELD_OUT_SEEDS, REPORT_SEEDS
from analysis.scorer import SCORERS, make_scorer
from analysis.types import BenignEvent, Fault, Topology
from bot.cli import build_app
from bot.commands.common import UserError
from bot.commands.eval import parse_seeds
from storage.simulator import FleetSimulator, FleetSpec, make_fault

FACTORY = "tests.test_eval_cli:tiny_scenario"
START = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TinyScenario:
    """A 16-GPU stand-in for ``draw_scenario``: 3 h history, 90 min replay, one-minute data."""

    seed: int
    spec: FleetSpec
    start: datetime
    history: timedelta
    replay: timedelta
    step: timedelta
    faults: tuple[Fault, ...]
    benign: tuple[BenignEvent, ...] = ()
    description: dict[str, object] = field(default_factory=dict)

    def simulator(self) -> FleetSimulator:
        """The in-memory source."""
        return FleetSimulator(
            self.spec,
            start=self.start,
            duration=self.history + self.replay + self.step,
            step=self.step,
            seed=self.seed,
            faults=self.faults,
            healthy=not self.faults,
        )

    @property
    def topology(self) -> Topology:
        """The fleet's topology."""
        return self.spec.topology()


def tiny_scenario(seed: int, *, healthy: bool = False, max_gpus: int = 512) -> TinyScenario:
    """Draw a tiny scenario: an NVLink fault on a GPU and a cooling fault (none when healthy)."""
    spec = FleetSpec(racks=2, nodes_per_rack=1, gpus_per_node=8)
    replay_start = START + timedelta(hours=3)
    faults = (
        ()
        if healthy
        else (
            make_fault(
                "nvlink",
                f"gpu-node-002/{seed % 8}",
                replay_start + timedelta(minutes=20),
                spec=spec,
                precursor=timedelta(minutes=70),
                fault_id="nvlink-001",
            ),
            make_fault(
                "cooling",
                "crac-a1",
                replay_start + timedelta(minutes=10),
                spec=spec,
                precursor=timedelta(minutes=70),
                fault_id="cooling-001",
            ),
        )
    )
    benign = (
        BenignEvent(
            "b-1",
            "drain_reboot",
            "gpu-node-001",
            tuple(f"gpu-node-001/{g}" for g in range(8)),
            replay_start + timedelta(minutes=40),
            replay_start + timedelta(minutes=60),
        ),
    )
    return TinyScenario(
        seed=seed,
        spec=spec,
        start=START,
        history=timedelta(hours=3),
        replay=timedelta(minutes=90),
        step=timedelta(minutes=1),
        faults=faults,
        benign=benign,
        description={"seed": seed, "tiny": True},
    )


def test_seed_protocol() -> None:
    assert parse_seeds("dev") == ("dev", DEV_SEEDS)
    assert parse_seeds("report") == ("report", REPORT_SEEDS)
    assert parse_seeds("held-out") == ("held-out", HELD_OUT_SEEDS)
    assert not set(HELD_OUT_SEEDS) & (set(REPORT_SEEDS) | set(DEV_SEEDS))
    with pytest.raises(UserError, match="report seed"):
        parse_seeds(f"100,{HELD_OUT_SEEDS[0]}")
    assert parse_seeds("100,101,105-107") == ("100,101,105,106,107", (100, 101, 105, 106, 107))
    with pytest.raises(UserError, match="report seed"):
        parse_seeds(f"100,{REPORT_SEEDS[3]}")
    with pytest.raises(UserError, match="dev, report"):
        parse_seeds("ten")


def test_report_seeds_need_the_report_word_on_the_command_line() -> None:
    result = CliRunner().invoke(build_app(), ["eval", "--seeds", str(REPORT_SEEDS[0])])
    assert result.exit_code == 2 and "report seed" in result.stderr


def test_skip_leaves_out_the_first_seeds(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    args = ["eval", "--seeds", "101,102,103", "--skip", "1", "--limit", "1", "--jobs", "1"]
    more = ["--no-explain", "--detectors", "static", "--scenario-factory", FACTORY]
    result = CliRunner().invoke(build_app(), [*args, *more, "--out", str(out)])
    assert result.exit_code == 0, result.stderr + result.stdout
    assert [s["seed"] for s in json.loads((out / "eval.json").read_text())["scenarios"]] == [102]
    result = CliRunner().invoke(build_app(), ["eval", "--seeds", "101", "--skip", "1"])
    assert result.exit_code == 2 and "leaves no seed" in result.stderr


def test_tiny_dev_matrix_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    args = ["eval", "--seeds", "101,102", "--jobs", "2", "--no-explain", "--out", str(out)]
    more = ["--detectors", "graph,static", "--scenario-factory", FACTORY]
    result = CliRunner().invoke(build_app(), [*args, *more])
    assert result.exit_code == 0, result.stderr + result.stdout
    data = json.loads((out / "eval.json").read_text())
    assert data["seeds"] == "101,102" and data["detectors"] == ["graph", "static"]
    assert [s["seed"] for s in data["scenarios"]] == [101, 102]
    graph = data["pooled"]["faults @ 5 min"]["graph"]
    for key in ("warn_1h", "recall_strict", "recall_loose", "false_per_1k", "one_incident"):
        cell = graph[key]
        assert set(cell) == {"value", "low", "high", "num", "den"}, key
    assert graph["recall_strict"]["den"] == 4  # two faults in each of two scenarios
    assert set(graph["kinds"]) == {"cooling", "nvlink"}
    assert "drain_reboot" in graph["benign"]
    keys = {t["target"] for t in data["targets"]}
    assert keys == {"warn_1h", "slow_burn_24h", "false_rate", "one_incident", "top_factor"}
    healthy = [t for t in data["targets"] if t["target"] == "false_rate"]
    assert healthy[0]["group"] == "(not in this run)" and healthy[0]["met"] is None
    md = (out / "eval.md").read_text()
    assert "faults warned >= 1 h before failure" in md and "### faults @ 5 min" in md
    assert "| seed | cycle | GPUs |" in md
    assert "Refits that failed" not in md
    for scenario in data["scenarios"]:
        assert scenario["description"]["failed_refits"] == []  # each refit found a model
        cells = scenario["backtest"]["faults"]
        assert {c["graph"]["level"] for c in cells} == {"gpu", "component"}
    # the stored scenarios pool back to the very figures (--pool replays nothing)
    again = tmp_path / "again"
    result = CliRunner().invoke(
        build_app(), ["eval", "--pool", str(out / "eval.json"), "--out", str(again)]
    )
    assert result.exit_code == 0, result.stderr + result.stdout
    pooled = json.loads((again / "eval.json").read_text())
    assert pooled["scenarios"] == data["scenarios"]
    for group, detectors in data["pooled"].items():  # GPU-days are stored to 1e-4
        for name, cells in detectors.items():
            got = pooled["pooled"][group][name]
            assert {k: v for k, v in got.items() if k != "false_per_1k"} == {
                k: v for k, v in cells.items() if k != "false_per_1k"
            }
            assert got["false_per_1k"]["value"] == cells["false_per_1k"]["value"]
            assert got["false_per_1k"]["den"] == pytest.approx(cells["false_per_1k"]["den"], 1e-3)
    assert "Pooled from stored replays" in (again / "eval.md").read_text()
    twice = ["eval", "--pool", str(out / "eval.json"), "--pool", str(again / "eval.json")]
    result = CliRunner().invoke(build_app(), twice)
    assert result.exit_code == 2 and "pool each scenario once" in result.stderr


def test_pool_names_the_file_it_cannot_use(tmp_path: Path) -> None:
    bad = tmp_path / "eval.json"
    bad.write_text(json.dumps({"seeds": "dev", "scenarios": [{"seed": 1}]}))
    odd = tmp_path / "odd.json"  # the right keys holding the wrong shapes
    scenario = {"seed": 1, "healthy": True, "cycle_minutes": 5, "gpus": 8, "seconds": 1.0}
    backtest = {"gpu_days": 1.0, "faults": [], "detectors": {"graph": ["not", "a", "score"]}}
    odd.write_text(
        json.dumps({"detectors": ["graph"], "scenarios": [scenario | {"backtest": backtest}]})
    )
    cases = (
        (bad, "not an eval.json"),
        (odd, "not an eval.json"),
        (tmp_path / "none.json", "cannot be read"),
    )
    for path, words in cases:
        result = CliRunner().invoke(build_app(), ["eval", "--pool", str(path)])
        assert result.exit_code == 2, result.stdout
        assert str(path) in result.stderr and words in result.stderr
        assert "Traceback" not in result.stdout + result.stderr


def history_too_short(seed: int, *, healthy: bool = False, max_gpus: int = 512) -> TinyScenario:
    """Seed 102 has 20 minutes of history: no model can be fitted on it."""
    scenario = tiny_scenario(seed, healthy=healthy, max_gpus=max_gpus)
    if seed == 102:
        return replace(scenario, history=timedelta(minutes=20))
    return scenario


def test_a_scenario_that_cannot_be_scored_is_reported_not_fatal(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    args = ["eval", "--seeds", "101,102", "--jobs", "1", "--no-explain", "--out", str(out)]
    factory = "tests.test_eval_cli:history_too_short"
    more = ["--detectors", "graph", "--scenario-factory", factory]
    result = CliRunner().invoke(build_app(), [*args, *more])
    assert result.exit_code == 0, result.stderr + result.stdout
    data = json.loads((out / "eval.json").read_text())
    assert [s["seed"] for s in data["scenarios"]] == [101]
    assert [f["seed"] for f in data["failed"]] == [102]
    assert "no model" in data["failed"][0]["reason"]
    assert "seed 102:" in (out / "eval.md").read_text()
    assert "Traceback" not in result.stdout + result.stderr


def test_healthy_one_minute_variant(tmp_path: Path) -> None:
    args = ["eval", "--seeds", "103", "--healthy", "--cycle", "1m", "--jobs", "1", "--no-explain"]
    result = CliRunner().invoke(
        build_app(),
        [*args, "--detectors", "static", "--out", str(tmp_path), "--scenario-factory", FACTORY],
    )
    assert result.exit_code == 0, result.stderr + result.stdout
    data = json.loads((tmp_path / "eval.json").read_text())
    (rate,) = [t for t in data["targets"] if t["target"] == "false_rate"]
    assert rate["group"] == "healthy @ 1 min"
    assert data["scenarios"][0]["cycle_minutes"] == 1.0


def test_ablation_scorers_are_registered_and_drop_what_they_say() -> None:
    assert set(ABLATION_SCORERS) <= set(SCORERS)
    assert isinstance(make_scorer("graph-noctx"), NoContextModel)
    assert isinstance(make_scorer("guard"), GuardOnlyModel)
    for name in ("temp_vs_node", "pdu.output_volts.min", "fan_min", "inlet", "volts_dip"):
        assert is_context_column(name), name
    for name in ("ecc_sbe_rate", "nvlink_crc_excess", "temp_at_power", "xid_hw_events"):
        assert not is_context_column(name), name


def test_ablation_models_fit_and_score_on_a_small_fleet() -> None:
    from analysis.graph import build_graph
    from analysis.types import GpuRef

    spec = FleetSpec(racks=1, nodes_per_rack=2, gpus_per_node=4)
    sim = FleetSimulator(spec, start=START, duration=timedelta(hours=3), seed=3, healthy=True)
    graph = build_graph(sim.topology, [GpuRef.parse(k) for k in spec.gpu_keys])
    end = START + timedelta(hours=3) - timedelta(minutes=1)
    history = sim.fetch(START, end, timedelta(minutes=1))
    noctx = NoContextModel(fit_window=timedelta(hours=3), fit_cycles=12).fit(history, graph)
    assert noctx.columns_ and not any(is_context_column(c) for c in noctx.columns_)
    guard = GuardOnlyModel(fit_window=timedelta(hours=3), fit_cycles=12).fit(history, graph)
    assessment = guard.assess(history, graph, end)
    assert len(assessment.scores) == 8
    assert all(0.0 <= s.score <= 1.0 for s in assessment.scores)
