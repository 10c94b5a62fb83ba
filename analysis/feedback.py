"""What a "False alarm" click teaches: per-GPU allowances learnt from the verdicts. Pure.

An incident carries its evidence (:class:`analysis.types.Evidence`: the largest standardised
deviations ``z`` of each affected GPU). When a human marks it a false alarm, each of those
deviations becomes an *allowance* on that GPU: from then on a deviation of that feature on that GPU,
in the same direction and up to ``ALLOWANCE_MARGIN`` times the judged one, is scored as normal
(the scorer sets its ``z`` to 0 before the forest and the tail guard see it). Everything else on
the GPU is judged as before, so a real fault still pages: another feature moving, the same feature
moving the other way or beyond the allowance, and every failure-grade signal (DBE, row-remap
failure, hardware XID, vanished GPU), whose risk floor never looks at ``z``.

Bounds, and why:

* ``ALLOWANCE_MARGIN`` = 1.5: a recurring benign pattern (a job that runs one GPU warmer than its
  peers, a fan profile) is never twice the same size; half as much again covers its usual spread
  without covering a fault that doubles it.
* ``ALLOWANCE_CAP`` = 40 robust sd: a click can never hide a deviation beyond it; use a silence
  (which expires and is visible) for that. Benign patterns that page sit below it: the tail guard
  pages a lone feature at about 10-18 sd, and a GPU 12 °C warmer than its node peers measures about
  37 sd on the tightest comparison (memory temperature against the node's other GPUs).
* ``ALLOWANCE_TTL`` = 14 days: hardware ages, GPUs are swapped under the same key and job mixes
  change, so a lesson must not outlive what it was about; two weeks still cover a pattern that
  recurs weekly twice, and re-marking it costs one click.

A verdict teaches only what the human saw: the evidence of the incident as stored when the verdict
was given. An incident seen again after its verdict (its snapshot is newer than the click) no
longer teaches, because its stored evidence is no longer what was judged; marking it again does.
The latest verdict on an incident wins (``confirmed`` after ``false_alarm`` withdraws the lesson).
Allowances are derived from the stored verdicts and snapshots every time, so a restart or a new
leader has them, and a replay at ``at`` never uses a verdict given after ``at``. Snapshots stored
before incidents carried evidence teach from their signals (``<feature>=<z>sd``, the top three).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from analysis.types import Evidence, Incident

#: How much larger than the judged deviation an allowance reaches.
ALLOWANCE_MARGIN = 1.5
#: The largest deviation (robust sd) any allowance covers.
ALLOWANCE_CAP = 40.0
#: How long a false-alarm verdict keeps teaching.
ALLOWANCE_TTL = timedelta(days=14)
#: The verdict that teaches (``storage.records.VERDICTS``).
FALSE_ALARM = "false_alarm"

#: What the scorer is given: (GPU key, feature) -> (low, high) range of ``z`` scored as normal.
Allowances = Mapping[tuple[str, str], tuple[float, float]]

_SIGNAL = re.compile(r"^(?P<feature>[^=\s]+)=(?P<z>[+-]?\d+(?:\.\d+)?)sd$")


class FeedbackLike(Protocol):
    """A stored verdict (``storage.records.FeedbackRecord`` keeps this shape)."""

    @property
    def incident_id(self) -> int:
        """The stored incident's id."""
        ...

    @property
    def verdict(self) -> str:
        """``false_alarm`` or ``confirmed``."""
        ...

    @property
    def who(self) -> str:
        """Who gave it (a Slack user id)."""
        ...

    @property
    def at(self) -> datetime:
        """When it was given (aware UTC)."""
        ...


@dataclass(frozen=True)
class Verdict:
    """A human verdict with the incident it judged, as stored."""

    incident_id: int
    verdict: str
    who: str
    at: datetime
    incident: Incident

    @property
    def judged_as_stored(self) -> bool:
        """Whether the stored snapshot is what was judged (not seen again after the verdict)."""
        return self.incident.at <= self.at


@dataclass(frozen=True)
class Allowance:
    """One learnt allowance: ``z`` of ``feature`` on ``gpu`` within [low, high] is normal.

    One side is 0: the allowance reaches only in the judged direction. ``capped`` when the margin
    would have reached beyond :data:`ALLOWANCE_CAP`.
    """

    gpu: str
    feature: str
    low: float
    high: float
    judged_z: float
    incident_id: int
    who: str
    at: datetime
    expires: datetime
    capped: bool = False

    @property
    def bound(self) -> float:
        """The signed edge of the allowance (``high`` or ``low``)."""
        return self.high if self.high > 0 else self.low

    def covers(self, z: float) -> bool:
        """Whether a deviation ``z`` is within this allowance."""
        return self.low <= z <= self.high


