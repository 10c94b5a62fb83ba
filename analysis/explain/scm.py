"""The structural causal model: training-table conditioning, mechanisms, DoWhy GCM attribution.

An invertible structural causal model with linear additive-noise mechanisms is fitted on healthy
history; ``gcm.attribute_anomalies`` then splits the incident's anomaly among the target's
ancestors. Coefficients are least squares on the history, floored by physics priors where healthy
data cannot identify them (a fan that never failed, a voltage that never sagged) or shows them with
the wrong sign (fans follow temperature under a fan curve). Counters get a small jitter so that a
counter that was always 0 does not swallow the blame. ``dowhy`` is imported lazily, inside the
functions that need it (it takes seconds to import).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from analysis.explain.template import EDGES, LOAD_ADJUST, TARGETS, VARS, Z_ANOMALOUS, _harm


@dataclass
class _Fitted:
    """A fitted SCM for one (entity kind, target, variables)."""

    scm: Any
    nodes: tuple[str, ...]


class _CannotAttributeError(Exception):
    """DoWhy cannot attribute this incident (too little or degenerate data)."""


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


def _choose_target(z: pd.Series) -> tuple[str | None, str | None]:
    """Pick the most anomalous subsystem and, in it, the target nearest to the cause."""
    harm = _harm(z)
    if harm.get("thermal_violation", 0.0) >= Z_ANOMALOUS and float(z.get("power", 0.0)) < 0:
        # throttled for heat, a GPU draws less power at the same work: the drop is the heat's
        # symptom (a thermal-interface fault), not a power cause
        harm.pop("power", None)
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


def _fit_scm(table: pd.DataFrame, nodes: tuple[str, ...]) -> _Fitted:
    """Fit an invertible SCM over ``nodes`` on ``table``: roots empirical, the rest linear ANMs."""
    from dowhy import gcm
    from dowhy.gcm.ml.regression import create_linear_regressor_with_given_parameters

    gcm.config.disable_progress_bars()
    dag = nx.DiGraph()
    dag.add_nodes_from(nodes)
    dag.add_edges_from((e.parent, e.child) for e in EDGES if e.parent in nodes and e.child in nodes)
    scm = gcm.InvertibleStructuralCausalModel(dag)
    for node in nodes:
        parents = sorted(dag.predecessors(node))
        if not parents:
            scm.set_causal_mechanism(node, gcm.EmpiricalDistribution())
            continue
        coefs, intercept = _slopes(table, node, parents)
        scm.set_causal_mechanism(
            node,
            gcm.AdditiveNoiseModel(create_linear_regressor_with_given_parameters(coefs, intercept)),
        )
    gcm.fit(scm, table)
    return _Fitted(scm=scm, nodes=nodes)


def _attribute_anomalies(
    fitted: _Fitted,
    target: str,
    sample: pd.Series,
    *,
    random_state: int,
    num_distribution_samples: int,
    num_permutations: int,
) -> dict[str, float]:
    """Attribute the target's anomaly in ``sample`` to its ancestors' noise with DoWhy GCM."""
    from dowhy import gcm
    from dowhy.gcm.shapley import ShapleyApproximationMethods, ShapleyConfig
    from dowhy.gcm.util.general import set_random_seed

    gcm.config.disable_progress_bars()
    set_random_seed(random_state)
    anomaly = pd.DataFrame(
        [sample[list(fitted.nodes)].astype(float).to_numpy()], columns=list(fitted.nodes)
    )
    contrib = gcm.attribute_anomalies(
        fitted.scm,
        target,
        anomaly_samples=anomaly,
        num_distribution_samples=num_distribution_samples,
        shapley_config=ShapleyConfig(
            approximation_method=ShapleyApproximationMethods.PERMUTATION,
            num_permutations=num_permutations,
            n_jobs=1,
        ),
    )
    out = {str(k): float(np.mean(v)) for k, v in contrib.items()}
    total = sum(abs(v) for v in out.values())
    if not np.isfinite(total) or total <= 1e-12:
        raise _CannotAttributeError("the attribution was degenerate (all contributions 0)")
    return out
