"""Evaluate Prometheus alerting rules over a time range: when would each rule have fired?

Loads a rules file (``deploy/prometheus/static-rules.yml`` by default), runs each rule's expression
as one range query over [start - for, end] at ``step`` (one query per rule, whatever the fleet's
size) and replays Prometheus' alert state machine per (node, gpu): a series returned at an
evaluation makes the alert pending (``active_at`` = the first evaluation of an unbroken run), and
it fires once ``t - active_at >= for``. A missed evaluation resets it, as in Prometheus.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from storage.metrics import PrometheusSource, strip_port

logger = logging.getLogger(__name__)

# Shipped inside the package (deploy/prometheus/static-rules.yml links here for Prometheus users).
DEFAULT_RULES_FILE = Path(__file__).resolve().parent / "static-rules.yml"
_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)


class RulesError(ValueError):
    """A rules file is malformed; the message names the file, the rule and the problem."""


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule as written in a Prometheus rules file."""

    alert: str
    expr: str
    for_: timedelta
    group: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Return the short name (label ``gpu_risk_rule``), or the alert name."""
        return str(self.labels.get("gpu_risk_rule", self.alert))

    @property
    def severity(self) -> str:
        """Return the ``severity`` label (warning when absent)."""
        return str(self.labels.get("severity", "warning"))


@dataclass(frozen=True)
class AlertEpisode:
    """One unbroken run of a rule's expression returning a (node, gpu): pending, maybe firing.

    ``active_at``: first evaluation of the run; ``firing_at``: first evaluation at which it had
    been active for ``for`` (None: it never fired); ``last_active``: last evaluation of the run.
    ``gpu`` is None for series without a GPU label (e.g. ``up``).
    """

    rule: str
    alert: str
    severity: str
    node: str
    gpu: str | None
    active_at: datetime
    firing_at: datetime | None
    last_active: datetime

    @property
    def entity(self) -> str:
        """Return ``<node>/<gpu>`` or the node."""
        return f"{self.node}/{self.gpu}" if self.gpu is not None else self.node

    def firing(self, at: datetime) -> bool:
        """True when the alert is firing at ``at`` (an evaluation time)."""
        return self.firing_at is not None and self.firing_at <= at <= self.last_active


def parse_duration(text: str | int | float | None, where: str = "duration") -> timedelta:
    """Parse a Prometheus duration (``5m``, ``1h30m``, ``0s``); raise RulesError naming ``where``."""
    if text is None:
        return timedelta(0)
    s = str(text).strip()
    m = _DURATION.match(s)
    if not s or m is None:
        raise RulesError(f"{where}: {s!r} is not a Prometheus duration such as 5m, 1h or 30s")
    y, w, d, h, mi, sec, ms = (int(g) if g else 0 for g in m.groups())
    return timedelta(days=365 * y + 7 * w + d, hours=h, minutes=mi, seconds=sec, milliseconds=ms)


def load_rules(path: str | Path = DEFAULT_RULES_FILE) -> tuple[AlertRule, ...]:
    """Read the alerting rules of a Prometheus rules file (recording rules are skipped)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesError(f"{p}: rules file not found") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("groups"), list):
        raise RulesError(f"{p}: expected 'groups:' with a list of rule groups")
    rules: list[AlertRule] = []
    for gi, group in enumerate(data["groups"]):
        if not isinstance(group, Mapping) or not isinstance(group.get("rules"), list):
            raise RulesError(f"{p}: groups[{gi}] needs 'name' and a list of 'rules'")
        gname = str(group.get("name", gi))
        for ri, raw in enumerate(group["rules"]):
            where = f"{p}: group {gname}, rules[{ri}]"
            if not isinstance(raw, Mapping):
                raise RulesError(f"{where}: expected a mapping")
            if "record" in raw:
                continue
            if "alert" not in raw or "expr" not in raw:
                raise RulesError(f"{where}: an alerting rule needs 'alert' and 'expr'")
            rules.append(
                AlertRule(
                    alert=str(raw["alert"]),
                    expr=str(raw["expr"]).strip(),
                    for_=parse_duration(raw.get("for"), f"{where} ({raw['alert']}).for"),
                    group=gname,
                    labels={str(k): str(v) for k, v in (raw.get("labels") or {}).items()},
                    annotations={str(k): str(v) for k, v in (raw.get("annotations") or {}).items()},
                )
            )
    if not rules:
        raise RulesError(f"{p}: no alerting rules found")
    return tuple(rules)


def _entity(labels: Mapping[str, str], label_map: Mapping[str, str]) -> tuple[str, str | None]:
    """(node, gpu) of a series: DCGM Hostname/gpu, else the instance without its port."""
    node = labels.get(label_map["node"]) or strip_port(labels.get(label_map["instance"], ""))
    gpu = labels.get(label_map["gpu"])
    return node, (str(gpu) if gpu is not None else None)


def evaluate_rules(
    source: PrometheusSource,
    start: datetime,
    end: datetime,
    step: timedelta,
    rules: Iterable[AlertRule] | None = None,
) -> list[AlertEpisode]:
    """Replay the rules over [start, end] at ``step`` and return every alert episode in it.

    Each rule's query starts ``for`` earlier (rounded up to whole steps) so an alert that became
    active before ``start`` is judged correctly at ``start``. Episodes that ended before ``start``
    are dropped.
    """
    rules = tuple(rules) if rules is not None else load_rules()
    step_td = pd.Timedelta(step)
    episodes: list[AlertEpisode] = []
    for rule in rules:
        lead = step_td * int(-(-pd.Timedelta(rule.for_) // step_td))
        q_start = pd.Timestamp(start) - lead
        matrix = source.query_range(
            rule.expr, q_start.to_pydatetime(), end, step, what=f"rule {rule.alert}"
        )
        times: dict[tuple[str, str | None], set[int]] = {}
        for series in matrix:
            key = _entity(series["metric"], source.labels)
            if not key[0]:
                continue
            times.setdefault(key, set()).update(_seconds(v[0]) for v in series["values"])
        step_s = round(step_td.total_seconds())
        for (node, gpu), ts_set in sorted(times.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            for run in _runs(sorted(ts_set), step_s):
                active = run[0]
                firing = next((t for t in run if t - active >= rule.for_.total_seconds()), None)
                ep = AlertEpisode(
                    rule=rule.name,
                    alert=rule.alert,
                    severity=rule.severity,
                    node=node,
                    gpu=gpu,
                    active_at=_dt(active),
                    firing_at=_dt(firing) if firing is not None else None,
                    last_active=_dt(run[-1]),
                )
                if ep.last_active >= pd.Timestamp(start):
                    episodes.append(ep)
    return episodes


def firing_at(episodes: Iterable[AlertEpisode], at: datetime) -> list[AlertEpisode]:
    """Return the episodes firing at ``at``."""
    return [e for e in episodes if e.firing(at)]


def _seconds(value: Any) -> int:
    """A query_range timestamp (float seconds) as whole seconds."""
    return round(float(value))


def _runs(ts: list[int], step: int) -> list[list[int]]:
    """Split sorted evaluation times into unbroken runs (consecutive = one step apart)."""
    runs: list[list[int]] = []
    for t in ts:
        if runs and t - runs[-1][-1] <= step:
            runs[-1].append(t)
        else:
            runs.append([t])
    return runs


def _dt(seconds: int) -> datetime:
    """Unix seconds -> aware UTC datetime."""
    return pd.Timestamp(seconds, unit="s", tz="UTC").to_pydatetime()
