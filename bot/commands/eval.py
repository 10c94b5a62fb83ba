"""``gpu-risk eval``: the report protocol, the randomized scenario matrix replayed in memory.

For each seed a scenario is drawn (``storage.simulator.scenario.draw_scenario``: fleet shape,
naming, sampling, workload, faults, benign events), its whole history is simulated in memory (no
Prometheus), one replay pipeline per detector is built by the composition root exactly as
``gpu-risk backtest`` builds them (``bot.wiring.backtest_pipelines``), the replay period
``[start + history, start + history + replay]`` is replayed every ``--cycle``, and each
detector's incident log is scored with the strict rules (:mod:`analysis.evaluation`). The
scenarios are pooled with 95 % bootstrap intervals (scenarios resampled) and set against the
README's targets. Seeds: ``dev`` (free to look at) or ``report`` / ``held-out`` (only to produce the README's
figures; ``analysis/evaluation/protocol.py``). See docs/evaluation.md.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markdown import Markdown

from bot.commands.common import UserError, guarded, progress_bar

if TYPE_CHECKING:
    from analysis.evaluation.matrix import ScenarioResult
    from analysis.types import Assessment
    from bot.cycle_record import CycleOutcome
    from bot.pipeline import Pipeline
    from bot.replay import Replay

logger = logging.getLogger(__name__)

#: Where scenarios come from: ``module:function(seed, *, healthy, max_gpus) -> Scenario``.
DEFAULT_FACTORY = "storage.simulator.scenario:draw_scenario"
#: How often learning detectors are refitted during a replay (the bot's daily refit).
REFIT_EVERY = timedelta(hours=24)


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command."""
    app.command("eval")(guarded(eval_command))


def parse_seeds(text: str) -> tuple[str, tuple[int, ...]]:
    """Parse ``dev``, ``report``, ``held-out`` or a list like ``100,101,105-107``; return
    (label, seeds)."""
    from analysis.evaluation.protocol import SEED_SETS, is_report_seed

    word = text.strip().lower()
    if word in SEED_SETS:
        return word, SEED_SETS[word]
    seeds: list[int] = []
    try:
        for part in (p.strip() for p in word.split(",") if p.strip()):
            lo, sep, hi = part.partition("-")
            seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    except ValueError:
        raise UserError(
            f"--seeds {text!r}: use dev, report, held-out, or seeds like 100,101,105-107"
        ) from None
    if not seeds:
        raise UserError("--seeds: no seed given")
    reserved = [s for s in seeds if is_report_seed(s)]
    if reserved:
        raise UserError(
            f"--seeds: {reserved[0]} is a report seed; report seeds run only as --seeds report "
            "or --seeds held-out (analysis/evaluation/protocol.py); develop on --seeds dev"
        )
    return ",".join(str(s) for s in seeds), tuple(dict.fromkeys(seeds))


@dataclass(frozen=True)
class EvalJob:
    """One replay of the matrix: a seed, healthy or not, the cadence and the detectors."""

    seed: int
    healthy: bool
    cycle: timedelta
    detectors: tuple[str, ...]
    explain: bool
    max_gpus: int
    factory: str = DEFAULT_FACTORY


def _factory(path: str) -> Callable[..., Any]:
    """Import ``module:function``."""
    module, _, name = path.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"scenario factory {path!r} cannot be imported: {exc}") from None
    return fn  # type: ignore[no-any-return]


