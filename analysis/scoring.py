"""Risk scoring: the graph-aware model and the plain Isolation Forest baseline (the scorers).

Pure: frames and graphs in, :class:`analysis.types.Assessment` out; persistence is bytes
(``to_bytes``/``from_bytes``), the file I/O lives in ``storage/model_store.py``.

How a GPU's risk is made (:class:`GraphRiskModel`):

1. :func:`analysis.features.build_features` gives one row per GPU (own metrics, peers, node,
   upstream components).
2. Each feature is taken relative to that GPU's own median over the fitted history (per-GPU offsets
   and each component's usual level drop out; a GPU without enough healthy rows of its own takes
   its node's GPUs' median, then the fleet's) and scaled by a robust fleet-wide spread: ``z``.
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

What humans taught (:mod:`analysis.feedback`): ``allowances`` maps (GPU key, feature) to a range of
``z`` a false-alarm verdict showed to be normal on that GPU; such a deviation is scored as ``z = 0``
by the forest and the guard (step 3). The feature table keeps the real ``z`` and the floors (step 5)
never look at ``z``, so what was taught cannot hide a failure.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Self

import joblib
import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.calibration import (
    DEFAULT_DECADES,
    FeatureTails,
    TailCalibrator,
    risk_direction,
    scale_floor,
)
from analysis.common_mode import (
    common_shift,
    remove_common_mode,
    shift_of,
    with_common_shift,
)
from analysis.detectors import DETECTORS, Detector, make_detector
from analysis.feature_memo import FeatureMemo
from analysis.features import (
    DEFAULT_WINDOW,
    FLAG_COLUMNS,
    RAW_LEVEL_COLUMNS,
    WORKLOAD_COLUMNS,
    build_features,
    feature_columns,
    feature_history,
    gpu_keys_of,
    gpu_models,
    sort_frames,
)
from analysis.feedback import Allowances
from analysis.fit_window import (  # Exclusion: models stored before it moved pickled it here
    MIN_FIT_ROWS,
    Exclusion,
    NotEnoughHistoryError,
    fit_times,
    too_few_rows,
)
from analysis.frames import to_utc
from analysis.incidents import (
    DEFAULT_CRITICAL,
    find_incidents,
    per_gpu_incidents,
)
from analysis.load_spread import load_spread
from analysis.peer_memo import PeerRowsMemo
from analysis.regimes import REGIME_FEATURES, RegimeScales, fit_regimes, regime_scale
from analysis.stats import own_spread, robust_spread
from analysis.thermal import LAG, fit_temp_per_watt, fit_thermal_lag
from analysis.types import Assessment, FleetFrames, GpuRef, GpuScore, Incident

MODEL_FORMAT = "gpu-risk-model"
MODEL_VERSION = 14
DEFAULT_THRESHOLD = 0.9
DEFAULT_FIT_WINDOW = timedelta(hours=24)
DEFAULT_FIT_CYCLES = 48
#: A fit learns from at most this many feature rows (cycles x GPUs) by default: a fleet of more
#: than ``fit_max_rows / fit_cycles`` GPUs (4,166 at the defaults) is fitted on fewer cycles,
#: evenly spread over the same ``fit_window``, never fewer than :data:`MIN_FIT_CYCLES`. At
#: 10,000 GPUs 20 cycles (the fit's features, reductions and the server's range queries 2.4x
#: fewer); at 100,000 the floor, 1.6 million rows. Every GPU keeps its own rows: sampling
#: GPUs instead (``GPU_RISK_FIT_MAX_GPUS``) leaves the unsampled ones without own baselines.
DEFAULT_FIT_MAX_ROWS = 200_000
#: The fewest cycles a row budget leaves a fit: a GPU busy half the time still has the eight
#: rows of each load regime its own regime spreads need (``analysis.regimes``).
MIN_FIT_CYCLES = 16
DEFAULT_FLOOR = 1.0
#: A GPU's own baseline of a feature needs at least this many of its fit rows, and this share of
#: them, to hold a value; with fewer the fleet's baseline is used.
MIN_OWN_ROWS = 6
OWN_SHARE = 0.25


class FleetMismatchError(ValueError):
    """A stored model was fitted on another fleet (GPUs or topology differ)."""


class ModelFormatError(ValueError):
    """Bytes that are not a gpu-risk model, or one written by an incompatible version."""


class NotFittedError(RuntimeError):
    """A scorer was asked to assess before ``fit``."""


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


def _with_shift(x: pd.DataFrame, shift: pd.DataFrame | None) -> pd.DataFrame:
    """``x`` with each row's fleet shift (``analysis.common_mode``) put back, less its usual
    level: the own-history features' deviations as they were, for their spreads."""
    if shift is None:
        return x
    cols = [c for c in shift.columns if c in x.columns]
    if not cols:
        return x
    out = x.copy()
    out[cols] = x[cols] + (shift[cols] - shift[cols].median()).to_numpy()
    return out


