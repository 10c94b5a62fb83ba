"""`gpu-risk --help` and `--version` start fast: they import no heavy library and no command.

Checked by what the console script's entry point has imported when it exits (``sys.modules``
in a fresh interpreter), never by the wall clock. The lazy root group must show and run exactly what the eagerly built app does.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import COMMAND_INDEX, COMMAND_MODULES, build_app

#: Libraries that cost from 0.1 s to seconds each; a command imports them in its body.
HEAVY = {
    "pandas",
    "numpy",
    "scipy",
    "networkx",
    "sklearn",
    "pyod",
    "dowhy",
    "matplotlib",
    "slack_bolt",
    "slack_sdk",
    "sqlalchemy",
    "alembic",
    "apscheduler",
    "prometheus_api_client",
    "prometheus_client",
    "requests",
    "joblib",
    "waitress",
    "pydantic",
    "pydantic_settings",
    "yaml",
}
#: First-party code that --help has no reason to load.
FIRST_PARTY = ("analysis", "storage", "bot.commands", "bot.config", "bot.slack", "bot.pipeline")


#: Runs the console script's entry point and writes, at exit, every imported module's name,
#: the collector's thresholds it left and whether it set the allocator (bot.malloc_tuning).
_PROBE = """
import atexit, gc, json, sys
import bot.malloc_tuning as malloc_tuning
out = sys.argv[1]
sys.argv = ["gpu-risk", *sys.argv[2:]]
tuned = []
malloc_tuning.tune = (lambda tune: lambda: tuned.append(tune()) or tuned[-1])(malloc_tuning.tune)
atexit.register(
    lambda: open(out, "w").write(
        json.dumps(
            {"modules": sorted(sys.modules), "gc_threshold": gc.get_threshold(), "malloc": tuned}
        )
    )
)
from bot.cli import main
main()
"""


def _probe(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run ``gpu-risk ARGS`` (bot.cli:main) in a fresh interpreter; return it and what it left
    at exit (``modules``, ``gc_threshold``; empty when it wrote nothing)."""
    out = tmp_path / "probe.json"
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
        timeout=120,
        check=False,
    )
    return result, json.loads(out.read_text()) if out.exists() else {}


