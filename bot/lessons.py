"""What "False alarm" verdicts teach, derived from the store with :mod:`analysis.feedback`'s rules.

Both the cycle (the allowances its scorer applies) and ``/gpu-risk status`` (the audit of what was
learnt) read the verdicts standing at a time the same way, from ``Repository.feedback`` and each
judged incident's stored snapshot, so a restart or a new leader has them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from analysis.feedback import (
    ALLOWANCE_TTL,
    FeedbackLike,
    Verdict,
    bounds,
    learn_allowances,
    stored_verdicts,
)
from analysis.types import Incident
from storage.repository import Repository


@dataclass
class Lessons:
    """The verdicts of ``repository`` and what they teach; resolved incidents read once."""

    repository: Repository
    _resolved: dict[int, Incident] = field(default_factory=dict, init=False, repr=False)

    def verdicts(self, at: datetime) -> list[Verdict]:
        """The verdicts standing at ``at`` (not older than ``ALLOWANCE_TTL``), with incidents."""
        return self._verdicts(self.repository.feedback(), at)

    def allowances(self, at: datetime) -> dict[tuple[str, str], tuple[float, float]]:
        """What the verdicts standing at ``at`` teach: (entity, signal) -> bounds of ``z``.

        One read of the feedback, and a read of each judged incident until it is resolved (a
        resolved incident's snapshot no longer changes, so it is kept in memory).
        """
        records = self.repository.feedback()
        if not records:
            return {}
        return bounds(learn_allowances(self._verdicts(records, at), at))

    def _verdicts(self, records: Sequence[FeedbackLike], at: datetime) -> list[Verdict]:
        return stored_verdicts(records, self._incident, since=at - ALLOWANCE_TTL)

    def _incident(self, incident_id: int) -> Incident | None:
        """The stored incident a verdict is about (kept in memory once it is resolved)."""
        done = self._resolved.get(incident_id)
        if done is not None:
            return done
        rec = self.repository.incident(incident_id)
        if rec is None:
            return None
        if not rec.is_open:
            self._resolved[incident_id] = rec.incident
        return rec.incident
