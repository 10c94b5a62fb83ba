"""Sustained risk: a GPU whose risk has held at a lower level for an hour is at risk too.

The threshold (0.9: about one healthy GPU-cycle in five million) is what one cycle must show on
its own. A slow fault can sit below it for hours: an idle GPU whose thermal interface is failing
runs 1.7 °C hotter than its node's other GPUs at the same power, every cycle, ``temp_vs_node``
at +5 to +7 sd, its risk 0.6-0.8 from five hours before it fails (development fleet 111), and no
single cycle of that is rare enough. Held for an hour it is: :class:`SustainedRisk` is
Prometheus' ``for:`` on a second, lower level of the same calibrated risk.

The rule is judged at checkpoints, not at every cycle: the GPU's risk was at least ``watch`` in
the cycle at each of ``at``, ``at - every``, ... ``at - over`` (the latest cycle at or before
each, less than ``every`` before it). So it means the same at one-minute and five-minute scans,
and a one-shot scan can judge it by running just those cycles (``bot.commands.scan``).
Chosen on the development fleets (``benchmarks/results/README.md``, twenty-eighth session),
one step back from where healthy GPUs began to be held: over an hour of checkpoints 15 minutes
apart, at risk 0.5 two GPUs of the 1,877 healthy GPU-days were held (fleet 138), at 0.55 and
0.6 none; 0.6 keeps most of what the rule found (two faults of fleet 111 warned hours ahead).
On the report seeds (runs BT/BU, README) it warned two more faults an hour ahead and paged two
healthy GPUs of one fleet: nine healthy development fleets were too few to see that rate.

Pure: what it keeps is the set of GPUs at or above ``watch`` per cycle of the last ``over``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from analysis.types import GpuScore

__all__ = [
    "CHECKPOINT_EVERY",
    "DEFAULT_SUSTAINED_FOR",
    "DEFAULT_WATCH",
    "HELD",
    "SustainedRisk",
    "held_signal",
]

#: How the signal of an incident the rule raised begins (:attr:`SustainedRisk.signal`).
HELD = "risk held >= "
#: Checkpoints of the rule are this far apart (a scan interval longer than this never holds).
CHECKPOINT_EVERY = timedelta(minutes=15)
#: The level a GPU's risk must hold at every checkpoint (about 1 in 16,000 healthy GPU-cycles).
DEFAULT_WATCH = 0.6
#: How long it must hold (first checkpoint to the last).
DEFAULT_SUSTAINED_FOR = timedelta(hours=1)


@dataclass
class SustainedRisk:
    """Which GPUs' risk has held at least ``watch`` over the last ``over`` (module docstring).

    Feed each cycle's scores to :meth:`update`, oldest cycle first; it returns the GPUs held
    now. ``state``/``load_state`` carry what it keeps across a restart.
    """

    watch: float = DEFAULT_WATCH
    over: timedelta = DEFAULT_SUSTAINED_FOR
    every: timedelta = CHECKPOINT_EVERY
    _above: dict[datetime, frozenset[str]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.watch < 1.0:
            raise ValueError(f"watch must be a risk in (0, 1), got {self.watch}")
        if self.every <= timedelta(0) or self.over < self.every:
            raise ValueError(
                f"sustained for {self.over} must be at least the checkpoint spacing {self.every}"
            )

    @property
    def signal(self) -> str:
        """What an incident it raised says: ``risk held >= 0.60 for 60 min``."""
        return f"{HELD}{self.watch:.2f} for {self.over.total_seconds() / 60:.0f} min"

    def checkpoints(self, at: datetime) -> list[datetime]:
        """The times the rule judges at ``at``: ``at``, ``at - every``, ... back to ``at - over``."""
        return [at - i * self.every for i in range(int(self.over / self.every) + 1)]

    def update(self, at: datetime, scores: Iterable[GpuScore]) -> frozenset[str]:
        """Take the cycle at ``at``; return the GPU keys whose risk held (empty until ``over``)."""
        self._above[at] = frozenset(s.key for s in scores if s.score >= self.watch)
        horizon = at - self.over - self.every
        for t in [t for t in self._above if t < horizon or t > at]:
            del self._above[t]
        return self.held(at)

    def held(self, at: datetime) -> frozenset[str]:
        """The GPUs at or above ``watch`` in the cycle of every checkpoint of ``at``."""
        times = sorted(self._above)
        held: frozenset[str] | None = None
        for point in self.checkpoints(at):
            i = bisect.bisect_right(times, point) - 1
            if i < 0 or point - times[i] >= self.every:
                return frozenset()  # no cycle for this checkpoint: nothing is known to have held
            above = self._above[times[i]]
            held = above if held is None else held & above
            if not held:
                return frozenset()
        return held or frozenset()

    def state(self) -> dict[str, Any]:
        """What it keeps, JSON-ready (what :meth:`load_state` takes back)."""
        return {t.isoformat(): sorted(keys) for t, keys in sorted(self._above.items())}

    def load_state(self, state: Mapping[str, Any] | None) -> None:
        """Take back :meth:`state` (the last run's or leader's) under what is here."""
        for when, keys in (state or {}).items():
            t = datetime.fromisoformat(str(when))
            self._above.setdefault(t, frozenset(str(k) for k in keys))


def held_signal(signals: Iterable[str]) -> str | None:
    """The signal saying an incident's risk held below the threshold, if it has one."""
    return next((s for s in signals if s.startswith(HELD)), None)
