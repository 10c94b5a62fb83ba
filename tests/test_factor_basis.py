"""A factor says what its share rests on, in the JSON a consumer reads and through the state store:
a causal attribution, the detector's evidence, a robust z-score ranking, or a static rule."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from analysis.types import (
    FACTOR_BASES,
    Explanation,
    Factor,
    GpuScore,
    Incident,
    RootCause,
)

AT = datetime(2026, 11, 22, 10, tzinfo=UTC)


def _incident(*factors: Factor) -> Incident:
    return Incident(
        "i", AT, "warning", 0.95, RootCause("gpu-node-001", "node"),
        (GpuScore("gpu-node-001", "0", 0.95),), Explanation("why", factors),
    )  # fmt: skip


def _stored(factor: dict[str, Any]) -> dict[str, Any]:
    doc = _incident(Factor("x", "gpu-node-001", 1.0)).as_dict()
    doc["explanation"]["factors"] = [factor]
    return doc


@pytest.mark.parametrize("basis", FACTOR_BASES)
def test_the_basis_survives_the_json_form(basis: str) -> None:
    """``as_dict`` writes it, ``from_dict`` reads it back unchanged."""
    factor = Factor("FAN3 speed", "gpu-node-001", 0.6, "detail text", basis=basis)  # type: ignore[arg-type]
    doc = _incident(factor).as_dict()
    assert doc["explanation"]["factors"][0]["basis"] == basis
    assert Incident.from_dict(doc).explanation.factors == (factor,)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("detail", "basis"),
    [
        ("runs 9 °C hot; flagged by the detector: fan_spread at -16.1 robust sd on "
         "gpu-node-001/0 (causal attribution unavailable, no deviation)", "detector"),
        ("4 % above normal (ranked by robust z-score: causal attribution unavailable, "
         "degenerate)", "deviation"),
        ("12 °C above normal", "attribution"),
        ("", "attribution"),
    ],
)  # fmt: skip
def test_a_snapshot_stored_before_the_field_gets_its_basis_from_its_detail(
    detail: str, basis: str
) -> None:
    """Incidents already in the state store (no ``basis`` key) load with the basis they had."""
    stored = _stored({"name": "x", "entity": "gpu-node-001", "share": 1.0, "detail": detail})
    factor = Incident.from_dict(stored).explanation.factors[0]  # type: ignore[union-attr]
    assert factor.basis == basis


def test_an_unknown_basis_is_an_error_that_names_the_choices() -> None:
    """A corrupt or foreign record is refused, not silently read as an attribution."""
    stored = _stored({"name": "x", "entity": "gpu-node-001", "share": 1.0, "basis": "guess"})
    with pytest.raises(ValueError, match=r"unknown factor basis 'guess'.*attribution"):
        Incident.from_dict(stored)
