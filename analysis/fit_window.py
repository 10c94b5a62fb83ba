"""Which rows and times a fit learns from: its cycle ends, the known incidents it leaves out,
and why a history can be too short or too sick to fit on.

:func:`fit_times` are the cycle ends a fit featurises (evenly spaced whole minutes, so a TSDB
reduces them with one range query each); an :class:`Exclusion` is a known or open incident
whose GPUs' rows are left out; :func:`too_few_rows` says, when too few healthy rows are left,
what took them (``NotEnoughHistoryError``, shown to the operator as the failed scan's reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.frames import to_utc
from analysis.graph import gpus_behind
from analysis.types import Fault


class NotEnoughHistoryError(ValueError):
    """The history cannot train a model (too short, empty, or without healthy rows)."""


@dataclass(frozen=True)
class Exclusion:
    """Rows to leave out of training: the GPUs behind ``entity`` from ``start`` to ``end``.

    ``entity`` is a GPU key, a node, a rack or a component id (``gpus``, when given, lists the GPU
    keys explicitly); ``end`` None means "until the end of the history". A window that merely
    overlaps the range is excluded too.
    """

    entity: str
    start: datetime
    end: datetime | None = None
    gpus: tuple[str, ...] = ()

    @classmethod
    def from_fault(cls, fault: Fault) -> Exclusion:
        """Exclude a known incident (faults.json entry) from its onset to its failure."""
        return cls(
            entity=fault.target, start=fault.onset, end=fault.failure, gpus=tuple(fault.affected)
        )

    def gpu_keys(self, graph: nx.DiGraph) -> set[str]:
        """Return the GPU keys this exclusion covers (its own list, or everything behind it)."""
        if self.gpus:
            return set(self.gpus)
        return set(gpus_behind(graph, self.entity)) if self.entity in graph else {self.entity}


#: The fewest healthy feature rows (GPU-cycles) a model is fitted on.
MIN_FIT_ROWS = 20


def too_few_rows(
    excluded: npt.NDArray[np.bool_], flagged: npt.NDArray[np.bool_], silent: npt.NDArray[np.bool_]
) -> str:
    """Say why a fit has too few healthy rows: which reasons took how many of its rows."""
    n, kept = len(excluded), int((~(excluded | flagged | silent)).sum())
    reasons = [
        f"{int(excluded.sum())} under open or known incidents (their GPUs from the incident's "
        "start on)",
        f"{int(flagged.sum())} with a failure-grade signal",
        f"{int(silent.sum())} on nodes that did not report",
    ]
    hint = "give a longer history (GPU_RISK_FIT_WINDOW_HOURS)"
    if excluded.sum() >= n:
        hint = (
            "every GPU is behind an open incident for the whole fit window: the current model "
            "keeps scanning until an incident is resolved or the history holds healthy rows again"
        )
    return (
        f"only {kept} healthy feature rows to fit on out of {n} GPU-cycles "
        f"({'; '.join(reasons)}): {hint}"
    )


def fit_times(start: datetime, end: datetime, window: timedelta, cycles: int) -> list[datetime]:
    """Return up to ``cycles`` window ends in ``[start + window, end]``, one whole number of
    minutes apart and ending at ``end`` (floored to the minute), oldest first.

    Evenly spaced, so a TSDB evaluates the fit's reductions at all of them with one range query
    per reduction (``MetricsSource.reduce_at``): the spacing is the span over ``cycles - 1``,
    floored to whole minutes (at least one); the first few minutes of a span that is not a whole
    number of spacings are not sampled.
    """
    first = to_utc(start) + pd.Timedelta(window)
    last = to_utc(end).floor("min")
    if last < first:
        raise NotEnoughHistoryError(
            f"history too short: it spans {(to_utc(end) - to_utc(start))} but one window needs {window}; "
            "fetch a longer history (GPU_RISK_FIT_WINDOW_HOURS) or shorten the window"
        )
    n = max(1, cycles)
    if n == 1:
        return [last.to_pydatetime()]
    every = max(pd.Timedelta(minutes=1), ((last - first) / (n - 1)).floor("min"))
    count = min(n, int((last - first) // every) + 1)
    return [(last - k * every).to_pydatetime() for k in range(count - 1, -1, -1)]
