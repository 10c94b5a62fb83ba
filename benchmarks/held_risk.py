"""How the level of held risk was chosen: which GPUs :class:`analysis.sustained.SustainedRisk`
would hold, at several levels, on the development fleets' per-cycle risks.

Each fleet is replayed once through the product's loop with the rule off
(``GPU_RISK_SUSTAINED_RISK=0``: the risks the rule would judge); every level is then judged on
those risks. A held GPU outside every incident open at the time, and away from every fault's
GPUs, is a page the rule would add on a healthy GPU (one per node and hour). For a fault whose
target is a GPU or a node, the first time the rule holds a GPU that names it gives the lead
the rule alone would have. Development seeds only (the report seeds are refused)::

    python -m benchmarks.held_risk --seeds 109,132,133 --healthy --levels 0.5,0.55,0.6
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from analysis.evaluation.protocol import HELD_OUT_SEEDS, REPORT_SEEDS
from analysis.sustained import SustainedRisk
from analysis.types import GpuRef, GpuScore


@dataclass
class Replayed:
    """One fleet's cycles: each GPU's risk, and the GPUs of the incidents open after it."""

    seed: int
    gpu_days: float
    cycles: list[tuple[datetime, tuple[GpuScore, ...], frozenset[str]]] = field(
        default_factory=list
    )
    faults: list[tuple[str, str, tuple[str, ...], datetime, datetime | None]] = field(
        default_factory=list
    )


def replay(seed: int, healthy: bool) -> Replayed:
    """Replay development fleet ``seed`` with the rule off; keep its per-cycle risks."""
    from bot.commands.eval import EvalJob, run_job

    if seed in REPORT_SEEDS or seed in HELD_OUT_SEEDS:
        raise SystemExit(f"seed {seed} is a report or held-out seed: development seeds only")
    cycles: list[tuple[datetime, tuple[GpuScore, ...], frozenset[str]]] = []

    def after(at: datetime, outcomes: Any) -> None:
        o = outcomes["graph"]
        if o.assessment is not None:
            open_gpus = frozenset(g.key for i in o.incidents for g in i.gpus)
            cycles.append((at, o.assessment.scores, open_gpus))

    os.environ["GPU_RISK_SUSTAINED_RISK"] = "0"
    job = EvalJob(seed, healthy, timedelta(minutes=5), ("graph",), False, 128)
    result = run_job(job, after_cycle=after)
    out = Replayed(seed, result.report.gpu_days, cycles)
    out.faults = [(f.id, f.target, f.affected, f.onset, f.failure) for f in result.report.faults]
    return out


def judge(fleet: Replayed, level: float, over: timedelta) -> dict[str, Any]:
    """Pages the rule at ``level`` would add on healthy GPUs, and its lead on each fault."""
    rule = SustainedRisk(level, over)
    false: dict[str, list[datetime]] = defaultdict(list)
    first: dict[str, datetime] = {}
    near = {g for _, _, affected, _, _ in fleet.faults for g in affected}
    for at, scores, open_gpus in fleet.cycles:
        for key in rule.update(at, scores):
            for fid, target, _, onset, failure in fleet.faults:
                names = key == target or GpuRef.parse(key).node == target
                if names and onset <= at and (failure is None or at <= failure):
                    first.setdefault(fid, at)
            if key not in open_gpus and key not in near:
                node = GpuRef.parse(key).node
                if not false[node] or at - false[node][-1] > timedelta(hours=1):
                    false[node].append(at)
                else:
                    false[node][-1] = at
    leads = {
        fid: (failure - first[fid]).total_seconds() / 60
        for fid, _, _, _, failure in fleet.faults
        if fid in first and failure is not None
    }
    return {"false_pages": sum(len(v) for v in false.values()), "leads": leads}


def main() -> None:
    """Replay the fleets, judge every level, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", required=True, help="development seeds, e.g. 109,132")
    parser.add_argument("--healthy", action="store_true", help="healthy fleets")
    parser.add_argument("--levels", default="0.5,0.55,0.6,0.65,0.7")
    parser.add_argument("--minutes", type=int, default=60, help="how long the risk must hold")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    levels = [float(x) for x in args.levels.split(",")]
    over = timedelta(minutes=args.minutes)
    fleets = [replay(int(s), args.healthy) for s in args.seeds.split(",")]
    days = sum(f.gpu_days for f in fleets)
    table: dict[str, Any] = {"gpu_days": days, "levels": {}}
    for level in levels:
        per = {f.seed: judge(f, level, over) for f in fleets}
        pages = sum(v["false_pages"] for v in per.values())
        table["levels"][str(level)] = {str(k): v for k, v in per.items()}
        print(f"held >= {level:.2f} for {args.minutes} min: {pages} pages on healthy GPUs "
              f"({1000 * pages / days:.2f} per 1,000 GPU-days); "
              + ", ".join(f"{s}: {v['false_pages']}" for s, v in per.items() if v["false_pages"]))  # fmt: skip
    if args.out is not None:
        args.out.write_text(json.dumps(table, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
