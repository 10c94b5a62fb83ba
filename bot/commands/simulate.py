"""``gpu-risk simulate``: write a simulated fleet's history, or serve it live on /metrics."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from bot.commands.common import UserError, guarded, parse_at
from bot.durations import DurationError, parse_duration

if TYPE_CHECKING:
    from analysis.types import Fault
    from storage.simulator.spec import FleetSpec


def parse_step(text: str) -> timedelta:
    """Parse a duration such as ``30s``, ``1m`` or ``5m`` (``bot.durations``); errors name --step."""
    try:
        return parse_duration(text, what="the step")
    except DurationError as err:
        raise UserError(f"--step: {err}") from None


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command group (history, serve)."""
    sim = typer.Typer(
        name="simulate",
        help="Simulate a GPU fleet with injected faults (history files or a live exporter).",
        no_args_is_help=True,
    )
    sim.command("history")(guarded(history))
    sim.command("serve")(guarded(serve))
    app.add_typer(sim, name="simulate")


def history(
    *,
    out: Annotated[
        Path, typer.Option("--out", help="Directory for metrics.om, topology.yaml, faults.json")
    ],
    days: Annotated[float, typer.Option("--days", help="Length of the history in days")] = 3.0,
    step: Annotated[str, typer.Option("--step", help="Sample interval, e.g. 30s, 1m, 5m")] = "1m",
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed: same seed (and --start), same files")
    ] = 0,
    racks: Annotated[int, typer.Option("--racks", help="Racks (each: PDU, CRAC, leaf)")] = 4,
    nodes: Annotated[int, typer.Option("--nodes", help="Nodes per rack")] = 8,
    gpus: Annotated[int, typer.Option("--gpus", help="GPUs per node")] = 8,
    start: Annotated[
        str | None,
        typer.Option("--start", help="RFC 3339 start (default: midnight UTC, --days ago)"),
    ] = None,
    fault_rate: Annotated[
        float, typer.Option("--fault-rate", help="Faults per 100 GPU-days (random schedule)")
    ] = 3.0,
    healthy: Annotated[bool, typer.Option("--healthy", help="No faults at all")] = False,
    faults: Annotated[
        Path | None,
        typer.Option("--faults", help="Inject exactly the faults of this faults.json"),
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(
            "--scenario",
            help="'random': draw the whole scenario from --seed (shape, names, PromQL, step, "
            "workload, faults, benign events); --days/--step/--racks/... are then ignored",
        ),
    ] = None,
    max_gpus: Annotated[
        int, typer.Option("--max-gpus", help="With --scenario random: at most this many GPUs")
    ] = 512,
) -> None:
    """Write DIR/metrics.om (OpenMetrics for promtool), DIR/topology.yaml and DIR/faults.json.

    With --scenario random --seed S the fleet, its topology (vendor metric names reached only
    through the topology's PromQL), scrape step, workload, faults and benign events are all
    drawn from S (storage.simulator.scenario.draw_scenario), and DIR/benign.json lists the
    events that must not page; with --healthy the scenario has no faults.
    """
    if scenario is not None:
        _scenario_history(scenario, out=out, seed=seed, healthy=healthy, max_gpus=max_gpus)
        return
    from storage.simulator import FleetSimulator
    from storage.simulator.fleet import default_start

    step_td = parse_step(step)
    if not 0 < days <= 60:
        raise UserError(f"--days must be in (0, 60], got {days}")
    if fault_rate < 0:
        raise UserError(f"--fault-rate must be >= 0, got {fault_rate}")
    spec = _spec(racks, nodes, gpus)
    begin = parse_at(start) if start else default_start(days)
    duration = timedelta(days=days)
    if duration < step_td:
        raise UserError(f"--days {days} is shorter than one --step {step}")
    Console(stderr=True).print(
        f"simulating {spec.racks} racks x {spec.nodes_per_rack} nodes x {spec.gpus_per_node} "
        f"GPUs for {days:g} days at {step} (seed {seed}) ..."
    )
    injected = _read_faults(faults, spec) if faults is not None else None
    if injected is not None and healthy:
        raise UserError("--faults and --healthy contradict each other: give one of them")
    try:
        sim = FleetSimulator(
            spec,
            start=begin,
            duration=duration,
            step=step_td,
            seed=seed,
            faults=injected,
            fault_rate=fault_rate,
            healthy=healthy,
        )
    except ValueError as exc:
        raise UserError(f"{faults}: {exc}" if faults else str(exc)) from None
    try:
        sim.write_history(out)
    except OSError as exc:
        raise UserError(f"cannot write to {out}: {exc.strerror or exc}") from None
    console = Console()
    console.print(f"wrote {out / 'metrics.om'}, {out / 'topology.yaml'}, {out / 'faults.json'}")
    console.print(
        f"{sim.start:%Y-%m-%dT%H:%M:%SZ} .. {sim.end:%Y-%m-%dT%H:%M:%SZ}, "
        f"{spec.n_gpus} GPUs, {len(sim.faults)} faults"
    )
    for f in sim.faults:
        failure = f"{f.failure:%Y-%m-%dT%H:%M:%SZ}" if f.failure else "-"
        console.print(
            f"  {f.id:<24} {f.kind:<18} {f.target:<18} onset {f.onset:%Y-%m-%dT%H:%M:%SZ}"
            f"  failure {failure}",
            highlight=False,
        )
    console.print(
        "load into Prometheus: promtool tsdb create-blocks-from openmetrics "
        f"--max-block-duration=24h {out / 'metrics.om'} <prometheus-data-dir>",
        highlight=False,
    )


