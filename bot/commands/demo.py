"""``gpu-risk demo``: a simulated fleet with injected faults, run through the real alert flow.

The same Pipeline that ``gpu-risk run`` uses scores a simulated 256-GPU fleet cycle by cycle on
the embedded SQLite store; every alert is shown as a Slack user would see it (and written as
Block Kit JSON and PNGs to the output directory). It ends with the backtest of the demo period:
the graph model against the static threshold rules users run today.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.commands.common import UserError, guarded, settings_from

if TYPE_CHECKING:
    from analysis.types import Assessment, Fault
    from bot.config import Settings
    from storage.simulator.spec import FleetSpec

DEMO_START = datetime(2026, 11, 20, tzinfo=UTC)

# (kind, minutes after the replay starts, precursor hours) for an 8-hour replay: one fault of
# each kind, staggered so that the alerts arrive one after another. Shorter or longer replays
# scale the schedule.
DEMO_SCHEDULE: tuple[tuple[str, int, float], ...] = (
    ("thermal_interface", 15, 5.0),
    ("hbm", 30, 4.0),
    ("nvlink", 45, 4.0),
    ("pcie", 60, 3.0),
    ("cooling", 75, 3.0),
    ("fan", 90, 4.0),
    ("pdu", 120, 3.0),
    ("switch", 150, 3.5),
)
GPU_KINDS = ("thermal_interface", "hbm", "nvlink", "pcie")


def demo_targets(spec: FleetSpec) -> dict[str, str]:
    """Where each demo fault strikes: facility faults on racks 1-3, GPU and fan faults on rack 4."""
    if spec.racks < 4 or spec.nodes_per_rack < 2:
        raise UserError("the demo needs at least 4 racks of 2 nodes (--racks, --nodes)")
    last = spec.node_names[-spec.nodes_per_rack :]
    fan_node, gpu_nodes = last[-2], [n for n in last if n != last[-2]]
    targets = {"pdu": spec.pdu_id(0), "cooling": spec.crac_id(1), "switch": spec.leaf_id(2)}
    targets["fan"] = fan_node
    order = list(
        dict.fromkeys([(1 + 3 * i) % spec.gpus_per_node for i in range(spec.gpus_per_node)])
    )
    order += [g for g in range(spec.gpus_per_node) if g not in order]
    slots = [f"{node}/{g}" for g in order for node in gpu_nodes]
    if len(slots) < len(GPU_KINDS):
        raise UserError("the demo needs more GPUs per node on the last rack (--gpus)")
    targets.update(zip(GPU_KINDS, slots, strict=False))
    return targets


def demo_faults(spec: FleetSpec, replay_start: datetime, hours: float) -> list[Fault]:
    """One fault of each kind during the replay, scaled to its length."""
    from storage.simulator.faults import make_fault

    scale = hours / 8.0
    targets = demo_targets(spec)
    return [
        make_fault(
            kind,
            targets[kind],
            replay_start + timedelta(minutes=minutes * scale),
            spec=spec,
            precursor=timedelta(hours=precursor * scale),
        )
        for kind, minutes, precursor in DEMO_SCHEDULE
    ]


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command."""
    app.command("demo")(guarded(demo))


def demo(  # noqa: PLR0917 (typer passes options by keyword; the order is the help's)
    out: Annotated[Path, typer.Option("--out", help="Where Block Kit JSON and PNGs go")] = Path(
        "demo-out"
    ),
    seed: Annotated[int, typer.Option("--seed", help="Simulator seed")] = 7,
    hours: Annotated[
        float, typer.Option("--hours", min=1.0, max=48.0, help="Simulated hours replayed")
    ] = 8.0,
    cycle_minutes: Annotated[
        int, typer.Option("--cycle", min=1, max=60, help="Minutes between scans")
    ] = 5,
    fit_hours: Annotated[
        float, typer.Option("--fit-hours", min=4.0, max=72.0, help="Hours of history fitted on")
    ] = 24.0,
    racks: Annotated[int, typer.Option("--racks", min=4, max=64, help="Racks")] = 4,
    nodes: Annotated[int, typer.Option("--nodes", min=2, max=64, help="Nodes per rack")] = 8,
    gpus: Annotated[int, typer.Option("--gpus", min=2, max=16, help="GPUs per node")] = 8,
) -> None:
    """Run the alert flow on a simulated fleet with injected faults and show every alert."""
    from bot.delivery import deliver
    from bot.replay import Replay, cycle_times
    from bot.wiring import (
        REPLAY,
        PipelineOptions,
        build_pipeline,
        demo_sink,
        memory_repository,
        open_repository,
    )
    from storage.simulator import FleetSimulator
    from storage.simulator.spec import FleetSpec

    console = Console()
    started = time.perf_counter()
    spec = FleetSpec(racks=racks, nodes_per_rack=nodes, gpus_per_node=gpus)
    replay_start = DEMO_START + timedelta(hours=fit_hours)
    faults = demo_faults(spec, replay_start, hours)
    end = replay_start + timedelta(hours=hours)
    sim = FleetSimulator(
        spec,
        start=DEMO_START,
        duration=end - DEMO_START + timedelta(minutes=1),
        seed=seed,
        faults=faults,
    )
    _reset(out)
    settings = demo_settings()
    repo = open_repository(f"sqlite:///{(out / 'gpu-risk-demo.db').resolve()}")
    fit = timedelta(hours=fit_hours)
    pipelines = {
        # the bot's own loop on the demo's store: every alert is committed and delivered
        "graph": build_pipeline(
            settings,
            source=sim,
            topology=sim.topology,
            repository=repo,
            options=PipelineOptions(
                detector="graph", load_models=False, save_models=False, fit_window=fit
            ),
        ),
        # the static rules users run today, side by side on the same data (not delivered)
        "static": build_pipeline(
            settings,
            source=sim,
            topology=sim.topology,
            repository=memory_repository(),
            options=replace(REPLAY, detector="static", fit_window=fit),
        ),
    }
    sink, to_slack = demo_sink(settings, repo, sim.topology, out / "slack")
    if to_slack:
        console.print(f"Also posting to Slack channel {settings.slack_channel}.")
    console.rule("[bold]gpu-risk demo")
    console.print(
        f"Simulated fleet: {spec.racks} racks x {spec.nodes_per_rack} nodes x "
        f"{spec.gpus_per_node} GPUs = {spec.n_gpus} GPUs, each rack behind its own PDU, "
        f"cooling unit and leaf switch. Fitting the model on {fit_hours:.0f} h of history..."
    )
    pipelines["graph"].refit(replay_start)
    console.print(
        f"Replaying {hours:.0f} h in {cycle_minutes}-minute scans; faults are injected "
        "along the way (shown dimmed: the bot does not see them).\n"
    )
    announced: set[tuple[str, str]] = set()

    def narrate_and_deliver(at: datetime, _outcomes: object) -> None:
        """Tell what was injected by now, then deliver what the cycle queued."""
        deliver(repo, sink, at=at, worker_id="demo")

    def before(at: datetime) -> None:
        """Narrate ground truth as it happens (the bot never sees this)."""
        _announce(console, faults, at, announced)

    driver = Replay(pipelines, refit_every=None, after_cycle=narrate_and_deliver)
    for at in cycle_times(replay_start, end, timedelta(minutes=cycle_minutes)):
        before(at)
        driver.step(at)
    _summary(
        console,
        graph_cycles=driver.cycles["graph"],
        static_cycles=driver.cycles["static"],
        faults=faults,
        n_gpus=spec.n_gpus,
        start=replay_start,
        end=end,
        out=out,
    )
    console.print(
        f"\n[dim]demo finished in {time.perf_counter() - started:.0f} s; Block Kit JSON "
        f"and PNGs in {out / 'slack'}; state in {out / 'gpu-risk-demo.db'}[/]"
    )
    repo.close()


