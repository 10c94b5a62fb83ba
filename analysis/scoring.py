"""Risk scoring: the graph-aware model, the plain Isolation Forest baseline, calibration, hysteresis.

Pure: frames and graphs in, :class:`analysis.types.Assessment` out; persistence is bytes
(``to_bytes``/``from_bytes``), the file I/O lives in ``storage/model_store.py``.

How a GPU's risk is made (:class:`GraphRiskModel`):

1. :func:`analysis.features.build_features` gives one row per GPU (own metrics, peers, node,
   upstream components).
2. Each feature is taken relative to that GPU's own median over the fitted history (per-GPU offsets
   and each component's usual level drop out) and scaled by a robust fleet-wide spread: ``z``.
3. A detector with the PyOD/sklearn contract (Isolation Forest by default; ECOD, COPOD, HBOS by
   name) scores the ``z`` rows, higher = riskier; a tail guard scores each feature on its own
   (a forest cannot split on a feature that never moved in healthy history), Bonferroni-adjusted
   for the number of features it tests. Workload descriptors (power, utilisation, clocks, raw
   temperature: a job starting or ending moves them on every GPU it spans) are not scored; their
   load-adjusted twins and the comparisons with peers at comparable load are.
4. The forest is calibrated against the fitted history into [0, 1] by :class:`TailCalibrator`
   (the guard's score already is a ``-log10 p``): ``risk = -log10(p) / decades`` where ``p`` is
   the chance of a healthy GPU-cycle at least as abnormal (empirical, with an exponential tail
   fitted beyond the 95th percentile). With the default seven decades 0.5 means about 1 in 3,000
   healthy GPU-cycles, 0.9 about 1 in 5 million and 1.0 one in 10 million or rarer, whatever the
   fleet: at one-minute cycles a 256-GPU fleet has 368,640 GPU-cycles a day.
5. Failure-grade signals (DBE increase, row-remap failure, hardware XID, vanished series) put a
   floor under the risk: ``risk = max(calibrated, floor)``, so the forest can never dilute them.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self

import joblib
import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.detectors import DETECTORS, Detector, make_detector
from analysis.features import (
    DEFAULT_WINDOW,
    FLAG_COLUMNS,
    RAW_LEVEL_COLUMNS,
    WORKLOAD_COLUMNS,
    build_features,
    feature_columns,
    feature_history,
    gpu_keys_of,
    sort_frames,
)
from analysis.graph import gpus_behind
from analysis.incidents import (
    DEFAULT_CRITICAL,
    find_incidents,
    incident_id,
    per_gpu_incidents,
)
from analysis.scorer import Scorer
from analysis.types import Assessment, Fault, FleetFrames, GpuRef, GpuScore, Incident

MODEL_FORMAT = "gpu-risk-model"
MODEL_VERSION = 2
DEFAULT_THRESHOLD = 0.9
DEFAULT_FIT_WINDOW = timedelta(hours=24)
DEFAULT_FIT_CYCLES = 48
# Risk 1.0 = one healthy GPU-cycle in 10**7. A 256-GPU fleet scanned every minute sees 368,640
# GPU-cycles a day, so the default threshold 0.9 (about 1 in 5 million) leaves well under one
# healthy GPU-cycle above it per 1,000 GPU-days; five decades would leave dozens.
DEFAULT_DECADES = 7.0
DEFAULT_FLOOR = 1.0


class FleetMismatchError(ValueError):
    """A stored model was fitted on another fleet (GPUs or topology differ)."""


class ModelFormatError(ValueError):
    """Bytes that are not a gpu-risk model, or one written by an incompatible version."""


class NotFittedError(RuntimeError):
    """A scorer was asked to assess before ``fit``."""


def _utc(ts: datetime | pd.Timestamp) -> pd.Timestamp:
    """Return an aware UTC pandas timestamp."""
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def fleet_fingerprint(graph: nx.DiGraph) -> str:
    """Return a short hash of the fleet: sorted GPU keys and the topology's edges."""
    gpus = gpu_keys_of(graph)
    edges = sorted(
        f"{u}>{v}"
        for u, v in graph.edges()
        if graph.nodes[v].get("kind") != "gpu" and graph.nodes[u].get("kind") != "gpu"
    )
    blob = json.dumps({"gpus": gpus, "edges": edges}, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


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


class TailCalibrator:
    """Map raw detector scores to [0, 1] against the scores of the fitted history.

    ``risk = min(1, -log10(p) / decades)`` where ``p`` is the smoothed share of training scores
    at least as high (empirical below the ``tail_quantile``, exponential tail fitted above it).
    """

    def __init__(self, decades: float = DEFAULT_DECADES, tail_quantile: float = 0.95) -> None:
        """Keep the settings; nothing is fitted yet."""
        self.decades = decades
        self.tail_quantile = tail_quantile

    def fit(self, scores: npt.ArrayLike) -> Self:
        """Learn the distribution of healthy scores and return self."""
        s = np.sort(np.asarray(scores, dtype=np.float64))
        s = s[np.isfinite(s)]
        if s.size < 10:
            raise ValueError(f"need at least 10 finite training scores to calibrate, got {s.size}")
        self.sorted_ = s
        self.u_ = float(np.quantile(s, self.tail_quantile))
        exceed = s[s > self.u_] - self.u_
        spread = float(np.quantile(s, 0.99) - np.quantile(s, 0.5)) or 1e-6
        # Exponential scale: the flatter of the median-based and the trimmed-mean estimate, so
        # a short tail (a forest's bounded scores) is not taken as steeper than it is, and one
        # wild healthy row cannot flatten it either.
        if exceed.size:
            robust = float(np.median(exceed)) / math.log(2)
            trimmed = float(exceed[exceed <= np.quantile(exceed, 0.95)].mean())
        else:
            robust = trimmed = 0.0
        self.beta_ = max(robust, trimmed, spread / 20, 1e-9)
        self.p_u_ = max(float((s > self.u_).mean()), 1.0 / (s.size + 1))
        return self

    def tail_probability(self, scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Return ``p``: the share of healthy training scores at least as high as each score."""
        x = np.asarray(scores, dtype=np.float64)
        n = self.sorted_.size
        ge = n - np.searchsorted(self.sorted_, x, side="left")
        p_emp = (ge + 1.0) / (n + 1.0)
        p_tail = self.p_u_ * np.exp(-(x - self.u_) / self.beta_)
        p = np.where(x > self.u_, np.minimum(p_tail, 1.0), p_emp)
        return np.asarray(np.where(np.isfinite(x), p, 1.0), dtype=np.float64)

    def transform(self, scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Return calibrated risk in [0, 1] (higher = rarer in healthy history)."""
        p = np.clip(self.tail_probability(scores), 1e-300, 1.0)
        return np.asarray(np.clip(-np.log10(p) / self.decades, 0.0, 1.0), dtype=np.float64)


class FeatureTails:
    """Per-feature tail probabilities of ``|z|`` against the fitted history (an ECOD-like guard).

    A forest cannot split on a feature that never moved in healthy history, and one deviating
    feature among fifty is easily diluted; this guard scores each feature on its own. For every
    feature ``p_j`` is the share of healthy rows with at least that ``|z_j|`` (empirical below the
    95th percentile, exponential tail above it, with floors so a feature that never moved is not
    infinitely surprising), and a row's raw guard score is ``max_j -log10 p_j - log10 m``: the
    Bonferroni bound on the chance that any of the ``m`` tested features is that surprising in a
    healthy GPU-cycle, so fifty features do not give fifty chances to page.
    """

    def __init__(
        self,
        directions: Sequence[int] | None = None,
        *,
        tail_quantile: float = 0.95,
        min_beta: float = 0.5,
        min_beta_unobserved: float = 1.0,
        min_p_tail: float = 0.01,
        max_beta: float = 1.0,
    ) -> None:
        """Keep the settings (``directions``: +1/-1/0 per column, see :func:`risk_direction`)."""
        self.directions = None if directions is None else tuple(directions)
        self.tail_quantile = tail_quantile
        self.min_beta = min_beta
        self.min_beta_unobserved = min_beta_unobserved
        self.max_beta = max_beta
        self.min_p_tail = min_p_tail

    def _oriented(self, z: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Return ``|z|``, or only the risky side of ``z`` for one-sided columns."""
        arr = np.asarray(z, dtype=np.float64)
        if self.directions is None:
            return np.abs(arr)
        d = np.asarray(self.directions, dtype=np.float64)
        out = np.where(d == 0, np.abs(arr), np.clip(arr * d, 0.0, None))
        return np.asarray(np.where(d == IGNORE, 0.0, out))

    def fit(self, z: npt.ArrayLike) -> Self:
        """Learn each column's distribution of (oriented) ``|z|`` and return self."""
        a = self._oriented(z)
        self.sorted_ = np.sort(a, axis=0)
        self.u_ = np.quantile(a, self.tail_quantile, axis=0)
        exceed = np.where(a > self.u_, a - self.u_, np.nan)
        none = np.isnan(exceed).all(axis=0)
        exceed[:, none] = 0.0
        with np.errstate(invalid="ignore"):
            mean_exceed = np.nanmedian(exceed, axis=0) / math.log(2)
        # A feature with a well-observed tail may have a steep one; a feature that (almost)
        # never moved gets a flat one, so its first small move is not a page.
        observed = (a > self.u_).sum(axis=0) >= 20
        floor = np.where(observed, self.min_beta, self.min_beta_unobserved)
        self.beta_ = np.clip(np.nan_to_num(mean_exceed), floor, self.max_beta)
        self.p_u_ = np.maximum((a > self.u_).mean(axis=0), self.min_p_tail)
        return self

    def neg_log_p(self, z: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Return ``-log10 p_j`` per row and feature."""
        a = self._oriented(z)
        n = self.sorted_.shape[0]
        out = np.empty_like(a)
        for j in range(a.shape[1]):
            ge = n - np.searchsorted(self.sorted_[:, j], a[:, j], side="left")
            p_emp = (ge + 1.0) / (n + 1.0)
            p_tail = self.p_u_[j] * np.exp(-(a[:, j] - self.u_[j]) / self.beta_[j])
            p = np.where(a[:, j] > self.u_[j], np.minimum(p_tail, 1.0), p_emp)
            out[:, j] = -np.log10(np.clip(p, 1e-300, 1.0))
        return out

    @property
    def n_tested(self) -> int:
        """Return how many features the guard tests (columns not left to a twin)."""
        if self.directions is None:
            return int(self.sorted_.shape[1])
        return max(1, sum(1 for d in self.directions if d != IGNORE))

    def score(self, z: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Return each row's guard score: ``-log10`` of the Bonferroni-adjusted smallest ``p``."""
        best = self.neg_log_p(z).max(axis=1) - math.log10(self.n_tested)
        return np.asarray(np.clip(best, 0.0, None), dtype=np.float64)


IGNORE = 2
# Which direction of a feature means risk: +1 high, -1 low (anything else: both).
_HIGH_IS_RISK = (
    "temp",
    "mem_temp",
    "inlet",
    "hwmon",
    "cooling.",
    "gap_frac",
    "last_seen",
    "up_down",
    "remap_",
    "xid_",
)
_LOW_IS_RISK = ("fan_", "volts_", "pdu.output_volts")


# Burst-sensitive counter rates that have a burst-robust ``_sustained`` twin: the forest sees
# them, the guard leaves them to the twin (one benign burst must not page).
_GUARD_SKIP = (
    "ecc_sbe_rate",
    "pcie_replay_rate",
    "nvlink_crc_rate",
    # Memory temperature against peers swings with each job's memory load; the forest weighs
    # it together with the GPU temperature instead.
    "mem_temp_vs_node",
    "mem_temp_at_power",
)


def risk_direction(column: str) -> int:
    """Return +1 when only high values of a feature mean risk, -1 when only low ones, 0 for both.

    ``IGNORE`` (2) marks a feature the per-feature guard leaves to a more robust twin.
    """
    if column in _GUARD_SKIP or (column.endswith(".rate") and "." in column[:-5]):
        return IGNORE
    if column.endswith(("_rate", "_sustained", ".sustained", "_events", "_excess", ".excess")):
        return 1
    if column.startswith(_LOW_IS_RISK):
        return -1
    if column.startswith(_HIGH_IS_RISK) and not column.endswith("_slope"):
        return 1
    if column == "temp_vs_node_slope":
        # A GPU warming away from its node's peers is the thermal-interface precursor; one
        # cooling towards them is a job ending on it.
        return 1
    return 0


def _scale_floor(column: str, median: float) -> float:
    """Return the smallest spread a feature may have, so a quiet feature cannot explode."""
    if column.endswith(("_excess", ".excess")):
        # Poisson counts on the Anscombe scale spread by about one unit: never less.
        return 1.0
    if column.endswith(("_rate", ".rate", "_events", "_sustained", ".sustained")):
        return 0.3
    if column.startswith(("volts", "fan_spread", "fan_min_vs_fleet")):
        return 0.003
    if "temp" in column or column.startswith("inlet") or column.endswith("_slope"):
        return 0.3 if not column.endswith("_slope") else 0.02
    if column in {"gap_frac", "up_down_frac"}:
        return 0.05
    if column == "last_seen_min":
        return 1.0
    return max(1e-3, 0.01 * abs(median))


def fit_times(start: datetime, end: datetime, window: timedelta, cycles: int) -> list[datetime]:
    """Return ``cycles`` evenly spaced window ends in ``[start + window, end]``, on whole minutes."""
    first = _utc(start) + pd.Timedelta(window)
    last = _utc(end)
    if last < first:
        raise ValueError(
            f"history too short: it spans {(last - _utc(start))} but one window needs {window}; "
            "fetch a longer history (GPU_RISK_FIT_WINDOW_HOURS) or shorten the window"
        )
    n = max(1, cycles)
    stamps = pd.date_range(first, last, periods=n) if n > 1 else pd.DatetimeIndex([last])
    stamps = stamps.floor("min").unique()
    return [t.to_pydatetime() for t in stamps]


class FeatureScorer:
    """Shared machinery: featurise, standardise, detect, calibrate, floor, group."""

    name: str = "base"
    own_baseline: ClassVar[bool] = True
    tail_guard: ClassVar[bool] = True
    rule_floor: ClassVar[bool] = True
    grouped: ClassVar[bool] = True

    def __init__(
        self,
        detector: str = "iforest",
        *,
        window: timedelta = DEFAULT_WINDOW,
        fit_window: timedelta = DEFAULT_FIT_WINDOW,
        fit_cycles: int = DEFAULT_FIT_CYCLES,
        threshold: float = DEFAULT_THRESHOLD,
        decades: float = DEFAULT_DECADES,
        floor: float = DEFAULT_FLOOR,
        critical: float = DEFAULT_CRITICAL,
        exclude: Sequence[Exclusion] = (),
        random_state: int = 0,
        detector_params: Mapping[str, Any] | None = None,
    ) -> None:
        """Keep the settings; nothing is fitted yet (sklearn style)."""
        if detector not in DETECTORS:
            raise ValueError(f"unknown detector {detector!r}: choose one of {', '.join(DETECTORS)}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1 (exclusive), got {threshold}")
        self.detector = detector
        self.window = window
        self.fit_window = fit_window
        self.fit_cycles = fit_cycles
        self.threshold = threshold
        self.decades = decades
        self.floor = floor
        self.critical = critical
        self.exclude = tuple(exclude)
        self.random_state = random_state
        self.detector_params = dict(detector_params or {})

    # ----------------------------------------------------------------- fitting
    def _select(self, features: pd.DataFrame) -> list[str]:
        """Return the columns this scorer feeds its detector."""
        cols = feature_columns(features)
        if self.own_baseline:
            # Workload descriptors are context, not risk: a job ending is not a fault.
            return [c for c in cols if c not in WORKLOAD_COLUMNS]
        return [c for c in RAW_LEVEL_COLUMNS if c in cols]

    def _excluded(self, rows: pd.DataFrame, graph: nx.DiGraph) -> npt.NDArray[np.bool_]:
        """Return a mask of training rows that fall in an exclusion (known incidents)."""
        mask = np.zeros(len(rows), dtype=bool)
        if not self.exclude:
            return mask
        at = rows.index.get_level_values("at")
        key = rows.index.get_level_values("gpu_key")
        for ex in self.exclude:
            gpus = ex.gpu_keys(graph)
            lo = _utc(ex.start)
            hi = _utc(ex.end) + pd.Timedelta(self.window) if ex.end is not None else None
            in_time = at >= lo if hi is None else (at >= lo) & (at <= hi)
            mask |= np.asarray(in_time & key.isin(list(gpus)), dtype=bool)
        return mask

    def fit(self, history: FleetFrames, graph: nx.DiGraph) -> Self:
        """Fit on feature rows sampled at ``fit_cycles`` cycles over the last ``fit_window``."""
        start = max(_utc(history.start), _utc(history.end) - pd.Timedelta(self.fit_window))
        times = fit_times(start.to_pydatetime(), history.end, self.window, self.fit_cycles)
        rows = feature_history(sort_frames(history), graph, times, self.window)
        if rows.empty:
            raise ValueError("no GPU rows in the history: is the metrics source empty?")
        keep = ~self._excluded(rows, graph)
        flagged = rows[list(FLAG_COLUMNS)].any(axis=1).to_numpy()
        keep &= ~flagged
        rows = rows[keep]
        if len(rows) < 20:
            raise ValueError(
                f"only {len(rows)} healthy feature rows to fit on: give a longer history "
                "or fewer exclusions"
            )
        self.columns_ = self._select(rows)
        x = rows[self.columns_].astype(float)
        fill = x.median()
        self.fill_ = fill.fillna(0.0)
        keys = rows.index.get_level_values("gpu_key")
        if self.own_baseline:
            # Missing values (no comparable peers, no sample) count as the GPU's usual self.
            self.baseline_ = x.groupby(keys).median().fillna(self.fill_)
            base = self.baseline_.reindex(keys).to_numpy()
            x = x.fillna(pd.DataFrame(base, index=x.index, columns=x.columns))
            dev = x - base
        else:
            x = x.fillna(self.fill_)
            self.baseline_ = pd.DataFrame(columns=self.columns_, dtype=float)
            dev = x
        self.center_ = dev.median()
        mad = (dev - self.center_).abs().median() * 1.4826
        # The central 99 % range keeps multi-modal features (jobs start and stop) from
        # looking wild: a feature that is noisy in healthy history counts for less.
        wide = (dev.quantile(0.995) - dev.quantile(0.005)) / 5.15
        spread = np.maximum(mad, wide)
        floors = pd.Series(
            {c: _scale_floor(c, float(fill.get(c, 0.0) or 0.0)) for c in self.columns_}
        )
        self.scale_ = np.maximum(spread.fillna(0.0), floors)
        if self.own_baseline:
            # A GPU that is steadily noisier than the fleet (a chatty counter, a job that keeps
            # changing) is judged against its own spread, not the fleet's.
            resid = (dev - self.center_).abs()
            self.own_scale_ = resid.groupby(keys).quantile(0.9) / 1.645
        else:
            self.own_scale_ = pd.DataFrame(columns=self.columns_, dtype=float)
        z = (dev - self.center_) / self._scale_for(dev.index.get_level_values("gpu_key"))
        z = z.to_numpy(dtype=np.float64)
        self.detector_: Detector = make_detector(
            self.detector, random_state=self.random_state, **self.detector_params
        ).fit(z)
        self.calibrator_ = TailCalibrator(self.decades).fit(self.detector_.decision_function(z))
        if self.tail_guard:
            self.tails_ = FeatureTails([risk_direction(c) for c in self.columns_]).fit(z)
        self.fingerprint_ = fleet_fingerprint(graph)
        self.n_train_rows_ = len(rows)
        self.fitted_at_ = _utc(history.end).to_pydatetime()
        return self

    # ----------------------------------------------------------------- scoring
    def _check_fitted(self) -> None:
        """Raise NotFittedError unless fit has run."""
        if not hasattr(self, "detector_"):
            raise NotFittedError(f"the {self.name} scorer is not fitted: call fit(history, graph)")

    def _scale_for(self, keys: pd.Index) -> npt.NDArray[np.float64]:
        """Return the spread per row: the fleet's, or the GPU's own when that is wider."""
        fleet = np.broadcast_to(
            self.scale_.to_numpy(dtype=np.float64), (len(keys), len(self.scale_))
        )
        if self.own_scale_.empty:
            return np.asarray(fleet, dtype=np.float64)
        own = self.own_scale_.reindex(keys).to_numpy(dtype=np.float64)
        return np.asarray(np.fmax(fleet, own), dtype=np.float64)

    def standardise(self, features: pd.DataFrame) -> pd.DataFrame:
        """Return the ``z`` deviations of each feature (own baseline removed, robustly scaled)."""
        self._check_fitted()
        x = features.reindex(columns=self.columns_).astype(float)
        if self.own_baseline:
            base = self.baseline_.reindex(x.index)
            base = base.fillna(self.baseline_.median()).fillna(self.fill_)
            x = x.fillna(base) - base.to_numpy()
        else:
            x = x.fillna(self.fill_)
        return (x - self.center_) / self._scale_for(x.index)

    def score_features(self, features: pd.DataFrame) -> pd.Series:
        """Return calibrated risk in [0, 1] per GPU (index of ``features``)."""
        z = self.standardise(features)
        arr = z.to_numpy(dtype=np.float64)
        risk = self.calibrator_.transform(self.detector_.decision_function(arr))
        if self.tail_guard:
            # The guard's score is already a (Bonferroni-adjusted) -log10 p per GPU-cycle, so it
            # maps to the same scale directly; calibrating it again on 1,500 healthy rows would
            # extrapolate a 4-sd wiggle to a one-in-a-billion event.
            guard = np.clip(self.tails_.score(arr) / self.decades, 0.0, 1.0)
            risk = np.maximum(risk, guard)
        if self.rule_floor:
            present = [c for c in FLAG_COLUMNS if c in features.columns]
            if present:
                hit = features[present].astype(bool).any(axis=1).to_numpy()
                risk = np.where(hit, np.maximum(risk, self.floor), risk)
        return pd.Series(risk, index=features.index, name="risk")

    def assess(self, frames: FleetFrames, graph: nx.DiGraph, at: datetime) -> Assessment:
        """Score every GPU over the window ending at ``at`` and group at-risk GPUs."""
        self._check_fitted()
        feats = build_features(frames, graph, at, self.window)
        risk = self.score_features(feats)
        z = self.standardise(feats).add_prefix("z.")
        table = pd.concat([feats, z], axis=1)
        table["risk"] = risk
        scores = tuple(
            GpuScore(GpuRef.parse(k).node, GpuRef.parse(k).gpu, float(v)) for k, v in risk.items()
        )
        if self.grouped:
            incidents = find_incidents(
                risk, table, graph, at, self.threshold, critical=self.critical
            )
        else:
            incidents = per_gpu_incidents(risk, table, at, self.threshold, critical=self.critical)
        return Assessment(at=at, scores=scores, incidents=tuple(incidents), features=table)

    # ------------------------------------------------------------- persistence
    def check_fleet(self, graph: nx.DiGraph) -> None:
        """Raise FleetMismatchError unless ``graph`` is the fleet this model was fitted on."""
        self._check_fitted()
        here = fleet_fingerprint(graph)
        if here != self.fingerprint_:
            raise FleetMismatchError(
                f"this {self.name} model was fitted on fleet {self.fingerprint_}, but the current "
                f"fleet is {here} (GPUs or topology changed): refit it on this fleet's history"
            )

    def to_bytes(self) -> bytes:
        """Return the fitted model, its feature list, version and fleet fingerprint as bytes."""
        self._check_fitted()
        buf = io.BytesIO()
        payload = {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "name": self.name,
            "features": list(self.columns_),
            "fingerprint": self.fingerprint_,
            "model": self,
        }
        joblib.dump(payload, buf, compress=3)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, fingerprint: str | None = None) -> Self:
        """Load a model from bytes; refuse another format, version, scorer or fleet."""
        try:
            payload = joblib.load(io.BytesIO(data))
        except Exception as exc:
            raise ModelFormatError(f"not a gpu-risk model file ({exc}); refit the model") from exc
        if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
            raise ModelFormatError("not a gpu-risk model file; refit the model")
        if payload.get("version") != MODEL_VERSION:
            raise ModelFormatError(
                f"model format version {payload.get('version')} is not {MODEL_VERSION} "
                "(written by another gpu-risk release): refit the model"
            )
        model = payload["model"]
        if not isinstance(model, cls) or payload.get("name") != cls.name:
            raise ModelFormatError(
                f"stored model is a {payload.get('name')!r} scorer, not {cls.name!r}"
            )
        if fingerprint is not None and payload.get("fingerprint") != fingerprint:
            raise FleetMismatchError(
                f"stored {cls.name} model was fitted on fleet {payload.get('fingerprint')}, "
                f"not on this fleet ({fingerprint}): refit it on this fleet's history"
            )
        return model


class GraphRiskModel(FeatureScorer):
    """The product's model (name ``graph``): graph-context features, own baselines, floors.

    Parameters
    ----------
    detector : str
        ``iforest`` (default), ``ecod``, ``copod`` or ``hbos`` (:func:`analysis.detectors.make_detector`).
    window, fit_window, fit_cycles
        Feature window per cycle; history span fitted on; cycles sampled from it.
    threshold : float
        Calibrated risk that counts as at risk (incidents).
    decades : float
        Calibration scale: risk 1.0 = one healthy GPU-cycle in ``10**decades``.
    floor : float
        Minimum risk of a GPU with a failure-grade signal.
    exclude : sequence of Exclusion
        Known incidents left out of training.
    random_state : int
        Seed of the detector.
    """

    name: str = "graph"


class IForestBaseline(FeatureScorer):
    """Plain Isolation Forest on per-GPU raw metric levels (name ``iforest``), no graph context.

    Same calibration as the graph model; no own baselines, no peers, no node or component signals,
    no failure-grade floor, one incident per at-risk GPU: the comparison baseline of the backtest.
    """

    name: str = "iforest"
    own_baseline: ClassVar[bool] = False
    tail_guard: ClassVar[bool] = False
    rule_floor: ClassVar[bool] = False
    grouped: ClassVar[bool] = False


class Hysteresis:
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


def scan_with_hysteresis(
    scorer: Scorer,
    frames: FleetFrames,
    graph: nx.DiGraph,
    at: datetime,
    *,
    cycle: timedelta = timedelta(minutes=1),
    open_after: int = 2,
    close_after: int = 5,
) -> tuple[Assessment, list[Incident]]:
    """One-shot scan at ``at``: assess the previous ``open_after`` cycles through a Hysteresis.

    Returns the assessment at ``at`` and the incidents open after it (what the runtime would have
    open had it been running).
    """
    hyst = Hysteresis(open_after=open_after, close_after=close_after)
    ordered = sort_frames(frames)
    end = _utc(at).to_pydatetime()
    for i in range(open_after - 1, 0, -1):
        hyst.update(scorer.assess(ordered, graph, end - i * cycle))
    last = scorer.assess(ordered, graph, end)
    hyst.update(last)
    return last, hyst.open_incidents


def replay(
    scorer: Scorer,
    frames: FleetFrames,
    graph: nx.DiGraph,
    times: Iterable[datetime],
    hysteresis: Hysteresis,
) -> list[tuple[datetime, list[Incident]]]:
    """Assess each time in order through ``hysteresis``; return the open incidents per cycle."""
    ordered = sort_frames(frames)
    out = []
    for t in times:
        out.append((t, hysteresis.update(scorer.assess(ordered, graph, t))))
    return out


def gpu_days(n_gpus: int, span: timedelta) -> float:
    """Return GPU-days for a fleet size and a time span (denominator of false-incident rates)."""
    return n_gpus * span / timedelta(days=1)
