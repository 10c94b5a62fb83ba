"""Whether a candidate model may replace the current one: the protocol's ``ADOPTION_RULE``, checked.

Both models' declared runs are stored ``eval.json`` scenarios. They must cover the same
scenarios (seed, healthy or faulty, cadence); each criterion compares counts summed over them
(a count, not a rate: the GPU-days are the same on both sides), and the candidate is adopted
only if every criterion holds. Report and held-out fleets are told apart by their seeds, and
healthy fleets scanned faster than every 5 minutes apart from the others, as the rule has it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from analysis.evaluation.matrix import RATES, ScenarioResult
from analysis.evaluation.protocol import HELD_OUT_SEEDS, REPORT_SEEDS
from analysis.evaluation.records import DetectorScore

ScenarioKey = tuple[int, bool, float]


@dataclass(frozen=True)
class Check:
    """One criterion of the rule: the two models' counts and whether the candidate meets it."""

    criterion: str
    current: int
    candidate: int
    higher_is_better: bool

    @property
    def holds(self) -> bool:
        """Return whether the candidate is no worse than the current model on this count."""
        if self.higher_is_better:
            return self.candidate >= self.current
        return self.candidate <= self.current


def seed_set(seed: int) -> str:
    """Return ``report``, ``held-out`` or ``dev``: which protocol range ``seed`` is in."""
    if seed in REPORT_SEEDS:
        return "report"
    return "held-out" if seed in HELD_OUT_SEEDS else "dev"


def _by_key(results: Iterable[ScenarioResult], side: str) -> dict[ScenarioKey, ScenarioResult]:
    out: dict[ScenarioKey, ScenarioResult] = {}
    for r in results:
        if r.key in out:
            raise ValueError(f"the {side} runs hold seed {r.seed} twice; give each scenario once")
        out[r.key] = r
    return out


def _warned_hour(score: DetectorScore) -> int:
    """Faults warned an hour ahead with the target named: the matrix's ``warn_1h`` hits."""
    return int(RATES["warn_1h"](score)[0])


_Count = Callable[[DetectorScore], int]
#: The counts the rule compares on faulty fleets, and whether more is better.
_FAULTY: tuple[tuple[str, _Count, bool], ...] = (
    ("faults warned >= 1 h, strict", _warned_hour, True),
    ("false incidents, faulty fleets", lambda s: s.n_false_incidents, False),
    ("node faults escalated", lambda s: s.n_escalated, False),
    ("shared faults not one incident", lambda s: s.n_component_faults - s.n_one_incident, False),
)


def _group(result: ScenarioResult) -> str:
    """The name of the fleets a healthy scenario's false pages are compared within."""
    cadence = "under 5-minute" if result.cycle.total_seconds() < 300 else "5-minute"
    return f"false incidents, {seed_set(result.seed)} healthy fleets, {cadence} scans"


def adoption_checks(
    current: Sequence[ScenarioResult],
    candidate: Sequence[ScenarioResult],
    detector: str = "graph",
) -> list[Check]:
    """Return every criterion of the rule for ``candidate`` against ``current``.

    Raises ``ValueError`` when the two do not cover the same scenarios or one lacks
    ``detector``: counts over different fleets compare nothing.
    """
    cur, cand = _by_key(current, "current"), _by_key(candidate, "candidate")
    if set(cur) != set(cand):
        only = sorted({k[0] for k in set(cur) ^ set(cand)})
        raise ValueError(
            f"the runs cover different scenarios (seeds {only} are on one side only); compare "
            "runs of the same declared commands"
        )
    counts: dict[str, list[int]] = {}
    better: dict[str, bool] = {}
    for key in sorted(cur):
        pair = []
        for side, result in (("current", cur[key]), ("candidate", cand[key])):
            if detector not in result.report.detectors:
                raise ValueError(f"seed {key[0]} of the {side} runs has no {detector!r} scores")
            pair.append(result.report.detectors[detector])
        if key[1]:
            rows = [(_group(cur[key]), lambda s: s.n_false_incidents, False)]
        else:
            rows = list(_FAULTY)
        for name, count, more_is_better in rows:
            tally = counts.setdefault(name, [0, 0])
            tally[0] += count(pair[0])
            tally[1] += count(pair[1])
            better[name] = more_is_better
    order = [name for name, _, _ in _FAULTY]
    names = sorted(counts, key=lambda n: (order.index(n) if n in order else len(order), n))
    return [Check(n, counts[n][0], counts[n][1], better[n]) for n in names]


def adopted(checks: Sequence[Check]) -> bool:
    """Return whether every criterion holds (no criterion at all adopts nothing)."""
    return bool(checks) and all(c.holds for c in checks)
