"""Three failing fans in one rack: three node incidents, or one rack incident? Development seeds.

Run: ``.venv/bin/python -m benchmarks.overlapping_fans [--seeds 100,104,...] [--out DIR]``
(about 15 minutes on 2 cores for the defaults). It is ``gpu-risk eval`` with this module's
scenario factory: each development seed's fleet (shape, sampling, workload, benign events as
drawn) with its own faults replaced by three fan faults on three nodes of one rack, 2.5 h apart,
each failing after a 4–6 h precursor (linear, exponential or step). Every node's fault must be
named by an incident of its own (strict matching): the rack's incident is the wrong answer.

Such overlaps are rare in the drawn matrix (none among the development seeds 100–131), so the
grouping rule for them (:mod:`analysis.incidents`: a rack without a signal of its own is never
named for GPUs whose node's own fan explains them) is checked here. Report seeds are refused.
"""

from __future__ import annotations

import argparse
import dataclasses
from datetime import timedelta
from typing import Any

from analysis.evaluation.protocol import is_report_seed
from storage.simulator.faults import Fault
from storage.simulator.scenario import Scenario, draw_scenario

#: Development seeds whose drawn fleet has at least three nodes per rack.
DEFAULT_SEEDS = "100,104,105,107,109,110,117,118,119,120,123,128"
SHAPES = ("linear", "exponential", "step")


def draw(seed: int, *, healthy: bool = False, max_gpus: int = 128) -> Scenario:
    """Draw development scenario ``seed`` and give it three overlapping fan faults in one rack."""
    if is_report_seed(seed):
        raise ValueError(f"seed {seed} is a report seed: this study is for development seeds")
    scenario = draw_scenario(seed, healthy=healthy, max_gpus=max_gpus)
    spec = scenario.spec
    per_rack = spec.nodes_per_rack
    if per_rack < 3:
        raise ValueError(f"seed {seed}: {per_rack} nodes per rack, three are needed")
    if healthy:
        return scenario
    rack = seed % spec.racks
    nodes = spec.nodes[rack * per_rack : (rack + 1) * per_rack]
    start = scenario.start + scenario.history + timedelta(hours=2)
    faults, shapes = [], []
    for i, node in enumerate((nodes[0], nodes[per_rack // 2], nodes[-1])):
        onset = start + timedelta(hours=2.5 * i)
        fid = f"fan-{i + 1:03d}"
        faults.append(
            Fault(
                id=fid,
                kind="fan",
                target=node,
                affected=tuple(f"{node}/{g}" for g in range(spec.gpus_per_node)),
                onset=onset,
                failure=onset + timedelta(hours=4 + 2 * (i % 2)),
            )
        )
        shapes.append((fid, "fan", SHAPES[(seed + i) % len(SHAPES)]))
    variation = dataclasses.replace(scenario.variation, fault_shapes=tuple(shapes))
    return dataclasses.replace(
        scenario,
        faults=tuple(faults),
        variation=variation,
        replay=max(scenario.replay, timedelta(hours=14)),
    )


def main(argv: list[str] | None = None) -> Any:
    """Run ``gpu-risk eval`` on the overlapping-fan scenarios of the given seeds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=DEFAULT_SEEDS)
    parser.add_argument("--out", default="benchmarks/results/overlapping-fans")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    from bot.cli import build_app

    return build_app(lazy=True)(
        args=[
            "eval",
            "--seeds",
            args.seeds,
            "--scenario-factory",
            "benchmarks.overlapping_fans:draw",
            "--cycle",
            "5m",
            "--detectors",
            "graph",
            "--no-explain",
            "--max-gpus",
            "128",
            "--jobs",
            str(args.jobs),
            "--out",
            args.out,
        ],
        prog_name="gpu-risk",
    )


if __name__ == "__main__":
    main()
