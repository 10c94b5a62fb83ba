"""The protocol's adoption rule, checked on the stored runs of two real models (17 and 18)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis.evaluation.adoption import adopted, adoption_checks, seed_set
from analysis.evaluation.matrix import ScenarioResult
from bot.cli import build_app

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
#: Model 17's declared runs and model 18's of the same commands (README, "Model 18, rejected").
MODEL_17 = (
    "eval-2026-12-06-cr/report-faults-CR",
    "eval-2026-12-06-cm/report-healthy-CQ",
    "eval-2026-12-06-cm/healthy-1m-CO",
    "eval-2026-12-06-cr/held-out-faults-CT",
    "eval-2026-12-06-cr/held-out-healthy-CU",
)
MODEL_18 = (
    "eval-2026-12-06-cv/report-faults-CV",
    "eval-2026-12-06-cv/report-healthy-CW",
    "eval-2026-12-06-cv/healthy-1m-CX",
    "eval-2026-12-06-cv/held-out-faults-CY",
    "eval-2026-12-06-cv/held-out-healthy-CZ",
)


def _paths(runs: tuple[str, ...]) -> list[Path]:
    return [RESULTS / run / "eval.json" for run in runs]


def _load(runs: tuple[str, ...]) -> list[ScenarioResult]:
    out: list[ScenarioResult] = []
    for path in _paths(runs):
        out += [ScenarioResult.from_dict(s) for s in json.loads(path.read_text())["scenarios"]]
    return out


def test_model_18_is_rejected_on_its_declared_runs_for_the_reasons_the_readme_gives() -> None:
    checks = {c.criterion: c for c in adoption_checks(_load(MODEL_17), _load(MODEL_18))}
    warned = checks["faults warned >= 1 h, strict"]
    assert (warned.current, warned.candidate, warned.holds) == (59, 59, True)  # 27 + 32 each
    report = checks["false incidents, report healthy fleets, 5-minute scans"]
    assert (report.current, report.candidate, report.holds) == (2, 6, False)
    fast = checks["false incidents, report healthy fleets, under 5-minute scans"]
    assert (fast.current, fast.candidate) == (1, 2)
    held = checks["false incidents, held-out healthy fleets, 5-minute scans"]
    assert (held.current, held.candidate) == (0, 1)
    assert (checks["node faults escalated"].current, checks["node faults escalated"].candidate) == (
        1,
        2,
    )
    assert checks["shared faults not one incident"].holds
    assert not adopted(list(checks.values()))


def test_a_model_is_adopted_against_runs_it_equals() -> None:
    """Runs CP/CQ repeated CM/CN record for record: nothing is worse, so the rule holds."""
    cm = _load(("eval-2026-12-06-cm/report-faults-CM", "eval-2026-12-06-cm/report-healthy-CN"))
    cp = _load(("eval-2026-12-06-cm/report-faults-CP", "eval-2026-12-06-cm/report-healthy-CQ"))
    checks = adoption_checks(cm, cp)
    assert adopted(checks) and all(c.current == c.candidate for c in checks)
    assert not adopted([])


def test_runs_over_different_scenarios_are_refused() -> None:
    faults = _load(("eval-2026-12-06-cr/report-faults-CR",))
    with pytest.raises(ValueError, match=r"different scenarios \(seeds \[10008\]"):
        adoption_checks(faults, [r for r in faults if r.seed != 10008])
    assert (seed_set(10000), seed_set(10020), seed_set(101)) == ("report", "held-out", "dev")


def test_the_cli_prints_the_counts_and_exits_1_on_a_rejected_candidate(tmp_path: Path) -> None:
    args = ["eval"]
    for path in _paths(MODEL_18):
        args += ["--pool", str(path)]
    for path in _paths(MODEL_17):
        args += ["--against", str(path)]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 1, result.output
    assert "reject the candidate" in result.output and "node faults escalated" in result.output
    same = ["eval", "--pool", str(_paths(MODEL_17)[0]), "--against", str(_paths(MODEL_17)[0])]
    result = CliRunner().invoke(build_app(), same)
    assert result.exit_code == 0 and "adopt the candidate" in result.output, result.output
    short = ["eval", "--pool", str(_paths(MODEL_17)[0]), "--against", str(_paths(MODEL_17)[1])]
    result = CliRunner().invoke(build_app(), short)
    assert result.exit_code == 2 and "different scenarios" in result.output, result.output
    missing = ["eval", "--pool", str(_paths(MODEL_17)[0]), "--against", str(tmp_path / "no.json")]
    result = CliRunner().invoke(build_app(), missing)
    assert result.exit_code == 2 and "--against " in result.output, result.output
    alone = CliRunner().invoke(build_app(), ["eval", "--against", str(_paths(MODEL_17)[0])])
    assert alone.exit_code == 2 and "--against needs --pool" in alone.output, alone.output