def _on_grid(cycle: timedelta, step: timedelta) -> timedelta:
    """Return the cycle rounded up to a whole number of data steps (a 1-min cycle on 2-min data: 2)."""
    n = max(1, -(-int(cycle.total_seconds()) // int(step.total_seconds())))
    return n * step


def run_job(
    job: EvalJob,
    after_cycle: Callable[[datetime, Mapping[str, CycleOutcome]], None] | None = None,
) -> ScenarioResult:
    """Draw one scenario, replay it with every detector and score it strictly (a worker's job).

    ``after_cycle(at, outcomes)`` sees each cycle's outcomes (an offline study's per-cycle
    risk and features); the scoring does not depend on it.
    """
    from analysis.backtest import replay
    from analysis.evaluation.matching import component_ids
    from analysis.evaluation.matrix import ScenarioResult
    from bot.commands.backtest import relevant_faults
    from storage.simulator.faults import REPAIR_HOURS

    for category in (RuntimeWarning, FutureWarning):  # numpy/pandas chatter, not findings
        warnings.simplefilter("ignore", category)
    logging.getLogger().setLevel(logging.WARNING)
    started = time.perf_counter()
    scenario = _factory(job.factory)(job.seed, healthy=job.healthy, max_gpus=job.max_gpus)
    t0 = scenario.start + scenario.history
    t1 = t0 + scenario.replay
    cycle = _on_grid(job.cycle, scenario.step)
    topology = scenario.topology
    driver, pipelines, runs = replay_scenario(
        scenario, job.detectors, explain=job.explain, cycle=cycle, after_cycle=after_cycle
    )
    seen = set().union(*(p.last_seen for p in pipelines.values()))
    report = replay(
        runs,
        relevant_faults(scenario.faults, t0, t1),
        n_gpus=len(seen),
        start=t0,
        end=t1 + cycle,
        shared_targets=component_ids(topology),
        benign=tuple(e for e in scenario.benign if e.end >= t0 and e.start <= t1),
        # the simulator repairs no sooner than this after a failure: closing earlier is a
        # false all-clear for sure
        repair_after=timedelta(hours=REPAIR_HOURS[0]),
    )
    return ScenarioResult(
        seed=job.seed,
        healthy=job.healthy,
        cycle=cycle,
        n_gpus=len(seen),
        seconds=time.perf_counter() - started,
        report=report,
        # a refit that failed left the model before it scanning: said, not hidden
        description=dict(scenario.description)
        | {
            "failed_refits": [
                f"{n} at {at.isoformat()}: {why}" for n, at, why in driver.failed_refits
            ]
        },
    )


def replay_scenario(
    scenario: Any,
    detectors: Sequence[str],
    *,
    explain: bool,
    cycle: timedelta,
    after_cycle: Callable[[datetime, Mapping[str, CycleOutcome]], None] | None = None,
) -> tuple[Replay, dict[str, Pipeline], dict[str, list[Assessment]]]:
    """Replay ``scenario``'s evaluated period every ``cycle`` through the product's own loop.

    One pipeline per detector, built by the composition root as ``gpu-risk backtest`` builds
    them (``bot.wiring.backtest_pipelines``: own in-memory store, never a stored model), on the
    scenario's in-memory simulator; learning detectors refit every :data:`REFIT_EVERY`. Returns
    the driver (its failed refits), the pipelines (the GPUs they saw) and each one's assessments.
    ``cycle`` must be a whole number of the scenario's steps (``check_grid``).
    """
    from bot.commands.backtest import check_grid
    from bot.config import load_settings
    from bot.replay import Replay, cycle_times
    from bot.wiring import backtest_pipelines

    settings = load_settings(None, step_seconds=int(scenario.step.total_seconds()))
    t0 = scenario.start + scenario.history
    t1 = t0 + scenario.replay
    pipelines = backtest_pipelines(
        settings,
        scenario.simulator(),
        scenario.topology,
        detectors=list(detectors),
        explain=explain,
        horizon=t1,
    )
    for pipeline in pipelines.values():
        check_grid(cycle, pipeline.window, pipeline.step)
    driver = Replay(pipelines, refit_every=REFIT_EVERY, after_cycle=after_cycle)
    return driver, pipelines, driver.run(cycle_times(t0, t1, cycle))


def run_matrix(
    jobs: Sequence[EvalJob], workers: int, on_done: Callable[[ScenarioResult], None] | None = None
) -> tuple[list[ScenarioResult], list[tuple[int, str]]]:
    """Run every job (in ``workers`` processes when more than one).

    Returns the scored scenarios in job order, and (seed, reason) for each scenario that could
    not be scored: one scenario's failure is reported, never the end of the whole run.
    """
    results: dict[int, ScenarioResult] = {}
    failed: list[tuple[int, str]] = []

    def keep(i: int, get: Callable[[], ScenarioResult]) -> None:
        """Store one job's result, or its failure in one line."""
        try:
            results[i] = get()
        except Exception as exc:
            logger.warning("seed %s could not be scored: %s", jobs[i].seed, exc)
            failed.append((jobs[i].seed, f"{type(exc).__name__}: {exc}"))
            return
        if on_done is not None:
            on_done(results[i])

    if workers <= 1:
        for i, job in enumerate(jobs):
            keep(i, partial(run_job, job))
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(run_job, job): i for i, job in enumerate(jobs)}
            for fut in as_completed(futures):
                keep(futures[fut], fut.result)
    return [results[i] for i in sorted(results)], sorted(failed)


def eval_command(
    *,
    seeds: Annotated[
        str,
        typer.Option(
            "--seeds", help="dev, report or held-out (README figures only) or e.g. 100,101"
        ),
    ] = "dev",
    limit: Annotated[
        int | None, typer.Option("--limit", help="Only the first N seeds (quick dev runs)")
    ] = None,
    skip: Annotated[
        int,
        typer.Option(
            "--skip", help="Leave out the first N seeds (a run on seeds not used yet)", min=0
        ),
    ] = 0,
    healthy: Annotated[
        bool, typer.Option("--healthy", help="Healthy scenarios (no faults): the false-page rate")
    ] = False,
    cycle: Annotated[
        str, typer.Option("--cycle", help="Replay cadence(s), comma-separated, e.g. 5m or 1m,5m")
    ] = "5m",
    ablation: Annotated[
        bool,
        typer.Option("--ablation", help="graph, graph-noctx, guard, iforest, static side by side"),
    ] = False,
    detectors: Annotated[
        str | None, typer.Option("--detectors", help="Comma-separated scorers (overrides)")
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain/--no-explain", help="DoWhy explanations (top-factor target)")
    ] = True,
    max_gpus: Annotated[int, typer.Option("--max-gpus", help="Largest fleet drawn")] = 512,
    jobs: Annotated[int, typer.Option("--jobs", help="Worker processes", min=1)] = 2,
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory for eval.json and eval.md")
    ] = None,
    factory: Annotated[str, typer.Option("--scenario-factory", hidden=True)] = DEFAULT_FACTORY,
    pool: Annotated[
        list[Path] | None,
        typer.Option(
            "--pool",
            help="Replay nothing: pool the scenarios of these eval.json files again (repeatable)",
        ),
    ] = None,
    against: Annotated[
        list[Path] | None,
        typer.Option(
            "--against",
            help="With --pool: check the pooled runs (a candidate model's) against these "
            "eval.json files (the current model's) by the protocol's adoption rule; exit 1 if "
            "it is not met (repeatable)",
        ),
    ] = None,
) -> None:
    """Replay the randomized scenario matrix in memory; strict scores with 95 % intervals."""
    if against and not pool:
        raise UserError("--against needs --pool: the candidate's eval.json files to check")
    if pool and against:
        adoption_report(pool, against)
        return
    if pool:
        pool_report(pool, out)
        return
    from analysis.ablation import ABLATION_SCORERS
    from analysis.evaluation.protocol import SEED_SETS, is_report_seed
    from analysis.scorer import COMPARED_SCORERS
    from bot.commands.backtest import parse_duration

    label, chosen = parse_seeds(seeds)
    chosen = chosen[skip:]
    if not chosen:
        raise UserError(f"--skip {skip} leaves no seed of --seeds {seeds}")
    if limit is not None:
        chosen = chosen[: max(limit, 0)]
    cycles = [parse_duration(c.strip(), "--cycle") for c in cycle.split(",") if c.strip()]
    names = (
        tuple(n.strip() for n in detectors.split(",") if n.strip())
        if detectors
        else ABLATION_SCORERS
        if ablation
        else COMPARED_SCORERS
    )
    err = Console(stderr=True)
    if any(is_report_seed(s) for s in chosen):
        err.print(
            "[bold yellow]REPORT SEEDS[/]: these scenarios are reserved for the README's figures "
            "(analysis/evaluation/protocol.py). Do not tune, debug or plot on them.",
            highlight=False,
        )
    todo = [
        EvalJob(s, healthy, c, names, explain, max_gpus, factory) for c in cycles for s in chosen
    ]
    started = time.perf_counter()
    with progress_bar(err) as progress:
        task = progress.add_task(f"replaying {len(todo)} scenario(s)", total=len(todo))

        def done(result: ScenarioResult) -> None:
            """Advance the bar and say which scenario finished."""
            progress.update(
                task,
                advance=1,
                description=f"seed {result.seed}: {result.n_gpus} GPUs in {result.seconds:.0f} s",
            )

        results, failed = run_matrix(todo, jobs, done)
    wall = time.perf_counter() - started
    if skip or limit is not None:  # say which of them: "report 10008-10015"
        label = f"{label} {chosen[0]}-{chosen[-1]}" if label in SEED_SETS else label
    write_report(
        results, failed, label=label, healthy=healthy, names=names, run=(wall, jobs), out=out
    )


