"""A source that serves many consecutive cycle windows from one range query per chunk.

Replaying history (``gpu-risk backtest``, a one-shot ``scan`` that warms up over a few cycles)
asks the metrics source for ``[t - window, t]`` at every cycle ``t``. :class:`CachedSource` fetches
a longer span once and cuts each request out of it, so a replay costs one range query per metric
per chunk instead of one per cycle. A cut holds exactly the samples a direct query of the same
span on the same step grid returns, and never a sample after its ``end``: a replayed cycle sees
only its own past.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence
from datetime import datetime, timedelta

from analysis.backtest import FrameSlicer
from analysis.feature_plan import FeaturePlan
from analysis.types import FleetFrames, Reductions
from storage.source import MetricsSource, reduce_fetched, restrict

#: Span fetched at once when a request is not covered by what is cached.
DEFAULT_CHUNK = timedelta(hours=6)


class CachedSource:
    """Wrap a :class:`~storage.source.MetricsSource`; serve covered requests from memory.

    Parameters
    ----------
    source : MetricsSource
        Where the data comes from.
    chunk : timedelta
        How far past a request's ``end`` one fetch reaches (the next cycles' windows), bounded by
        ``horizon``.
    horizon : datetime, optional
        Never fetch past this time (the replay's last cycle), so no sample from after the replay
        is ever held.
    lookback : timedelta
        A fetch also reaches this far before a request's ``end`` (the longest window of the
        pipelines sharing the cache), so a longer window at the same cycle is covered too.
    """

    def __init__(
        self,
        source: MetricsSource,
        *,
        chunk: timedelta = DEFAULT_CHUNK,
        horizon: datetime | None = None,
        lookback: timedelta = timedelta(0),
    ) -> None:
        """Keep the source; nothing is fetched yet."""
        self.source = source
        self.chunk = chunk
        self.horizon = horizon
        self.lookback = lookback
        self._cached: tuple[datetime, datetime, timedelta, FrameSlicer] | None = None
        self.fetches = 0
        self._last_one_off: tuple[Hashable, FleetFrames] | None = None

    def prime(self, start: datetime, end: datetime, step: timedelta) -> None:
        """Fetch ``[start, end]`` now; later requests inside it are served from memory."""
        self.fetches += 1
        self._cached = (start, end, step, FrameSlicer(self.source.fetch(start, end, step)))

    def fetch(
        self,
        start: datetime,
        end: datetime,
        step: timedelta,
        *,
        gpu_metrics: Sequence[str] | None = None,
        nodes: Collection[str] | None = None,
    ) -> FleetFrames:
        """Return ``[start, end]`` at ``step``: cut from the cache, or fetched with a chunk ahead.

        ``gpu_metrics`` and ``nodes`` restrict it as ``MetricsSource.fetch`` says (the cache holds
        everything).
        """
        if not self._covers(start, end, step):
            if end - start > self.chunk:  # a long one-off (a model fit): straight through
                return self._one_off(start, end, step, gpu_metrics, nodes)
            ahead = end + self.chunk
            if self.horizon is not None:
                ahead = min(ahead, max(self.horizon, end))
            self.prime(min(start, end - self.lookback), ahead, step)
        assert self._cached is not None
        return restrict(self._cached[3].window(start, end), gpu_metrics=gpu_metrics, nodes=nodes)

    def _one_off(
        self,
        start: datetime,
        end: datetime,
        step: timedelta,
        gpu_metrics: Sequence[str] | None,
        nodes: Collection[str] | None,
    ) -> FleetFrames:
        """Fetch a long span straight through; the same request again (the next detector's fit
        at the same cycle) gets the same answer without a second fetch."""
        key = (
            start,
            end,
            step,
            None if gpu_metrics is None else tuple(gpu_metrics),
            None if nodes is None else (type(nodes), frozenset(nodes)),  # a NodeSample reads more
        )
        if self._last_one_off is not None and self._last_one_off[0] == key:
            return self._last_one_off[1]
        self.fetches += 1
        frames = self.source.fetch(start, end, step, gpu_metrics=gpu_metrics, nodes=nodes)
        self._last_one_off = (key, frames)
        return frames

    def reduce(self, plan: FeaturePlan, at: datetime) -> Reductions:
        """The plan's reductions at ``at``, evaluated in memory over the cached window."""
        return reduce_fetched(self, plan, at)

    def cordoned(self, at: datetime) -> frozenset[str]:
        """The wrapped source's cordoned nodes at ``at`` (not cached: one instant read)."""
        return self.source.cordoned(at)

    def gpu_models(self, at: datetime, window: timedelta) -> dict[str, str]:
        """The wrapped source's GPU model per node, where it can say (else none)."""
        ask = getattr(self.source, "gpu_models", None)
        return dict(ask(at, window)) if ask is not None else {}

    def _covers(self, start: datetime, end: datetime, step: timedelta) -> bool:
        """Whether the cached span holds ``[start, end]`` on the same step grid."""
        if self._cached is None:
            return False
        lo, hi, cached_step, _ = self._cached
        on_grid = ((start - lo) % step) == timedelta(0)
        return cached_step == step and lo <= start and end <= hi and on_grid
