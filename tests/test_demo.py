"""`gpu-risk demo` end to end, as `make demo` runs it, on a small fleet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.commands.demo import demo_targets
from storage.simulator.spec import FleetSpec

GPU_RISK = str(Path(sys.executable).with_name("gpu-risk"))


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MPLBACKEND": "Agg", "COLUMNS": "120"}
    env.pop("SLACK_BOT_TOKEN", None)
    return subprocess.run(
        [GPU_RISK, "demo", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_demo_shows_alerts_images_and_the_backtest(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    args = ("--out", str(out), "--racks", "4", "--nodes", "2", "--gpus", "4")
    proc = _run(*args, "--hours", "6", "--fit-hours", "6", "--cycle", "10", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    # alerts as a Slack user reads them: a header, the buttons, then the backtest table
    assert "[post] incident #1" in text
    assert "[ Acknowledge ]" in text and "[ False alarm ]" in text
    assert "backtest of the demo period" in text
    assert "graph" in text and "static" in text
    posts = sorted((out / "slack").glob("*-post-incident-*.json"))
    assert posts, "no alert was posted"
    blocks = json.loads(posts[0].read_text())["blocks"]
    assert blocks[0]["type"] == "header"
    assert any(b["type"] == "actions" for b in blocks)
    pngs = sorted((out / "slack").glob("incident-*-*.png"))
    assert pngs and all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
    assert (out / "backtest.md").read_text().count("|") > 10
    assert (out / "lead-times.png").read_bytes().startswith(b"\x89PNG")
    # every injected fault is narrated (ground truth), the bot's alerts are separate
    for target in demo_targets(FleetSpec(4, 2, 4)).values():
        assert f"fault on {target}" in text


def test_demo_refuses_to_wipe_a_foreign_directory(tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    proc = _run("--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2
    assert "not a demo output directory" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (out / "notes.txt").read_text() == "keep me"


def test_demo_targets_fit_small_and_default_fleets() -> None:
    default = demo_targets(FleetSpec())
    assert default["pdu"] == "pdu-a1" and default["switch"] == "leaf-a3"
    gpu_targets = [default[k] for k in ("thermal_interface", "hbm", "nvlink", "pcie")]
    assert len(set(gpu_targets)) == 4
    assert all(not t.startswith(default["fan"] + "/") for t in gpu_targets)
    with pytest.raises(Exception, match="at least 4 racks"):
        demo_targets(FleetSpec(racks=2))
