"""Drive pipelines over past times: the backtest, the demo and a one-shot scan's warm-up.

A replay is the running bot's loop with another clock: each detector is its own
:class:`~bot.pipeline.Pipeline` (its own store, its own tracker), run cycle by cycle on the same
source, refitted on the past every ``refit_every`` like the bot's daily refit. What the backtest
measures is therefore what ``gpu-risk run`` does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from analysis.fit_window import NotEnoughHistoryError
from analysis.types import Assessment
from bot.cycle_record import CycleOutcome
from bot.pipeline import Pipeline
from storage.source import MetricsSourceError

logger = logging.getLogger(__name__)


class ReplayError(RuntimeError):
    """A replayed cycle could not read its data; the message names the cycle and the cause."""


def cycle_times(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Return ``start, start + step, ... <= end``."""
    n = int((end - start) / step)
    return [start + i * step for i in range(n + 1)]


@dataclass
class Replay:
    """Run ``pipelines`` side by side at ``times``; keep each detector's cycle record.

    ``refit_every`` refits learning pipelines at the first cycle and then that often (None: fit
    only when a pipeline first needs a model). A refit that fails (too few healthy rows: a
    fault behind which the whole fleet sits, say) leaves the current model scanning, as the
    running bot's daily refit does, and is kept in ``failed_refits``; without a model yet it
    ends the replay. ``after_cycle(at, outcomes)`` runs after every cycle (the demo delivers its
    outbox there); ``on_cycle(done, total)`` reports progress.
    """

    pipelines: Mapping[str, Pipeline]
    refit_every: timedelta | None = timedelta(hours=24)
    after_cycle: Callable[[datetime, Mapping[str, CycleOutcome]], None] | None = None
    on_cycle: Callable[[int, int], None] | None = None
    cycles: dict[str, list[Assessment]] = field(default_factory=dict, init=False)
    failed_refits: list[tuple[str, datetime, str]] = field(default_factory=list, init=False)
    _last_fit: datetime | None = field(default=None, init=False)

    def run(self, times: Sequence[datetime]) -> dict[str, list[Assessment]]:
        """Replay every time in order; return, per detector, what was open after each cycle."""
        self.cycles = {name: [] for name in self.pipelines}
        for done, at in enumerate(times, start=1):
            self.step(at)
            if self.on_cycle is not None:
                self.on_cycle(done, len(times))
        return self.cycles

    def step(self, at: datetime) -> dict[str, CycleOutcome]:
        """Run one cycle of every pipeline at ``at`` (refitting first when due)."""
        due = self.refit_every is not None and (
            self._last_fit is None or at - self._last_fit >= self.refit_every
        )
        outcomes = {}
        for name, pipeline in self.pipelines.items():
            if due and pipeline.needs_history:
                try:
                    pipeline.refit(at)
                except (NotEnoughHistoryError, MetricsSourceError) as exc:
                    if pipeline.current is None:
                        raise ReplayError(
                            f"{name} refit at {at.isoformat()}: no model: {exc}"
                        ) from None
                    logger.warning("%s refit at %s failed, the current model keeps scanning: %s",
                                   name, at.isoformat(), exc)  # fmt: skip
                    self.failed_refits.append((name, at, str(exc)))
            outcome = pipeline.run_cycle(at)
            if not outcome.ok or outcome.assessment is None:
                raise ReplayError(f"{name} cycle at {at.isoformat()}: {outcome.error}")
            record = Assessment(at, outcome.assessment.scores, outcome.incidents)
            self.cycles.setdefault(name, []).append(record)
            outcomes[name] = outcome
        if due:
            self._last_fit = at
        if self.after_cycle is not None:
            self.after_cycle(at, outcomes)
        return outcomes
