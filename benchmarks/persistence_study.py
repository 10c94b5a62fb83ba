"""Would evidence that persists for hours warn faults earlier? An offline study, development seeds.

Run: ``.venv/bin/python -m benchmarks.persistence_study [--faulty 107,111,...] [--healthy 132,...]
[--cache DIR]`` (about 25 minutes on 2 cores for the defaults; a second run reads the cache).

Each scenario of the matrix is replayed once with the product's graph model at 5-minute cycles
(as ``gpu-risk eval --cycle 5m --max-gpus 128``); every GPU's calibrated risk and the ``z`` of its
temperature comparisons are kept per cycle. Two rules are then tried offline, each in addition to
what the product warned (a fault counts as warned >= 1 h ahead by the earlier of the two):

1. **sustained risk**: a GPU whose risk stays at or above ``r`` for a share of the last ``W``
   (its rolling ``q`` quantile >= ``r``) opens an incident, though it never crosses the threshold;
2. **long-horizon temperature**: the rolling mean (or 25th percentile) over ``W`` of a
   temperature comparison's ``z`` crosses a level set from the healthy fleets (their 99.99th
   percentile, and their maximum: no healthy episode), for the thermal, fan and cooling faults.

An *episode* is a GPU's run of firing cycles (gaps under an hour joined). Healthy episodes are
what a rule would page on healthy fleets; on faulty fleets, episodes on GPUs not behind a fault
(from an hour before its onset to 30 h after its failure) count as false. Report seeds are
refused: this study chooses rules, it does not report them.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import warnings
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.evaluation.protocol import is_report_seed
from analysis.feature_plan import SUSTAINED

CYCLE = timedelta(minutes=5)
TEMP_Z = ("z.temp_at_power", "z.temp_vs_node", "z.temp_vs_rack", "z.temp_vs_fleet")
THERMAL_KINDS = ("thermal_interface", "fan", "cooling")
COUNTER_Z = tuple(
    f"z.{name}_{part}" for name in SUSTAINED for part in ("rate", "sustained", "excess")
)
COUNTER_KINDS = ("hbm", "pcie", "nvlink")


@dataclass
class Replayed:
    """One scenario's replay: faults, the product's strict leads, risk and temperature ``z``."""

    seed: int
    faults: list[Any]
    leads: dict[str, float | None]
    gpu_days: float
    risk: pd.DataFrame  # index: cycle time, columns: GPU key
    temp: dict[str, pd.DataFrame]  # per TEMP_Z and COUNTER_Z column, the same shape


def replay(seed: int, healthy: bool, max_gpus: int) -> Replayed:
    """Replay one scenario with ``gpu-risk eval``'s own job, keeping per-cycle risk and ``z``."""
    from bot.commands.eval import EvalJob, run_job

    risk: dict[datetime, dict[str, float]] = {}
    temp: dict[str, dict[datetime, pd.Series]] = {c: {} for c in TEMP_Z + COUNTER_Z}

    def keep(at: datetime, outcomes: Mapping[str, Any]) -> None:
        assessment = outcomes["graph"].assessment
        risk[at] = {s.key: s.score for s in assessment.scores}
        table = assessment.features
        for column in TEMP_Z + COUNTER_Z:
            if table is not None and column in table:
                temp[column][at] = table[column]

    job = EvalJob(seed, healthy, CYCLE, ("graph",), explain=False, max_gpus=max_gpus)
    report = run_job(job, after_cycle=keep).report
    outcomes = {o.fault_id: o for o in report.detectors["graph"].outcomes}
    return Replayed(
        seed=seed,
        faults=list(report.faults),
        leads={f.id: outcomes[f.id].lead_minutes_strict for f in report.faults},
        gpu_days=report.gpu_days,
        risk=pd.DataFrame.from_dict(risk, orient="index").sort_index(),
        temp={c: pd.DataFrame(v).T.sort_index() for c, v in temp.items()},
    )


def cached(seed: int, healthy: bool, cache: Path, max_gpus: int) -> Replayed:
    """Return the replay from ``cache`` or run and store it (a pickle of our own, local only)."""
    path = cache / f"{'healthy' if healthy else 'faulty'}-{seed}.pkl"
    if path.exists():
        with path.open("rb") as fh:
            return pickle.load(fh)  # type: ignore[no-any-return]
    result = replay(seed, healthy, max_gpus)
    with path.open("wb") as fh:
        pickle.dump(result, fh)
    print(f"  replayed {'healthy' if healthy else 'faulty'} seed {seed}", flush=True)
    return result


def _cached(job: tuple[int, bool, Path, int]) -> Replayed:
    """``cached`` for a worker process."""
    return cached(*job)


def episodes(firing: pd.DataFrame, gap: timedelta = timedelta(hours=1)) -> list[tuple[str, Any]]:
    """Return (GPU, first cycle) of each run of firing cycles, runs under ``gap`` apart joined."""
    out = []
    for gpu in firing.columns:
        last = None
        for at in firing.index[firing[gpu].fillna(False).to_numpy(dtype=bool)]:
            if last is None or at - last > gap:
                out.append((gpu, at))
            last = at
    return out


def _first_lead(firing: pd.DataFrame, fault: Any) -> float | None:
    """Minutes before the failure the rule first fires on a GPU behind the fault, or None."""
    gpus = [g for g in (list(fault.affected) or [fault.target]) if g in firing.columns]
    during = firing.loc[(firing.index >= fault.onset) & (firing.index < fault.failure), gpus]
    hit = during.fillna(False).astype(bool).any(axis=1)
    if not hit.any():
        return None
    return float((fault.failure - hit.index[hit.to_numpy()].min()).total_seconds() / 60)


