"""Causal explanations of incidents: DoWhy GCM anomaly attribution, rule hints, one-line summary.

A causal template of physical causes (``template``) is laid over each incident: the tidy frames
become per-GPU rows of the template's variables (``prepare``) for the incident's group of GPUs,
nodes and upstream components (``group``); a structural causal model fitted on healthy history
splits the anomaly among the causes (``scm``); the ``Explainer`` ties them together and words the
result (``wording``, ``hints``). ``dowhy`` is imported lazily (it takes seconds): importing this
package never imports it.
"""

from __future__ import annotations

from analysis.explain.explainer import Explainer
from analysis.explain.group import Group
from analysis.explain.template import (
    COMPONENT_ROLES,
    EDGES,
    GPU_SCOPE,
    LOAD_ADJUST,
    LOAD_KEYS,
    NODE_SCOPE,
    TARGETS,
    THROTTLE_KEYS,
    VARIABLES,
    VARS,
    XID_CODES,
    Z_ANOMALOUS,
    Edge,
    Variable,
)

__all__ = [
    "COMPONENT_ROLES",
    "EDGES",
    "GPU_SCOPE",
    "LOAD_ADJUST",
    "LOAD_KEYS",
    "NODE_SCOPE",
    "TARGETS",
    "THROTTLE_KEYS",
    "VARIABLES",
    "VARS",
    "XID_CODES",
    "Z_ANOMALOUS",
    "Edge",
    "Explainer",
    "Group",
    "Variable",
]
