"""Incident tracking across cycles: streaks toward opening an incident and quiet cycles toward closing it.

Pure. The pipeline feeds each cycle's :class:`~analysis.types.Assessment` to
:meth:`IncidentTracker.update` and gets the incidents open after it; what it does with them (post,
update, resolve) is :mod:`analysis.lifecycle`'s decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from analysis.incidents import incident_id
from analysis.types import Assessment, Incident


class IncidentTracker:
    """Open an incident after ``open_after`` consecutive cycles, close it after ``close_after`` quiet ones.

    Feed each cycle's :class:`Assessment` to :meth:`update`; it returns the incidents open now.
    An incident keeps the id of the first cycle of the streak that opened it. When a broader
    incident (rack, component, node) covers the GPUs of an open narrower one, the narrower one is
    closed at once (superseded), so one fault never pages twice.
    """

    def __init__(self, open_after: int = 2, close_after: int = 5) -> None:
        """Keep the cycle counts; nothing is open yet."""
        if open_after < 1 or close_after < 1:
            raise ValueError("open_after and close_after must be at least 1 cycle")
        self.open_after = open_after
        self.close_after = close_after
        self._streak: dict[str, int] = {}
        self._first: dict[str, datetime] = {}
        self._quiet: dict[str, int] = {}
        self._open: dict[str, Incident] = {}

    @property
    def open_incidents(self) -> list[Incident]:
        """Return the incidents open now, highest score first."""
        return sorted(self._open.values(), key=lambda i: (-i.score, i.root_cause.id))

    def restore(self, incidents: Iterable[Incident]) -> None:
        """Mark incidents as already open (e.g. the store's after a restart), keeping their ids."""
        for inc in incidents:
            key = inc.dedup_key
            if key not in self._open:
                self._open[key] = inc
                self._quiet[key] = 0
                self._streak[key] = self.open_after
                self._first.setdefault(key, inc.at)

    def state(self) -> dict[str, Any]:
        """Return the streaks as JSON-ready data (what ``load_state`` takes back).

        The open incidents themselves are not part of it: the store holds them (``restore``).
        """
        return {
            "streak": dict(sorted(self._streak.items())),
            "first": {k: v.isoformat() for k, v in sorted(self._first.items())},
            "quiet": dict(sorted(self._quiet.items())),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Take back the streaks of ``state()`` (e.g. the last leader's), over what is here.

        Call it after ``restore``: quiet counts are kept only for incidents open here, and an
        open incident's streak never drops below ``open_after``.
        """
        streak = {str(k): int(v) for k, v in (state.get("streak") or {}).items()}
        first = {
            str(k): datetime.fromisoformat(str(v)) for k, v in (state.get("first") or {}).items()
        }
        quiet = {str(k): int(v) for k, v in (state.get("quiet") or {}).items()}
        for key, n in streak.items():
            if n < 1:
                continue
            self._streak[key] = max(n, self.open_after) if key in self._open else n
            if key in first:
                self._first[key] = first[key]
        for key, t in first.items():
            if key in self._streak and key not in self._first:
                self._first[key] = t
        for key in self._open:
            if key in quiet:
                self._quiet[key] = max(0, quiet[key])

    def update(self, assessment: Assessment) -> list[Incident]:
        """Take one cycle's assessment; return the incidents open after it."""
        present: dict[str, Incident] = {}
        covers = [
            (key, {g.key for g in inc.gpus})
            for key, inc in self._open.items()
            if inc.root_cause.kind != "gpu"
        ]
        for inc in assessment.incidents:
            key = inc.dedup_key
            gpus = {g.key for g in inc.gpus}
            # Keep the root cause stable: a narrower incident inside an open broader one (the
            # node's GPU alone this cycle) is that broader incident still going, not a new page.
            cover = None
            if key not in self._open:
                cover = next((k for k, c in covers if k != key and gpus <= c), None)
            if cover is None:
                present[key] = inc
            elif cover not in present:
                present[cover] = self._open[cover]
        for key in list(self._streak):
            if key not in present:
                del self._streak[key]
                self._first.pop(key, None)
        for key, inc in present.items():
            self._streak[key] = self._streak.get(key, 0) + 1
            self._first.setdefault(key, assessment.at)
            if key in self._open:
                self._quiet[key] = 0
                self._open[key] = _with_id(inc, self._open[key].id)
            elif self._streak[key] >= self.open_after:
                self._open[key] = _with_id(inc, incident_id(key, self._first[key]))
                self._quiet[key] = 0
        for key in list(self._open):
            if key in present:
                continue
            self._quiet[key] = self._quiet.get(key, 0) + 1
            if self._quiet[key] >= self.close_after:
                del self._open[key]
                self._quiet.pop(key, None)
        # A broader open incident supersedes narrower ones whose GPUs it covers.
        broader = [
            {g.key for g in inc.gpus}
            for key, inc in self._open.items()
            if key in present and inc.root_cause.kind != "gpu"
        ]
        for key, inc in list(self._open.items()):
            if key in present:
                continue
            gpus = {g.key for g in inc.gpus}
            if any(gpus <= cover for cover in broader):
                del self._open[key]
                self._quiet.pop(key, None)
        return self.open_incidents


def _with_id(incident: Incident, new_id: str) -> Incident:
    """Return the incident with another id."""
    return Incident(
        id=new_id,
        at=incident.at,
        severity=incident.severity,
        score=incident.score,
        root_cause=incident.root_cause,
        gpus=incident.gpus,
        explanation=incident.explanation,
        signals=incident.signals,
    )