def _behind_fault(gpu: str, at: Any, faults: list[Any]) -> bool:
    """Whether an episode on ``gpu`` at ``at`` is explained by a fault of its fleet."""
    for f in faults:
        end = (f.failure or f.onset) + timedelta(hours=30)
        if gpu in (set(f.affected) or {f.target}) and f.onset - timedelta(hours=1) <= at <= end:
            return True
    return False


def judge(
    faulty: list[Replayed], healthy: list[Replayed], rule: Any, kinds: tuple[str, ...] | None
) -> dict[str, Any]:
    """Score one rule (a replay -> firing frame function) on the faults and the healthy fleets."""
    n = base_1h = with_rule_1h = false_faulty = 0
    changed = []
    for run in faulty:
        firing = rule(run)
        for f in run.faults:
            if f.failure is None or (kinds and f.kind not in kinds):
                continue
            n += 1
            base, lead = run.leads[f.id], _first_lead(firing, f)
            best = max((v for v in (base, lead) if v is not None), default=None)
            base_1h += base is not None and base >= 60
            with_rule_1h += best is not None and best >= 60
            if lead is not None and (base is None or lead > base):
                changed.append(f"{run.seed}/{f.id} {base}->{round(lead)}")
        false_faulty += sum(not _behind_fault(g, at, run.faults) for g, at in episodes(firing))
    false_healthy = sum(len(episodes(rule(run))) for run in healthy)
    gpu_days = sum(run.gpu_days for run in healthy)
    return {
        "faults": n,
        "warned_1h_product": base_1h,
        "warned_1h_with_rule": with_rule_1h,
        "false_episodes_faulty": false_faulty,
        "false_episodes_healthy": false_healthy,
        "healthy_per_1k_gpu_days": round(1000 * false_healthy / gpu_days, 1) if gpu_days else None,
        "earlier": changed,
    }


def _rolling(
    frame: pd.DataFrame, window: timedelta, how: str | float, cover: float = 0.75
) -> pd.DataFrame:
    """Rolling mean (``"mean"``), 25th percentile (``"q25"``) or quantile ``how`` over ``window``,
    where at least ``cover`` of its cycles are present."""
    n = max(1, int(window / CYCLE))
    roll = frame.rolling(n, min_periods=max(1, int(cover * n)))
    if how == "mean":
        return roll.mean()
    return roll.quantile(0.25 if how == "q25" else float(how))


def main() -> None:
    """Replay (or read) the seeds, print both studies."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faulty", default="107,111,113,119,120,124")
    parser.add_argument("--healthy", default="132,133,134,135,136,137")
    parser.add_argument("--cache", type=Path, default=Path(".persistence-study"))
    parser.add_argument("--max-gpus", type=int, default=128)
    parser.add_argument("--jobs", type=int, default=2, help="replays run side by side")
    args = parser.parse_args()
    seeds = {h: [int(s) for s in text.split(",") if s] for h, text in ((False, args.faulty),
                                                                         (True, args.healthy))}  # fmt: skip
    report = sorted(s for group in seeds.values() for s in group if is_report_seed(s))
    if report:
        parser.error(f"seeds {report} are report seeds: this study chooses rules on dev seeds")
    warnings.simplefilter("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    args.cache.mkdir(parents=True, exist_ok=True)
    todo = [(s, h, args.cache, args.max_gpus) for h in (False, True) for s in seeds[h]]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = list(pool.map(_cached, todo))
    faulty, healthy = done[: len(seeds[False])], done[len(seeds[False]) :]

    print("\n1. sustained risk: rolling q-quantile of a GPU's risk over W >= r")
    for hours in (1, 2, 3):
        for r in (0.15, 0.2, 0.3, 0.4):
            for q in (0.25, 0.5):
                window = timedelta(hours=hours)

                def sustained(
                    run: Replayed, w: timedelta = window, r: float = r, q: float = q
                ) -> pd.DataFrame:
                    return _rolling(run.risk, w, q, cover=0.9) >= r

                row = judge(faulty, healthy, sustained, None)
                print(f"W={hours}h r={r} q={q}: {row}")

    print("\n2. long-horizon temperature z (thermal, fan, cooling faults)")
    _long_z(faulty, healthy, TEMP_Z, (60, 120, 180), THERMAL_KINDS)
    print("\n3. long-horizon error-counter z (HBM, PCIe, NVLink faults)")
    _long_z(faulty, healthy, COUNTER_Z, (30, 60, 120), COUNTER_KINDS)


def _long_z(
    faulty: list[Replayed],
    healthy: list[Replayed],
    columns: tuple[str, ...],
    minutes: tuple[int, ...],
    kinds: tuple[str, ...],
) -> None:
    """Print each rolling mean / 25th percentile of a ``z`` column over each window against the
    healthy fleets' 99.99th percentile and maximum, judged on the faults of ``kinds``."""
    for column in columns:
        for length in minutes:
            for how in ("mean", "q25"):
                window = timedelta(minutes=length)
                values = np.concatenate(
                    [_rolling(run.temp[column], window, how).to_numpy().ravel() for run in healthy]
                )
                values = values[np.isfinite(values)]
                for level in (float(np.quantile(values, 0.9999)), float(values.max()) + 1e-9):

                    def long_z(run: Replayed, c: str = column, w: timedelta = window,
                               how: str = how, level: float = level) -> pd.DataFrame:  # fmt: skip
                        return _rolling(run.temp[c], w, how) >= level

                    row = judge(faulty, healthy, long_z, kinds)
                    print(f"{column} W={length}min {how} >= {level:.2f}: {row}")


if __name__ == "__main__":
    main()