def demo_settings() -> Settings:
    """The demo's settings: defaults (and Slack, when a token and channel are set)."""
    return settings_from(None)


def _reset(out: Path) -> None:
    """Start from an empty output directory (only ever one the demo created)."""
    if out.exists():
        if not (out / "gpu-risk-demo.db").exists() and any(out.iterdir()):
            raise UserError(f"{out} exists and is not a demo output directory: pass another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)


def _announce(
    console: Console, faults: list[Fault], at: datetime, seen: set[tuple[str, str]]
) -> None:
    """Narrate ground truth as it happens (the bot never sees this)."""
    for f in faults:
        if f.onset <= at and (f.id, "onset") not in seen:
            seen.add((f.id, "onset"))
            console.print(
                f"[dim]{at:%H:%M}  ⚡ injected: {f.kind} fault on {f.target} "
                f"(fails at {f.failure:%H:%M})[/]"
            )
        if f.failure is not None and f.failure <= at and (f.id, "failure") not in seen:
            seen.add((f.id, "failure"))
            console.print(f"[dim]{at:%H:%M}  💥 {f.kind} fault on {f.target} has failed now[/]")


def _summary(
    console: Console,
    *,
    graph_cycles: list[Assessment],
    static_cycles: list[Assessment],
    faults: list[Fault],
    n_gpus: int,
    start: datetime,
    end: datetime,
    out: Path,
) -> None:
    """Print the backtest of the demo period: graph model vs static rules."""
    from analysis.backtest import figure_png, lead_time_figure, replay, summary_markdown

    report = replay(
        {"graph": graph_cycles, "static": static_cycles},
        faults,
        n_gpus=n_gpus,
        start=start,
        end=end,
    )
    console.rule("[bold]backtest of the demo period: graph model vs static rules")
    by_fault = Table("fault", "kind", "graph lead (min)", "static lead (min)")
    for f in faults:
        cells = []
        for name in ("graph", "static"):
            o = next(o for o in report.detectors[name].outcomes if o.fault_id == f.id)
            cells.append(
                f"{o.lead_minutes:.0f}"
                if o.lead_minutes is not None
                else ("after failure" if o.warned else "missed")
            )
        by_fault.add_row(f.target, f.kind, *cells)
    console.print(by_fault)
    table = Table(
        "detector",
        "recall",
        "precision",
        "median lead (min)",
        "incidents",
        "false / 1k GPU-days",
        "root cause ok",
    )
    for name, s in report.detectors.items():
        table.add_row(
            name,
            _pct(s.recall),
            _pct(s.precision),
            f"{s.median_lead_minutes:.0f}" if s.median_lead_minutes is not None else "–",
            str(s.n_incidents),
            _num(s.false_incidents_per_1k_gpu_days),
            _pct(s.root_cause_accuracy),
        )
    console.print(table)
    (out / "backtest.md").write_text(summary_markdown(report), encoding="utf-8")
    (out / "lead-times.png").write_bytes(figure_png(lead_time_figure(report)))


def _num(value: float | None) -> str:
    """Format a rate ('–' when undefined)."""
    return "–" if value is None else f"{value:.1f}"


def _pct(value: float | None) -> str:
    """Format a ratio as a percentage ('–' when undefined)."""
    return "–" if value is None else f"{100 * value:.0f} %"
