"""A small factory of tabular anomaly detectors with one contract: higher score = more abnormal.

``make_detector("iforest" | "ecod" | "copod" | "hbos", random_state=0, **kw)`` returns an object
with ``fit(X) -> self`` and ``decision_function(X) -> scores`` (higher = more abnormal), following
the PyOD/sklearn conventions (learned attributes end in ``_``). sklearn and pyod are imported
lazily inside ``fit`` so importing this module stays cheap.
"""

from __future__ import annotations

from typing import Any, Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

DETECTORS: tuple[str, ...] = ("iforest", "ecod", "copod", "hbos")


@runtime_checkable
class Detector(Protocol):
    """What every detector offers: fit on normal rows, then score rows (higher = abnormal)."""

    def fit(self, X: npt.ArrayLike) -> Self:  # noqa: N803 (sklearn naming)
        """Learn what normal rows look like."""
        ...

    def decision_function(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:  # noqa: N803
        """Return one anomaly score per row, higher = more abnormal."""
        ...


class SklearnIForest:
    """sklearn IsolationForest with the sign flipped so that higher = more abnormal."""

    def __init__(
        self,
        n_estimators: int = 100,
        max_samples: int | str = "auto",
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        """Keep the IsolationForest settings; nothing is fitted yet."""
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X: npt.ArrayLike) -> Self:  # noqa: N803
        """Fit the forest on (presumed normal) rows and return self."""
        from sklearn.ensemble import IsolationForest

        self.model_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        ).fit(np.asarray(X, dtype=np.float64))
        return self

    def decision_function(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:  # noqa: N803
        """Return the negated sklearn decision function (higher = more abnormal)."""
        scores = self.model_.decision_function(np.asarray(X, dtype=np.float64))
        return np.asarray(-scores, dtype=np.float64)


class PyodDetector:
    """A pyod detector (ECOD, COPOD, HBOS) behind the same two methods."""

    def __init__(self, name: str, random_state: int = 0, **kw: Any) -> None:
        """Keep the pyod model name and its keyword arguments; nothing is fitted yet."""
        self.name = name
        self.random_state = random_state
        self.kw = kw

    def fit(self, X: npt.ArrayLike) -> Self:  # noqa: N803
        """Fit the pyod model on (presumed normal) rows and return self."""
        np.random.seed(self.random_state)  # pyod models without random_state stay deterministic
        if self.name == "ecod":
            from pyod.models.ecod import ECOD

            model: Any = ECOD(n_jobs=1, **self.kw)
        elif self.name == "copod":
            from pyod.models.copod import COPOD

            model = COPOD(n_jobs=1, **self.kw)
        else:
            from pyod.models.hbos import HBOS

            model = HBOS(**self.kw)
        self.model_ = model.fit(np.asarray(X, dtype=np.float64))
        return self

    def decision_function(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:  # noqa: N803
        """Return pyod's anomaly scores (already higher = more abnormal)."""
        return np.asarray(
            self.model_.decision_function(np.asarray(X, dtype=np.float64)), dtype=np.float64
        )


def make_detector(name: str, random_state: int = 0, **kw: Any) -> Detector:
    """Build a detector by name.

    Parameters
    ----------
    name : str
        One of :data:`DETECTORS`: ``iforest`` (sklearn IsolationForest), ``ecod``, ``copod``,
        ``hbos`` (pyod).
    random_state : int
        Seed, passed where the model has randomness.
    **kw
        Extra constructor arguments (e.g. ``n_estimators`` for iforest, ``n_bins`` for hbos).

    Returns
    -------
    Detector
        An unfitted detector with ``fit`` and ``decision_function`` (higher = more abnormal).

    Raises
    ------
    ValueError
        When the name is unknown; the message lists the known names.
    """
    key = name.strip().lower()
    if key == "iforest":
        return SklearnIForest(random_state=random_state, **kw)
    if key in ("ecod", "copod", "hbos"):
        return PyodDetector(key, random_state=random_state, **kw)
    raise ValueError(f"unknown detector {name!r}: choose one of {', '.join(DETECTORS)}")
