"""The ``Explainer``: fit on healthy history, then explain each incident causally.

For each incident the group's latest samples are compared with the fleet's healthy normal for
its kind; the most anomalous subsystem's target is chosen and its anomaly attributed to its
causes with DoWhy GCM (``analysis.explain.scm``), once per (entity kind, target, variables) model,
fitted lazily and cached. When attribution is impossible, the variables are ranked by robust
z-score instead, and the factors say so. The factors, summary and hints are worded by
``analysis.explain.wording`` and ``analysis.explain.hints``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Self, TypeVar

import networkx as nx
import numpy as np
import pandas as pd

from analysis.explain.group import Group, _gpus_behind, _group_of, _restrict
from analysis.explain.hints import _hints
from analysis.explain.prepare import _fan_normals, _group_table, _prepare, _Prepared
from analysis.explain.scm import (
    _adjust,
    _attribute_anomalies,
    _CannotAttributeError,
    _choose_target,
    _fit_scm,
    _Fitted,
    _jitter,
    _load_slopes,
)
from analysis.explain.template import (
    GPU_SCOPE,
    NODE_SCOPE,
    TARGETS,
    VARS,
    Z_ANOMALOUS,
    _harm,
    _template,
    evidence_variable,
)
from analysis.explain.wording import (
    _describe,
    _entity_of,
    _metric_name,
    _peer_note,
    _summary,
)
from analysis.stats import MAD_TO_SD
from analysis.types import Evidence, Explanation, Factor, FactorBasis, FleetFrames, Incident

logger = logging.getLogger(__name__)

_T = TypeVar("_T", pd.Series, pd.DataFrame)

MAX_TRAIN_ENTITIES = 64  # entities of one kind whose history trains its SCM (sampled beyond)
OWN_LEVEL_KEYS = tuple(v.key for v in VARS.values() if v.own_level)
LATEST_KEYS = tuple(v.key for v in VARS.values() if v.own_level or v.counter)


def _flagged(incident: Incident, group: Group) -> dict[str, Evidence]:
    """The template variables the incident's evidence names, each with its largest deviation.

    Only the group's GPUs' evidence, anomalous (``Z_ANOMALOUS``) in the variable's harmful
    direction (a cooler GPU or a faster fan is no cause), for variables of the group's scope.
    """
    out: dict[str, Evidence] = {}
    gpus = set(group.gpus)
    for ev in incident.evidence:
        key = evidence_variable(ev.feature)
        if key is None or ev.gpu not in gpus or not np.isfinite(ev.z):
            continue
        var = VARS[key]
        if var.scope not in (GPU_SCOPE, NODE_SCOPE) and var.scope not in group.components:
            continue
        if var.harm(ev.z) >= Z_ANOMALOUS and (key not in out or abs(ev.z) > abs(out[key].z)):
            out[key] = ev
    return out


def _ancestry(template: nx.DiGraph, target: str) -> tuple[str, ...]:
    """The variables of ``target``'s causal model: it and its ancestors in the template, sorted
    (the key its fitted model is cached under)."""
    return tuple(sorted(nx.ancestors(template, target) | {target}))


def _from_own_level(data: _T, own: pd.Series | None) -> _T:
    """Return ``data`` with each lifetime level (``Variable.own_level``) less its own normal level.

    ``data`` is one row (a Series) or a table of rows; ``own`` is the entity's own healthy medians
    (None or NaN: unknown, the level is judged as it is).
    """
    out = data.copy()
    for key in OWN_LEVEL_KEYS:
        if key not in (out.columns if isinstance(out, pd.DataFrame) else out.index):
            continue
        base = float(own.get(key, float("nan"))) if own is not None else float("nan")
        if not math.isnan(base):
            out[key] = out[key] - base
    return out


class Explainer:
    """Explain incidents causally: fit on healthy history, attribute each incident's anomaly.

    Parameters
    ----------
    random_state : seed for sampling in DoWhy and subsampling of the history.
    num_distribution_samples : samples for the anomaly scorer's tail probability.
    num_permutations : permutations of the approximate Shapley values.
    max_train_rows : history rows used to fit one SCM (subsampled beyond).
    window : latest samples of the incident whose median is attributed (for counters, already
        counted over ``COUNTER_WINDOW_MINUTES``, and lifetime levels: the latest sample).
    max_factors : factors kept in an explanation.
    min_history : healthy samples (timestamps) needed before DoWhy attribution is tried.
    """

    def __init__(
        self,
        random_state: int = 0,
        *,
        num_distribution_samples: int = 500,
        num_permutations: int = 10,
        max_train_rows: int = 3000,
        window: int = 5,
        max_factors: int = 5,
        min_history: int = 30,
    ) -> None:
        """Store the settings; nothing is fitted until ``fit``/``explain``."""
        self.random_state = random_state
        self.num_distribution_samples = num_distribution_samples
        self.num_permutations = num_permutations
        self.max_train_rows = max_train_rows
        self.window = window
        self.max_factors = max_factors
        self.min_history = min_history

    # ------------------------------------------------------------------ fitting

    def fit(self, history: FleetFrames, graph: nx.DiGraph) -> Self:
        """Learn healthy behaviour from ``history``; SCMs are fitted lazily per kind and cached."""
        self.fan_ref_: dict[str, pd.Series] = _fan_normals(history.node)
        self.history_ = _prepare(history, fan_normals=self.fan_ref_)
        rows = self.history_.rows
        self.history_samples_ = (
            int(rows.index.get_level_values("ts").nunique()) if not rows.empty else 0
        )
        self.history_.fan_ref = self.fan_ref_
        self.graph_ = graph
        self.tables_: dict[str, pd.DataFrame] = {}
        self.models_: dict[tuple[str, str, tuple[str, ...]], _Fitted] = {}
        self.stats_: dict[str, tuple[pd.Series, pd.Series]] = {}
        self.raw_medians_: dict[str, pd.Series] = {}
        self.references_: dict[tuple[str, tuple[str, ...]], pd.Series | None] = {}
        self.load_: dict[str, dict[str, tuple[str, float]]] = {}
        return self

    def warm(self) -> Self:
        """Fit every incident kind's training table and causal models now, not on first use.

        For a refit in the background: an incident's first explanation of its kind then costs
        what a cached one does (the attribution), not the training table and the SCM fits. Each
        kind's models are those an incident whose variables all have data would use; the same
        models lazy fitting builds (the same table, nodes and seed), so explanations are equal.
        """
        if not hasattr(self, "history_"):
            raise RuntimeError("Explainer.warm called before fit(history, graph)")
        kinds = {GPU_SCOPE} | {
            str(d["kind"]) for _n, d in self.graph_.nodes(data=True) if d.get("kind")
        }
        targets = [t for tiers in TARGETS.values() for tier in tiers for t in tier]
        for kind in sorted(kinds):
            table = self._training_table(kind)
            template = _template(set(table.columns))
            for target in targets:
                if target not in template:
                    continue
                nodes = _ancestry(template, target)
                if len(nodes) == 1:
                    continue
                try:
                    self._fitted(kind, target, nodes)
                except _CannotAttributeError as exc:
                    logger.debug("no %s model for %s incidents: %s", target, kind, exc)
        return self

    def _training_table(self, kind: str) -> pd.DataFrame:
        """Return (cached) training rows for groups of ``kind`` drawn from the history."""
        if kind in self.tables_:
            return self.tables_[kind]
        graph = self.graph_
        prepared = self.history_
        present = set(prepared.rows.index.get_level_values("key").unique())
        if kind == GPU_SCOPE:
            entities = sorted(present)
        else:
            entities = [
                n
                for n, d in graph.nodes(data=True)
                if d.get("kind") == kind and any(k in present for k in _gpus_behind(graph, n))
            ]
        rng = np.random.default_rng(self.random_state)
        if len(entities) > MAX_TRAIN_ENTITIES:
            entities = sorted(rng.choice(entities, size=MAX_TRAIN_ENTITIES, replace=False).tolist())
        parts = []
        for ent in entities:
            group = _group_of(
                graph, ent, kind, [k for k in _gpus_behind(graph, ent) if k in present]
            )
            table = _group_table(prepared, group)
            if not table.empty:
                parts.append(_from_own_level(table, table.median(numeric_only=True)))
        table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        if len(table) > self.max_train_rows:
            idx = rng.choice(len(table), size=self.max_train_rows, replace=False)
            table = table.iloc[np.sort(idx)].reset_index(drop=True)
        table = _jitter(table, rng)
        self.raw_medians_[kind] = table.median(numeric_only=True)
        self.load_[kind] = _load_slopes(table)
        table = _adjust(table, self.load_[kind])
        self.tables_[kind] = table
        med = table.median(numeric_only=True)
        mad = (table - med).abs().median(numeric_only=True) * MAD_TO_SD
        floors = pd.Series({c: VARS[c].min_scale if c in VARS else 1.0 for c in table.columns})
        self.stats_[kind] = (med, np.maximum(mad.fillna(0.0), floors.reindex(mad.index)))
        return table

    def _fitted(self, kind: str, target: str, nodes: tuple[str, ...]) -> _Fitted:
        """Return the cached SCM for (kind, target, nodes), fitting it on first use."""
        key = (kind, target, nodes)
        if key in self.models_:
            return self.models_[key]
        if self.history_samples_ < self.min_history:
            raise _CannotAttributeError(
                f"only {self.history_samples_} healthy samples in the history "
                f"(needs {self.min_history})"
            )
        table = self._training_table(kind)[list(nodes)].dropna()
        if len(table) < self.min_history:
            raise _CannotAttributeError(f"only {len(table)} healthy samples to learn from")
        fitted = _fit_scm(table, nodes)
        self.models_[key] = fitted
        return fitted

    # ------------------------------------------------------------------ explaining

    def explain(
        self,
        incident: Incident,
        frames: FleetFrames,
        graph: nx.DiGraph,
        baseline: FleetFrames | None = None,
    ) -> Explanation:
        """Explain one incident: ranked causal factors, rule hints and a one-line summary."""
        if not hasattr(self, "history_"):
            raise RuntimeError("Explainer.explain called before fit(history, graph)")
        try:
            return self._explain(incident, frames, graph, baseline)
        except Exception:
            logger.exception("explaining incident %s failed", incident.id)
            return Explanation(
                summary=f"{incident.title}: no explanation available (analysis failed)",
            )

    def _explain(
        self,
        incident: Incident,
        frames: FleetFrames,
        graph: nx.DiGraph,
        baseline: FleetFrames | None,
    ) -> Explanation:
        """Do the work of ``explain`` (errors handled by the caller)."""
        kind = incident.root_cause.kind
        group_kind = kind if kind in (GPU_SCOPE, NODE_SCOPE) else "component"
        affected = [g.key for g in incident.gpus] or (
            _gpus_behind(graph, incident.root_cause.id) if incident.root_cause.id in graph else []
        )
        group = _group_of(graph, incident.root_cause.id, kind, affected)
        prepared = _prepare(_restrict(frames, group), until=incident.at, fan_normals=self.fan_ref_)
        prepared.fan_ref = self.fan_ref_
        table = _group_table(prepared, group)
        if table.empty:
            return Explanation(
                summary=f"{incident.title}: no recent metrics for the affected GPUs",
                hints=tuple(_hints(pd.Series(dtype=float), {}, group, prepared)),
            )
        tail = table.ffill().tail(self.window)
        raw = tail.median(numeric_only=True)
        # counts over the counter window and lifetime levels already aggregate: their latest value
        latest = [k for k in LATEST_KEYS if k in tail.columns]
        raw[latest] = tail[latest].iloc[-1]
        train_kind = kind
        self._training_table(train_kind)
        ref, own = self._reference(group, baseline, self.raw_medians_[train_kind])
        sample = _adjust(_from_own_level(raw, own), self.load_[train_kind])
        med, scale = self.stats_[train_kind]
        # z against the fleet's normal for this kind (pooled), not the entity's own history: a
        # GPU's own median depends on the load regime it happened to run in (idle vs busy);
        # lifetime levels (remapped rows) are the exception, judged by their change from their own
        # healthy level (``_from_own_level``)
        z = ((sample - med.reindex(sample.index)) / scale.reindex(sample.index)).dropna()
        subsystem, target = _choose_target(z)
        reason = ""
        contributions: dict[str, float] = {}
        if target is not None:
            try:
                contributions = self._attribute(train_kind, target, sample, z)
            except _CannotAttributeError as exc:
                reason = str(exc)
            except Exception as exc:
                logger.exception("causal attribution failed for incident %s", incident.id)
                reason = f"attribution failed ({type(exc).__name__})"
        else:
            reason = "no template variable deviates from healthy behaviour"
        if contributions:
            keyed = self._factors(
                contributions,
                sample=raw,
                ref=ref,
                group=group,
                prepared=prepared,
                fallback_reason=None,
            )
        else:
            # harmful direction only (a cooler GPU is not a cause); symptoms such as an XID count
            # here, since with no cause deviating they are what there is to show
            ranked = {k: max(v, 1e-3) for k, v in _harm(z).items()}
            # With no deviation of its own (its reading, a median of the latest samples, is
            # coarser than the detector's windowed features: a fan that stalls for one sample),
            # what the detector paged on leads, rather than noise below the anomaly threshold.
            flagged = _flagged(incident, group) if target is None else {}
            for key, ev in flagged.items():
                ranked[key] = max(ranked.get(key, 0.0), abs(ev.z))
            keyed = self._factors(
                ranked,
                sample=raw,
                ref=ref,
                group=group,
                prepared=prepared,
                fallback_reason=reason or "degenerate",
                flagged=flagged,
            )
        peer_note = _peer_note(group, prepared, graph) if group_kind == GPU_SCOPE else ""
        top_key = keyed[0][0] if keyed else None
        factors = [f for _, f in keyed]
        summary = _summary(
            incident=incident,
            group=group,
            subsystem=subsystem,
            target=target,
            sample=raw,
            ref=ref,
            z=z,
            factors=factors,
            top_key=top_key,
            peer_note=peer_note,
            prepared=prepared,
        )
        hints = _hints(raw, ref, group, prepared)
        return Explanation(summary=summary, factors=tuple(factors), hints=tuple(hints))

    def _reference(
        self, group: Group, baseline: FleetFrames | None, fleet_median: pd.Series
    ) -> tuple[dict[str, float], pd.Series | None]:
        """Return each variable's normal value for this group, and the group's own medians.

        The baseline frames win over the fitted history, which wins over the fleet median.
        """
        ref = {k: float(v) for k, v in fleet_median.items()}
        key = (group.entity, group.gpus)
        if key not in self.references_:
            hist = _group_table(self.history_, group)
            self.references_[key] = hist.median(numeric_only=True) if not hist.empty else None
        medians = [self.references_[key]]
        if baseline is not None:
            base = _group_table(
                _prepare(_restrict(baseline, group), fan_normals=self.fan_ref_), group
            )
            medians.append(base.median(numeric_only=True) if not base.empty else None)
        own: pd.Series | None = None
        for med in medians:
            if med is None:
                continue
            own = med if own is None else med.combine_first(own)
            for k, v in med.items():
                if not math.isnan(float(v)):
                    ref[str(k)] = float(v)
        return ref, own

    def _attribute(
        self, kind: str, target: str, sample: pd.Series, z: pd.Series
    ) -> dict[str, float]:
        """Attribute the target's anomaly to its ancestors' noise with DoWhy GCM."""
        template = _template(set(self._training_table(kind).columns) & set(sample.dropna().index))
        if target not in template:
            raise _CannotAttributeError(f"{VARS[target].label} has no healthy history")
        nodes = _ancestry(template, target)
        # Keep only ancestors that have data now; an ancestor missing now cannot be attributed.
        nodes = tuple(n for n in nodes if not math.isnan(float(sample.get(n, float("nan")))))
        if len(nodes) == 1:
            return {target: 1.0}
        fitted = self._fitted(kind, target, nodes)
        return _attribute_anomalies(
            fitted,
            target,
            sample,
            random_state=self.random_state,
            num_distribution_samples=self.num_distribution_samples,
            num_permutations=self.num_permutations,
        )

    def _factors(
        self,
        weights: Mapping[str, float],
        *,
        sample: pd.Series,
        ref: Mapping[str, float],
        group: Group,
        prepared: _Prepared,
        fallback_reason: str | None,
        flagged: Mapping[str, Evidence] | None = None,
    ) -> list[tuple[str, Factor]]:
        """Turn contributions (or z-scores) into ranked factors with normalised shares.

        ``flagged``: variables the detector's evidence names (:func:`_flagged`), said so."""
        items = [(k, abs(v)) for k, v in weights.items() if k in VARS and np.isfinite(v)]
        total = sum(v for _, v in items)
        if total <= 0:
            return []
        items.sort(key=lambda kv: (-kv[1], kv[0]))
        factors: list[tuple[str, Factor]] = []
        for key, weight in items[: self.max_factors]:
            share = weight / total
            if share < 0.01 and factors:
                break
            var = VARS[key]
            detail = _describe(var, sample.get(key), ref.get(key), group, prepared)
            ev = (flagged or {}).get(key)
            basis: FactorBasis = "attribution"
            if ev is not None:
                basis = "detector"
                detail += (
                    f" over the latest samples; flagged by the detector: {ev.feature} at "
                    f"{ev.z:+.1f} robust sd on {ev.gpu} (causal attribution unavailable, "
                    f"{fallback_reason})"
                )
            elif fallback_reason is not None:
                basis = "deviation"
                detail += f" (ranked by robust z-score: causal attribution unavailable, {fallback_reason})"
            factors.append(
                (
                    key,
                    Factor(
                        name=_metric_name(var, group, prepared),
                        entity=_entity_of(var, group),
                        share=round(float(share), 4),
                        detail=detail,
                        basis=basis,
                    ),
                )
            )
        return factors