def _imported(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``gpu-risk ARGS`` (bot.cli:main) in a fresh interpreter; return it and its modules."""
    result, left = _probe(tmp_path, *args)
    return result, set(left.get("modules", ()))


def _offenders(modules: set[str]) -> list[str]:
    heavy = {m for m in modules if m.split(".")[0] in HEAVY}
    ours = {m for m in modules if m.startswith(FIRST_PARTY)}
    return sorted({m.split(".")[0] for m in heavy} | ours)


def test_help_imports_no_heavy_library_and_no_command(tmp_path: Path) -> None:
    result, modules = _imported(tmp_path, "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "bot.cli" in modules and "typer" in modules
    assert not _offenders(modules), f"`gpu-risk --help` imported {_offenders(modules)}"
    for module in COMMAND_MODULES:
        for name, _ in COMMAND_INDEX[module]:
            assert name in result.stdout


def test_version_is_the_package_metadata_and_imports_nothing_heavy(tmp_path: Path) -> None:
    result, modules = _imported(tmp_path, "--version")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"gpu-risk {version('gpu-risk')}"
    assert not _offenders(modules), f"`gpu-risk --version` imported {_offenders(modules)}"


def test_a_command_imports_only_its_own_module(tmp_path: Path) -> None:
    result, modules = _imported(tmp_path, "check", "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "bot.commands.check" in modules
    others = [m for m in COMMAND_MODULES if m in modules and m != "bot.commands.check"]
    assert not others, f"`gpu-risk check --help` also imported {others}"


#: What a command's own --help may import beyond --help's: typer builds a command's options
#: with pydantic, and every command module shares ``bot.commands.common`` (credential masking).
COMMAND_HELP_ALLOWED = {"pydantic", "storage", "storage.redact", "bot.commands"}


def _command_helps() -> list[list[str]]:
    out = [[name, "--help"] for module in COMMAND_MODULES for name, _ in COMMAND_INDEX[module]]
    return [*out, ["simulate", "history", "--help"], ["simulate", "serve", "--help"]]


@pytest.mark.parametrize("args", _command_helps(), ids=" ".join)
def test_a_commands_help_imports_no_heavy_library(tmp_path: Path, args: list[str]) -> None:
    """``gpu-risk <command> --help`` loads the command's module and nothing heavy: no pandas,
    numpy, scikit-learn, DoWhy, matplotlib, SQLAlchemy, Slack, settings or analysis code."""
    result, modules = _imported(tmp_path, *args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Usage:" in result.stdout
    own = f"bot.commands.{args[0]}"
    assert own in modules
    offenders = [
        m
        for m in _offenders(modules - {own, "bot.commands.common"})
        if m not in COMMAND_HELP_ALLOWED and not m.startswith(f"{own}_")
    ]
    assert not offenders, f"`gpu-risk {' '.join(args)}` imported {offenders}"


def _first_paragraph(text: str | None) -> str:
    return " ".join(inspect.cleandoc(text or "").split("\n\n")[0].split())


def test_index_matches_what_the_modules_register() -> None:
    """COMMAND_INDEX (what --help lists unimported) is what each module really registers."""
    import typer

    for module in COMMAND_MODULES:
        assert module in COMMAND_INDEX, f"add {module} to bot.cli.COMMAND_INDEX"
        sub = typer.Typer()
        sub.callback()(lambda: None)
        __import__(module, fromlist=["register"]).register(sub)
        commands = typer.main.get_group(sub).commands
        real = [(n, _first_paragraph(c.short_help or c.help)) for n, c in commands.items()]
        indexed = [(n, " ".join(h.split())) for n, h in COMMAND_INDEX[module]]
        assert indexed == real, f"bot.cli.COMMAND_INDEX[{module!r}] is out of date"
    assert set(COMMAND_INDEX) == set(COMMAND_MODULES)


def _help(args: list[str], *, lazy: bool) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(lazy=lazy), args, env={"COLUMNS": "100"})
    return result.exit_code, result.output


def _every_help_invocation() -> list[list[str]]:
    out: list[list[str]] = [["--help"], []]
    for module in COMMAND_MODULES:
        for name, _ in COMMAND_INDEX[module]:
            out.append([name, "--help"])
    out += [["simulate", "history", "--help"], ["simulate", "serve", "--help"]]
    return out


@pytest.mark.parametrize("args", _every_help_invocation(), ids=" ".join)
def test_lazy_app_shows_the_same_help_as_the_eager_one(args: list[str]) -> None:
    assert _help(args, lazy=True) == _help(args, lazy=False)


@pytest.mark.parametrize("args", [["scna"], ["simulate", "histor"], ["--nope"]], ids=" ".join)
def test_lazy_app_fails_like_the_eager_one(args: list[str]) -> None:
    lazy, eager = _help(args, lazy=True), _help(args, lazy=False)
    assert lazy == eager
    assert lazy[0] == 2


def test_lazy_app_runs_a_command(tmp_path: Path) -> None:
    """The console script's lazy group runs commands with their options, exit codes included."""
    env = {"GPU_RISK_TOPOLOGY": str(tmp_path / "missing.yaml"), "COLUMNS": "100"}
    lazy = CliRunner().invoke(build_app(lazy=True), ["check"], env=env)
    eager = CliRunner().invoke(build_app(), ["check"], env=env)
    assert (lazy.exit_code, lazy.output) == (eager.exit_code, eager.output)
    assert lazy.exit_code == 2 and "missing.yaml" in lazy.output


def test_every_command_runs_with_the_collector_set_for_a_fleet(tmp_path: Path) -> None:
    """The entry point sets the collector's thresholds before any command (bot.gc_tuning): a
    100,000-GPU cycle's decoding otherwise spent ~10 s of CPU in young collections."""
    from bot.gc_tuning import THRESHOLDS
    from bot.malloc_tuning import glibc

    result, left = _probe(tmp_path, "check", "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert tuple(left["gc_threshold"]) == THRESHOLDS != (700, 10, 10)
    # and the allocator, once, before the command (bot.malloc_tuning; glibc here)
    assert left["malloc"] == [glibc() and "MALLOC_MMAP_THRESHOLD_" not in os.environ]
