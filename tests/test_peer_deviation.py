"""The peer comparison every temperature feature rests on, against its definition.

``_peer_deviation``: each row's value minus the mean of the other rows of its group whose power
is comparable (``comparable_band``). Checked against a brute-force loop on random frames with
ties, missing power and values, and negative readings; and a group's numbers are the same bits
whatever other groups the frame holds (a fit computes them once for its whole history).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.context import COMPARABLE_WATTS, _peer_deviation, comparable_band


def _brute(frame: pd.DataFrame, group: list[str], col: str, watts: float) -> np.ndarray:
    out = np.full(len(frame), np.nan)
    power, value = frame["power"].to_numpy(), frame[col].to_numpy()
    labels = list(zip(*(frame[g] for g in group), strict=True))
    for i in range(len(frame)):
        if np.isnan(power[i]) or np.isnan(value[i]):
            continue
        lo, hi = comparable_band(np.array([power[i]]), watts)
        if not lo[0] <= power[i] <= hi[0]:
            continue
        peers = [
            value[j]
            for j in range(len(frame))
            if j != i
            and labels[j] == labels[i]
            and not np.isnan(power[j])
            and not np.isnan(value[j])
            and lo[0] <= power[j] <= hi[0]
        ]
        if peers:
            out[i] = value[i] - float(np.mean(peers))
    return out


powers = st.one_of(
    st.sampled_from([0.0, 60.0, 100.0, 110.0, 150.0, 400.0, -5.0, np.nan]),
    st.floats(0, 700, allow_nan=False),
)
rows = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(["a", "b"]),
        powers,
        st.one_of(st.floats(20, 90, allow_nan=False), st.just(np.nan)),
    ),
    min_size=0,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(rows)
def test_peer_deviation_is_its_definition(data: list[tuple[int, str, float, float]]) -> None:
    frame = pd.DataFrame(data, columns=["ts", "node", "power", "temp"])
    got = _peer_deviation(frame, ["ts", "node"], ["temp"], COMPARABLE_WATTS)["temp"].to_numpy()
    want = _brute(frame, ["ts", "node"], "temp", COMPARABLE_WATTS)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(rows, rows)
def test_a_groups_numbers_do_not_depend_on_the_other_groups(
    mine: list[tuple[int, str, float, float]], others: list[tuple[int, str, float, float]]
) -> None:
    """Bit for bit: the rows of timestamp 0 alone, and among other timestamps' rows."""
    alone = pd.DataFrame([(0, *r[1:]) for r in mine], columns=["ts", "node", "power", "temp"])
    rest = pd.DataFrame([(1 + r[0], *r[1:]) for r in others], columns=alone.columns)
    if alone.empty:
        return
    both = pd.concat([f for f in (rest, alone, rest) if len(f)], ignore_index=True)
    cut = slice(len(rest), len(rest) + len(alone))
    want = _peer_deviation(alone, ["ts", "node"], ["temp"], COMPARABLE_WATTS)["temp"].to_numpy()
    got = _peer_deviation(both, ["ts", "node"], ["temp"], COMPARABLE_WATTS)["temp"].to_numpy()
    np.testing.assert_array_equal(got[cut], want)
