"""The scoring claim in numbers, on simulator seeds not used while tuning.

Run: ``.venv/bin/python -m benchmarks.eval_scoring [--seeds 7 11 13] [--healthy-seeds 8 9]``.
Per fault kind: lead time (minutes before the failure) of the graph model and of the static
rules, and whether the first incident named the injected root cause; on healthy fleets: false
incidents per 1,000 GPU-days (graph model, IncidentTracker open_after=2 / close_after=5).
The scenarios are the ones the tests use (tests/fixtures/scoring_scenarios.py).
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from tests.fixtures.scoring_scenarios import DEV_SEEDS, TUNING_SEEDS, fault_run, healthy_run


def main() -> None:
    """Print the per-fault table and the healthy-fleet false-incident rate."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="*", default=[7, 11, 13])
    parser.add_argument("--healthy-seeds", type=int, nargs="*", default=[8, 9])
    parser.add_argument("--healthy-cycle-minutes", type=int, default=5)
    args = parser.parse_args()
    bad = set(args.seeds + args.healthy_seeds) & set(TUNING_SEEDS)
    if bad:
        parser.error(f"seeds {sorted(bad)} were used for tuning; pick others")
    looked = sorted(set(args.seeds + args.healthy_seeds) & set(DEV_SEEDS))
    if looked:
        print(f"note: seeds {looked} were looked at during development (not fresh figures)")
    print("seed | kind | target | graph lead min | static lead min | root cause | correct")
    for seed in args.seeds:
        run = fault_run(seed)
        for f in run.faults:
            g = run.graph_outcomes[f.id]
            s = run.static_outcomes[f.id]
            inc = g.first_incident
            rc = f"{inc.root_cause.kind}:{inc.root_cause.id}" if inc else "-"
            ok = bool(inc) and inc.root_cause.id == f.target  # type: ignore[union-attr]
            one = len(run.incidents_per_fault[f.id]) == 1
            print(
                f"{seed} | {f.kind} | {f.target} | {g.lead_minutes(f)} | {s.lead_minutes(f)} | "
                f"{rc} | {ok and one}"
            )
        print(f"{seed} | unmatched incidents during the replay: {len(run.unmatched)}")
    total, days = 0, 0.0
    cycle = timedelta(minutes=args.healthy_cycle_minutes)
    for seed in args.healthy_seeds:
        h = healthy_run(seed, cycle)
        total += len(h.opened)
        days += h.gpu_days
        print(f"healthy seed {seed}: {len(h.opened)} incidents in {h.gpu_days:.0f} GPU-days")
    if days:
        print(
            f"false incidents per 1,000 GPU-days: {total / days * 1000:.1f} ({total} in {days:.0f})"
        )


if __name__ == "__main__":
    main()
