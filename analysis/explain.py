"""Causal explanations of incidents: DoWhy GCM anomaly attribution, rule hints, one-line summary.

A causal template of physical causes is laid over each incident:

- thermal: CRAC supply air -> inlet air -> GPU temperature <- power <- utilisation; fan speed ->
  GPU temperature (throttling and clocks are downstream symptoms, used for hints);
- power: PDU output voltage -> PSU voltage -> power (power violations are symptoms);
- memory: correctable ECC -> remapped rows -> uncorrectable ECC (XID 48/63/64 are symptoms);
- NVLink: switch port errors -> NVLink CRC (XID 74 is a symptom); PCIe replays (XID 79).

An invertible structural causal model with linear additive-noise mechanisms is fitted on healthy
history, once per (entity kind, target, variables) and cached; ``gcm.attribute_anomalies`` then
splits the incident's anomaly among the target's ancestors. Coefficients are least squares on the
history, floored by physics priors where healthy data cannot identify them (a fan that never failed,
a voltage that never sagged) or shows them with the wrong sign (fans follow temperature under a fan
curve). Counters become per-sample rates with a small jitter so that a counter that was always 0
does not swallow the blame. When attribution is impossible, the variables are ranked by robust
z-score instead, and the factors say so. ``dowhy`` is imported lazily (it takes seconds).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Self

import networkx as nx
import numpy as np
import pandas as pd

from analysis.types import Explanation, Factor, FleetFrames, GpuRef, Incident

logger = logging.getLogger(__name__)

GPU_SCOPE = "gpu"
NODE_SCOPE = "node"
INLET_SENSOR = "Inlet Temp"
MEMORY_XIDS = (48, 63, 64)
NVLINK_XIDS = (74,)
PCIE_XIDS = (79,)
Z_ANOMALOUS = 3.0
THROTTLE_KEYS = ("thermal_violation", "power_violation")  # µs counters -> share of time
LOAD_KEYS = ("util", "sm_clock")  # follow the workload: never a fault by themselves
# The workload is conditioned on, not attributed to: GPU temperature is taken "at the same
# power" and power "at the same utilisation" (slopes fitted on the healthy history).
LOAD_ADJUST: tuple[tuple[str, str], ...] = (("temp", "power"), ("power", "util"))


@dataclass(frozen=True)
class Variable:
    """One variable of the causal template and how to read and describe it."""

    key: str
    scope: str  # gpu | node | pdu | cooling | switch
    metric: str  # metric name in the frames (the component's topology key for components)
    label: str
    unit: str
    subsystem: str
    counter: bool = False
    min_scale: float = 1.0
    relative: bool = False  # describe as a percentage change
    bad: int = 1  # the harmful direction: +1 higher is bad, -1 lower is bad, 0 both
    in_scm: bool = True  # False: a symptom (used for target choice and hints only)


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "supply_temp",
        "cooling",
        "supply_temp_celsius",
        "CRAC supply air",
        "°C",
        "thermal",
        min_scale=0.3,
    ),
    Variable(
        "inlet", NODE_SCOPE, "ipmi_temperature_celsius", "inlet air", "°C", "thermal", min_scale=0.5
    ),
    # The slowest fan as a fraction of the node's median fan: the fan curve cancels out.
    Variable(
        "fan",
        NODE_SCOPE,
        "ipmi_fan_speed_rpm",
        "slowest fan vs its siblings",
        "",
        "thermal",
        min_scale=0.03,
        bad=-1,
    ),
    Variable(
        "temp", GPU_SCOPE, "DCGM_FI_DEV_GPU_TEMP", "GPU temperature", "°C", "thermal", min_scale=1.0
    ),
    Variable(
        "util",
        GPU_SCOPE,
        "DCGM_FI_DEV_GPU_UTIL",
        "GPU utilisation",
        "%",
        "power",
        min_scale=5.0,
        in_scm=False,
    ),
    Variable(
        "pdu_volts",
        "pdu",
        "output_volts",
        "PDU output voltage",
        "V",
        "power",
        min_scale=0.5,
        relative=True,
        bad=0,
    ),
    Variable(
        "psu_volts",
        NODE_SCOPE,
        "ipmi_voltage_volts",
        "PSU voltage",
        "V",
        "power",
        min_scale=0.05,
        relative=True,
        bad=0,
    ),
    Variable(
        "power",
        GPU_SCOPE,
        "DCGM_FI_DEV_POWER_USAGE",
        "power draw",
        "W",
        "power",
        min_scale=10.0,
        relative=True,
        bad=0,
    ),
    Variable(
        "sbe",
        GPU_SCOPE,
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "correctable ECC errors",
        "/sample",
        "memory",
        counter=True,
        min_scale=0.5,
    ),
    Variable(
        "remap",
        GPU_SCOPE,
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "remapped rows",
        "/sample",
        "memory",
        counter=True,
        min_scale=0.5,
    ),
    Variable(
        "dbe",
        GPU_SCOPE,
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "uncorrectable ECC (DBE)",
        "/sample",
        "memory",
        counter=True,
        min_scale=0.5,
    ),
    Variable(
        "port_errors",
        "switch",
        "port_errors",
        "switch port errors",
        "/sample",
        "network",
        counter=True,
        min_scale=0.5,
    ),
    Variable(
        "nvlink",
        GPU_SCOPE,
        "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
        "NVLink CRC errors",
        "/sample",
        "network",
        counter=True,
        min_scale=0.5,
    ),
    Variable(
        "pcie",
        GPU_SCOPE,
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        "PCIe replays",
        "/sample",
        "pcie",
        counter=True,
        min_scale=0.5,
    ),
    # Symptoms: downstream of the causes above, never attributed to.
    Variable(
        "thermal_violation",
        GPU_SCOPE,
        "DCGM_FI_DEV_THERMAL_VIOLATION",
        "thermal throttling",
        "of the time",
        "thermal",
        min_scale=0.05,
        in_scm=False,
    ),
    Variable(
        "sm_clock",
        GPU_SCOPE,
        "DCGM_FI_DEV_SM_CLOCK",
        "SM clock",
        "MHz",
        "thermal",
        min_scale=50.0,
        in_scm=False,
    ),
    Variable(
        "power_violation",
        GPU_SCOPE,
        "DCGM_FI_DEV_POWER_VIOLATION",
        "power capping",
        "of the time",
        "power",
        min_scale=0.05,
        in_scm=False,
    ),
    Variable(
        "uncorrectable_remap",
        GPU_SCOPE,
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "uncorrectable remapped rows",
        "/sample",
        "memory",
        counter=True,
        min_scale=0.5,
        in_scm=False,
    ),
    Variable(
        "remap_failure",
        GPU_SCOPE,
        "DCGM_FI_DEV_ROW_REMAP_FAILURE",
        "row remap failure",
        "",
        "memory",
        min_scale=0.1,
        in_scm=False,
    ),
    Variable(
        "xid_memory",
        GPU_SCOPE,
        "DCGM_FI_DEV_XID_ERRORS",
        "XID 48/63/64",
        "",
        "memory",
        min_scale=0.1,
        in_scm=False,
    ),
    Variable(
        "xid_nvlink",
        GPU_SCOPE,
        "DCGM_FI_DEV_XID_ERRORS",
        "XID 74",
        "",
        "network",
        min_scale=0.1,
        in_scm=False,
    ),
    Variable(
        "xid_pcie",
        GPU_SCOPE,
        "DCGM_FI_DEV_XID_ERRORS",
        "XID 79",
        "",
        "pcie",
        min_scale=0.1,
        in_scm=False,
    ),
)
VARS: Mapping[str, Variable] = {v.key: v for v in VARIABLES}


@dataclass(frozen=True)
class Edge:
    """A physical cause -> effect edge with the sign physics demands and a prior slope."""

    parent: str
    child: str
    sign: int
    prior: float  # slope in the child's units per parent unit; "ratio" edges scale by medians
    ratio: bool = False  # prior is an elasticity: child_median / parent_median * prior


EDGES: tuple[Edge, ...] = (
    Edge("supply_temp", "inlet", +1, 1.0),
    Edge("inlet", "temp", +1, 1.0),
    Edge("fan", "temp", -1, 12.0),
    Edge("pdu_volts", "psu_volts", +1, 1.0, ratio=True),
    Edge("psu_volts", "power", +1, 1.0, ratio=True),
    Edge("sbe", "remap", +1, 0.0),
    Edge("remap", "dbe", +1, 0.0),
    Edge("port_errors", "nvlink", +1, 0.0),
)

# For each subsystem, the candidate attribution targets in tiers: the first tier holding an
# anomalous variable wins, and within a tier the most anomalous one. The PSU rail comes before GPU
# power because it mediates a PDU sag (power capping follows it, non-linearly).
TARGETS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "thermal": (("temp", "inlet"), ("supply_temp",), ("fan",)),
    "power": (("psu_volts",), ("power",), ("pdu_volts",)),
    "memory": (("dbe", "remap"), ("sbe",)),
    "network": (("nvlink",), ("port_errors",)),
    "pcie": (("pcie",),),
}
COMPONENT_ROLES: Mapping[str, str] = {"pdu": "power", "cooling": "cooling", "switch": "network"}
COMPONENT_METRIC_HINTS: Mapping[str, tuple[str, ...]] = {
    "pdu": ("volt",),
    "cooling": ("supply", "temp"),
    "switch": ("error",),
}


@dataclass(frozen=True)
class Group:
    """The entity an incident is explained on: its GPUs, nodes and upstream components."""

    entity: str
    kind: str
    gpus: tuple[str, ...]
    nodes: tuple[str, ...]
    components: Mapping[str, str]  # component kind -> component id


@dataclass
class _Fitted:
    """A fitted SCM for one (entity kind, target, variables)."""

    scm: Any
    nodes: tuple[str, ...]


@dataclass
class _Prepared:
    """Frames turned into per-GPU rows of template variables (and per-sensor fans)."""

    rows: pd.DataFrame  # index (ts, key); columns: template variables of gpu and node scope
    fans: pd.DataFrame  # index (ts, node); columns: fan sensors
    components: pd.DataFrame  # index (ts, component); columns: template keys of components
    component_metrics: dict[tuple[str, str], str]  # (component, key) -> metric name used
    fan_ref: dict[str, pd.Series] | None = None  # node -> each fan's normal share of the median


class Explainer:
    """Explain incidents causally: fit on healthy history, attribute each incident's anomaly.

    Parameters
    ----------
    random_state : seed for sampling in DoWhy and subsampling of the history.
    num_distribution_samples : samples for the anomaly scorer's tail probability.
    num_permutations : permutations of the approximate Shapley values.
    max_train_rows : history rows used to fit one SCM (subsampled beyond).
    window : latest samples of the incident whose median is attributed.
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
        if len(entities) > 64:
            entities = sorted(rng.choice(entities, size=64, replace=False).tolist())
        parts = []
        for ent in entities:
            group = _group_of(
                graph, ent, kind, [k for k in _gpus_behind(graph, ent) if k in present]
            )
            table = _group_table(prepared, group)
            if not table.empty:
                parts.append(table)
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
        mad = (table - med).abs().median(numeric_only=True) * 1.4826
        floors = pd.Series({c: VARS[c].min_scale if c in VARS else 1.0 for c in table.columns})
        self.stats_[kind] = (med, np.maximum(mad.fillna(0.0), floors.reindex(mad.index)))
        return table

    def _fitted(self, kind: str, target: str, nodes: tuple[str, ...]) -> _Fitted:
        """Return the cached SCM for (kind, target, nodes), fitting it on first use."""
        key = (kind, target, nodes)
        if key in self.models_:
            return self.models_[key]
        from dowhy import gcm
        from dowhy.gcm.ml.regression import create_linear_regressor_with_given_parameters

        gcm.config.disable_progress_bars()
        if self.history_samples_ < self.min_history:
            raise _CannotAttributeError(
                f"only {self.history_samples_} healthy samples in the history "
                f"(needs {self.min_history})"
            )
        table = self._training_table(kind)[list(nodes)].dropna()
        if len(table) < self.min_history:
            raise _CannotAttributeError(f"only {len(table)} healthy samples to learn from")
        dag = nx.DiGraph()
        dag.add_nodes_from(nodes)
        dag.add_edges_from(
            (e.parent, e.child) for e in EDGES if e.parent in nodes and e.child in nodes
        )
        scm = gcm.InvertibleStructuralCausalModel(dag)
        for node in nodes:
            parents = sorted(dag.predecessors(node))
            if not parents:
                scm.set_causal_mechanism(node, gcm.EmpiricalDistribution())
                continue
            coefs, intercept = _slopes(table, node, parents)
            scm.set_causal_mechanism(
                node,
                gcm.AdditiveNoiseModel(
                    create_linear_regressor_with_given_parameters(coefs, intercept)
                ),
            )
        gcm.fit(scm, table)
        fitted = _Fitted(scm=scm, nodes=nodes)
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
        train_kind = kind
        self._training_table(train_kind)
        sample = _adjust(raw, self.load_[train_kind])
        med, scale = self.stats_[train_kind]
        # z against the fleet's normal for this kind (pooled), not the entity's own history: a
        # GPU's own median depends on the load regime it happened to run in (idle vs busy)
        ref, _own = self._reference(group, baseline, self.raw_medians_[train_kind])
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
            keyed = self._factors(
                ranked,
                sample=raw,
                ref=ref,
                group=group,
                prepared=prepared,
                fallback_reason=reason or "degenerate",
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
        nodes = tuple(sorted(nx.ancestors(template, target) | {target}))
        # Keep only ancestors that have data now; an ancestor missing now cannot be attributed.
        nodes = tuple(n for n in nodes if not math.isnan(float(sample.get(n, float("nan")))))
        if len(nodes) == 1:
            return {target: 1.0}
        fitted = self._fitted(kind, target, nodes)
        from dowhy import gcm
        from dowhy.gcm.shapley import ShapleyApproximationMethods, ShapleyConfig
        from dowhy.gcm.util.general import set_random_seed

        gcm.config.disable_progress_bars()
        set_random_seed(self.random_state)
        anomaly = pd.DataFrame(
            [sample[list(fitted.nodes)].astype(float).to_numpy()], columns=list(fitted.nodes)
        )
        contrib = gcm.attribute_anomalies(
            fitted.scm,
            target,
            anomaly_samples=anomaly,
            num_distribution_samples=self.num_distribution_samples,
            shapley_config=ShapleyConfig(
                approximation_method=ShapleyApproximationMethods.PERMUTATION,
                num_permutations=self.num_permutations,
                n_jobs=1,
            ),
        )
        out = {str(k): float(np.mean(v)) for k, v in contrib.items()}
        total = sum(abs(v) for v in out.values())
        if not np.isfinite(total) or total <= 1e-12:
            raise _CannotAttributeError("the attribution was degenerate (all contributions 0)")
        return out

    def _factors(
        self,
        weights: Mapping[str, float],
        *,
        sample: pd.Series,
        ref: Mapping[str, float],
        group: Group,
        prepared: _Prepared,
        fallback_reason: str | None,
    ) -> list[tuple[str, Factor]]:
        """Turn contributions (or z-scores) into ranked factors with normalised shares."""
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
            if fallback_reason is not None:
                detail += f" (ranked by robust z-score: causal attribution unavailable, {fallback_reason})"
            factors.append(
                (
                    key,
                    Factor(
                        name=_metric_name(var, group, prepared),
                        entity=_entity_of(var, group),
                        share=round(float(share), 4),
                        detail=detail,
                    ),
                )
            )
        return factors


class _CannotAttributeError(Exception):
    """DoWhy cannot attribute this incident (too little or degenerate data)."""


# ---------------------------------------------------------------------- preparing frames


def _fan_wide(node: pd.DataFrame) -> pd.DataFrame:
    """Return fan speeds as (ts, node) x sensor."""
    f = node[node["metric"] == "ipmi_fan_speed_rpm"]
    if f.empty:
        return pd.DataFrame()
    return (
        f.drop_duplicates(["ts", "node", "sensor"], keep="last")
        .set_index(["ts", "node", "sensor"])["value"]
        .unstack("sensor")
        .sort_index()
    )


def _fan_normals(node: pd.DataFrame) -> dict[str, pd.Series]:
    """Return each node's fans' normal share of the node's median fan."""
    fans = _fan_wide(node)
    if fans.empty:
        return {}
    return {str(n): r.median() for n, r in _fan_ratios(fans).groupby(level="node")}


def _slowest_fan(fans: pd.DataFrame, normals: Mapping[str, pd.Series] | None) -> pd.Series:
    """The slowest fan relative to its own normal share of the node's median (1 = normal)."""
    ratios = _fan_ratios(fans)
    if normals:
        nodes = [str(n) for n in ratios.index.get_level_values("node")]
        # one row of normal shares per node, then one per row of ``ratios`` (NaN: no normal)
        table = pd.DataFrame(
            {n: s for n, s in normals.items() if not s.empty}, columns=list(normals)
        ).T.reindex(columns=ratios.columns)
        base = pd.DataFrame(
            table.reindex(nodes).to_numpy(dtype=float), index=ratios.index, columns=ratios.columns
        )
        ratios = ratios / base.fillna(1.0)
    return ratios.min(axis=1)


def _prepare(
    frames: FleetFrames, until: Any = None, fan_normals: Mapping[str, pd.Series] | None = None
) -> _Prepared:
    """Turn tidy frames into per-GPU rows of template variables (counters as rates)."""
    gpu = frames.gpu
    node = frames.node
    comp = frames.component
    if until is not None:
        cut = pd.Timestamp(until)
        gpu = gpu[gpu["ts"] <= cut]
        node = node[node["ts"] <= cut]
        comp = comp[comp["ts"] <= cut]
    gpu_vars = [v for v in VARIABLES if v.scope == GPU_SCOPE]
    metrics = sorted({v.metric for v in gpu_vars})
    g = gpu[gpu["metric"].isin(metrics)]
    if g.empty:
        rows = pd.DataFrame(index=pd.MultiIndex.from_arrays([[], []], names=["ts", "key"]))
    else:
        wide = replace(frames, gpu=g).gpu_wide()
        cols: dict[str, pd.Series] = {}
        for v in gpu_vars:
            if v.metric not in wide.columns:
                continue
            series = wide[v.metric]
            if v.key.startswith("xid_"):
                codes = {
                    "xid_memory": MEMORY_XIDS,
                    "xid_nvlink": NVLINK_XIDS,
                    "xid_pcie": PCIE_XIDS,
                }
                series = series.isin(codes[v.key]).astype(float).where(series.notna())
            elif v.key in THROTTLE_KEYS:
                secs = (
                    pd.Series(wide.index.get_level_values("ts"), index=wide.index)
                    .groupby(level="key")
                    .diff()
                    .dt.total_seconds()
                )
                series = (series.groupby(level="key").diff().clip(lower=0.0) / 1e6 / secs).clip(
                    upper=1.0
                )
            elif v.counter:
                series = series.groupby(level="key").diff().clip(lower=0.0)
            cols[v.key] = series
        rows = pd.DataFrame(cols).swaplevel().sort_index()
        rows.index = rows.index.set_names(["ts", "key"])
    # node variables
    fans = pd.DataFrame()
    node_cols: dict[str, pd.Series] = {}
    if not node.empty:
        fans = _fan_wide(node)
        if not fans.empty:
            node_cols["fan"] = _slowest_fan(fans, fan_normals)
        t = node[node["metric"] == "ipmi_temperature_celsius"]
        if not t.empty:
            inlet = t[t["sensor"].astype(str).str.lower().str.contains("inlet")]
            if inlet.empty:
                inlet = t
            node_cols["inlet"] = inlet.groupby(["ts", "node"])["value"].mean()
        vlt = node[node["metric"] == "ipmi_voltage_volts"]
        if not vlt.empty:
            node_cols["psu_volts"] = vlt.groupby(["ts", "node"])["value"].mean()
    if node_cols and not rows.empty:
        node_table = pd.DataFrame(node_cols)
        keys = rows.index.get_level_values("key")
        node_of = {k: k.rpartition("/")[0] for k in keys.unique()}
        nodes = keys.map(node_of)
        idx = pd.MultiIndex.from_arrays([rows.index.get_level_values("ts"), nodes])
        joined = node_table.reindex(idx)
        for col in node_table.columns:
            rows[col] = joined[col].to_numpy()
    # component variables
    comp_metrics: dict[tuple[str, str], str] = {}
    comp_cols: dict[str, pd.Series] = {}
    if not comp.empty:
        for (cid, metric), part in comp.groupby(["component", "metric"], sort=True):
            key = _component_key(str(metric))
            if key is None or (str(cid), key) in comp_metrics:
                continue
            comp_metrics[(str(cid), key)] = str(metric)
            s = part.drop_duplicates("ts", keep="last").set_index("ts")["value"].sort_index()
            if VARS[key].counter:
                s = s.diff().clip(lower=0.0)
            s.index = pd.MultiIndex.from_arrays(
                [s.index, [str(cid)] * len(s)], names=["ts", "component"]
            )
            comp_cols.setdefault(key, []).append(s)  # type: ignore[arg-type, union-attr]
    components = (
        pd.DataFrame({k: pd.concat(v) for k, v in comp_cols.items()})  # type: ignore[arg-type]
        if comp_cols
        else pd.DataFrame()
    )
    return _Prepared(rows=rows, fans=fans, components=components, component_metrics=comp_metrics)


def _restrict(frames: FleetFrames, group: Group) -> FleetFrames:
    """Keep only the group's nodes (its GPUs and their peers) and components."""
    nodes = list(group.nodes)
    comps = list(group.components.values())
    return FleetFrames(
        gpu=frames.gpu[frames.gpu["node"].isin(nodes)],
        node=frames.node[frames.node["node"].isin(nodes)],
        component=frames.component[frames.component["component"].isin(comps)],
        up=frames.up,
        start=frames.start,
        end=frames.end,
        step=frames.step,
    )


def _component_key(metric: str) -> str | None:
    """Map a component's topology metric key to a template variable, or None."""
    m = metric.lower()
    if "volt" in m:
        return "pdu_volts"
    if "temp" in m or "celsius" in m:
        return "supply_temp"
    if "error" in m:
        return "port_errors"
    return None


def _gpus_behind(graph: nx.DiGraph, entity: str) -> list[str]:
    """Return the GPU keys depending on ``entity`` (itself if a GPU)."""
    if entity not in graph:
        return []
    if graph.nodes[entity].get("kind") == GPU_SCOPE:
        return [entity]
    return sorted(
        n for n in nx.descendants(graph, entity) if graph.nodes[n].get("kind") == GPU_SCOPE
    )


def _group_of(graph: nx.DiGraph, entity: str, kind: str, gpus: Sequence[str]) -> Group:
    """Describe the group an incident is explained on."""
    keys = tuple(sorted(gpus))
    nodes = tuple(sorted({GpuRef.parse(k).node for k in keys}))
    comps: dict[str, str] = {}
    if kind in COMPONENT_ROLES:
        comps[kind] = entity
    for node in nodes:
        if node not in graph:
            continue
        for pred in graph.predecessors(node):
            pk = graph.nodes[pred].get("kind")
            if pk in COMPONENT_ROLES and pk not in comps:
                comps[pk] = pred
    return Group(entity=entity, kind=kind, gpus=keys, nodes=nodes, components=comps)


def _group_table(prepared: _Prepared, group: Group) -> pd.DataFrame:
    """Return one row per timestamp: GPU/node variables averaged over the group, plus components."""
    rows = prepared.rows
    if rows.empty or not group.gpus:
        return pd.DataFrame()
    keys = rows.index.get_level_values("key")
    part = rows[keys.isin(group.gpus)]
    if part.empty:
        return pd.DataFrame()
    table = part.groupby(level="ts").mean()
    comps = prepared.components
    if not comps.empty:
        for ckind, cid in group.components.items():
            for var in VARIABLES:
                if var.scope != ckind or var.key not in comps.columns:
                    continue
                try:
                    series = comps[var.key].xs(cid, level="component")
                except KeyError:
                    continue
                table[var.key] = series.reindex(table.index).to_numpy()
    table = table.dropna(axis=1, how="all")
    return table


def _jitter(table: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Add a small jitter to counters and constant columns so no mechanism is degenerate."""
    if table.empty:
        return table
    out = table.copy()
    for col in out.columns:
        var = VARS.get(str(col))
        std = float(out[col].std()) if len(out) > 1 else 0.0
        if (var is not None and var.counter) or not std > 0:
            amp = 0.05 * (var.min_scale if var is not None else 1.0)
            out[col] = out[col] + rng.normal(0.0, amp, size=len(out))
    return out


def _load_slopes(table: pd.DataFrame) -> dict[str, tuple[str, float]]:
    """Fit how temperature follows power and power follows utilisation (with the other causes)."""
    out: dict[str, tuple[str, float]] = {}
    for child, load in LOAD_ADJUST:
        if child not in table.columns or load not in table.columns:
            continue
        others = [e.parent for e in EDGES if e.child == child and e.parent in table.columns]
        sub = table[[load, *others, child]].dropna()
        if len(sub) < 10 or not float(sub[load].std()) > 0:
            continue
        x = sub[[load, *others]].to_numpy(dtype=float)
        y = sub[child].to_numpy(dtype=float)
        coef, *_ = np.linalg.lstsq(x - x.mean(axis=0), y - y.mean(), rcond=None)
        out[child] = (load, max(0.0, float(coef[0])))
    return out


def _adjust(data: Any, slopes: Mapping[str, tuple[str, float]]) -> Any:
    """Condition on the workload: subtract the load's share from temperature and power."""
    out = data.copy()
    keys = data.columns if isinstance(data, pd.DataFrame) else data.index
    for child, (load, slope) in slopes.items():
        if child in keys and load in keys:
            out[child] = data[child] - slope * data[load]
    return out


def _template(available: set[str]) -> nx.DiGraph:
    """Return the causal template restricted to the available SCM variables."""
    dag = nx.DiGraph()
    dag.add_nodes_from(k for k in available if k in VARS and VARS[k].in_scm)
    for e in EDGES:
        if e.parent in dag and e.child in dag:
            dag.add_edge(e.parent, e.child)
    return dag


def _slopes(table: pd.DataFrame, child: str, parents: list[str]) -> tuple[np.ndarray, float]:
    """Least-squares slopes, replaced by the physics prior where wrong-signed or too small."""
    x = table[parents].to_numpy(dtype=float)
    y = table[child].to_numpy(dtype=float)
    xc = x - x.mean(axis=0)
    yc = y - y.mean()
    coef, *_ = np.linalg.lstsq(xc, yc, rcond=None)
    edges = {(e.parent, e.child): e for e in EDGES}
    med = table.median()
    for i, parent in enumerate(parents):
        edge = edges[(parent, child)]
        prior = edge.prior
        if edge.ratio:
            denom = float(med[parent])
            prior = prior * float(med[child]) / denom if abs(denom) > 1e-9 else 0.0
        prior = abs(prior) * edge.sign
        fitted = float(coef[i])
        if fitted * edge.sign < 0 or abs(fitted) < 0.5 * abs(prior):
            coef[i] = prior
    intercept = float(np.mean(y - x @ coef))
    return np.asarray(coef, dtype=float), intercept


def _harm(z: pd.Series) -> dict[str, float]:
    """Return each variable's z in its harmful direction (a cooler GPU is not an anomaly)."""
    out: dict[str, float] = {}
    for key, value in z.items():
        var = VARS.get(str(key))
        if var is None or var.key in LOAD_KEYS:
            continue
        v = float(value)
        out[var.key] = abs(v) if var.bad == 0 else max(0.0, v * var.bad)
    return out


def _choose_target(z: pd.Series) -> tuple[str | None, str | None]:
    """Pick the most anomalous subsystem and, in it, the target nearest to the cause."""
    harm = _harm(z)
    best: tuple[float, str] | None = None
    for sub in TARGETS:
        # causes, not symptoms: a GPU at its power cap is normal, and a symptom without an
        # observed cause has nothing to attribute to (the z-score fallback ranks it instead)
        vals = [v for k, v in harm.items() if VARS[k].subsystem == sub and VARS[k].in_scm]
        if vals and (best is None or max(vals) > best[0]):
            best = (max(vals), sub)
    if best is None or best[0] < Z_ANOMALOUS:
        return (best[1] if best else None), None
    sub = best[1]
    for tier in TARGETS[sub]:
        hits = [k for k in tier if harm.get(k, 0.0) >= Z_ANOMALOUS]
        if hits:
            return sub, max(hits, key=lambda k: harm[k])
    return sub, None


# ---------------------------------------------------------------------- words


def _metric_name(var: Variable, group: Group, prepared: _Prepared) -> str:
    """Return the metric name a factor is named by (the topology key for components)."""
    if var.scope in COMPONENT_ROLES:
        cid = group.components.get(var.scope, "")
        return prepared.component_metrics.get((cid, var.key), var.metric)
    return var.metric


def _entity_of(var: Variable, group: Group) -> str:
    """Return the entity a factor belongs to."""
    if var.scope in COMPONENT_ROLES:
        return group.components.get(var.scope, group.entity)
    if var.scope == NODE_SCOPE:
        return group.nodes[0] if len(group.nodes) == 1 else group.entity
    return group.gpus[0] if len(group.gpus) == 1 else group.entity


def _fmt(value: float) -> str:
    """Format a number compactly."""
    a = abs(value)
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if a else "0"


def _fan_ratios(fans: pd.DataFrame) -> pd.DataFrame:
    """Return each fan sensor's speed as a fraction of its node's median fan at that time."""
    return fans.div(fans.median(axis=1).where(lambda x: x > 0), axis=0)


def _worst_fan(
    group: Group, prepared: _Prepared, ref_fans: pd.Series | None = None
) -> tuple[str, float, float, float]:
    """Return the slowest fan vs its siblings: (sensor, change vs its normal, rpm, siblings rpm)."""
    fans = prepared.fans
    nan = float("nan")
    if fans.empty:
        return "", nan, nan, nan
    part = fans[fans.index.get_level_values("node").isin(group.nodes)]
    if part.empty:
        return "", nan, nan, nan
    recent = part.groupby(level="node").tail(5)
    ratios = _fan_ratios(recent)
    best: tuple[str, float, float, float] = ("", nan, nan, nan)
    for node, rows in ratios.groupby(level="node"):
        now = rows.median()
        normal = prepared.fan_ref.get(str(node)) if prepared.fan_ref else None
        base = normal.reindex(now.index).fillna(1.0) if normal is not None else 1.0
        change = (now / base - 1.0).dropna()
        if change.empty:
            continue
        sensor = str(change.idxmin())
        if math.isnan(best[1]) or change[sensor] < best[1]:
            rpm = recent.xs(node, level="node")
            best = (
                sensor if len(group.nodes) == 1 else f"{node} {sensor}",
                float(change[sensor]),
                float(rpm[sensor].median()),
                float(rpm.median(axis=1).median()),
            )
    return best


def _describe(
    var: Variable,
    value: Any,
    ref: Any,
    group: Group,
    prepared: _Prepared,
) -> str:
    """Describe one variable's deviation in a short human phrase."""
    if value is None or ref is None or math.isnan(float(value)) or math.isnan(float(ref)):
        return var.label
    v, r = float(value), float(ref)
    if var.key in THROTTLE_KEYS:
        return f"{var.label} {v * 100:.0f} % of the time (normally {r * 100:.0f} %)"
    if var.key == "fan":
        sensor, change, rpm, siblings = _worst_fan(group, prepared)
        if sensor and not math.isnan(change):
            return (
                f"{sensor} speed {change * 100:+.0f} % ({rpm:.0f} rpm vs {siblings:.0f} rpm "
                "for its siblings)"
            )
    if var.relative and abs(r) > 1e-9:
        pct = (v - r) / abs(r) * 100
        return f"{var.label} {pct:+.0f} % ({_fmt(v)} {var.unit} vs {_fmt(r)} {var.unit})"
    if var.counter:
        return f"{var.label} {_fmt(v)}{var.unit} vs {_fmt(r)} normally"
    if var.unit:
        return f"{var.label} {v - r:+.1f} {var.unit} ({_fmt(v)} vs {_fmt(r)} {var.unit})"
    return f"{var.label} {_fmt(v)} vs {_fmt(r)}"


def _short(
    var: Variable, value: Any, ref: Any, group: Group, prepared: _Prepared
) -> tuple[str, str]:
    """Return a factor's short label and change, e.g. ("FAN2 speed", "-38 %")."""
    if var.key == "fan":
        sensor, change, _rpm, _sib = _worst_fan(group, prepared)
        if sensor and not math.isnan(change):
            return f"{sensor} speed", f"{change * 100:+.0f} %"
    if value is None or ref is None or math.isnan(float(value)) or math.isnan(float(ref)):
        return var.label, ""
    v, r = float(value), float(ref)
    if var.relative and abs(r) > 1e-9:
        return var.label, f"{(v - r) / abs(r) * 100:+.0f} %"
    if var.counter:
        return var.label, f"{_fmt(v)}{var.unit}, normally {_fmt(r)}"
    if not var.unit:  # an event flag (XID seen, remap failure)
        return var.label, ""
    return var.label, f"{v - r:+.1f} {var.unit}".rstrip()


def _peer_note(group: Group, prepared: _Prepared, graph: nx.DiGraph) -> str:
    """Say how much hotter a GPU runs than its peers on the node, and at what power."""
    if len(group.gpus) != 1:
        return ""
    key = group.gpus[0]
    rows = prepared.rows
    if rows.empty or "temp" not in rows.columns:
        return ""
    node = GpuRef.parse(key).node
    keys = rows.index.get_level_values("key")
    peers = [k for k in keys.unique() if k != key and GpuRef.parse(k).node == node]
    if not peers:
        return ""
    last_ts = rows.index.get_level_values("ts").unique().sort_values()[-5:]
    recent = rows[rows.index.get_level_values("ts").isin(last_ts)]
    rk = recent.index.get_level_values("key")
    own = recent[rk == key]
    other = recent[rk.isin(peers)]
    if own.empty or other.empty:
        return ""
    dt = float(own["temp"].median() - other.groupby(level="key")["temp"].median().median())
    if abs(dt) < 2:
        return ""
    word = "hotter" if dt > 0 else "cooler"
    power_note = ""
    if "power" in recent.columns:
        p_own = float(own["power"].median())
        p_peer = float(other.groupby(level="key")["power"].median().median())
        if p_peer > 0:
            dp = (p_own - p_peer) / p_peer
            power_note = " at the same power" if abs(dp) < 0.1 else f" at {dp * 100:+.0f} % power"
    n = len(peers)
    return f"runs {abs(dt):.0f} °C {word} than its {n} peer{'s' if n != 1 else ''}{power_note}"


_SYMPTOMS: Mapping[str, tuple[str, str]] = {
    "power_violation": ("power_violation", "power violations"),
    "thermal_violation": ("thermal_violation", "thermal throttling"),
    "temp": ("temp", "high temperatures"),
    "power": ("power", "abnormal power draw"),
    "xid_memory": ("xid_memory", "memory XIDs"),
    "sbe": ("sbe", "ECC errors"),
    "nvlink": ("nvlink", "NVLink errors"),
    "xid_nvlink": ("xid_nvlink", "XID 74"),
    "pcie": ("pcie", "PCIe replays"),
    "util": ("util", "utilisation changes"),
}


def _symptom_phrase(group: Group, prepared: _Prepared, subsystem: str | None) -> str:
    """Count the group's GPUs showing the subsystem's most telling symptom."""
    rows = prepared.rows
    if rows.empty:
        return ""
    keys = rows.index.get_level_values("key")
    part = rows[keys.isin(group.gpus)]
    if part.empty:
        return ""
    prefs = {
        "power": ("power_violation", "power", "util"),
        "thermal": ("thermal_violation", "temp"),
        "memory": ("xid_memory", "sbe"),
        "network": ("nvlink", "xid_nvlink", "util"),
        "pcie": ("pcie",),
    }.get(subsystem or "", ())
    last = part.groupby(level="key").tail(5).groupby(level="key").median()
    early = part.groupby(level="key").head(max(5, len(part) // (4 * max(1, len(group.gpus)))))
    base = early.groupby(level="key").median()
    best: tuple[int, str, set[str]] | None = None  # the symptom shown by the most GPUs
    for col in prefs:
        if col not in last.columns:
            continue
        v = VARS[col]
        if v.counter or col.startswith("xid_"):
            hit = last[col] > 0
        else:
            hit = (last[col] - base[col]).abs() > 3 * v.min_scale
        n = int(hit.sum())
        if n and (best is None or n > best[0]):
            best = (n, col, {GpuRef.parse(str(k)).node for k in hit[hit].index})
    if best is None:
        return ""
    n, col, nodes = best
    return (
        f"{n} GPU{'s' if n != 1 else ''} on {len(nodes)} node{'s' if len(nodes) != 1 else ''} "
        f"show{'s' if n == 1 else ''} {_SYMPTOMS[col][1]}"
    )


def _headline(var: Variable, value: Any, ref: Any, group: Group, prepared: _Prepared) -> str:
    """A short phrase for the most telling deviation of a component or node."""
    if var.key == "fan":
        sensor, change, rpm, siblings = _worst_fan(group, prepared)
        if sensor and not math.isnan(change):
            return (
                f"{sensor} fell {abs(change) * 100:.0f} % below normal ({rpm:.0f} rpm vs "
                f"{siblings:.0f} rpm for its siblings)"
            )
    if value is None or ref is None or math.isnan(float(value)) or math.isnan(float(ref)):
        return ""
    v, r = float(value), float(ref)
    if var.relative and abs(r) > 1e-9:
        pct = (v - r) / abs(r) * 100
        verb = "fell" if pct < 0 else "rose"
        return f"{var.label} {verb} {abs(pct):.0f} % ({_fmt(v)} {var.unit} vs {_fmt(r)} {var.unit})"
    if var.counter:
        return f"{var.label} at {_fmt(v)}{var.unit} (normally {_fmt(r)})"
    verb = "rose" if v > r else "fell"
    return f"{var.label} {verb} {abs(v - r):.1f} {var.unit} ({_fmt(v)} vs {_fmt(r)} {var.unit})"


def _summary(
    *,
    incident: Incident,
    group: Group,
    subsystem: str | None,
    target: str | None,
    sample: pd.Series,
    ref: Mapping[str, float],
    z: pd.Series,
    factors: Sequence[Factor],
    top_key: str | None,
    peer_note: str,
    prepared: _Prepared,
) -> str:
    """Write the one-line summary a human reads in two seconds."""
    kind = incident.root_cause.kind
    lead_key: str | None = None
    if kind == GPU_SCOPE:
        ref_gpu = GpuRef.parse(incident.root_cause.id)
        head = f"GPU {ref_gpu.gpu} on {ref_gpu.node}"
        what = peer_note if subsystem == "thermal" and peer_note else ""
        if not what and target is not None:
            what = _describe(VARS[target], sample.get(target), ref.get(target), group, prepared)
            lead_key = target
        lead = f"{head} {what}" if what.startswith("runs") else f"{head}: {what}" if what else head
    else:
        # the entity's own deviation: its component metric, else the node's, else the target
        # (the root cause is given, so a milder deviation of its own metric is worth leading with)
        harm = _harm(z)
        own = [k for k, h in harm.items() if VARS[k].scope == kind and h >= Z_ANOMALOUS - 1]
        own.sort(key=lambda k: -harm[k])
        key = own[0] if own else target
        phrase = _headline(VARS[key], sample.get(key), ref.get(key), group, prepared) if key else ""
        lead_key = key if phrase else None
        lead = f"{incident.root_cause.id}: {phrase}" if phrase else f"{incident.root_cause.id}"
        symptoms = _symptom_phrase(group, prepared, subsystem)
        if symptoms:
            lead += f"; {symptoms}"
        elif group.gpus:
            n = len(group.gpus)
            lead += f"; {n} GPU{'s' if n != 1 else ''} on {len(group.nodes)} node{'s' if len(group.nodes) != 1 else ''} affected"
    if factors and top_key is not None:
        top = factors[0]
        var = VARS[top_key]
        label, change = _short(var, sample.get(top_key), ref.get(top_key), group, prepared)
        change = f" ({change})" if change else ""
        if (top_key == target and kind != GPU_SCOPE) or top_key == lead_key:
            change = ""
        if "robust z-score" not in top.detail:
            if top_key == "temp" and kind == GPU_SCOPE:
                return (
                    f"{lead}; {top.share * 100:.0f} % of the anomaly is the GPU's own heat, not its "
                    "power, fans or inlet air (thermal interface?)"
                )
            return (
                f"{lead}; {top.share * 100:.0f} % of the anomaly is attributed to {label}{change}"
            )
        return f"{lead}; most deviant: {label}{change} (no causal attribution possible)"
    return lead


# ---------------------------------------------------------------------- rule hints


def _hints(
    sample: pd.Series, ref: Mapping[str, float], group: Group, prepared: _Prepared
) -> list[str]:
    """Rule-of-thumb actions for the obvious physical cases."""
    hints: list[str] = []
    rows = prepared.rows
    worst: pd.Series
    if not rows.empty:
        keys = rows.index.get_level_values("key")
        part = rows[keys.isin(group.gpus)]
        worst = (
            part.groupby(level="key").tail(5).max() if not part.empty else pd.Series(dtype=float)
        )
        vanished = []
        if not part.empty:
            last_seen = part.index.to_frame(index=False).groupby("key")["ts"].max()
            latest = rows.index.get_level_values("ts").max()
            vanished = sorted(str(k) for k, ts in last_seen.items() if ts < latest)
    else:
        worst = pd.Series(dtype=float)
        vanished = []

    def get(key: str, src: pd.Series) -> float:
        v = src.get(key, float("nan"))
        return float(v) if v is not None else float("nan")

    temp = get("temp", worst)
    sensor, change, rpm, _sib = _worst_fan(group, prepared)
    dead_fan = not math.isnan(rpm) and (rpm < 1000 or change < -0.5)
    if temp > 90 and dead_fan:
        hints.append(
            f"GPU at {temp:.0f} °C with {sensor} at {rpm:.0f} rpm: replace the failed fan on "
            f"{', '.join(group.nodes)} (cooling)."
        )
    elif temp > 90:
        hints.append(f"GPU at {temp:.0f} °C: check airflow, fans and the thermal interface.")
    if not (temp > 90 and dead_fan) and not math.isnan(change) and change < -0.25:
        hints.append(
            f"{sensor} on {', '.join(group.nodes)} runs {abs(change) * 100:.0f} % slower than "
            "normal: replace the fan before the GPUs throttle."
        )
    inlet = get("inlet", sample)
    if not math.isnan(inlet) and "inlet" in ref and inlet - ref["inlet"] > 4:
        cid = group.components.get("cooling", "the rack's cooling unit")
        hints.append(
            f"Inlet air {inlet - ref['inlet']:.0f} °C above normal: check {cid} (CRAC/CDU) and "
            "blanking panels."
        )

    def above(key: str, floor: float) -> bool:
        """Whether the group's worst recent value clearly exceeds its normal level."""
        v = get(key, worst)
        r = float(ref.get(key, 0.0) or 0.0)
        return not math.isnan(v) and v > max(floor, 3 * r, r + floor)

    if above("thermal_violation", 0.05):
        hints.append("Thermal throttling is active: clocks are reduced and jobs run slower.")
    if get("dbe", worst) > 0 or get("xid_memory", worst) > 0:
        hints.append(
            "Uncorrectable ECC (DBE / XID 48/63/64): drain the node, reset the GPU; if it "
            "repeats or row remapping failed, RMA the GPU (HBM)."
        )
    elif get("remap_failure", worst) > 0:
        hints.append("Row remap failure: the HBM is out of spare rows: drain and RMA the GPU.")
    elif above("sbe", 2.0) or above("remap", 0.5):
        hints.append(
            "Correctable ECC errors and remapped rows are climbing: schedule a GPU reset to "
            "apply pending remaps and watch for DBE."
        )
    if get("xid_pcie", worst) > 0 or vanished:
        gone = ", ".join(vanished) if vanished else "the GPU"
        hints.append(
            f"XID 79: {gone} fell off the bus: drain the node, reseat the GPU / check the riser, "
            "then run dcgmi diag."
        )
    elif above("pcie", 5.0):
        hints.append("PCIe replays are climbing: check the riser and slot; reseat at next drain.")
    if get("xid_nvlink", worst) > 0 or above("nvlink", 5.0):
        hints.append(
            "NVLink CRC errors / XID 74: run `nvidia-smi nvlink -e` and dcgmi diag -r 3; reseat "
            "or replace the NVLink/NVSwitch path."
        )
    for key, comp_kind, text in (
        ("pdu_volts", "pdu", "check {cid}, its breakers and the PSUs it feeds"),
        ("psu_volts", "pdu", "check {cid} and the node PSUs"),
    ):
        v = get(key, sample)
        r = ref.get(key)
        if not math.isnan(v) and r and v < 0.985 * r:
            cid = group.components.get(comp_kind, "the PDU")
            hints.append(
                f"Supply voltage sag ({(v - r) / r * 100:+.0f} %): " + text.format(cid=cid) + "."
            )
            break
    if above("power_violation", 0.1):
        hints.append("Power capping is active (power violations): GPUs run below their limit.")
    v = get("supply_temp", sample)
    r = ref.get("supply_temp")
    if not math.isnan(v) and r is not None and v - r > 2:
        cid = group.components.get("cooling", "the cooling unit")
        hints.append(f"{cid} supply air is {v - r:.0f} °C above normal: check the CRAC/CDU.")
    v = get("port_errors", sample)
    r = ref.get("port_errors")
    if not math.isnan(v) and r is not None and v > max(1.0, 3 * r):
        cid = group.components.get("switch", "the leaf switch")
        hints.append(f"{cid} port errors are rising: check cables/optics and the switch logs.")
    return hints
