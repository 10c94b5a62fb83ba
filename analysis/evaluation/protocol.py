"""The evaluation protocol: which seeds may be looked at while developing, which only to report.

Fixed on 2026-12-01, before any scenario of the randomized matrix was generated or looked at.
Report seeds are run only by ``make eval`` (``gpu-risk eval --report``) to produce the figures in
README; a developer never runs, plots or debugs on them. Development and ablation work uses the
development seeds. Changing either range invalidates every figure reported before the change.
"""

from __future__ import annotations

#: Seeds whose scenarios are only ever used to report (20 scenarios, >= 10,000).
REPORT_SEEDS: tuple[int, ...] = tuple(range(10_000, 10_020))
#: Seeds free to look at, debug and tune on.
DEV_SEEDS: tuple[int, ...] = tuple(range(100, 140))
#: Bootstrap resamples for the 95 % intervals reported with every rate.
BOOTSTRAP_RESAMPLES = 2_000
#: Confidence level of the reported intervals.
CONFIDENCE = 0.95


def is_report_seed(seed: int) -> bool:
    """Whether ``seed`` is reserved for reporting (never for development)."""
    return seed in REPORT_SEEDS