def write_report(
    results: Sequence[ScenarioResult],
    failed: Sequence[tuple[int, str]],
    *,
    label: str,
    healthy: bool | None,
    names: Sequence[str],
    run: tuple[float, int] | None,
    out: Path | None,
) -> None:
    """Pool the scenarios, print the Markdown report and write ``eval.json`` and ``eval.md``.

    ``run``: the replay's wall seconds and worker processes; None for scenarios pooled from
    stored replays (``--pool``: no wall time or workers of their own)."""
    from analysis.evaluation.matrix import aggregate, pooled_json, target_checks
    from analysis.evaluation.matrix_report import matrix_markdown

    pooled = aggregate(results)
    summary = matrix_markdown(pooled, results, seeds_label=label, run=run)
    if failed:
        summary += "\nScenarios that could not be scored (left out of every figure above):\n\n"
        summary += "".join(f"- seed {seed}: {reason}\n" for seed, reason in failed)
    data = {
        "seeds": label,
        "healthy": healthy,
        "detectors": list(names),
        "wall_seconds": round(run[0], 1) if run is not None else None,
        "jobs": run[1] if run is not None else None,
        "pooled": pooled_json(pooled),
        "targets": [
            {
                "target": c["target"].key,
                "text": c["target"].text,
                "group": c["group"],
                "bound": c["target"].bound,
                "measured": c["measured"].as_dict(),
                "met": c["met"],
                "met_with_interval": c["met_with_interval"],
            }
            for c in target_checks(pooled)
        ],
        "scenarios": [r.as_dict() for r in results],
        "failed": [{"seed": seed, "reason": reason} for seed, reason in failed],
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        (out / "eval.md").write_text(summary, encoding="utf-8")
    Console().print(Markdown(summary))
    if out is not None:
        Console().print(f"report written to {out}/", highlight=False)


def pool_report(paths: Sequence[Path], out: Path | None) -> None:
    """``--pool``: report the scenarios stored in ``paths`` again, pooled by this version."""
    results, failed, names = load_results(paths)
    kinds = {r.healthy for r in results}
    label = "pooled from " + ", ".join(str(p) for p in paths)
    healthy = kinds.pop() if len(kinds) == 1 else None
    write_report(results, failed, label=label, healthy=healthy, names=names, run=None, out=out)


def adoption_report(candidate: Sequence[Path], current: Sequence[Path]) -> None:
    """``--pool ... --against ...``: print the adoption rule's counts; exit 1 if one fails."""
    from analysis.evaluation.adoption import adopted, adoption_checks

    try:
        checks = adoption_checks(
            load_results(current, "--against")[0], load_results(candidate, "--pool")[0]
        )
    except ValueError as exc:
        raise UserError(f"--against: {exc}") from None
    lines = ["| criterion | current | candidate | holds |", "|---|---|---|---|"]
    lines += [
        f"| {c.criterion} | {c.current} | {c.candidate} | {'yes' if c.holds else '**no**'} |"
        for c in checks
    ]
    verdict = "adopt the candidate" if adopted(checks) else "reject the candidate"
    lines.append(f"\nAdoption rule (analysis/evaluation/protocol.py): **{verdict}**.")
    Console().print(Markdown("\n".join(lines)))
    if not adopted(checks):
        raise typer.Exit(code=1)


def load_results(
    paths: Sequence[Path], option: str = "--pool"
) -> tuple[list[ScenarioResult], list[tuple[int, str]], list[str]]:
    """The scenarios, unscored seeds and detectors stored in ``eval.json`` files (``--pool``).

    Raises ``UserError`` naming the file when one cannot be read or is no eval.json, and when a
    scenario (seed, healthy, cadence) comes twice: pooled twice it would count twice.
    """
    from analysis.evaluation.matrix import ScenarioResult

    results: list[ScenarioResult] = []
    failed: list[tuple[int, str]] = []
    names: list[str] = []
    seen: dict[tuple[int, bool, float], Path] = {}
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            loaded = [ScenarioResult.from_dict(s) for s in data["scenarios"]]
            failed += [(int(f["seed"]), str(f["reason"])) for f in data.get("failed", ())]
            names += [str(n) for n in data["detectors"]]
        except OSError as exc:
            raise UserError(f"{option} {path}: cannot be read ({exc.strerror or exc})") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(
                f"{option} {path}: not an eval.json written by gpu-risk eval ({type(exc).__name__}: "
                f"{exc}); pass the eval.json of an --out directory"
            ) from None
        for r in loaded:
            key = r.key
            if key in seen:
                raise UserError(
                    f"{option}: seed {r.seed} ({'healthy' if r.healthy else 'faulty'}, "
                    f"{key[2]:g} min) is in both {seen[key]} and {path}; pool each "
                    "scenario once"
                )
            seen[key] = path
        results += loaded
    return results, failed, list(dict.fromkeys(names))