def _scenario_history(name: str, *, out: Path, seed: int, healthy: bool, max_gpus: int) -> None:
    """Draw scenario ``seed`` and write its files (``simulate history --scenario random``)."""
    from analysis.evaluation.protocol import is_report_seed
    from storage.simulator.scenario import draw_scenario

    if name != "random":
        raise UserError(f"--scenario {name!r} is not known: the only one is 'random'")
    if max_gpus < 8:
        raise UserError(f"--max-gpus must be at least 8, got {max_gpus}")
    if is_report_seed(seed):
        Console(stderr=True).print(
            f"note: seed {seed} is a report seed (analysis/evaluation/protocol.py): "
            "use it only to report, never to develop on"
        )
    drawn = draw_scenario(seed, healthy=healthy, max_gpus=max_gpus)
    shape = drawn.spec
    Console(stderr=True).print(
        f"scenario {seed}: {shape.racks} racks x {shape.nodes_per_rack} nodes x "
        f"{shape.gpus_per_node} GPUs, step {int(drawn.step.total_seconds())}s, "
        f"{drawn.history + drawn.replay} ..."
    )
    sim = drawn.simulator()
    try:
        sim.write_history(out)
    except OSError as exc:
        raise UserError(f"cannot write to {out}: {exc.strerror or exc}") from None
    console = Console()
    console.print(
        f"wrote {out / 'metrics.om'}, {out / 'topology.yaml'}, {out / 'faults.json'}, "
        f"{out / 'benign.json'}"
    )
    console.print(
        f"{sim.start:%Y-%m-%dT%H:%M:%SZ} .. {sim.end:%Y-%m-%dT%H:%M:%SZ} (replay from "
        f"{drawn.replay_start:%Y-%m-%dT%H:%M:%SZ}), {shape.n_gpus} GPUs, "
        f"{len(drawn.faults)} faults, {len(drawn.benign)} benign events",
        highlight=False,
    )


def serve(
    *,
    port: Annotated[int, typer.Option("--port", help="TCP port for /metrics")] = 9400,
    host: Annotated[
        str, typer.Option("--host", help="Bind address (0.0.0.0 for all interfaces)")
    ] = "127.0.0.1",
    speed: Annotated[
        float, typer.Option("--speed", help="Simulated seconds per wall-clock second")
    ] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed")] = 0,
    racks: Annotated[int, typer.Option("--racks", help="Racks")] = 4,
    nodes: Annotated[int, typer.Option("--nodes", help="Nodes per rack")] = 8,
    gpus: Annotated[int, typer.Option("--gpus", help="GPUs per node")] = 8,
    fault_rate: Annotated[
        float, typer.Option("--fault-rate", help="Faults per 100 GPU-days (random schedule)")
    ] = 3.0,
    healthy: Annotated[bool, typer.Option("--healthy", help="No faults at all")] = False,
) -> None:
    """Serve the simulated fleet's current metrics on http://HOST:PORT/metrics until Ctrl-C."""
    from storage.simulator.exporter import LiveFleet, serve_forever

    if not 0 < port < 65536:
        raise UserError(f"--port must be in 1..65535, got {port}")
    if not 0 < speed <= 100_000:
        raise UserError(f"--speed must be in (0, 100000], got {speed}")
    spec = _spec(racks, nodes, gpus)
    live = LiveFleet(spec, seed=seed, speed=speed, fault_rate=fault_rate, healthy=healthy)
    Console(stderr=True).print(
        f"serving {spec.n_gpus} simulated GPUs on http://{host}:{port}/metrics "
        f"(speed x{speed:g}, seed {seed}); scrape with honor_labels: true. Ctrl-C stops."
    )
    try:
        serve_forever(live, host=host, port=port)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _spec(racks: int, nodes: int, gpus: int) -> FleetSpec:
    """Build a FleetSpec from flags, turning a bad shape into a UserError."""
    from storage.simulator.spec import FleetSpec

    try:
        return FleetSpec(racks=racks, nodes_per_rack=nodes, gpus_per_node=gpus)
    except ValueError as exc:
        text = str(exc)
        for field, flag in (
            ("FleetSpec.racks", "--racks"),
            ("FleetSpec.nodes_per_rack", "--nodes"),
            ("FleetSpec.gpus_per_node", "--gpus"),
        ):
            text = text.replace(field, flag)
        raise UserError(text) from None


def _read_faults(path: Path, spec: FleetSpec) -> list[Fault]:
    """Read a faults.json to inject; ``affected`` is recomputed from each fault's target."""
    import dataclasses

    from storage.datasets import DatasetError, load_faults
    from storage.simulator.faults import affected_of

    try:
        loaded = load_faults(path)
        return [
            dataclasses.replace(f, affected=affected_of(f.kind, f.target, spec)) for f in loaded
        ]
    except (DatasetError, ValueError) as exc:
        raise UserError(f"{path}: {exc}" if str(path) not in str(exc) else str(exc)) from None