def _node_of(keys: pd.Index) -> pd.Index:
    """Return the node of each ``<node>/<gpu>`` key."""
    return pd.Index([str(k).rpartition("/")[0] for k in keys], name="node")


def _fill_from_node(baseline: pd.DataFrame, by_node: pd.DataFrame) -> pd.DataFrame:
    """Fill the gaps of per-GPU ``baseline`` from the median baseline of the GPU's node."""
    if by_node.empty or not baseline.isna().to_numpy().any():
        return baseline
    nodes = by_node.reindex(_node_of(baseline.index)).to_numpy()
    return baseline.fillna(pd.DataFrame(nodes, index=baseline.index, columns=baseline.columns))


class FeatureScorer:
    """Shared machinery: featurise, standardise, detect, calibrate, floor, group."""

    name: str = "base"
    needs_history: ClassVar[bool] = True
    self_gating: ClassVar[bool] = False
    own_baseline: ClassVar[bool] = True
    #: Take the fleet's common shift out of the own-history features (``analysis.common_mode``).
    common_mode: ClassVar[bool] = True
    tail_guard: ClassVar[bool] = True
    rule_floor: ClassVar[bool] = True
    grouped: ClassVar[bool] = True
    #: (GPU key, feature) -> range of ``z`` scored as normal (set before each ``assess``; a class
    #: default so models pickled before it existed still load).
    allowances: Allowances = MappingProxyType({})
    #: Degrees per watt per GPU model and, under ``analysis.thermal.LAG``, the seconds by which
    #: temperature lags power, learnt by ``fit`` (a class default for a scorer that never learnt
    #: them: temperature at equal power then uses each window's own estimate, without a lag).
    temp_per_watt_: Mapping[str, float] = MappingProxyType({})
    #: Per feature in LOAD_DEPENDENT: the fleet's spread of per-GPU offset slopes (units per
    #: watt); each GPU's range of usual power (``lo``, ``hi``: its fit rows' 5th and 95th
    #: percentiles): learnt by ``fit`` (empty: no widening).
    load_spread_: pd.Series = pd.Series(dtype=float)
    power_range_: pd.DataFrame = pd.DataFrame(columns=["lo", "hi"], dtype=float)
    #: The idle and busy rows' spreads of the comparisons with peers
    #: (``analysis.regimes.REGIME_FEATURES``), learnt by ``fit`` (None: the one spread for every
    #: row, as a model fitted before version 13).
    regimes_: RegimeScales | None = None
    #: Each GPU's usual self per feature as the previous fit learnt it (its ``own_``; NaN: none),
    #: set before ``fit`` by whoever holds that model: a GPU this fit cannot learn one for (all
    #: its rows under an open incident) keeps it instead of taking its node's or the fleet's.
    usual_before: pd.DataFrame | None = None
    #: The usual selves this fit learnt, or kept from ``usual_before`` (NaN: none; a model
    #: stored before model 17 has none, so the first refit after it gives nothing to keep).
    own_: pd.DataFrame = pd.DataFrame(dtype=float)
    #: Features shared with other scorers replaying the same data (an ablation); never stored.
    memo: FeatureMemo | None = None
    #: The last cycle's peer rows, for the next cycle's (``analysis.peer_memo``); never stored.
    peer_memo: PeerRowsMemo | None = None

    def __init__(
        self,
        detector: str = "iforest",
        *,
        window: timedelta = DEFAULT_WINDOW,
        fit_window: timedelta = DEFAULT_FIT_WINDOW,
        fit_cycles: int = DEFAULT_FIT_CYCLES,
        fit_max_rows: int | None = DEFAULT_FIT_MAX_ROWS,
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
        self.fit_max_rows = fit_max_rows
        self.threshold = threshold
        self.decades = decades
        self.floor = floor
        self.critical = critical
        self.exclude: tuple[Exclusion, ...] = tuple(exclude)
        self.random_state = random_state
        self.detector_params = dict(detector_params or {})

    @property
    def min_window(self) -> timedelta:
        """Return the feature window: one assessment needs that much data before ``at``."""
        return self.window

    @property
    def feature_window(self) -> timedelta:
        """Return the window of the own-series reductions ``assess`` reads (the feature window)."""
        return self.window

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the model without a shared feature memo (a replay's, not the model's) nor the
        previous model's usual selves."""
        state = self.__dict__.copy()
        state.pop("memo", None)
        state.pop("peer_memo", None)  # the last cycle's rows, not the model's
        state.pop("usual_before", None)  # the previous model's: its own_ now carries what counts
        return state

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
            lo = to_utc(ex.start)
            hi = to_utc(ex.end) + pd.Timedelta(self.window) if ex.end is not None else None
            in_time = at >= lo if hi is None else (at >= lo) & (at <= hi)
            mask |= np.asarray(in_time & key.isin(list(gpus)), dtype=bool)
        return mask

    def _keep_usual(self, own: pd.DataFrame, fleet: nx.DiGraph) -> pd.DataFrame:
        """Fill the GPUs' usual selves this fit has none for from ``usual_before``.

        A rack under an incident that stays open through a whole fit window (its GPUs' rows all
        excluded) took the fleet's usual self instead of its own: a GPU idling 2 degrees over its
        node, as it always had, then read as +6 sd on a healthy development fleet and paged.
        """
        before = self.usual_before
        if before is None or before.empty:
            return own
        before = before.reindex(columns=own.columns)
        keys = own.index.union(before.index.intersection(pd.Index(gpu_keys_of(fleet))))
        keys = keys.rename(own.index.name)
        own = own.reindex(keys)
        return own.fillna(before.reindex(keys))

    def fit_start(self, start: datetime, end: datetime) -> pd.Timestamp:
        """Where the fit window of a history of ``[start, end]`` begins: its last ``fit_window``."""
        return max(to_utc(start), to_utc(end) - pd.Timedelta(self.fit_window))

    def cycles_for(self, gpus: int | None) -> int:
        """How many cycles a fit of ``gpus`` GPUs featurises: ``fit_cycles``, fewer when that
        many rows would pass ``fit_max_rows`` (never fewer than :data:`MIN_FIT_CYCLES`, nor
        more than ``fit_cycles``); ``gpus`` None or no budget: ``fit_cycles``."""
        if not gpus or not self.fit_max_rows:
            return self.fit_cycles
        budget = max(MIN_FIT_CYCLES, self.fit_max_rows // gpus)
        return min(self.fit_cycles, budget)

    def history_times(
        self, start: datetime, end: datetime, gpus: int | None = None
    ) -> list[datetime]:
        """The cycle ends :meth:`fit` featurises in a history of ``[start, end]`` of ``gpus``
        GPUs (:meth:`cycles_for`; None: ``fit_cycles``), over its last ``fit_window``
        (:func:`fit_times`)."""
        first = self.fit_start(start, end)
        return fit_times(first.to_pydatetime(), end, self.window, self.cycles_for(gpus))

    def fit(
        self, history: FleetFrames, graph: nx.DiGraph, *, fleet: nx.DiGraph | None = None
    ) -> Self:
        """Fit on feature rows sampled at :meth:`cycles_for` cycles over the last ``fit_window``:
        the cycle ends the history was reduced at when the source reduced it
        (``FleetFrames.fit_reduced``), else as many as the row budget allows ``graph``'s GPUs.

        ``fleet``: the whole fleet the model serves when ``graph`` is a sample of its nodes
        (its fingerprint is the model's; GPUs outside the sample get the fleet's baseline).
        """
        served = fleet if fleet is not None else graph  # the fleet the model serves
        start = self.fit_start(history.start, history.end)
        if history.fit_reduced is not None:
            times = sorted(r.at for r in history.fit_reduced)
        else:
            times = self.history_times(history.start, history.end, gpus=len(gpu_keys_of(graph)))
        # degrees per watt per GPU model and the lag of temperature behind power, fixed until
        # the next fit (analysis.thermal)
        self.temp_per_watt_ = {
            **fit_temp_per_watt(history, gpu_models(served), since=start),
            LAG: fit_thermal_lag(history, since=start),
        }
        slopes = self.temp_per_watt_
        if history.fit_spans is not None:  # too large to hold: span by span, each read in turn
            # consecutive spans overlap (their windows do): the peer rows of the samples a span
            # shares with the one before are taken from it, not compared again
            memo = PeerRowsMemo()
            rows = pd.concat(
                [
                    feature_history(
                        sort_frames(span),
                        graph,
                        sorted(r.at for r in span.fit_reduced or ()),
                        self.window,
                        temp_per_watt=slopes,
                        peer_memo=memo,
                    )
                    for span in history.fit_spans
                ]
            )
            del memo
        elif self.memo is not None:
            rows = self.memo.history(history, graph, times, self.window, temp_per_watt=slopes)
        else:
            rows = feature_history(
                sort_frames(history), graph, times, self.window, temp_per_watt=slopes
            )
        if rows.empty:
            raise NotEnoughHistoryError("no GPU rows in the history: is the metrics source empty?")
        shift = None
        if self._common_mode:  # each cycle's, over all its GPUs, as in each scored cycle
            shift = common_shift(rows, by="at")
            rows = remove_common_mode(rows, shift=shift)
        excluded = self._excluded(rows, graph)
        flagged = rows[list(FLAG_COLUMNS)].any(axis=1).to_numpy()
        silent = np.zeros(len(rows), dtype=bool)
        if "node_silent" in rows.columns:
            # A node that did not report (a scrape gap, a reboot) says nothing about health.
            silent = rows["node_silent"].fillna(False).astype(bool).to_numpy()
        keep = ~(excluded | flagged | silent)
        if int(keep.sum()) < MIN_FIT_ROWS:
            raise NotEnoughHistoryError(too_few_rows(excluded, flagged, silent))
        rows = rows[keep]
        shift = shift[keep] if shift is not None else None
        self.columns_ = self._select(rows)
        keys = rows.index.get_level_values("gpu_key")
        n_rows = len(rows)
        power = rows["power_level"].copy() if "power_level" in rows.columns else None
        spreads = None
        if self.own_baseline and power is not None:
            columns = list(dict.fromkeys([*self.columns_, "power_level"]))
            spreads = load_spread(_with_shift(rows[columns], shift), keys, self.columns_)
        x = rows[self.columns_].astype(float)
        # Each copy of the fit's rows is most of a gigabyte at 100,000 GPUs (16 cycle ends):
        # what the rest reads of them is taken above, and every matrix is let go once used.
        del rows
        fill = x.median()
        self.fill_ = fill.fillna(0.0)
        base: npt.NDArray[np.float64] | None = None
        if self.own_baseline:
            # Missing values (no comparable peers, no sample) count as the GPU's usual self. A
            # feature the GPU showed in too few of its rows (a GPU always busy alone has peers to
            # compare with only when it idles) is no usual self: the fleet's baseline stands in.
            by_gpu = x.groupby(keys)
            rows_of = by_gpu.size().to_numpy()[:, None]
            enough = by_gpu.count() >= np.maximum(MIN_OWN_ROWS, OWN_SHARE * rows_of)
            own = self._keep_usual(by_gpu.median().where(enough), served)
            self.own_ = own
            # A GPU without a usual self of its own (under an incident for the whole window, or
            # too few rows) takes its node's GPUs' before the fleet's: they share the node's
            # fans, power and airflow, so a node's steady quirk is not read as a deviation.
            self.node_baseline_ = own.groupby(_node_of(own.index)).median()
            self.baseline_ = _fill_from_node(own, self.node_baseline_)
            self.baseline_ = self.baseline_.fillna(own.median()).fillna(self.fill_)
            base = self.baseline_.reindex(keys).to_numpy()
            x = x.fillna(pd.DataFrame(base, index=x.index, columns=x.columns))
            dev = x - base
        else:
            x = x.fillna(self.fill_)
            self.baseline_ = pd.DataFrame(columns=self.columns_, dtype=float)
            self.node_baseline_ = pd.DataFrame(columns=self.columns_, dtype=float)
            dev = x
        del x, base
        self.center_ = dev.median()
        # judged with the spread of the deviations as they were (the hall's swings in it)
        swung = _with_shift(dev, shift)
        spread = robust_spread(swung, swung.median())
        floors = pd.Series(
            {c: scale_floor(c, float(fill.get(c, 0.0) or 0.0)) for c in self.columns_}
        )
        self.scale_ = np.maximum(spread.fillna(0.0), floors)
        if spreads is not None:
            self.power_range_, self.load_spread_ = spreads
        if self.own_baseline:
            # A GPU that is steadily noisier than the fleet (a chatty counter, a job that keeps
            # changing) is judged against its own spread, not the fleet's.
            self.own_scale_ = own_spread((swung - swung.median()).abs(), keys)
        else:
            self.own_scale_ = pd.DataFrame(columns=self.columns_, dtype=float)
        del swung
        loads = [c for c in REGIME_FEATURES if c in self.columns_]
        self.regimes_ = None
        if self.own_baseline and loads and power is not None:
            models = gpu_models(served)
            fleet_models = {
                k: models.get(str(k).rpartition("/")[0], "") for k in gpu_keys_of(served)
            }
            self.regimes_ = fit_regimes(
                (dev - self.center_)[loads], power, keys, fleet_models, floors[loads]
            )
        scale = self._scale_for(keys, power)
        resid = dev - self.center_
        del dev
        z = (resid / scale).to_numpy(dtype=np.float64)
        del resid, scale
        self.detector_: Detector = make_detector(
            self.detector, random_state=self.random_state, **self.detector_params
        ).fit(z)
        self.calibrator_ = TailCalibrator(self.decades).fit(self.detector_.decision_function(z))
        if self.tail_guard:
            directions = [risk_direction(c) for c in self.columns_]
            self.tails_ = FeatureTails(directions, keep_sorted=False).fit(z)
        self.fingerprint_ = fleet_fingerprint(served)
        self.n_train_rows_ = n_rows
        self.fitted_at_ = to_utc(history.end).to_pydatetime()
        return self

    # ----------------------------------------------------------------- scoring
    @property
    def _common_mode(self) -> bool:
        """Whether the fleet's common shift is taken out (own baselines only)."""
        return self.common_mode and self.own_baseline

    def _check_fitted(self) -> None:
        """Raise NotFittedError unless fit has run."""
        if not hasattr(self, "detector_"):
            raise NotFittedError(f"the {self.name} scorer is not fitted: call fit(history, graph)")

    def _scale_for(self, keys: pd.Index, power: pd.Series | None = None) -> npt.NDArray[np.float64]:
        """Return the spread per row: the fleet's, or the GPU's own when that is wider.

        ``power``: each row's ``power_level``; a temperature comparison of a GPU at a load outside
        the range its fit rows covered has its spread widened by the fleet's spread of per-GPU
        offset slopes times the distance (its own offset there was never seen: a prediction
        interval, not a point).
        """
        fleet = np.broadcast_to(
            self.scale_.to_numpy(dtype=np.float64), (len(keys), len(self.scale_))
        )
        scale = np.asarray(fleet, dtype=np.float64)
        # a number per row and feature each (1.6 million rows in a 100,000-GPU fit): the
        # frame is let go once read, and a matrix of this call's own is not copied again
        own_arr = self.own_scale_.reindex(index=keys, columns=self.scale_.index).to_numpy(
            dtype=np.float64
        )
        if power is not None and self.regimes_ is not None:
            columns = list(self.scale_.index)
            scale, own_arr = regime_scale(
                self.regimes_, scale, own=own_arr, keys=keys, power=power, columns=columns
            )
        if not self.own_scale_.empty or self.regimes_ is not None:
            scale = np.asarray(np.fmax(scale, own_arr), dtype=np.float64)
        del own_arr
        if power is None or self.load_spread_.empty:
            return scale
        seen = self.power_range_.reindex(keys)
        watts = np.asarray(power, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            away = np.fmax(watts - seen["hi"].to_numpy(dtype=np.float64), 0.0)
            away = np.fmax(away, seen["lo"].to_numpy(dtype=np.float64) - watts)
        away = np.nan_to_num(away, nan=0.0)
        if scale.base is not None or not scale.flags.writeable:  # the fleet's, broadcast
            scale = scale.copy()
        for j, column in enumerate(self.scale_.index):
            if column in self.load_spread_.index:
                extra = float(self.load_spread_[column]) * away
                scale[:, j] = np.sqrt(scale[:, j] ** 2 + extra**2)
        return scale

    def standardise(self, features: pd.DataFrame) -> pd.DataFrame:
        """Return the ``z`` deviations of each feature (own baseline removed, robustly scaled)."""
        self._check_fitted()
        x = features.reindex(columns=self.columns_).astype(float)
        if self._common_mode:  # the cycle's shift: carried by an assessed table's rows
            x = remove_common_mode(x, shift=shift_of(features))
        if self.own_baseline:
            base = _fill_from_node(self.baseline_.reindex(x.index), self.node_baseline_)
            base = base.fillna(self.baseline_.median()).fillna(self.fill_)
            x = x.fillna(base) - base.to_numpy()
        else:
            x = x.fillna(self.fill_)
        power = features["power_level"] if "power_level" in features.columns else None
        return (x - self.center_) / self._scale_for(x.index, power)

    def allowed(self, z: pd.DataFrame) -> pd.DataFrame:
        """Return ``z`` with the deviations within :attr:`allowances` set to 0 (scored as normal).

        Parameters
        ----------
        z : pd.DataFrame
            :meth:`standardise` output (index: GPU key, columns: features).

        Returns
        -------
        pd.DataFrame
            A copy when anything is allowed, else ``z`` itself.
        """
        if not self.allowances or z.empty:
            return z
        rows = {str(k): i for i, k in enumerate(z.index)}
        cols = {str(c): j for j, c in enumerate(z.columns)}
        arr = z.to_numpy(dtype=np.float64, copy=True)
        for (gpu, feature), (low, high) in self.allowances.items():
            i, j = rows.get(gpu), cols.get(feature)
            if i is not None and j is not None and low <= arr[i, j] <= high:
                arr[i, j] = 0.0
        return pd.DataFrame(arr, index=z.index, columns=z.columns)

    def score_features(self, features: pd.DataFrame) -> pd.Series:
        """Return calibrated risk in [0, 1] per GPU (index of ``features``): one whole cycle's
        rows, or any rows of an assessed table (they carry their cycle's fleet shift)."""
        return self._risk(features, self.standardise(features))

    def _risk(self, features: pd.DataFrame, z: pd.DataFrame) -> pd.Series:
        """Return calibrated risk per GPU from its ``z`` (allowances applied) and failure flags."""
        arr = self.allowed(z).to_numpy(dtype=np.float64)
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
        slopes = self.temp_per_watt_
        if self.memo is not None:
            feats = self.memo.build(frames, graph, at, self.window, temp_per_watt=slopes)
        else:
            if self.peer_memo is None:
                self.peer_memo = PeerRowsMemo()
            feats = build_features(
                frames, graph, at, self.window, temp_per_watt=slopes, peer_memo=self.peer_memo
            )
        if self._common_mode:  # kept with the rows: any of them is judged within its cycle
            feats = with_common_shift(feats)
        z = self.standardise(feats)
        risk = self._risk(feats, z)
        # The table keeps the real deviations: explanations and an incident's evidence show what
        # the GPU did, also where an allowance scored it as normal.
        table = pd.concat([feats, z.add_prefix("z.")], axis=1)
        table["risk"] = risk
        scores = tuple(
            GpuScore(GpuRef.parse(k).node, GpuRef.parse(k).gpu, float(v)) for k, v in risk.items()
        )
        incidents = self._incidents(risk, table, graph, at)
        return Assessment(at=at, scores=scores, incidents=tuple(incidents), features=table)

    def _incidents(
        self, risk: pd.Series, table: pd.DataFrame | None, graph: nx.DiGraph, at: datetime
    ) -> list[Incident]:
        """The GPUs at risk grouped under their root causes (one each when not ``grouped``)."""
        if self.grouped:
            return find_incidents(risk, table, graph, at, self.threshold, critical=self.critical)
        return per_gpu_incidents(risk, table, at, self.threshold, critical=self.critical)

    def with_at_risk(
        self, assessment: Assessment, graph: nx.DiGraph, keys: Collection[str], signal: str
    ) -> Assessment:
        """``assessment`` with the GPUs ``keys`` at risk too (their risk held below the
        threshold: :mod:`analysis.sustained`), grouped again with the at-risk ones. An incident
        that exists only because of them (no GPU of it at the threshold on its own) says
        ``signal`` first, as a warning; every incident carries its GPUs' real risk."""
        risk = pd.Series({s.key: s.score for s in assessment.scores}, dtype=float)
        held = {k for k in keys if k in risk.index and risk[k] < self.threshold}
        if not held:
            return assessment
        raised = risk.copy()
        raised[sorted(held)] = self.threshold
        incidents = []
        for inc in self._incidents(raised, assessment.features, graph, assessment.at):
            if not held.intersection(g.key for g in inc.gpus):
                incidents.append(inc)
                continue
            gpus = tuple(replace(g, score=float(risk[g.key])) for g in inc.gpus)
            top = max(g.score for g in gpus)
            # at risk on its own this cycle (the held GPU with it), or only because of it
            signals = inc.signals if top >= self.threshold else (signal, *inc.signals)
            incidents.append(replace(inc, gpus=gpus, score=top, signals=signals))
        return replace(assessment, incidents=tuple(incidents))

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
    fit_max_rows : int or None
        Row budget of a fit (cycles x GPUs): a larger fleet is fitted on fewer cycles
        (:meth:`FeatureScorer.cycles_for`); None or 0: ``fit_cycles`` whatever the fleet.
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