def evidence_of(incident: Incident) -> tuple[Evidence, ...]:
    """Return an incident's evidence; for old snapshots without any, read it from its signals.

    Parameters
    ----------
    incident : Incident
        A stored incident.

    Returns
    -------
    tuple of Evidence
        ``incident.evidence`` when present; otherwise each ``<feature>=<z>sd`` signal (the
        median deviation over the incident's GPUs) taken for every affected GPU.
    """
    if incident.evidence:
        return incident.evidence
    out: list[Evidence] = []
    for signal in incident.signals:
        m = _SIGNAL.match(signal)
        if m is None:
            continue
        out.extend(Evidence(g.key, m["feature"], float(m["z"])) for g in incident.gpus)
    return tuple(out)


def stored_verdicts(
    records: Iterable[FeedbackLike],
    incident: Callable[[int], Incident | None],
    *,
    since: datetime | None = None,
) -> list[Verdict]:
    """Pair stored verdicts (oldest first) with their incidents; skip unknown incidents.

    Parameters
    ----------
    records : iterable of FeedbackLike
        ``Repository.feedback()``.
    incident : callable
        Incident id -> the stored incident (``Repository.incident(id).incident``), or None.
    since : datetime, optional
        Leave out verdicts given before it (expired ones: ``at - ALLOWANCE_TTL``); the incident
        of an older verdict is not looked up.

    Returns
    -------
    list of Verdict
        In the order given.
    """
    out = []
    for rec in records:
        if since is not None and rec.at < since:
            continue
        inc = incident(rec.incident_id)
        if inc is not None:
            out.append(Verdict(rec.incident_id, rec.verdict, rec.who, rec.at, inc))
    return out


def standing(
    verdicts: Iterable[Verdict], at: datetime, ttl: timedelta = ALLOWANCE_TTL
) -> list[Verdict]:
    """Return the latest verdict of each incident given by ``at``, if it is a false alarm.

    Verdicts given after ``at`` (a replay of the past) and expired ones do not count.
    """
    latest: dict[int, Verdict] = {}
    for v in verdicts:
        if v.at > at:
            continue
        held = latest.get(v.incident_id)
        if held is None or v.at >= held.at:
            latest[v.incident_id] = v
    return [
        v
        for v in sorted(latest.values(), key=lambda v: (v.at, v.incident_id))
        if v.verdict == FALSE_ALARM and at < v.at + ttl
    ]


def learn_allowances(
    verdicts: Iterable[Verdict],
    at: datetime,
    *,
    margin: float = ALLOWANCE_MARGIN,
    cap: float = ALLOWANCE_CAP,
    ttl: timedelta = ALLOWANCE_TTL,
) -> tuple[Allowance, ...]:
    """Return the allowances the false-alarm verdicts standing at ``at`` teach.

    Parameters
    ----------
    verdicts : iterable of Verdict
        Every stored verdict (:func:`stored_verdicts`), any order.
    at : datetime
        The cycle's time: later verdicts and those older than ``ttl`` do not count.
    margin, cap, ttl
        Reach of an allowance relative to the judged ``|z|``, its largest reach, its lifetime.

    Returns
    -------
    tuple of Allowance
        One per judged deviation of a standing false alarm whose evidence is what was judged,
        oldest verdict first.
    """
    if margin < 1.0 or cap <= 0.0:
        raise ValueError(f"margin must be at least 1 and cap positive, got {margin} and {cap}")
    out = []
    for v in standing(verdicts, at, ttl):
        if not v.judged_as_stored:
            continue
        for ev in evidence_of(v.incident):
            if ev.z == 0.0 or ev.z != ev.z:  # nothing judged, or NaN
                continue
            reach = min(margin * abs(ev.z), cap)
            low, high = (0.0, reach) if ev.z > 0 else (-reach, 0.0)
            out.append(
                Allowance(
                    gpu=ev.gpu,
                    feature=ev.feature,
                    low=low,
                    high=high,
                    judged_z=ev.z,
                    incident_id=v.incident_id,
                    who=v.who,
                    at=v.at,
                    expires=v.at + ttl,
                    capped=margin * abs(ev.z) > cap,
                )
            )
    return tuple(out)


def unlearnt(verdicts: Iterable[Verdict], at: datetime) -> list[Verdict]:
    """Return the standing false alarms that teach nothing: seen again after the verdict."""
    return [v for v in standing(verdicts, at) if not v.judged_as_stored]


def bounds(allowances: Sequence[Allowance]) -> dict[tuple[str, str], tuple[float, float]]:
    """Return the scorer's view: per (GPU key, feature) the widest range any allowance gives."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for a in allowances:
        lo, hi = out.get((a.gpu, a.feature), (0.0, 0.0))
        out[(a.gpu, a.feature)] = (min(lo, a.low), max(hi, a.high))
    return out
