"""Choose a fleet scorer by name: the one place that maps detector names to scorer objects.

``scan``, the scheduler and the backtest call ``make_scorer(name, settings)``. Names come from
``--detector`` or ``GPU_RISK_DETECTOR``.
"""

from __future__ import annotations

import logging

from analysis.scorer import Scorer
from bot.commands.common import UserError
from bot.config import Settings

logger = logging.getLogger(__name__)

# The detector a one-shot scan uses when the configured one is not built into this version yet.
FALLBACK_DETECTOR = "static"


# Learning scorers: the graph model (default) over any detector, and the plain baseline.
LEARNING_DETECTORS: tuple[str, ...] = ("graph", "iforest", "ecod", "copod", "hbos")


def available_detectors() -> tuple[str, ...]:
    """Return the detector names ``make_scorer`` can build in this version."""
    return ("static", *LEARNING_DETECTORS)


def make_scorer(name: str, settings: Settings) -> Scorer:
    """Build the scorer called ``name`` from the settings; UserError naming the choices if unknown."""
    if name == "static":
        from analysis.static_rules import StaticRules

        return StaticRules()
    if name in LEARNING_DETECTORS:
        from datetime import timedelta

        from analysis.scoring import GraphRiskModel, IForestBaseline

        window = timedelta(minutes=settings.window_minutes)
        fit_window = timedelta(hours=settings.fit_window_hours)
        if name == "iforest":
            return IForestBaseline(
                window=window,
                fit_window=fit_window,
                threshold=settings.threshold,
                random_state=settings.random_state,
            )
        # "graph" is the graph model with Isolation Forest; ecod/copod/hbos swap its detector.
        return GraphRiskModel(
            detector="iforest" if name == "graph" else name,
            window=window,
            fit_window=fit_window,
            threshold=settings.threshold,
            random_state=settings.random_state,
        )
    raise UserError(
        f"detector {name!r} is not available in this version; choose one of "
        f"{', '.join(available_detectors())} (--detector or GPU_RISK_DETECTOR)"
    )


def resolve_detector(flag: str | None, settings: Settings) -> str:
    """The detector to use: the flag, else the setting (falling back if not built in yet).

    The fallback is logged, and the result names the detector that ran (JSON ``detector``).
    """
    if flag:
        return flag
    if settings.detector in available_detectors():
        return settings.detector
    logger.info(
        "detector %r (GPU_RISK_DETECTOR) is not available in this version yet; using %r",
        settings.detector,
        FALLBACK_DETECTOR,
    )
    return FALLBACK_DETECTOR
